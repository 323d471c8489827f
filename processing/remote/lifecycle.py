"""The lifecycle of one remote child as its notebook sees it: one object, one lock.

Three threads drive a remote handle: the caller's (``start``, ``terminate``,
``join``), its relay thread (the worker's news) and Dask's callback thread (the
task ended). Everything they share lives here and changes in one critical
section at a time: the state and what came with it (pid, host, exit code,
failure), the task and the connection, a stop asked for before the worker
connected, and what tells waiters (two events and a sentinel pipe).
"""

from __future__ import annotations

import os
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from .protocol import Stop, ToChild
    from .wire import Wire

__all__ = ["ENDED", "INITIAL", "LOST", "Lifecycle", "PENDING", "RUNNING", "STOPPED"]

#: The states, as ``RemoteProcess.state`` reports them.
INITIAL, PENDING, RUNNING, STOPPED, LOST = "initial", "pending", "running", "stopped", "lost"
ENDED = frozenset({STOPPED, LOST})


class Lifecycle:
    """State and exit of one remote child, the task and wire that reach it, and its waiters."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._state = INITIAL
        self._pid: int | None = None
        self._host: str | None = None
        self._exitcode: int | None = None
        self._failure: str | None = None
        self._future: Any = None
        self._wire: Wire | None = None
        self._stop: Stop | None = None
        self._to_child: list[ToChild] = []  # sent as soon as the worker connects
        self._ender: threading.Thread | None = None
        self._running = threading.Event()
        self._done = threading.Event()
        self._sentinel: int | None = None
        self._sentinel_writer: int | None = None
        self._closed = False

    # -- what it is now ------------------------------------------------------------

    @property
    def state(self) -> str:
        return self._state

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def host(self) -> str | None:
        return self._host

    @property
    def exitcode(self) -> int | None:
        return self._exitcode

    @property
    def failure(self) -> str | None:
        return self._failure

    @property
    def ended(self) -> bool:
        return self._state in ENDED

    def ended_on(self, thread: threading.Thread) -> bool:
        """Whether ``thread`` recorded the end (it delivers ``exited``, so it must not wait for it)."""
        return self._ender is thread

    # -- changes -------------------------------------------------------------------

    def submitted(self, future: Any) -> None:
        """The Dask task is submitted: pending until a worker connects."""
        with self._lock:
            self._future = future
            self._state = PENDING

    def connected(self, wire: Wire, first: Callable[[], None]) -> bool:
        """Adopt the worker's ``wire`` unless the end came first; ``first()`` sends the payload meanwhile.

        What was sent to the child and a stop asked for while no worker was
        connected follow the payload, in that order. Returns False (and the
        caller closes the wire) if the child ended already: then no payload may
        go, or a child would start that nobody watches.
        """
        with self._lock:
            if self.ended:
                return False
            first()
            for message in self._to_child:
                wire.send(message)
            self._to_child = []
            if self._stop is not None:
                wire.send(self._stop)
            self._wire = wire
            return True

    def running(self, pid: int, host: str) -> None:
        """The worker reports the child running: its pid and host are known."""
        with self._lock:
            if self._state == PENDING:
                self._state = RUNNING
            self._pid, self._host = pid, host
        self._running.set()

    def stop(self, stop: Stop) -> tuple[Wire | None, Any] | None:
        """Ask for ``stop``: the wire to send it on, or (no worker yet) the task to cancel; None if ended."""
        with self._lock:
            if self.ended:
                return None
            if self._wire is None:
                self._stop = stop
            return self._wire, self._future

    def to_child(self, message: ToChild) -> tuple[bool, Wire | None]:
        """Whether ``message`` can still reach the child (False once it has ended), and the wire to send it
        on (None: it was queued for the worker still to come)."""
        with self._lock:
            if self.ended:
                return False, None
            if self._wire is None:
                self._to_child.append(message)
            return True, self._wire

    def task_ended(self, failure: str | None) -> tuple[int | None, str, str | None] | None:
        """Dask's callback: the task ended (``failure`` says why, if it failed). If no worker had
        connected, the child never ran, and this decides how it ends.

        Whether the worker connected and the end are decided in one critical
        section, the one :meth:`connected` holds while the payload goes:
        otherwise a worker whose hello was just accepted could be started in
        between, while the handle records a stop that never happened and drops
        the child's real exit. Returns the end (exit code, state, failure) to
        announce, or None if there is nothing to announce here.
        """
        with self._lock:
            if self._wire is not None:
                return None  # connected: the relay thread sees the connection end
            if failure is not None:
                end: tuple[int | None, str, str | None] = (None, LOST, failure)
            elif self._stop is not None:
                end = (-_signal_of(self._stop), STOPPED, None)
            else:
                end = (None, LOST, "its Dask task was cancelled before the child started")
            return end if self._record_locked(*end) else None

    def end(self, exitcode: int | None, state: str, failure: str | None) -> bool:
        """Record the end, once; True if this call recorded it (its caller then announces it)."""
        with self._lock:
            return self._record_locked(exitcode, state, failure)

    def release(self) -> Any:
        """After the end was announced: wake the waiters; returns the task, to cancel if it still runs."""
        self._done.set()
        with self._lock:
            writer, self._sentinel_writer = self._sentinel_writer, None
            future, self._future = self._future, None
        if writer is not None:
            os.close(writer)  # the sentinel becomes readable
        return future

    # -- waiting -------------------------------------------------------------------

    def wait_running(self, timeout: float | None) -> bool:
        """Wait until the child runs; False if it never will (it ended first), or on timeout."""
        self._running.wait(timeout)
        return self._pid is not None

    def wait_done(self, timeout: float | None) -> bool:
        return self._done.wait(timeout)

    def sentinel(self) -> int:
        """A pipe's read end that becomes readable (EOF) once the end was announced; made on first use.

        Raises:
            ValueError: :meth:`close` released it.
        """
        with self._lock:
            if self._closed:
                raise ValueError("closed: its sentinel was released")
            if self._sentinel is None:
                self._sentinel, writer = os.pipe()
                if self._done.is_set():
                    os.close(writer)  # the end has come already: readable at once
                else:
                    self._sentinel_writer = writer
            return self._sentinel

    def close(self) -> None:
        """Release the sentinel; later calls of :meth:`sentinel` raise."""
        with self._lock:
            sentinel, self._sentinel, self._closed = self._sentinel, None, True
        if sentinel is not None:
            os.close(sentinel)

    def _record_locked(self, exitcode: int | None, state: str, failure: str | None) -> bool:
        if self.ended:
            return False
        self._exitcode, self._state, self._failure = exitcode, state, failure
        self._ender = threading.current_thread()
        self._running.set()  # it never will: wait_running() returns now
        return True


def _signal_of(stop: Stop) -> int:
    import signal

    return signal.SIGKILL if stop.kill else signal.SIGTERM

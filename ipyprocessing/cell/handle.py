"""``CellProcess``: the Process a ``%%process`` cell starts, with its full output and pulled values.

It is a :class:`processing.Process` (``--proc h`` binds one), so ``h.join()``,
``h.terminate()``, ``h.exitcode`` work as usual; it adds what the notebook
needs: every byte the child wrote (``h.output``), the values it pulled, and
why it stopped. Under spawn and forkserver the object itself travels to the
child, so this module imports nothing heavy and keeps the parent-only parts
out of the pickle.
"""

from __future__ import annotations

import collections
import os
import signal
import threading
import time

import processing

from ..view.output import OutputLog
from ..words import describe_exit
from . import messages, pulls
from .target import CellTarget

TYPE_CHECKING = False  # no typing at run time: spawned children import this module
if TYPE_CHECKING:
    from typing import Any, Protocol

    class View(Protocol):
        """What a process tells the display showing it (a widget in a kernel, text in a terminal)."""

        def output(self, stream: str, data: bytes) -> None:
            """A chunk the child wrote; called on the monitor thread."""

        def received(self, message: tuple[Any, ...]) -> None:
            """A message of the child's shell (a display, a traceback, a widget's comm message ...);
            called on the monitor thread, after the output the child wrote before it."""

        def running(self) -> None:
            """A remote child now runs on a worker: its pid and host are known; called on its relay thread."""

        def exited(self, exitcode: int | None, note: str) -> None:
            """The child has exited and all its output was delivered; called on the monitor thread.

            ``exitcode`` is None for a remote child whose worker went away (``lost``).
            """

        def wait_shown(self, timeout: float) -> bool:
            """Wait until the end is shown (a kernel about to exit waits for it); False on timeout."""

        def release(self) -> None:
            """The process is forgotten: let go of what is still held for it (widgets)."""

__all__ = ["CellHandle", "CellProcess", "timeout_reason"]


class CellHandle:
    """What a cell's handle adds to a process handle, local or remote: output log, views, pull, stop reasons.

    Mixed into a handle class before it (``class C(CellHandle, processing.Process)``);
    the handle's ``__init__`` calls :meth:`_init_cell` before its own and passes
    ``output=self._deliver``.
    """

    #: What a cell's handle keeps for the notebook only: never sent to the child.
    cell_attributes = frozenset({"_log", "_view", "_user_ns", "_timer", "pulled", "_pulled_values",
                                 "input_requests", "failed_because", "sent", "shipped_modules"})

    def _init_cell(self, target: CellTarget, user_ns: dict[str, Any]) -> None:
        from ..settings import current  # here: a child that loads this module needs no traitlets

        self._log = OutputLog(spill=current().spill_bytes)
        self._view: View = _Unseen()
        self._user_ns = user_ns
        self._timer: threading.Timer | None = None
        #: The names this cell's child pulled into the notebook (their values are the notebook's alone).
        self.pulled: tuple[str, ...] = ()
        self._pulled_values: dict[str, Any] | None = None
        #: Why the cell failed, in one line (``the cell raised ZeroDivisionError: division by zero``).
        self.failed_because: str | None = None
        #: What the child's ``input()`` asks, for ``--wait`` to answer (see :mod:`.waiting`).
        self.input_requests = _Requests()
        self.pull_names: tuple[str, ...] = target.pull
        self.execution_count: int = target.settings.execution_count
        self.stop_reason: str | None = None
        #: Bytes of the notebook's names sent to the child, and the seconds packing and sending took.
        self.sent: tuple[int, float] | None = None
        #: The modules the child imports for the notebook's names (spawn, forkserver): by name, and those the
        #: values' unpickling imported (pandas for a DataFrame), which the fork server may preload once the
        #: child has ended cleanly.
        self.shipped_modules: tuple[str, ...] = (
            tuple(sorted(set(target.shipment.modules.values()))) if target.shipment is not None else ())
        #: The front end's id of the cell that started it (None where the front end sends none).
        self.cell_id: str | None = None
        self.started_at: float | None = None
        self.ended_at: float | None = None

    @property
    def output(self) -> bytes:
        """Everything the child wrote to stdout and stderr so far, in the order it arrived."""
        return self._log.join()

    @property
    def stdout(self) -> bytes:
        return self._log.join("stdout")

    @property
    def stderr(self) -> bytes:
        return self._log.join("stderr")

    @property
    def elapsed(self) -> float:
        """Seconds since start, up to the exit once the child has exited (0 before start)."""
        if self.started_at is None:
            return 0.0
        return (self.ended_at or time.monotonic()) - self.started_at

    def attach(self, view: View) -> None:
        """Show this process through ``view``; call before ``start()``."""
        self._view = view

    def wait_shown(self, timeout: float) -> bool:
        """Wait until the view has shown the end; False if ``timeout`` seconds passed first."""
        return self._view.wait_shown(timeout)

    def release(self) -> None:
        """The session forgets this process: its view lets go of what it still holds (widgets)."""
        self._view.release()

    def start(self) -> None:
        _finish_on_exit()
        self.started_at = time.monotonic()
        super().start()  # type: ignore[misc]

    def join(self, timeout: float | None = None) -> None:
        """Wait for the child as ``Process.join`` does; once it has ended, its pulled values are assigned
        (a cell that joins the child asked for them, so they do not wait for the cell's end)."""
        super().join(timeout)  # type: ignore[misc]
        if self.ended_at is not None:
            pulls.deliveries.assign_waiting(self)

    def stop_after(self, seconds: float) -> None:
        """Stop the child if it still runs ``seconds`` from now (``--timeout``)."""
        self._timer = threading.Timer(seconds, self.stop, (timeout_reason(seconds),))
        self._timer.daemon = True
        self._timer.start()

    def terminate_because(self, reason: str) -> None:
        """Send SIGTERM to the child and the subprocesses it started (its process group), waiting up
        to 2 s for the exit, and remember why, so the display can say so."""
        if self.exitcode is None:  # type: ignore[attr-defined]
            self.stop_reason = reason
            self.terminate(tree=True)  # type: ignore[attr-defined]

    def kill_because(self, reason: str) -> None:
        """Send SIGKILL to the child and its process group, and remember why."""
        if self.exitcode is None:  # type: ignore[attr-defined]
            self.stop_reason = reason
            self.kill(tree=True)  # type: ignore[attr-defined]

    def stop(self, reason: str) -> None:
        """Terminate the child, and kill it if SIGTERM did not end it: used where the user cannot insist."""
        self.terminate_because(reason)
        if self.exitcode is None:  # type: ignore[attr-defined]
            self.kill_because(reason + " (it ignored SIGTERM, so it was killed)")

    def finish(self, exitcode: int) -> None:
        """Called once the child has exited and its output and messages were delivered."""
        self.ended_at = time.monotonic()
        if self._timer is not None:
            self._timer.cancel()
        stopped_by_us = self.stop_reason is not None and exitcode in (-signal.SIGTERM, -signal.SIGKILL)
        notes = [self.stop_reason] if self.stop_reason and exitcode != 0 else []
        if exitcode == 1 and self.failed_because is not None:
            notes.append(self.failed_because)
        elif exitcode != 0 and not stopped_by_us:  # our own reason already says what the signal was
            notes.append(describe_exit(exitcode))
        if self.pull_names:
            notes.append(self._pull(exitcode))
        if self._log.problem is not None:
            notes.append(self._log.problem)
        if exitcode == 0 and not self.remote:  # type: ignore[attr-defined]
            _preload(self.shipped_modules)
        self._view.exited(exitcode, "; ".join(notes))

    def _pull(self, exitcode: int) -> str:
        """Hand the pulled values to the notebook (between cells, see :mod:`.pulls`); keep their names."""
        names = ", ".join(self.pull_names)
        values, self._pulled_values = self._pulled_values, None
        if exitcode != 0:
            return f"nothing pulled ({names}): the cell did not finish"
        if values is None:
            return f"nothing pulled ({names}): the child sent no values"
        self.pulled = tuple(values)
        pulls.deliveries.deliver(self, self._user_ns, values)  # now, or as the running cell ends or joins us
        return f"pulled {names} into the notebook"

    def _deliver(self, stream: str, data: bytes) -> None:
        self._log.append(stream, data)
        self._view.output(stream, data)

    def _received(self, obj: object) -> None:
        """The child's shell's messages go to the view, the pulled values are kept for the end; the rest
        is the process's as usual (``messages``, the ``message`` event)."""
        if isinstance(obj, messages.Stream):
            for name, text in obj.parts:
                self._deliver(name, text.encode("utf-8", "backslashreplace"))
        elif isinstance(obj, messages.Pulled):
            self._pulled_values = obj.values
        elif isinstance(obj, messages.Failed):
            self.failed_because = obj.reason
        elif isinstance(obj, messages.Imported):
            self.shipped_modules = tuple(sorted({*self.shipped_modules, *obj.modules}))
        elif isinstance(obj, messages.InputRequest):
            self.input_requests.put(obj)
        elif isinstance(obj, messages.Error):
            if self.failed_because is None:
                detail = _first_line(obj.evalue)
                self.failed_because = f"the cell raised {obj.ename}" + (f": {detail}" if detail else "")
            self._log.append("stderr", (obj.plain() + "\n").encode())  # .output keeps what went wrong too
            self._view.received(obj)
        elif isinstance(obj, messages.SHELL_MESSAGES):
            self._view.received(obj)
        else:
            super()._received(obj)  # type: ignore[misc]


class CellProcess(CellHandle, processing.Process):
    """A child process running one notebook cell.

    ``user_ns`` is where ``--pull`` values are assigned when the child exits
    with code 0. Output is captured at the file-descriptor level and kept in
    full; the child is put in its own process group, so interrupting the kernel
    (which signals the kernel's whole group) does not reach it.
    """

    local_attributes = processing.Process.local_attributes | CellHandle.cell_attributes

    def __init__(
        self,
        target: CellTarget,
        *,
        user_ns: dict[str, Any],
        name: str | None = None,
        daemon: bool | None = None,
        method: str | None = None,
    ) -> None:
        self._init_cell(target, user_ns)
        super().__init__(target=target, name=name, daemon=daemon, method=method, output=self._deliver,
                         new_process_group=True)


class _Unseen:
    """The view of a process not attached to one: it shows nothing."""

    def output(self, stream: str, data: bytes) -> None:
        pass

    def received(self, message: tuple[Any, ...]) -> None:
        pass

    def running(self) -> None:
        pass

    def exited(self, exitcode: int | None, note: str) -> None:
        pass

    def wait_shown(self, timeout: float) -> bool:
        return True

    def release(self) -> None:
        pass


class _Requests:
    """The child's ``input()`` requests, queued for the thread that waits for the cell (``--wait``),
    which polls :attr:`fd`; the pipe behind it is made on first use, and the waiter closes it
    (:meth:`close`) when it stops waiting."""

    def __init__(self) -> None:
        self._queue: collections.deque[messages.InputRequest] = collections.deque()
        self._pipe: tuple[int, int] | None = None
        self._lock = threading.Lock()

    @property
    def fd(self) -> int:
        """A descriptor that becomes readable when a request waits."""
        with self._lock:
            if self._pipe is None:
                self._pipe = os.pipe()
                if self._queue:
                    os.write(self._pipe[1], b"!")
            return self._pipe[0]

    def put(self, request: messages.InputRequest) -> None:
        with self._lock:
            self._queue.append(request)
            if self._pipe is not None:
                os.write(self._pipe[1], b"!")

    def take(self) -> list[messages.InputRequest]:
        with self._lock:
            if self._pipe is not None:
                os.read(self._pipe[0], 4096)
            requests, self._queue = list(self._queue), collections.deque()
            return requests

    def close(self) -> None:
        with self._lock:
            pipe, self._pipe = self._pipe, None
        if pipe is not None:
            for fd in pipe:
                os.close(fd)


def _preload(modules: tuple[str, ...]) -> None:
    """Modules a child has just imported cleanly: the fork server imports them too, once (unless the
    setting is off), so that later children find them loaded. A failing one never gets here."""
    from ..settings import current

    if modules and current().preload_imports:
        from processing.forkserver.client import preload_also

        preload_also(list(modules))


def _first_line(text: str, limit: int = 200) -> str:
    line = text.strip().split("\n", 1)[0]
    return line if len(line) <= limit else line[: limit - 1] + "\u2026"


def timeout_reason(seconds: float) -> str:
    return f"terminated after the {seconds:g} s timeout (--timeout)"


_subscription: processing.Subscription | None = None
_subscription_lock = threading.Lock()


def _finish_on_exit() -> None:
    """Subscribe, once per interpreter, the hook that finishes every CellProcess when it exits.

    Once, so that reloading the extension cannot finish a process twice; before
    the first start, so that no exit is missed however quickly a child dies.
    """
    global _subscription
    with _subscription_lock:
        if _subscription is None:
            _subscription = processing.subscribe(exited=_finish)


def _finish(process: Any, exitcode: int | None) -> None:
    if isinstance(process, CellHandle):
        process.finish(exitcode)

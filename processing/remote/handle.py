"""``RemoteProcess``: a real child process on a Dask worker, behind a local Process-like handle.

``RemoteProcess`` has the methods of :class:`processing.Process` (start, join,
name, pid, alive, exit code, terminate, kill), plus ``host`` (the worker's
address) and ``state``, so that code and widgets written for local handles
work with remote ones. Its ``output=`` callback, ``messages`` list and the
``started``/``exited``/``message`` events of :func:`processing.subscribe`
behave as for a local child.

How it works: ``start()`` opens a listener here, and submits one Dask task
(:func:`processing.remote.worker.serve`) that connects back to it, receives
the pickled target, starts a :class:`processing.Process` on its worker and
relays it (see :mod:`~processing.remote.relay` and, for the connection and
its keys, :mod:`~processing.remote.wire`). The process's auth key itself never
leaves this process, and the listener accepts one connection. Dask cannot stop
a running task; ``terminate()`` travels over that connection and the worker
signals the child. If the worker dies, the connection ends and the handle
becomes ``lost`` at once (keep-alive probing catches a vanished machine within
about 11 s).

Dask is imported only when a remote process is started.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import threading
import uuid

from .. import events, launch, logs, serialization
from ..errors import ProcessStateError, TargetPicklingError
from ..handle import ProcessHandle
from ..process import SIGNAL_WAIT, _output_callback, currentProcess, status_word
from .cluster import get_client, reachable_host
from .lifecycle import INITIAL, LOST, RUNNING, STOPPED, Lifecycle
from .protocol import ChildSettings, Start, Stop, ToChild
from .relay import MAX_PENDING_HELLOS, Relay
from .wire import MAX_FRAME, NONCE_SIZE, Credentials, one_time_key
from .worker import serve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import IO, Any

    from distributed import Future

__all__ = ["NETWORK_SLACK", "RemoteProcess"]

#: How long terminate() and kill() wait for the exit report beyond the worker's own SIGNAL_WAIT.
NETWORK_SLACK = 3.0
#: Room left in a frame for what travels beside the payload (the settings, pickling's framing).
_FRAME_SLACK = 1 << 16

_counter = itertools.count(1)


class RemoteProcess(ProcessHandle):
    """A child process that runs ``target(*args, **kwargs)`` on a Dask worker's machine.

    - ``cluster``: a scheduler address (``'tcp://10.0.0.5:8786'``), a
      ``distributed.Client`` or a cluster object; None: Dask's default client.
    - ``output``: as for :class:`processing.Process`, a callable
      ``output(stream_name, data: bytes)`` or a text stream; the child's fds 1
      and 2 are captured on the worker and streamed here live. Without it, the
      child writes to the worker's own stdout and stderr.
    - ``method``: the start method on the worker (default: the worker's default).
    - ``workers``: restrict the task to these worker addresses (as ``client.submit``).
    - ``listen_host``: the address of this machine that the workers can reach
      (default: the one this machine uses to reach the scheduler).
    - ``connect_timeout``: seconds to wait for the scheduler in ``start()``.
    - ``preload``: modules the worker's fork server should import once and keep,
      because targets like this one need them (added to what it preloads
      already, see :func:`processing.setForkserverPreload`): the first such
      child on a worker pays the import, the later ones do not.

    States: ``initial``, ``pending`` (submitted, waiting for a worker),
    ``running``, ``stopped`` (exit code known), ``lost`` (ended without an exit
    code: the worker died or the connection failed; ``failure`` says why).

    Raises:
        ValueError: ``method`` is unknown.
        TypeError: ``output`` is neither callable nor has a ``write`` method.
    """

    remote = True

    def __init__(
        self,
        target: Callable[..., Any] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        cluster: str | Any = None,
        output: Callable[[str, bytes], Any] | IO[str] | None = None,
        method: str | None = None,
        workers: str | list[str] | None = None,
        listen_host: str | None = None,
        connect_timeout: float = 5.0,
        preload: Iterable[str] = (),
    ) -> None:
        self._target = target
        self._args = tuple(args)
        self._kwargs = dict(kwargs or {})
        self._name = f"RemoteProcess-{next(_counter)}" if name is None else name
        self._cluster = cluster
        self._output = _output_callback(output)
        self._method = None if method is None else launch.check(method)
        self._workers = workers
        self._listen_host = listen_host
        self._connect_timeout = connect_timeout
        self._preload = list(preload)
        self._authkey = currentProcess().authkey
        self._creator_pid = os.getpid()
        self._lifecycle = Lifecycle()
        self._relay: Relay | None = None
        self.messages: list[Any] = []
        self.listen_address: tuple[str, int] | None = None

    # -- the Process methods ---------------------------------------------------

    def start(self) -> None:
        """Submit the task and return; the child runs once a worker takes it (``pid`` is None until then).

        Subscribers' ``started`` callbacks run now, on this thread, as for a local child.

        Raises:
            ProcessStateError: already started, or not called by the creating process.
            TargetPicklingError: the target or an argument cannot be sent; nothing was submitted.
            SchedulerUnreachableError: no scheduler answered; nothing was submitted.
        """
        self._check_creator("start")
        if self.state != INITIAL:
            raise ProcessStateError(
                f"{self._name} has already been started; a process can be started only once: "
                "create a new RemoteProcess to run the target again"
            )
        payload = self._payload()
        client = get_client(self._cluster, self._connect_timeout)
        key, challenge = one_time_key(self._authkey), os.urandom(NONCE_SIZE)
        listener = socket.create_server(
            (self._listen_host or reachable_host(client), 0), backlog=MAX_PENDING_HELLOS
        )
        settings = ChildSettings(self._name, self._method, self._output is not None, self._preload)
        relay = Relay(self, listener, key, challenge, Start(payload, settings))
        self.listen_address = relay.address
        try:
            future = client.submit(
                serve,
                relay.address,
                Credentials(key, challenge),  # its repr hides them from Dask's logs
                key=f"processing-remote-{uuid.uuid4().hex}",
                pure=False,
                workers=self._workers,
            )
        except BaseException:
            listener.close()
            raise
        self._lifecycle.submitted(future)
        self._relay = relay
        events.started(self)  # before anything can report the end
        relay.thread.start()
        future.add_done_callback(self._on_task_done)

    def join(self, timeout: float | None = None) -> None:
        """Wait until the remote child has exited (or is lost), or ``timeout`` seconds pass.

        When it returns after the exit, all output and messages have been delivered
        and subscribers' ``exited`` callbacks have run. Called from one of this
        process's own callbacks, it returns at once: it would wait for itself.

        Raises:
            ProcessStateError: not started yet, or not called by the creating process.
        """
        self._check_creator("join")
        if self.state == INITIAL:
            raise ProcessStateError(f"cannot join {self._name}: it has not been started; call start() first")
        if self._can_wait():
            self._lifecycle.wait_done(timeout)

    def wait_running(self, timeout: float | None = None) -> bool:
        """Wait until the remote child runs (``pid``, ``host`` known); False if it never will, or timeout."""
        return self._lifecycle.wait_running(timeout)

    def terminate(self, *, tree: bool = False) -> None:
        """Have the worker send SIGTERM to the child, then wait up to a few seconds for the exit report.

        With ``tree=True`` the child's own children get it too (the remote child
        leads a process group of its own). A process still waiting for a worker is
        cancelled instead; its exit code is then ``-SIGTERM`` too. Does nothing
        once the process has ended.

        Raises:
            ProcessStateError: the process has not been started.
        """
        self._stop(Stop(kill=False, tree=tree))

    def kill(self, *, tree: bool = False) -> None:
        """Like :meth:`terminate`, with SIGKILL, which cannot be ignored."""
        self._stop(Stop(kill=True, tree=tree))

    def isAlive(self) -> bool:
        """True from ``start()`` until the remote child has exited or is lost."""
        return self.state not in (INITIAL, STOPPED, LOST)

    def getPid(self) -> int | None:
        """The child's process id on its worker's machine; None until it runs."""
        return self._lifecycle.pid

    def getExitCode(self) -> int | None:
        """None while running (and if lost); 0, N for ``sys.exit(N)``, 1 on an exception, -N for signal N."""
        return self._lifecycle.exitcode

    def sendToChild(self, obj: object) -> None:
        """Send ``obj`` to the remote child (``processing.receiveFromParent`` there), signed on the wire.

        While no worker has taken the process yet, it is kept and sent first thing once one has.

        Raises:
            ProcessStateError: not started yet, or the child has ended (or is lost).
            TargetPicklingError: ``obj`` cannot be pickled.
        """
        if self.state == INITIAL:
            raise ProcessStateError(f"cannot send to {self._name}: it has not been started; start() it first")
        try:
            data = serialization.dumps(obj)
        except Exception as error:
            raise TargetPicklingError(f"cannot send {serialization.short_repr(obj)} to {self._name}: "
                                      f"{type(error).__name__}: {error}") from error
        message = ToChild(data)
        reachable, wire = self._lifecycle.to_child(message)
        try:
            if reachable and wire is not None:
                wire.send(message)
        except OSError:
            reachable = False  # the connection has just ended: the relay thread reports it
        if not reachable:
            raise ProcessStateError(f"cannot send to {self._name}: it has ended ({self.state})")

    @property
    def host(self) -> str | None:
        """The address of the Dask worker running the child (``tcp://10.0.0.7:39227``); None until it runs."""
        return self._lifecycle.host

    @property
    def state(self) -> str:
        """``initial``, ``pending``, ``running``, ``stopped`` or ``lost``."""
        return self._lifecycle.state

    @property
    def failure(self) -> str | None:
        """Why a ``lost`` process ended without an exit code; None otherwise."""
        return self._lifecycle.failure

    @property
    def method(self) -> str | None:
        return self._method

    @property
    def sentinel(self) -> int:
        """A descriptor that becomes readable once the child has exited or is lost, as a local one's does.

        So that code waiting on several handles with ``select``/``poll`` (the
        notebook's ``--wait``, which serves the kernel's messages meanwhile)
        need not tell local and remote ones apart. It becomes readable after
        the ``exited`` subscribers ran. Made on first use (a pipe); ``close()``
        releases it.

        Raises:
            ValueError: the process has not been started, or is closed.
        """
        if self.state == INITIAL:
            raise ValueError(f"{self._name} has not been started, so it has no sentinel yet")
        try:
            return self._lifecycle.sentinel()
        except ValueError:
            raise ValueError(f"{self._name} is closed: its sentinel was released") from None

    def close(self) -> None:
        """Release the sentinel's descriptor; the other methods keep working.

        Raises:
            ValueError: the child is still running (or has not been started).
        """
        if not self._lifecycle.ended:
            raise ValueError(
                f"cannot close {self._name} while it is {self.state}; call join() or terminate() first"
            )
        self._lifecycle.close()

    def __repr__(self) -> str:
        state = self.state
        word = {RUNNING: "started", STOPPED: status_word(self.exitcode)}.get(state, state)
        return f"<{type(self).__name__}({self._name}, {word})>"

    # -- what the relay thread calls ----------------------------------------------

    def _on_running(self) -> None:
        """Called on the relay thread once a worker runs the child (``pid`` and ``host`` are known).

        A hook for handles that show where their child runs (a notebook cell's
        status line learns its pid and host here); the core's events have no
        such moment, since a local child has its pid from ``start()`` on.
        """

    def _deliver_output(self, stream: str, data: bytes) -> None:
        if self._output is not None:
            events.guarded(self._output, stream, data)

    def _deliver_message(self, data: bytes) -> None:
        try:
            obj = serialization.loads(data)
        except Exception as error:
            logs.report("%s: an object sent by the remote child cannot be loaded here (%s: %s); "
                        "it was dropped", self._name, type(error).__name__, error)
            return
        self._received(obj)

    def _received(self, obj: object) -> None:
        """An object the child sent (on the relay thread): kept in ``messages``, and announced."""
        self.messages.append(obj)
        events.message(self, obj)

    def _lost_reason(self, error: BaseException) -> str:
        detail = "" if isinstance(error, EOFError) else f" ({type(error).__name__}: {error})"
        worker = f"worker {self.host}" if self.host else "its worker"
        return (
            f"the connection to {worker} ended before the child's exit was reported{detail}: "
            "the worker or its machine died, or the network failed (on its side, the child is stopped "
            "as soon as the loss is noticed there)"
        )

    def _end(self, exitcode: int | None, state: str, failure: str | None) -> None:
        """Record the end once; then fire ``exited`` and release whoever waits."""
        if self._lifecycle.end(exitcode, state, failure):
            self._announce_end(exitcode, state)

    # -- internals --------------------------------------------------------------

    def _payload(self) -> bytes:
        try:
            payload = serialization.dumps((self._target, self._args, self._kwargs))
        except Exception as error:
            raise self._unpicklable(error) from error
        if len(payload) > MAX_FRAME - _FRAME_SLACK:
            raise TargetPicklingError(
                f"cannot start {self._name} on the cluster: its target and arguments pickle to "
                f"{len(payload)} bytes, more than the {MAX_FRAME - _FRAME_SLACK} a remote process's "
                "connection carries; load large data inside the target instead"
            )
        return payload

    def _unpicklable(self, error: Exception) -> TargetPicklingError:
        failures = serialization.unpicklable(serialization.call_parts(self._target, self._args, self._kwargs))
        culprit = "its target and arguments"
        if failures:
            label, value, error = failures[0]
            culprit = f"its {label}, {serialization.short_repr(value)},"
        return TargetPicklingError(
            f"cannot start {self._name} on the cluster: {culprit} cannot be sent to the worker "
            f"({type(error).__name__}: {error}). Pass something picklable (create such objects "
            "inside the target instead)"
        )

    def _on_task_done(self, future: Future) -> None:
        """Dask's callback: a task that ends before it connected back will never connect."""
        if future.status == "finished":
            return  # the task returned after the exit report, which the relay thread handles
        failure = None
        if future.status != "cancelled":
            error = future.exception()
            failure = (
                f"its Dask task failed before the child started ({type(error).__name__}: {error}); "
                f"if the workers cannot reach this machine at {self.listen_address}, "
                "pass listen_host= an address of it they can reach"
            )
        end = self._lifecycle.task_ended(failure)
        if end is not None:
            self._announce_end(end[0], end[1])
        if self._relay is not None:
            self._relay.wake()

    def _stop(self, stop: Stop) -> None:
        if self.state == INITIAL:
            raise ProcessStateError(f"cannot signal {self._name}: it has not been started")
        reach = self._lifecycle.stop(stop)
        if reach is None:
            return  # it has ended
        wire, future = reach
        if wire is not None:
            try:
                wire.send(stop)
            except OSError:
                pass  # the connection has just ended: the relay thread reports it
        elif future is not None:
            future.cancel()
        if self._can_wait():
            self._lifecycle.wait_done(SIGNAL_WAIT + NETWORK_SLACK)

    def _can_wait(self) -> bool:
        """False on the threads that deliver this process's events, which would wait for themselves."""
        current = threading.current_thread()
        on_relay = self._relay is not None and current is self._relay.thread
        return not on_relay and not self._lifecycle.ended_on(current)

    def _announce_end(self, exitcode: int | None, state: str) -> None:
        """Fire ``exited`` and release whoever waits (without the lock: subscribers may call back)."""
        events.exited(self, exitcode)
        future = self._lifecycle.release()
        if state == LOST and future is not None and not future.done():
            # After a worker's death, Dask would run the task again elsewhere. If the
            # client is closing, the task goes with it: nothing is left to cancel.
            with contextlib.suppress(Exception):
                future.cancel()

"""Remote processes: a real child process on a Dask worker, behind a local Process-like handle.

``RemoteProcess`` has the methods of :class:`processing.Process` (start, join,
name, pid, alive, exit code, terminate, kill), plus ``host`` (the worker's
address) and ``state``, so that code and widgets written for local handles
work with remote ones. Its ``output=`` callback, ``messages`` list and the
``started``/``exited``/``message`` events of :func:`processing.subscribe`
behave as for a local child.

How it works: ``start()`` opens a listener here, and submits one Dask task
(:func:`processing.remote_worker.serve`) that connects back to it, receives
the pickled target, starts a :class:`processing.Process` on its worker and
relays it. Every message on that connection is signed with HMAC, and each
side checks the other's proof of the key before it trusts a byte (see
:class:`processing.remote_worker.Wire`: one round trip, fresh nonces from both
sides). The process's auth key itself never leaves this process: each start
derives a one-time key from it (HMAC-SHA256 over a fresh nonce) and only that
key, with a fresh challenge, travels in the Dask task, and the listener
accepts one connection. Dask cannot stop a running task; ``terminate()``
travels over that connection and the worker signals the child. If the
worker dies, the connection ends and the handle becomes ``lost`` at once
(keep-alive probing catches a vanished machine within about 11 s).

Dask is imported only when a remote process is started.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import itertools
import os
import selectors
import signal
import socket
import sys
import threading
import time
import uuid

from . import serialization, startmethods
from .aliases import Pep8Aliases
from .errors import AuthenticationError, ProcessStateError, TargetPicklingError
from .monitor import guarded, notify
from .process import SIGNAL_WAIT, _output_callback, currentProcess, status_word
from .remote_cluster import SchedulerUnreachableError, get_client, reachable_host
from .remote_worker import HELLO_SIZE, MAX_FRAME, NONCE_SIZE, Credentials, Wire, serve

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import IO, Any

    from distributed import Future

__all__ = ["RemoteProcess", "SchedulerUnreachableError", "get_client"]

#: How long terminate() and kill() wait for the exit report beyond the worker's own SIGNAL_WAIT.
NETWORK_SLACK = 3.0
#: How long in all a connection to the listener may take to say its whole hello before it is
#: dropped. A worker sends it at once, in one small segment; the hellos of several connections
#: are read side by side, so a slow or silent one does not delay the real worker, and this only
#: bounds how long it holds a descriptor here.
HELLO_TIMEOUT = 3.0
#: Connections whose hello is being read at one time; a further one drops the oldest, so that a
#: flood of connections cannot exhaust this process's descriptors.
MAX_PENDING_HELLOS = 16

_counter = itertools.count(1)


class RemoteProcess(Pep8Aliases):
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
        self._method = None if method is None else startmethods.check(method)
        self._workers = workers
        self._listen_host = listen_host
        self._connect_timeout = connect_timeout
        self._preload = list(preload)
        self._authkey = currentProcess().authkey
        self._creator_pid = os.getpid()
        self._state = "initial"
        self._pid: int | None = None
        self._host: str | None = None
        self._exitcode: int | None = None
        self.failure: str | None = None
        self.messages: list[Any] = []
        self.listen_address: tuple[str, int] | None = None
        self._lock = threading.Lock()
        self._running = threading.Event()
        self._done = threading.Event()
        self._wire: Wire | None = None
        self._future: Future | None = None
        self._stop_command: tuple[str, str, bool] | None = None
        self._relay_thread: threading.Thread | None = None
        self._ender: threading.Thread | None = None
        self._sentinel: int | None = None
        self._sentinel_writer: int | None = None
        self._closed = False

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
        if self._state != "initial":
            raise ProcessStateError(
                f"{self._name} has already been started; a process can be started only once: "
                "create a new RemoteProcess to run the target again"
            )
        payload = self._payload()
        client = get_client(self._cluster, self._connect_timeout)
        key, challenge = _one_time_key(self._authkey), os.urandom(NONCE_SIZE)
        listener = socket.create_server(
            (self._listen_host or reachable_host(client), 0), backlog=MAX_PENDING_HELLOS
        )
        self.listen_address = listener.getsockname()[:2]
        try:
            future = client.submit(
                serve,
                self.listen_address,
                Credentials(key, challenge),  # its repr hides them from Dask's logs
                key=f"processing-remote-{uuid.uuid4().hex}",
                pure=False,
                workers=self._workers,
            )
        except BaseException:
            listener.close()
            raise
        self._future = future
        self._state = "pending"
        notify("started", self)  # before anything can report the end
        self._relay_thread = threading.Thread(
            target=self._relay,
            args=(listener, key, challenge, payload),
            name=f"processing-remote-{self._name}",
            daemon=True,
        )
        self._relay_thread.start()
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
        if self._state == "initial":
            raise ProcessStateError(f"cannot join {self._name}: it has not been started; call start() first")
        if self._can_wait():
            self._done.wait(timeout)

    def wait_running(self, timeout: float | None = None) -> bool:
        """Wait until the remote child runs (``pid``, ``host`` known); False if it never will, or timeout."""
        self._running.wait(timeout)
        return self._pid is not None

    def terminate(self, *, tree: bool = False) -> None:
        """Have the worker send SIGTERM to the child, then wait up to a few seconds for the exit report.

        With ``tree=True`` the child's own children get it too (the remote child
        leads a process group of its own). A process still waiting for a worker is
        cancelled instead; its exit code is then ``-SIGTERM`` too. Does nothing
        once the process has ended.

        Raises:
            ProcessStateError: the process has not been started.
        """
        self._stop(("signal", "terminate", tree))

    def kill(self, *, tree: bool = False) -> None:
        """Like :meth:`terminate`, with SIGKILL, which cannot be ignored."""
        self._stop(("signal", "kill", tree))

    def isAlive(self) -> bool:
        """True from ``start()`` until the remote child has exited or is lost."""
        return self._state in ("pending", "running")

    def getPid(self) -> int | None:
        """The child's process id on its worker's machine; None until it runs."""
        return self._pid

    def getExitCode(self) -> int | None:
        """None while running (and if lost); 0, N for ``sys.exit(N)``, 1 on an exception, -N for signal N."""
        return self._exitcode

    @property
    def host(self) -> str | None:
        """The address of the Dask worker running the child (``tcp://10.0.0.7:39227``); None until it runs."""
        return self._host

    @property
    def state(self) -> str:
        """``initial``, ``pending``, ``running``, ``stopped`` or ``lost``."""
        return self._state

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
        if self._state == "initial":
            raise ValueError(f"{self._name} has not been started, so it has no sentinel yet")
        with self._lock:
            if self._closed:
                raise ValueError(f"{self._name} is closed: its sentinel was released")
            if self._sentinel is None:
                self._sentinel, writer = os.pipe()
                if self._done.is_set():
                    os.close(writer)  # the end has come already: readable (EOF) at once
                else:
                    self._sentinel_writer = writer
            return self._sentinel

    def close(self) -> None:
        """Release the sentinel's descriptor; the other methods keep working.

        Raises:
            ValueError: the child is still running (or has not been started).
        """
        if not self._ended():
            raise ValueError(
                f"cannot close {self._name} while it is {self._state}; call join() or terminate() first"
            )
        with self._lock:
            sentinel, self._sentinel, self._closed = self._sentinel, None, True
        if sentinel is not None:
            os.close(sentinel)

    def __repr__(self) -> str:
        word = {"running": "started", "stopped": status_word(self._exitcode)}.get(self._state, self._state)
        return f"<{type(self).__name__}({self._name}, {word})>"

    # -- internals --------------------------------------------------------------

    def _check_creator(self, action: str) -> None:
        if self._creator_pid != os.getpid():
            raise ProcessStateError(
                f"{action}() on {self._name} must be called by the process that created it "
                f"(pid {self._creator_pid}), not by pid {os.getpid()}"
            )

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
        parts = [("target", self._target)]
        parts += [(f"args[{i}]", arg) for i, arg in enumerate(self._args)]
        parts += [(f"kwargs[{key!r}]", value) for key, value in self._kwargs.items()]
        culprit = "its target and arguments"
        for label, value in parts:
            try:
                serialization.dumps(value)
            except Exception as part_error:
                text = repr(value)
                culprit = f"its {label}, {text if len(text) <= 80 else text[:77] + '...'},"
                error = part_error
                break
        return TargetPicklingError(
            f"cannot start {self._name} on the cluster: {culprit} cannot be sent to the worker "
            f"({type(error).__name__}: {error}). Pass something picklable (create such objects "
            "inside the target instead)"
        )

    def _options(self) -> dict[str, Any]:
        return {
            "name": self._name,
            "method": self._method,
            "capture": self._output is not None,
            "preload": self._preload,
        }

    def _relay(self, listener: socket.socket, key: bytes, challenge: bytes, payload: bytes) -> None:
        """The relay thread: wait for the worker, hand it the payload, then deliver what it sends."""
        wire = None
        try:
            wire = self._accept(listener, key, challenge, payload)
            while wire is not None and not self._dispatch(wire.recv()):
                pass
        except (EOFError, OSError) as error:
            self._end(None, "lost", self._lost_reason(error))
        except AuthenticationError as error:
            # Only someone on the network path can inject into the connection: trust none of it.
            self._end(None, "lost", f"the connection to its worker was dropped: {error}")
        except BaseException as error:
            self._end(None, "lost", f"its relay thread failed ({type(error).__name__}: {error})")
            raise
        finally:
            if wire is not None:
                wire.close()

    def _accept(self, listener: socket.socket, key: bytes, challenge: bytes, payload: bytes) -> Wire | None:
        """Take the first connection that proves it holds the key; refuse (and report) the others."""
        try:
            wire = _Hellos(listener, key, challenge, self._refuse).first_valid(self._ended)
        except OSError as error:
            self._end(None, "lost", f"its listener at {self.listen_address} failed: {error}")
            return None
        if wire is None:
            return None  # woken by _on_task_done: the task will not connect
        with self._lock:
            if self._ended():
                wire.close()
                return None
            wire.send(("start", payload, self._options()))
            if self._stop_command is not None:
                wire.send(self._stop_command)
            self._wire = wire
        return wire

    def _refuse(self, peer: Any, error: BaseException) -> None:
        print(
            f"processing: {self._name} refused a connection from {peer} ({type(error).__name__}: {error})",
            file=sys.stderr,
        )

    def _dispatch(self, message: tuple[Any, ...]) -> bool:
        """Act on one message from the worker; True for the last one."""
        kind = message[0]
        if kind == "output":
            if self._output is not None:
                guarded(self._output, message[1], message[2])
        elif kind == "message":
            self._deliver_message(message[1])
        elif kind == "running":
            with self._lock:
                if self._state == "pending":
                    self._state = "running"
                self._pid, self._host = message[1], message[2]
            self._running.set()
            guarded(self._on_running)
        elif kind == "exit":
            self._end(message[1], "stopped", None)
            return True
        elif kind == "failed":
            self._end(None, "lost", f"the worker {message[1]} could not start the child:\n{message[2]}")
            return True
        return False

    def _on_running(self) -> None:
        """Called on the relay thread once a worker runs the child (``pid`` and ``host`` are known).

        A hook for handles that show where their child runs (a notebook cell's
        status line learns its pid and host here); the core's events have no
        such moment, since a local child has its pid from ``start()`` on.
        """

    def _deliver_message(self, data: bytes) -> None:
        try:
            obj = serialization.loads(data)
        except Exception as error:
            print(
                f"processing: {self._name}: an object sent by the remote child cannot be loaded here "
                f"({type(error).__name__}: {error}); it was dropped",
                file=sys.stderr,
            )
            return
        self.messages.append(obj)
        notify("message", self, obj)

    def _lost_reason(self, error: BaseException) -> str:
        detail = "" if isinstance(error, EOFError) else f" ({type(error).__name__}: {error})"
        worker = f"worker {self._host}" if self._host else "its worker"
        return (
            f"the connection to {worker} ended before the child's exit was reported{detail}: "
            "the worker or its machine died, or the network failed (on its side, the child is stopped "
            "as soon as the loss is noticed there)"
        )

    def _on_task_done(self, future: Future) -> None:
        """Dask's callback: a task that ends before it connected back will never connect.

        Whether the worker connected and the end are decided in one critical
        section, the one :meth:`_accept` checks before it sends the payload:
        otherwise a worker whose hello was just accepted could be started in
        between, while the handle records a stop that never happened and drops
        the child's real exit.
        """
        if future.status == "finished":
            return  # the task returned after the exit report, which the relay thread handles
        error = None if future.status == "cancelled" else future.exception()
        with self._lock:
            if self._wire is not None:
                return  # connected: the relay thread sees the connection end
            if error is not None:
                ended = self._record_end(
                    None,
                    "lost",
                    f"its Dask task failed before the child started ({type(error).__name__}: {error}); "
                    f"if the workers cannot reach this machine at {self.listen_address}, "
                    "pass listen_host= an address of it they can reach",
                )
            elif self._stop_command is not None:
                ended = self._record_end(-_SIGNALS[self._stop_command[1]], "stopped", None)
            else:
                ended = self._record_end(None, "lost", "its Dask task was cancelled before the child started")
        if ended is not None:
            self._announce_end(*ended)
        self._wake_listener()

    def _wake_listener(self) -> None:
        try:
            socket.create_connection(self.listen_address, timeout=1).close()  # type: ignore[arg-type]
        except OSError:
            pass  # the relay thread has closed it already

    def _stop(self, command: tuple[str, str, bool]) -> None:
        if self._state == "initial":
            raise ProcessStateError(f"cannot signal {self._name}: it has not been started")
        with self._lock:
            if self._ended():
                return
            wire = self._wire
            if wire is None:
                self._stop_command = command
            future = self._future
        if wire is not None:
            try:
                wire.send(command)
            except OSError:
                pass  # the connection has just ended: the relay thread reports it
        elif future is not None:
            future.cancel()
        if self._can_wait():
            self._done.wait(SIGNAL_WAIT + NETWORK_SLACK)

    def _ended(self) -> bool:
        return self._state in ("stopped", "lost")

    def _can_wait(self) -> bool:
        """False on the threads that deliver this process's events, which would wait for themselves."""
        current = threading.current_thread()
        return current is not self._relay_thread and current is not self._ender

    def _end(self, exitcode: int | None, state: str, failure: str | None) -> None:
        """Record the end once, fire ``exited``, release whoever waits."""
        with self._lock:
            ended = self._record_end(exitcode, state, failure)
        if ended is not None:
            self._announce_end(*ended)

    def _record_end(
        self, exitcode: int | None, state: str, failure: str | None
    ) -> tuple[int | None, str, Future | None] | None:
        """Mark the end (lock held); what :meth:`_announce_end` needs, or None if it had ended already."""
        if self._ended():
            return None
        self._exitcode, self._state, self.failure = exitcode, state, failure
        self._ender = threading.current_thread()
        future, self._future = self._future, None
        return exitcode, state, future

    def _announce_end(self, exitcode: int | None, state: str, future: Future | None) -> None:
        """Fire ``exited`` and release whoever waits (without the lock: subscribers may call back)."""
        self._running.set()
        notify("exited", self, exitcode)
        self._done.set()
        with self._lock:
            writer, self._sentinel_writer = self._sentinel_writer, None
        if writer is not None:
            os.close(writer)  # the sentinel becomes readable
        if state == "lost" and future is not None and not future.done():
            # After a worker's death, Dask would run the task again elsewhere. If the
            # client is closing, the task goes with it: nothing is left to cancel.
            with contextlib.suppress(Exception):
                future.cancel()


_SIGNALS = {"terminate": signal.SIGTERM, "kill": signal.SIGKILL}
#: Room left in a frame for what travels beside the payload (the options, pickling's framing).
_FRAME_SLACK = 1 << 16


class _Hellos:
    """The listener's side of the handshake: the hellos of the connections that come, read side by side.

    Each connection gets :data:`HELLO_TIMEOUT` seconds in all for its whole
    hello (not per read, which a peer trickling one byte at a time would
    stretch without end), and they are read with a selector, so that a slow or
    silent connection, whoever made it, delays neither the real worker's hello
    nor anything else.
    """

    def __init__(
        self,
        listener: socket.socket,
        key: bytes,
        challenge: bytes,
        refuse: Callable[[Any, BaseException], None],
    ) -> None:
        self._listener = listener
        self._key, self._challenge = key, challenge
        self._refuse = refuse
        self._pending: dict[socket.socket, tuple[Any, bytearray, float]] = {}  # peer, hello so far, deadline
        self._selector = selectors.DefaultSelector()

    def first_valid(self, stop: Callable[[], bool]) -> Wire | None:
        """The first connection whose hello proves the key; None once ``stop()`` is true at a new connection.

        Closes the listener and every other connection before it returns.

        Raises:
            OSError: the listener failed.
        """
        self._selector.register(self._listener, selectors.EVENT_READ)
        try:
            while True:
                self._drop_late()
                deadlines = [deadline for _, _, deadline in self._pending.values()]
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                for selected, _ in self._selector.select(timeout):
                    if selected.fileobj is self._listener:
                        self._take_connection()
                        if stop():
                            return None
                    else:
                        wire = self._read_hello(selected.fileobj)  # type: ignore[arg-type]
                        if wire is not None:
                            return wire
        finally:
            self._selector.close()
            self._listener.close()
            for sock in self._pending:
                sock.close()

    def _take_connection(self) -> None:
        try:
            sock, peer = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return  # the connection went away before it was taken
        if len(self._pending) >= MAX_PENDING_HELLOS:
            oldest = next(iter(self._pending))
            self._drop(oldest, ConnectionError(f"more than {MAX_PENDING_HELLOS} connections said no hello"))
        sock.setblocking(False)
        self._pending[sock] = (peer, bytearray(), time.monotonic() + HELLO_TIMEOUT)
        self._selector.register(sock, selectors.EVENT_READ)

    def _read_hello(self, sock: socket.socket) -> Wire | None:
        hello = self._pending[sock][1]
        try:
            data = sock.recv(HELLO_SIZE - len(hello))
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as error:
            self._drop(sock, error)
            return None
        if not data:
            self._drop(sock, EOFError("the connection was closed before its hello was complete"))
            return None
        hello += data
        if len(hello) < HELLO_SIZE:
            return None
        self._selector.unregister(sock)
        peer, _, _ = self._pending.pop(sock)
        try:
            return Wire.from_hello(sock, self._key, self._challenge, bytes(hello))
        except (AuthenticationError, OSError) as error:
            sock.close()
            self._refuse(peer, error)
            return None

    def _drop_late(self) -> None:
        now = time.monotonic()
        for sock in [sock for sock, (_, _, deadline) in self._pending.items() if deadline <= now]:
            self._drop(sock, TimeoutError(f"its hello was not complete within {HELLO_TIMEOUT} s"))

    def _drop(self, sock: socket.socket, error: BaseException) -> None:
        self._selector.unregister(sock)
        peer, _, _ = self._pending.pop(sock)
        sock.close()
        self._refuse(peer, error)


def _one_time_key(authkey: bytes) -> bytes:
    """A key for one connection, derived from the process's key, so that the key itself never travels."""
    return hmac.new(authkey, b"processing.remote:" + os.urandom(32), hashlib.sha256).hexdigest().encode()

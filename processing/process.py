"""Process objects: the seed's ``Process`` class, the main process, and this process's children.

The state machine is initial -> started -> stopped[...]. Who actually creates
the child is a start method's job (:mod:`processing.launch`); this module only
keeps names, flags, keys and the rules of the original ``processing`` package.

A process object holds two kinds of state, each listed once: its
*configuration* (identity, name, flags, key, target), set by
:meth:`Process._configure` and sent to the child with the object; and its
*local state* (:data:`LOCAL_STATE`: the handle on a started child, where its
output goes, the objects it sent ...), which means something only in the
process holding the object, so it is never sent, and starts fresh in a new
object, in every copy unpickled elsewhere (a child's own object among them),
and in the main process.
"""

from __future__ import annotations

import atexit
import itertools
import os
import signal
import threading
import time

from . import authkey as _authkey
from . import events, launch, monitor
from .errors import ProcessError, ProcessStateError, TargetPicklingError
from .handle import ProcessHandle

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Mapping
    from typing import IO, Any

    from .buffers import SharedBuffers
    from .channel import ParentChannel

__all__ = [
    "Process",
    "activeChildren",
    "active_children",
    "cannot_send",
    "cpuCount",
    "cpu_count",
    "currentProcess",
    "current_process",
    "status_word",
]

#: How long ``terminate()`` and ``kill()`` wait for the child to die before returning.
SIGNAL_WAIT = 2.0

#: A process object's local state: attribute -> a factory of its fresh value.
LOCAL_STATE: dict[str, Callable[[], Any]] = {
    "_popen": lambda: None,  # the start method's handle on the started child
    "_watch": lambda: None,  # the monitor's record of it, until its end is delivered
    "_output": lambda: None,  # where the child's captured output goes
    "_counter": lambda: itertools.count(1),  # numbers the children this process creates
    "_closed": lambda: False,
    "messages": list,  # the objects the child sent with sendToParent
}


class Process(ProcessHandle):
    """Activity run in a separate process (``threading.Thread``'s methods, plus pid, exit code, key).

    Keyword-only extensions beyond the seed:

    - ``daemon``: the daemon flag (default: inherited from the creating process).
    - ``method``: ``'fork'``, ``'spawn'`` or ``'forkserver'`` (default: :func:`getStartMethod`).
    - ``output``: capture the child's stdout and stderr at the file-descriptor
      level and deliver them, in order per stream, to a callable
      ``output(stream_name, data: bytes)`` or to a text stream's ``write``.
    - ``new_process_group``: put the child in a process group of its own, so a
      signal to the creator's group (a terminal's Ctrl-C, a Jupyter interrupt)
      does not reach it.
    - ``detached``: let the child outlive its creator. By default a child is
      killed when its creator dies without cleaning up (SIGKILL, a crash).

    Raises:
        ValueError: ``group`` is not None, or ``method`` is unknown.
        TypeError: ``output`` is neither callable nor has a ``write`` method.
    """

    #: The local state's attributes, which ``__getstate__`` leaves out (a subclass adds its own).
    local_attributes: frozenset[str] = frozenset(LOCAL_STATE)

    def __init__(
        self,
        group: None = None,
        target: Callable[..., Any] | None = None,
        name: str | None = None,
        args: Iterable[Any] = (),
        kwargs: Mapping[str, Any] | None = None,
        *,
        daemon: bool | None = None,
        method: str | None = None,
        output: Callable[[str, bytes], Any] | IO[str] | None = None,
        new_process_group: bool = False,
        detached: bool = False,
    ) -> None:
        if group is not None:
            raise ValueError(
                "group must be None: it exists only for compatibility with threading.Thread; leave it out"
            )
        creator = _current_process
        identity = (*creator._identity, next(creator._counter))
        self._configure(
            identity=identity,
            creator_pid=os.getpid(),
            name="Process-" + ":".join(map(str, identity)),
            daemonic=creator._daemonic if daemon is None else bool(daemon),
            authkey=creator._authkey,
            method=None if method is None else launch.check(method),
            target=target,
            args=tuple(args),
            kwargs=dict(kwargs or {}),
            new_process_group=bool(new_process_group),
            detached=bool(detached),
        )
        if name is not None:
            self.setName(name)
        reset_local_state(self)
        self._output = _output_callback(output)

    def _configure(
        self,
        *,
        identity: tuple[int, ...],
        creator_pid: int | None,
        name: str,
        daemonic: bool,
        authkey: bytes,
        method: str | None,
        target: Callable[..., Any] | None,
        args: tuple[Any, ...],
        kwargs: dict[str, Any],
        new_process_group: bool,
        detached: bool,
    ) -> None:
        """Set the configuration: everything about the process that travels to its child."""
        self._identity = identity
        self._creator_pid = creator_pid
        self._name = name
        self._daemonic = daemonic
        self._authkey = authkey
        self._method = method
        self._target = target
        self._args = args
        self._kwargs = kwargs
        self._new_process_group = new_process_group
        self._detached = detached

    def __getstate__(self) -> dict[str, Any]:
        return {key: value for key, value in self.__dict__.items() if key not in self.local_attributes}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        reset_local_state(self)  # a copy received elsewhere has started nothing there

    # -- the seed's methods --------------------------------------------------

    def run(self) -> None:
        """The process's activity: call the target with args and kwargs. Override in subclasses."""
        if self._target is not None:
            self._target(*self._args, **self._kwargs)

    def start(self) -> None:
        """Start the child; it runs ``run()``. Returns once the child exists (its pid is known).

        Raises:
            ProcessStateError: already started, or called from a process other than the creator.
            TargetPicklingError: under spawn or forkserver, something the child needs
                cannot be sent; nothing was started.
            ValueError: the process object is closed.
        """
        self._check_open()
        self._check_creator("start")
        if self._popen is not None:
            raise ProcessStateError(
                f"{self._name} has already been started; a Process can be started only once: "
                "create a new Process to run the target again"
            )
        from .launch.spec import LaunchSpec  # here: import processing need not build its named tuples

        _children.reap_finished()
        method = self._method or launch.getStartMethod()
        spec = LaunchSpec(
            process=self,
            name=self._name,
            authkey=self._authkey,
            capture=self._output is not None,
            new_process_group=self._new_process_group,
            detached=self._detached,
        )
        self._popen = launch.popen_class(method)(spec)
        # The child has its own copy now: as CPython's since bpo-30775, let a large argument go
        # as soon as the caller drops it.
        self._target, self._args, self._kwargs = None, (), {}
        _children.add(self)
        self._watch = monitor.watch(self, self._popen, self._output, self._received)

    def join(self, timeout: float | None = None) -> None:
        """Wait until the child exits or ``timeout`` seconds pass; may be called many times.

        When the child has exited, its output has been delivered and the ``exited``
        event fired by the time ``join`` returns. It never waits longer than ``timeout``.

        Raises:
            ProcessStateError: not started yet, joining itself, or not the creator.
            ValueError: the process object is closed.
        """
        self._check_open()
        if self is _current_process:
            raise ProcessStateError(f"{self._name} cannot join itself: it would wait forever")
        self._check_creator("join")
        if self._popen is None:
            raise ProcessStateError(f"cannot join {self._name}: it has not been started; call start() first")
        deadline = None if timeout is None else time.monotonic() + timeout
        if self._popen.wait(timeout) is not None:
            _children.discard(self)
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            monitor.wait_delivered(self._watch, left)

    def isAlive(self) -> bool:
        """Whether the child runs: True from the moment ``start()`` returns until it exits.

        Raises:
            ProcessStateError: called from a process other than the creator.
            ValueError: the process object is closed.
        """
        self._check_open()
        if self is _current_process:
            return True
        self._check_creator("isAlive")
        if self._popen is None or self._popen.poll() is not None:
            _children.discard(self)
            return False
        return True

    def isDaemon(self) -> bool:
        return self._daemonic

    def setDaemon(self, daemonic: bool) -> None:
        """Set the daemon flag; only before ``start()``.

        Raises:
            ProcessStateError: the process has already been started.
        """
        if self._popen is not None:
            raise ProcessStateError(
                f"cannot change the daemon flag of {self._name} after start(); "
                "set it before calling start() (or pass daemon= to the constructor)"
            )
        self._daemonic = bool(daemonic)

    def getPid(self) -> int | None:
        """The child's process id, or None before ``start()``."""
        if self is _current_process:
            return os.getpid()
        return None if self._popen is None else self._popen.pid

    def getExitCode(self) -> int | None:
        """None while running; 0, N for ``sys.exit(N)``, 1 on an exception, -N for death by signal N."""
        self._check_open()
        return None if self._popen is None else self._popen.poll()

    def sendToChild(self, obj: object) -> None:
        """Send ``obj`` to the running child, which receives it with :func:`processing.receiveFromParent`.

        Signed with the process's auth key; objects defined in ``__main__``
        travel by value. Buffers of 1 MiB or more that pickle out of band
        (numpy arrays, DataFrame blocks) are not copied into the message: they
        reach the child as a shared-memory file that it maps copy-on-write, as
        the arguments of a start do (see :mod:`processing.buffers`). Blocks
        only while the channel's buffer is full (the child reads too slowly).

        Raises:
            ProcessStateError: not started yet, not the creator, or the child has exited.
            ValueError: the process object is closed.
            Exception: whatever pickling ``obj`` raises.
        """
        self._check_open()
        self._check_creator("sendToChild")
        self._channel_to_child()  # first: a big object would be written into shared memory for nothing
        from .channel import pack

        self._send_pickled(*pack(obj))

    def terminate(self, *, tree: bool = False) -> None:
        """Send SIGTERM, then wait up to ``SIGNAL_WAIT`` seconds for the child to die.

        Exit handlers and ``finally`` clauses do not run in the child, and, as the
        original package says, its own children are *not* terminated, unless
        ``tree=True``: then its whole process group gets the signal when it leads
        one (``new_process_group`` or ``detached``), else every descendant found
        (with psutil). A child that ignores SIGTERM is still alive when this
        returns; use :meth:`kill`.

        Raises:
            ProcessStateError: the process has not been started.
            ValueError: the process object is closed.
            ProcessError: ``tree=True`` needs psutil, which is not installed.
        """
        self._signal(signal.SIGTERM, tree)

    # -- PEP 8 spellings and stdlib extras -------------------------------------

    def kill(self, *, tree: bool = False) -> None:
        """Like :meth:`terminate`, with SIGKILL, which cannot be ignored."""
        self._signal(signal.SIGKILL, tree)

    def close(self) -> None:
        """Release the descriptors held for the child; most methods then raise ValueError.

        Raises:
            ValueError: the child is still running.
        """
        if self._popen is not None:
            if self._popen.poll() is None:
                raise ValueError(
                    f"cannot close {self._name} while it is still running; call join() or terminate() first"
                )
            monitor.wait_delivered(self._watch, None)  # the monitor must let go of the descriptors first
            self._popen.close()
        _children.discard(self)
        self._closed = True

    @property
    def daemon(self) -> bool:
        return self._daemonic

    @daemon.setter
    def daemon(self, daemonic: bool) -> None:
        self.setDaemon(daemonic)

    @property
    def method(self) -> str | None:
        """The start method used (or to be used, if set at construction)."""
        return self._popen.method if self._popen is not None else self._method

    @property
    def sentinel(self) -> int:
        """A descriptor that becomes readable when the child exits.

        Raises:
            ValueError: the process has not been started, or is closed.
        """
        self._check_open()
        if self._popen is None:
            raise ValueError(f"{self._name} has not been started, so it has no sentinel yet")
        return self._popen.sentinel

    def __repr__(self) -> str:
        return "<%s(%s, %s%s)>" % (
            type(self).__name__,
            self._name,
            self._status(),
            " daemon" if self._daemonic else "",
        )

    # -- internals ------------------------------------------------------------

    def _received(self, obj: object) -> None:
        """An object the child sent (on the monitor thread): kept in ``messages``, and announced.

        A subclass that handles some objects itself (a notebook cell's displays)
        overrides it, and leaves the rest to this.
        """
        self.messages.append(obj)
        events.message(self, obj)

    def _channel_to_child(self) -> ParentChannel:
        popen = self._popen
        if popen is None:
            raise ProcessStateError(f"cannot send to {self._name}: it has not been started; start() it first")
        channel = popen.channel
        if channel is None or channel.closed:
            raise ProcessStateError(f"cannot send to {self._name}: it has exited")
        return channel

    def _send_pickled(self, body: bytes, shared: SharedBuffers | None = None) -> None:
        """Send a packed object to the child, and let go of its shared memory (the socket holds it).

        A remote child's worker relays bytes it never loads, without shared memory.
        """
        try:
            self._channel_to_child().send(body, shared)
        except OSError:
            raise ProcessStateError(f"cannot send to {self._name}: it has exited") from None
        finally:
            if shared is not None:
                shared.close()

    def _status(self) -> str:
        if self is _current_process:
            return "started"
        if self._popen is None:
            return "closed" if self._closed else "initial"
        return status_word(self._popen.poll())

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self._name} is closed; create a new Process object")

    def _signal(self, signum: int, tree: bool) -> None:
        self._check_open()
        if self._popen is None:
            raise ProcessStateError(f"cannot signal {self._name}: it has not been started")
        if self._popen.poll() is None:
            if tree:
                self._signal_descendants(signum)
            self._popen.send_signal(signum)
            self._popen.wait(SIGNAL_WAIT)

    def _signal_descendants(self, signum: int) -> None:
        """Signal the child's descendants now, while they are still known to be its."""
        pid = self._popen.pid
        if self._new_process_group or self._detached:
            try:
                os.killpg(pid, signum)
                return
            except (ProcessLookupError, PermissionError):
                pass  # not yet its own group leader: fall back to the walk
        try:
            import psutil
        except ImportError as error:
            raise ProcessError(
                f"terminating the whole tree of {self._name} needs psutil (pip install psutil), "
                "or start it with new_process_group=True"
            ) from error
        try:
            descendants = psutil.Process(pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return
        for descendant in descendants:
            try:
                descendant.send_signal(signum)
            except psutil.NoSuchProcess:
                pass


class _MainProcess(Process):
    """The process that imported :mod:`processing` first; the root of all names."""

    def __init__(self) -> None:
        self._configure(
            identity=(),
            creator_pid=None,
            name="MainProcess",
            daemonic=False,
            authkey=_authkey.new_key(),
            method=None,
            target=None,
            args=(),
            kwargs={},
            new_process_group=False,
            detached=False,
        )
        reset_local_state(self)


def reset_local_state(process: Process) -> None:
    """Give ``process`` fresh local state (see :data:`LOCAL_STATE`)."""
    for attribute, fresh in LOCAL_STATE.items():
        setattr(process, attribute, fresh())


def status_word(exitcode: int | None) -> str:
    """The repr's status for an exit code: started, stopped, stopped[SIGTERM], stopped[N]."""
    if exitcode is None:
        return "started"
    if exitcode == 0:
        return "stopped"
    if exitcode < 0:
        try:
            return f"stopped[{signal.Signals(-exitcode).name}]"
        except ValueError:
            return f"stopped[{exitcode}]"
    return f"stopped[{exitcode}]"


def cannot_send(process: Process, method: str, error: BaseException) -> TargetPicklingError:
    """The error for a process whose state cannot be sent to its child, naming the part that fails."""
    from .serialization import call_parts, short_repr, unpicklable

    parts = call_parts(process._target, process._args, process._kwargs)
    own = {name: value for name, value in vars(process).items() if not name.startswith("_")}
    parts += [(f"attribute {name!r}", value) for name, value in own.items()]
    failures = unpicklable(parts)
    if failures:
        label, value, error = failures[0]
        culprit = f"its {label}, {short_repr(value)},"
    else:
        culprit = f"the {type(process).__name__} object itself"
    from .launch.stdlib import fork_context_error

    if fork_context_error(error):
        return TargetPicklingError(
            f"cannot start {process._name} with the {method!r} start method: {culprit} is a "
            "multiprocessing primitive made by the 'fork' context (multiprocessing's default on "
            "Linux before Python 3.14), whose semaphore is unlinked at once, so a fresh child cannot "
            "open it. Make it with multiprocessing.get_context('forkserver').Lock() (or 'spawn', or "
            "the same for Queue, Event ...), or processing.Lock(), or start with method='fork'."
        )
    return TargetPicklingError(
        f"cannot start {process._name} with the {method!r} start method: {culprit} cannot be "
        f"sent to the child ({type(error).__name__}: {error}). Pass something picklable "
        "(create such objects inside the target instead), or use method='fork', which sends nothing."
    )


def _output_callback(
    output: Callable[[str, bytes], Any] | IO[str] | None,
) -> Callable[[str, bytes], Any] | None:
    if output is None or callable(output):
        return output
    if hasattr(output, "write"):
        return _StreamWriter(output)
    raise TypeError(
        f"output must be a callable taking (stream_name, data) or a text stream, not {type(output).__name__}"
    )


class _StreamWriter:
    """Decode each stream's bytes incrementally (a character may straddle two reads) and write them."""

    def __init__(self, stream: IO[str]) -> None:
        import codecs

        self._stream = stream
        self._decoders = {
            name: codecs.getincrementaldecoder("utf-8")("replace") for name in ("stdout", "stderr")
        }

    def __call__(self, stream_name: str, data: bytes) -> None:
        self._stream.write(self._decoders[stream_name].decode(data))
        self._stream.flush()


class _Children:
    """The children this process started and has not yet seen exit; one lock guards the set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._children: set[Process] = set()

    def add(self, child: Process) -> None:
        with self._lock:
            self._children.add(child)

    def discard(self, child: Process) -> None:
        with self._lock:
            self._children.discard(child)

    def snapshot(self) -> list[Process]:
        with self._lock:
            return list(self._children)

    def reap_finished(self) -> None:
        for child in self.snapshot():
            if child._popen is not None and child._popen.poll() is not None:
                self.discard(child)

    def clear(self) -> list[Process]:
        """Forget every child; returns those it held."""
        with self._lock:
            children, self._children = list(self._children), set()
        return children

    def reset_after_fork(self) -> None:
        """In any forked copy of this process: a fresh lock (a thread of the parent may hold it), and
        none of the parent's children.

        They stay the parent's: a copy made by ``os.fork()`` must neither wait for them at its exit
        nor read the exit statuses the parent is owed, so it lets go of their descriptors.
        """
        self._lock = threading.Lock()
        for inherited in self.clear():
            if inherited._popen is not None:
                inherited._popen.release_in_child()


_current_process: Process = _MainProcess()
_children = _Children()
os.register_at_fork(after_in_child=_children.reset_after_fork)


def become_current(process: Process) -> None:
    """In a new child: make ``process`` the current process, with no children of its own yet."""
    global _current_process
    _children.reset_after_fork()  # a fork server's child, or a fork child whose hook did this already
    _current_process = process
    reset_local_state(process)


def currentProcess() -> Process:
    """The Process object of the process this is called in (``MainProcess`` at the top)."""
    return _current_process


def activeChildren() -> list[Process]:
    """The children of this process that are still alive (finished ones are reaped on the way)."""
    _children.reap_finished()
    return _children.snapshot()


def cpuCount() -> int:
    """The number of CPUs in the system.

    Raises:
        NotImplementedError: the platform cannot tell.
    """
    count = os.cpu_count()
    if count is None:
        raise NotImplementedError("cannot determine the number of CPUs on this platform")
    return count


def shutdown_children() -> None:
    """What a process does as it ends: terminate daemonic children, then join the others."""
    children = _children.snapshot()
    for child in children:
        if child._daemonic and child._popen is not None and child._popen.poll() is None:
            child._popen.send_signal(signal.SIGTERM)
    for child in children:
        if child._popen is not None:
            child._popen.wait()
    _children.clear()


current_process = currentProcess
active_children = activeChildren
cpu_count = cpuCount

atexit.register(shutdown_children)

"""The child's side: become the current process, guard against orphaning, run, turn the end into an exit code.

Exit codes follow Python 3's ``multiprocessing``: 0 when ``run()`` returns or
calls ``sys.exit()``/``sys.exit(None)``; N for ``sys.exit(N)``; 1 with the
message on stderr for ``sys.exit('message')``; 1 with ``Process <name>:`` and
the traceback on stderr when ``run()`` raises.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import traceback

from .. import launch, messaging
from .. import process as _process
from ..channel import ChildChannel, read_payload
from . import guard, stdlib, streams
from .spec import ChildOptions, Payload  # here, so that the fork server has them when a payload comes

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["enter_group", "rehearse", "run_forked", "spawn_main"]


def run_forked(
    process: Any, sock: socket.socket, out_fd: int | None, err_fd: int | None, options: ChildOptions
) -> int:
    """Entry point of a forked child; returns its exit code."""
    from ..serialization import share_main_classes

    if threading._HAVE_THREAD_NATIVE_ID:  # type: ignore[attr-defined]  # as BaseProcess._bootstrap does
        threading.main_thread()._set_native_id()  # type: ignore[attr-defined]
    share_main_classes()
    _move_output_fds(out_fd, err_fd)
    return _run(process, sock, options)


def spawn_main(channel_fd: int, out_fd: int | None, err_fd: int | None, *, spawned: bool = False) -> None:
    """Entry point of a spawned interpreter, and of a fork server's child: read the payload, run, exit.

    A spawned interpreter then ends as a stdlib spawn child does, through
    ``sys.exit`` (so ``atexit`` handlers run); a fork server's child, like a
    forked one, with ``os._exit``.
    """
    os.set_inheritable(channel_fd, False)  # a program the child execs must not hold it
    sock = socket.socket(fileno=channel_fd)
    # First, so that even a failure to load the payload reaches the captured stderr.
    _move_output_fds(out_fd, err_fd)
    try:
        payload = _loads(read_payload(sock))
        sys.path[:] = payload.sys_path
        _take_caller_state(payload)
        with stdlib.inheriting():
            process = _loads(payload.process, payload.buffers)
    except BaseException:
        sys.stderr.write("processing: the child could not load its process object:\n")
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    exitcode = _run(process, sock, payload.options)
    if spawned:
        sys.exit(exitcode)
    os._exit(exitcode)


def _take_caller_state(payload: Payload) -> None:
    """The creator's working directory, and for a fork server's child its environment and umask."""
    try:
        os.chdir(payload.cwd)
    except OSError:
        pass
    if payload.environ is not None:
        environ = os.environ
        for name in [name for name in environ if name not in payload.environ]:
            del environ[name]
        for name, value in payload.environ.items():
            if environ.get(name) != value:
                environ[name] = value
    if payload.umask is not None:
        os.umask(payload.umask)


def rehearse() -> None:
    """In a fork server's idle child: unpickle a sample payload once, before any request.

    A fresh fork shares every page with its parent; the first write to each
    (even a reference count) costs a copy-on-write fault. Doing the unpickling
    work once while idle moves most of those faults out of the start-up path.
    """
    from ..serialization import dumps

    sample = _process.Process(target=lambda: None, args=(0,), kwargs={"k": ""})
    options = ChildOptions(b"", False, False, False, None, None, 0, "forkserver", "", None, None)
    _loads(_loads(dumps(Payload(dumps(sample), options, sys.path, "", None, None, None))).process)


def _loads(data: bytes, buffers: list[memoryview] | None = None) -> Any:
    from ..serialization import loads

    return loads(data, buffers=buffers)


def _run(process: Any, sock: socket.socket, options: ChildOptions) -> int:
    _process.become_current(process)
    launch.setStartMethod(options.method)  # its children's default, as the stdlib passes it on
    messaging.channel = ChildChannel(sock, process.authkey, options.challenge)
    alive_fd = _detach(options.alive_fd)
    guard.arm(options.guard, options.parent_pid, alive_fd, group_leader=options.new_process_group)
    stdlib.adopt(
        name=process.name,
        identity=process._identity,
        method=options.method,
        parent_name=options.parent_name,
        parent_pid=options.parent_pid,
        parent_sentinel=alive_fd,
        authkey=options.mp_authkey,
        tracker=_detach(options.tracker_fd),
    )
    if options.capture:
        # Fresh streams on fds 1 and 2: a forked child must not write through the
        # parent's stream objects (in a kernel they talk to ZeroMQ sockets).
        sys.stdout = streams.open_captured(1, write_through=False)
        sys.stderr = streams.open_captured(2, write_through=True)
    _close_stdin()
    return _run_process(process)


def _detach(handed: Any) -> int | None:
    """A descriptor the creator handed over: a number under fork, a ``DupFd`` otherwise."""
    if handed is None or isinstance(handed, int):
        return handed
    fd = handed.detach()
    os.set_inheritable(fd, False)
    return fd


def enter_group(*, detached: bool, new_group: bool, pgid: int | None = None) -> None:
    """In a new child, first thing: a session of its own (detached), a group of its own, or ``pgid``'s.

    Done before any other code runs, so that a signal to the creator's group
    (a kernel interrupt) cannot catch a child that asked to be out of it.
    """
    try:
        if detached:
            os.setsid()
        elif new_group:
            os.setpgid(0, 0)
        elif pgid is not None:
            os.setpgid(0, pgid)
    except OSError:
        pass  # already done by the parent (its setpgid may win the race), or the group is gone


def _move_output_fds(out_fd: int | None, err_fd: int | None) -> None:
    """Put the capture pipes (or a fork server client's own fds) on 1 and 2."""
    for source, target in ((out_fd, 1), (err_fd, 2)):
        if source is not None and source != target:
            os.dup2(source, target)
            os.close(source)


def _close_stdin() -> None:
    if sys.stdin is None or getattr(sys.stdin, "name", None) == os.devnull:
        return  # a fork server's children inherit its /dev/null
    try:
        sys.stdin.close()
        sys.stdin = open(os.devnull)  # noqa: SIM115 - it lives as long as the process
    except (OSError, ValueError):
        pass


def _run_process(process: Any) -> int:
    try:
        try:
            process.run()
            exitcode = 0
        finally:
            stdlib.exit_function()  # multiprocessing's finalizers: a Queue's feeder flushes
    except SystemExit as exit_request:
        exitcode = _system_exit_code(exit_request.code)
    except BaseException:
        exitcode = 1
        sys.stderr.write(f"Process {process.name}:\n")
        traceback.print_exc()
    finally:
        try:
            threading._shutdown()  # type: ignore[attr-defined]  # what multiprocessing does too
            _process.shutdown_children()
        finally:
            _flush_std_streams()
    return exitcode


def _system_exit_code(code: object) -> int:
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    sys.stderr.write(f"{code}\n")
    return 1


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass

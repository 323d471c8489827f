"""The child's side: become the current process, guard against orphaning, run, turn the end into an exit code.

Exit codes follow Python 3's ``multiprocessing``: 0 when ``run()`` returns or
calls ``sys.exit()``/``sys.exit(None)``; N for ``sys.exit(N)``; 1 with the
message on stderr for ``sys.exit('message')``; 1 with ``Process <name>:`` and
the traceback on stderr when ``run()`` raises.
"""

from __future__ import annotations

import io
import os
import socket
import sys
import threading
import traceback

from .. import messaging
from .. import process as _process
from ..channel import ChildChannel, read_payload
from . import guard
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

    share_main_classes()
    _move_output_fds(out_fd, err_fd)
    return _run(process, sock, options)


def spawn_main(channel_fd: int, out_fd: int | None, err_fd: int | None) -> None:
    """Entry point of a spawned interpreter, and of a fork server's child: read the payload, run, exit."""
    sock = socket.socket(fileno=channel_fd)
    # First, so that even a failure to load the payload reaches the captured stderr.
    _move_output_fds(out_fd, err_fd)
    try:
        payload = _loads(read_payload(sock))
        sys.path[:] = payload.sys_path
        try:
            os.chdir(payload.cwd)
        except OSError:
            pass
        process = _loads(payload.process)
    except BaseException:
        sys.stderr.write("processing: the child could not load its process object:\n")
        traceback.print_exc()
        sys.stderr.flush()
        os._exit(1)
    os._exit(_run(process, sock, payload.options))


def rehearse() -> None:
    """In a fork server's idle child: unpickle a sample payload once, before any request.

    A fresh fork shares every page with its parent; the first write to each
    (even a reference count) costs a copy-on-write fault. Doing the unpickling
    work once while idle moves most of those faults out of the start-up path.
    """
    from ..serialization import dumps

    sample = _process.Process(target=lambda: None, args=(0,), kwargs={"k": ""})
    options = ChildOptions(b"", False, False, False, None, None, 0)
    _loads(_loads(dumps(Payload(dumps(sample), options, sys.path, ""))).process)


def _loads(data: bytes) -> Any:
    from ..serialization import loads

    return loads(data)


def _run(process: Any, sock: socket.socket, options: ChildOptions) -> int:
    _process.become_current(process)
    messaging.channel = ChildChannel(sock, process.authkey, options.challenge)
    guard.arm(options.guard, options.parent_pid, options.alive_fd)
    if options.capture:
        # Fresh streams on fds 1 and 2: a forked child must not write through the
        # parent's stream objects (in a kernel they talk to ZeroMQ sockets).
        sys.stdout = _text_stream(1, write_through=False)
        sys.stderr = _text_stream(2, write_through=True)
    _close_stdin()
    return _run_process(process)


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


def _text_stream(fd: int, *, write_through: bool) -> io.TextIOWrapper:
    raw = io.FileIO(fd, "w", closefd=False)
    return io.TextIOWrapper(
        io.BufferedWriter(raw),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=write_through,
    )


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
        process.run()
        exitcode = 0
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

"""What every start method shares: the child's pid, exit status, sentinel, channel and pipes.

Each start method is a small subclass (``popen_fork``, ``popen_spawn``,
``popen_forkserver``) that only knows how to bring the child into being, the
way CPython's ``multiprocessing`` splits its ``popen_*`` modules.
"""

from __future__ import annotations

import os
import socket
import sys
import threading

from . import _fd
from .channel import ParentChannel

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Popen", "child_options"]

PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


_alive: tuple[int, int] | None = None


def alive_fd() -> int:
    """The read end of a pipe whose write end only this process holds: at its EOF, this process is gone.

    A child's parent-death guard waits on it. (Not on the control channel: the
    parent closes that for other reasons, such as a forged message.)
    """
    global _alive
    if _alive is None:
        _alive = os.pipe()
    return _alive[0]


def _drop_alive_pipe_in_child() -> None:
    """A forked child keeps the read end (its guard may watch it) but must not keep its parent alive."""
    global _alive
    if _alive is not None:
        os.close(_alive[1])
        _alive = None


os.register_at_fork(after_in_child=_drop_alive_pipe_in_child)


def child_options(process: Any, channel: ParentChannel, *, guard_parent: bool) -> dict[str, Any]:
    """What the child's bootstrap needs besides the process object itself.

    ``guard_parent`` asks the child to die with its parent. A child of the fork
    server leaves that to the server, which kills its children when the client goes.
    """
    guard = None
    if guard_parent and not process._detached:
        # PR_SET_PDEATHSIG fires when the *thread* that forked dies, so it is
        # only right when that thread is the main one.
        main = threading.current_thread() is threading.main_thread()
        guard = "pdeathsig" if main and sys.platform == "linux" else "eof"
    return {
        "challenge": channel.challenge,
        "capture": process._output is not None,
        "new_process_group": process._new_process_group,
        "detached": process._detached,
        "guard": guard,
        "alive_fd": alive_fd() if guard == "eof" else None,
        "parent_pid": os.getpid(),
    }


class Popen:
    """A started child. Subclasses set ``pid`` and ``sentinel`` in ``_launch``.

    ``sentinel`` is a descriptor that becomes readable when the child exits, and not before.
    """

    method = ""

    def __init__(self, process: Any) -> None:
        self.returncode: int | None = None
        self._pid: int | None = None
        self.sentinel: int = -1
        self._lock = threading.Lock()
        self._output_fds: dict[int, str] = {}
        parent_sock, self._child_sock = socket.socketpair()
        self.channel: ParentChannel | None = ParentChannel(parent_sock, process._authkey)
        try:
            self._launch(process)
        except BaseException:
            self._child_sock.close()
            self.channel.close()
            _fd.close_all(*self._output_fds)
            raise

    def _launch(self, process: Any) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._pid

    def _output_pipes(self, process: Any) -> tuple[int | None, int | None]:
        """Pipes for the child's fds 1 and 2 when output is captured; returns the child's ends."""
        if process._output is None:
            return None, None
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        for fd in (out_w, err_w):
            _fd.enlarge_pipe(fd)
        self._output_fds = {out_r: "stdout", err_r: "stderr"}
        return out_w, err_w

    def output_fds(self) -> list[tuple[str, int]]:
        return [(stream, fd) for fd, stream in self._output_fds.items()]

    def output_closed(self, fd: int) -> None:
        if self._output_fds.pop(fd, None) is not None:
            os.close(fd)

    def poll(self) -> int | None:
        """The exit code, reaping the child if it has exited; None while it runs. Never blocks."""
        with self._lock:
            if self.returncode is None:
                self._reap(os.WNOHANG)
            return self.returncode

    def wait(self, timeout: float | None = None) -> int | None:
        """Wait up to ``timeout`` seconds (None: for ever) for the exit code."""
        if self.returncode is None:
            if not _fd.wait_readable(self.sentinel, timeout):
                return None
            with self._lock:
                if self.returncode is None:
                    self._reap(0)
        return self.returncode

    def _reap(self, flags: int) -> None:
        try:
            pid, status = os.waitpid(self.pid, flags)
        except ChildProcessError:
            return  # not ours to reap: called from another process
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            try:
                os.kill(self.pid, signum)
            except ProcessLookupError:
                pass

    def close(self) -> None:
        """Release every descriptor; the child must have exited."""
        self.release_in_child()

    def release_in_child(self) -> None:
        """Close what this object holds, without touching the child itself."""
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        _fd.close_all(self.sentinel, *self._output_fds)
        self.sentinel = -1
        self._output_fds = {}

    def __del__(self) -> None:
        if self.sentinel >= 0 and self.returncode is not None:
            _fd.close_all(self.sentinel)
            self.sentinel = -1

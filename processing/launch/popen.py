"""What every start method shares: the child's pid, exit status, sentinel, channel and pipes.

Each start method is a small subclass (``fork``, ``spawn``, ``forkserver`` in
this package) that only knows how to bring the child into being, the way
CPython's ``multiprocessing`` splits its ``popen_*`` modules.
"""

from __future__ import annotations

import os
import socket
import threading

from .. import _fd
from ..channel import ParentChannel
from . import guard
from .spec import ChildOptions

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .spec import LaunchSpec

__all__ = ["Popen"]


class Popen:
    """A started child. Subclasses set ``_pid`` and ``sentinel`` in ``_launch``.

    ``sentinel`` is a descriptor that becomes readable when the child exits, and not before.
    """

    method = ""
    #: Whether this creator guards its children against its own death (the fork server guards its own).
    guards_children = True

    def __init__(self, spec: LaunchSpec) -> None:
        self.returncode: int | None = None
        self._pid: int | None = None
        self.sentinel: int = -1
        self._lock = threading.Lock()
        self._output_fds: dict[int, str] = {}
        parent_sock, self._child_sock = socket.socketpair()
        self.channel: ParentChannel | None = ParentChannel(parent_sock, spec.authkey)
        try:
            self._launch(spec)
        except BaseException:
            self._child_sock.close()
            self.channel.close()
            _fd.close_all(*self._output_fds)
            raise

    def _launch(self, spec: LaunchSpec) -> None:
        raise NotImplementedError

    @property
    def pid(self) -> int | None:
        return self._pid

    def _child_options(self, spec: LaunchSpec) -> ChildOptions:
        """What the child's bootstrap needs besides the process object itself."""
        kind = guard.choose(detached=spec.detached, guarded_by_parent=self.guards_children)
        assert self.channel is not None
        return ChildOptions(
            challenge=self.channel.challenge,
            capture=spec.capture,
            new_process_group=spec.new_process_group,
            detached=spec.detached,
            guard=kind,
            alive_fd=guard.alive_fd() if kind is guard.Guard.EOF else None,
            parent_pid=os.getpid(),
        )

    def _output_pipes(self, spec: LaunchSpec) -> tuple[int | None, int | None]:
        """Pipes for the child's fds 1 and 2 when output is captured; returns the child's ends."""
        if not spec.capture:
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

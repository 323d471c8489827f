"""What every start method shares: the child's pid, exit status, sentinel, channel and pipes.

Each start method is a small subclass (``fork``, ``spawn``, ``forkserver`` in
this package) that only knows how to bring the child into being, the way
CPython's ``multiprocessing`` splits its ``popen_*`` modules.
"""

from __future__ import annotations

import os
import signal
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


#: The exit code of a child whose status could not be had (its server died, someone else reaped it).
LOST = 255


def check_sigchld() -> None:
    """Refuse to start a direct child while SIGCHLD is ignored: the kernel would discard its status.

    Raises:
        ProcessError: SIGCHLD is set to SIG_IGN.
    """
    if signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN:
        from ..errors import ProcessError

        raise ProcessError(
            "SIGCHLD is ignored in this process (signal.SIG_IGN), so the kernel discards every child's "
            "exit status and a child started with 'fork' or 'spawn' could never be told from a live one; "
            "restore it with signal.signal(signal.SIGCHLD, signal.SIG_DFL), or use method='forkserver' "
            "(its children are the fork server's)"
        )


class Popen:
    """A started child. Subclasses set ``_pid`` and ``sentinel`` in ``_launch``.

    ``sentinel`` is a descriptor that becomes readable when the child exits, and not before.
    """

    method = ""
    #: Whether this creator guards its children against its own death (the fork server guards its own).
    guards_children = True

    #: What a descriptor handed to the child pickles as (see :mod:`.stdlib`); None: nothing is pickled.
    DupFd: type | None = None

    def __init__(self, spec: LaunchSpec) -> None:
        self.returncode: int | None = None
        self._inherited: list[int] = []  # descriptors the child receives for the objects it unpickles
        self._pid: int | None = None
        self.sentinel: int = -1
        self._lock = threading.Lock()
        self._output_fds: dict[int, str] = {}
        #: Descriptors made for the child that the parent closes once it started (or failed to).
        self._child_ends: list[int] = []
        parent_sock, self._child_sock = socket.socketpair()
        _fd.hand_over(self._child_sock.fileno())
        self.channel: ParentChannel | None = ParentChannel(parent_sock, spec.authkey)
        try:
            self._launch(spec)
        except BaseException:
            self._close_child_sock()
            self.channel.close()
            _fd.close_all(*self._output_fds, *self._child_ends)
            self._output_fds = {}
            raise
        finally:
            self._child_ends = []

    def _launch(self, spec: LaunchSpec) -> None:
        raise NotImplementedError

    def _close_child_sock(self) -> None:
        _fd._in_flight.pop(self._child_sock.fileno(), None)
        self._child_sock.close()

    @property
    def pid(self) -> int | None:
        return self._pid

    def duplicate_for_child(self, fd: int) -> object:
        """The stdlib's spawning protocol: ``fd`` must reach the child; returns what its ``DupFd`` holds."""
        raise NotImplementedError(f"the {self.method} start method pickles nothing")

    def _handed(self, fd: int | None) -> object:
        """``fd`` as the child finds it: the number itself under fork, else a ``DupFd``."""
        if fd is None or self.DupFd is None:
            return fd
        return self.DupFd(self.duplicate_for_child(fd))

    def _child_options(self, spec: LaunchSpec) -> ChildOptions:
        """What the child's bootstrap needs besides the process object itself."""
        from multiprocessing import process as mp_process

        from . import stdlib

        kind = guard.choose(detached=spec.detached, guarded_by_parent=self.guards_children,
                            group_leader=spec.new_process_group)
        assert self.channel is not None
        forked = self.DupFd is None
        me = mp_process.current_process()
        return ChildOptions(
            challenge=self.channel.challenge,
            capture=spec.capture,
            new_process_group=spec.new_process_group,
            detached=spec.detached,
            guard=kind,
            alive_fd=self._handed(guard.alive_fd()),
            parent_pid=os.getpid(),
            method=self.method,
            parent_name=me.name,
            mp_authkey=None if forked else bytes(me.authkey),
            tracker_fd=None if forked else self._handed(stdlib.tracker_fd()),
        )

    def _output_pipes(self, spec: LaunchSpec) -> tuple[int | None, int | None]:
        """Pipes for the child's fds 1 and 2 when output is captured; returns the child's ends."""
        if not spec.capture:
            return None, None
        ends = []
        for stream in ("stdout", "stderr"):
            read_end, write_end = os.pipe()
            self._output_fds[read_end] = stream
            self._child_ends.append(_fd.hand_over(write_end))
            _fd.enlarge_pipe(write_end)
            ends.append(write_end)
        return ends[0], ends[1]

    def _pipe_for_child(self) -> tuple[int, int]:
        """A pipe whose write end goes to the child (closed here after the start, or if it fails)."""
        read_end, write_end = os.pipe()
        self._child_ends.append(_fd.hand_over(write_end))
        return read_end, write_end

    def _sentinel_of_started_child(self, reserved: int) -> int:
        """The pidfd of the child just started; ``reserved`` (a descriptor taken before the start) is
        closed first, so that one is free even when the process is at its limit.

        Raises:
            OSError: no pidfd could be had after all; the child is killed and reaped, so nothing is left.
        """
        _fd.close_all(reserved)
        try:
            return _fd.process_sentinel(self._pid)
        except OSError:
            try:
                os.kill(self._pid, signal.SIGKILL)
                os.waitpid(self._pid, 0)
            except OSError:
                pass
            raise

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
            if _fd.wait_readable(self.sentinel, 0):
                self._status_lost()
            return
        if pid:
            self.returncode = os.waitstatus_to_exitcode(status)

    def _status_lost(self) -> None:
        """The child has exited but its status is gone: something else in this process reaped it
        (a SIGCHLD handler calling ``os.waitpid(-1, ...)``, or SIGCHLD set to SIG_IGN after the start)."""
        self.returncode = LOST
        from .. import logs

        logs.report(
            "the exit status of child pid %s was taken by another wait() in this process (a SIGCHLD "
            "handler that reaps, or SIGCHLD ignored); its exit code is unknown and reported as %s. "
            "Reap only your own pids (os.waitpid(pid, ...)), or use method='forkserver'",
            self._pid, LOST,
        )

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

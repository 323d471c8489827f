"""The forkserver start method: children are forked by this process's fork server, not by the caller."""

from __future__ import annotations

import os
import socket
import threading

from .. import _fd
from ..channel import send_payload
from ..forkserver import protocol
from ..forkserver.client import fork_server
from . import interpreter
from .popen import LOST, Popen
from .stdlib import ForkserverDupFd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .spec import LaunchSpec

__all__ = ["ForkserverPopen"]


class ForkserverPopen(Popen):
    method = "forkserver"
    guards_children = False  # the server kills them if this process goes away
    DupFd = ForkserverDupFd

    def duplicate_for_child(self, fd: int) -> int:
        """The index of ``fd`` in the list the request carries (the child finds it there)."""
        if fd not in self._inherited:
            if len(self._inherited) >= protocol.MAX_INHERITED:
                raise ValueError(
                    f"a fork server's child can receive at most {protocol.MAX_INHERITED} descriptors"
                )
            self._inherited.append(fd)
        return self._inherited.index(fd)

    def _launch(self, spec: LaunchSpec) -> None:
        options = self._child_options(spec)
        environ, umask = fork_server().caller_state()
        with interpreter.start_payload(self, spec, options, environ, umask) as payload:
            self._start_child(spec, payload)

    def _start_child(self, spec: LaunchSpec, payload: bytes) -> None:
        out_w, err_w = self._output_pipes(spec)
        # The status travels on a socket, not a pipe: it is read with MSG_PEEK, so the sentinel stays
        # readable once the status came, whoever read it first (join() or the monitor), and nobody
        # waits for an EOF that a descriptor leaked into some other child could hold back.
        status_r, status_w = (sock.detach() for sock in socket.socketpair())
        self._child_ends.append(_fd.hand_over(status_w))
        try:
            pid_r, pid_w = self._pipe_for_child()
        except BaseException:
            os.close(status_r)
            raise
        child_fds = [
            status_w,
            pid_w,
            self._child_sock.fileno(),
            1 if out_w is None else out_w,
            2 if err_w is None else err_w,
            *self._inherited,
        ]
        # Children join the client's group (as forked ones would) unless asked otherwise.
        request = protocol.start_request(
            detached=spec.detached, new_group=spec.new_process_group, client_group=os.getpgrp(),
            inherited=len(self._inherited),
        )
        try:
            fork_server().send_request(request, child_fds)
        except BaseException:
            _fd.close_all(status_r, pid_r)
            raise
        finally:
            self._close_child_sock()
            _fd.close_all(status_w, pid_w, out_w, err_w)
        self.sentinel = status_r
        self._pid_lock = threading.Lock()
        self._pid_pipe = pid_r
        try:
            send_payload(self.channel.sock, payload)
        except OSError:
            pass  # the child died before reading it; its exit code tells why

    @property
    def pid(self) -> int | None:
        """The child's pid as the server announces it.

        It is read on first use, not in ``start()``, so that many starts can be
        in flight at once; that first read waits for the announcement, which
        the server sends before it hands the request to the child. If the
        server could not fork (it says why on the child's stderr) or died
        first, nothing ran: the pid stays None and the exit code is 255.
        """
        with self._pid_lock:
            if self._pid_pipe >= 0:
                try:
                    (pid,) = protocol.PID.unpack(_fd.read_exact(self._pid_pipe, protocol.PID.size))
                except EOFError:
                    pid = 0
                _fd.close_all(self._pid_pipe)
                self._pid_pipe = -1
                if pid:
                    self._pid = pid
                else:
                    self.returncode = LOST
                    fork_server().report_lost_start()
            return self._pid

    def release_in_child(self) -> None:
        # No lock: in a forked child, another thread of the parent may have held it.
        _fd.close_all(self._pid_pipe)
        self._pid_pipe = -1
        super().release_in_child()

    def _reap(self, flags: int) -> None:
        if self.pid is None:
            return
        if flags == os.WNOHANG and not _fd.wait_readable(self.sentinel, 0):
            return
        try:
            (self.returncode,) = protocol.EXIT.unpack(_peek_exact(self.sentinel, protocol.EXIT.size))
        except EOFError:
            self.returncode = LOST  # no status: the server died first (and its children with it)


def _peek_exact(fd: int, size: int) -> bytes:
    """The first ``size`` bytes on the stream socket ``fd``, left there (the sentinel stays readable).

    Raises:
        EOFError: the other end closed first.
    """
    sock = socket.socket(fileno=fd)
    try:
        while True:
            data = sock.recv(size, socket.MSG_PEEK)
            if len(data) >= size:
                return data
            if not data:
                raise EOFError("the fork server closed the status socket without a status")
            _fd.wait_readable(fd, 0.001)  # a part of it: the rest is on its way
    finally:
        sock.detach()

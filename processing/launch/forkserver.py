"""The forkserver start method: children are forked by this process's fork server, not by the caller."""

from __future__ import annotations

import os
import threading

from .. import _fd
from ..channel import send_payload
from ..forkserver import protocol
from ..forkserver.client import fork_server
from . import interpreter
from .popen import Popen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .spec import LaunchSpec

__all__ = ["ForkserverPopen"]


class ForkserverPopen(Popen):
    method = "forkserver"
    guards_children = False  # the server kills them if this process goes away

    def _launch(self, spec: LaunchSpec) -> None:
        options = self._child_options(spec)
        payload = interpreter.start_payload(spec, self.method, options)
        out_w, err_w = self._output_pipes(spec)
        status_r, status_w = os.pipe()
        pid_r, pid_w = os.pipe()
        child_fds = [
            status_w,
            pid_w,
            self._child_sock.fileno(),
            1 if out_w is None else out_w,
            2 if err_w is None else err_w,
        ]
        # Children join the client's group (as forked ones would) unless asked otherwise.
        request = protocol.start_request(
            detached=spec.detached, new_group=spec.new_process_group, client_group=os.getpgrp()
        )
        try:
            fork_server().send_request(request, child_fds)
        except BaseException:
            _fd.close_all(status_r, pid_r)
            raise
        finally:
            self._child_sock.close()
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
                    self.returncode = 255
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
            (self.returncode,) = protocol.EXIT.unpack(_fd.read_exact(self.sentinel, protocol.EXIT.size))
        except EOFError:
            self.returncode = 255  # no status: the server died first, as a lost child reports

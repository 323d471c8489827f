"""The forkserver start method: children are forked by a small server, not by the caller."""

from __future__ import annotations

import os
import socket
import threading

from . import _fd
from .channel import send_payload
from .forkserver import EXIT, PID, PRELOAD, REQUEST, START, server_call
from .popen import Popen, child_options
from .popen_spawn import spawn_interpreter, start_payload

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["ForkserverPopen", "preload_also", "setForkserverPreload", "set_forkserver_preload"]

_preload: list[str] = []


def setForkserverPreload(module_names: list[str]) -> None:
    """Modules the fork server imports once, so its children start with them loaded.

    Takes effect at once: a server already running imports them before it
    serves the next start, and one started later imports them first thing.
    A name that cannot be imported is skipped, as by the standard library's
    ``set_forkserver_preload``.

    Raises:
        TypeError: not a list of module names.
    """
    if not isinstance(module_names, (list, tuple)) or not all(isinstance(m, str) for m in module_names):
        raise TypeError("setForkserverPreload() takes a list of module names, e.g. ['numpy']")
    with _server_lock:  # a server being started reads the list under it
        _set_preload(list(module_names))


def preload_also(module_names: list[str]) -> None:
    """Add to the fork server's preload list, keeping what is there (see :func:`setForkserverPreload`)."""
    with _server_lock:
        missing = [name for name in module_names if name not in _preload]
        if missing:
            _set_preload(_preload + missing)


def _set_preload(module_names: list[str]) -> None:
    _preload[:] = module_names
    server = _server
    if server is not None and server.owner == os.getpid():
        try:
            server.preload(_preload)
        except OSError:
            pass  # the server has died: its successor imports them when it starts


set_forkserver_preload = setForkserverPreload


class _Server:
    """The client's handle on its fork server."""

    def __init__(self) -> None:
        ours, theirs = socket.socketpair()
        call = server_call(theirs.fileno(), _preload)
        try:
            # A group of its own: a signal to the client's group (a kernel
            # interrupt, a shutdown) must not kill the server or its idle children.
            self.pid = spawn_interpreter(call, [theirs.fileno()], new_group=True)
        except BaseException:
            ours.close()
            raise
        finally:
            theirs.close()
        self.sock = ours
        self.owner = os.getpid()
        self.lock = threading.Lock()

    def request(self, header: bytes, fds: list[int]) -> None:
        with self.lock:
            socket.send_fds(self.sock, [header], fds)

    def preload(self, module_names: list[str]) -> None:
        names = "\n".join(module_names).encode()
        with self.lock:
            self.sock.sendall(REQUEST.pack(PRELOAD, False, False, len(names)) + names)

    def discard(self) -> None:
        self.sock.close()
        try:
            os.waitpid(self.pid, os.WNOHANG)
        except ChildProcessError:
            pass


_server: _Server | None = None
_server_lock = threading.Lock()


def _get_server() -> _Server:
    global _server
    with _server_lock:
        if _server is None or _server.owner != os.getpid():
            _server = _Server()
        return _server


def _forget_server_in_child() -> None:
    """A forked child must not keep its parent's server alive, nor talk to it.

    The locks are new too: another thread of the parent may have held them.
    """
    global _server, _server_lock
    _server_lock = threading.Lock()
    if _server is not None:
        _server.sock.close()
        _server = None


os.register_at_fork(after_in_child=_forget_server_in_child)


class ForkserverPopen(Popen):
    method = "forkserver"

    def _launch(self, process: Any) -> None:
        options = child_options(process, self.channel, guard_parent=False)
        payload = start_payload(process, self.method, options)
        out_w, err_w = self._output_pipes(process)
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
        header = REQUEST.pack(START, options["detached"], options["new_process_group"], os.getpgrp())
        server = _get_server()
        try:
            try:
                server.request(header, child_fds)
            except OSError:
                server = self._restart(server)
                server.request(header, child_fds)
        except BaseException:
            _fd.close_all(status_r, pid_r)
            raise
        finally:
            self._child_sock.close()
            _fd.close_all(status_w, pid_w, out_w, err_w)
        self.sentinel = status_r
        self._server = server
        self._pid_lock = threading.Lock()
        self._pid_pipe = pid_r
        try:
            send_payload(self.channel.sock, payload)
        except OSError:
            pass  # the child died before reading it; its exit code tells why

    @property
    def pid(self) -> int | None:
        """Read from the server on first use, so that many starts can be in flight at once."""
        with self._pid_lock:
            if self._pid_pipe >= 0:
                reply = _read_exact(self._pid_pipe, PID.size)
                _fd.close_all(self._pid_pipe)
                self._pid_pipe = -1
                if len(reply) == PID.size:
                    (pid,) = PID.unpack(reply)
                    if pid:
                        self._pid = pid
                    else:
                        self.returncode = 255  # the server could not fork (it says why on the child's stderr)
                else:
                    self.returncode = 255  # the server died before forking; nothing ran
                    self._restart(self._server)
            return self._pid

    def release_in_child(self) -> None:
        # No lock: in a forked child, another thread of the parent may have held it.
        _fd.close_all(self._pid_pipe)
        self._pid_pipe = -1
        super().release_in_child()

    @staticmethod
    def _restart(server: _Server) -> _Server:
        global _server
        with _server_lock:
            if _server is server:
                server.discard()
                _server = None
        return _get_server()

    def _reap(self, flags: int) -> None:
        if self.pid is None:
            return
        if flags == os.WNOHANG and not _fd.wait_readable(self.sentinel, 0):
            return
        data = _read_exact(self.sentinel, EXIT.size + 1)
        # No status means the server died first; 255 is what a lost child reports. Reading on to
        # the end (the server closes the pipe right after writing) leaves the sentinel readable for good.
        self.returncode = EXIT.unpack(data)[0] if len(data) == EXIT.size else 255


def _read_exact(fd: int, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = os.read(fd, size - len(data))
        if not chunk:
            break
        data += chunk
    return data

"""This process's handle on its fork server: one :class:`ForkServer` object per process.

It starts the server on first use, in a fresh interpreter in a process group
of its own (a signal to the client's group, such as a kernel interrupt, must
not kill the server or its idle children), and starts a successor when a
request finds the server dead. A forked child forgets its parent's server
(it must neither keep it alive nor talk to it) and starts its own when it
needs one. One lock guards the connection and the preload list.
"""

from __future__ import annotations

import os
import socket
import threading

from ..errors import ProcessError
from ..launch import interpreter
from . import protocol
from .server import server_call

__all__ = [
    "ForkServer",
    "fork_server",
    "preload_also",
    "setForkserverPreload",
    "set_forkserver_preload",
]


class ForkServer:
    """The client's side of a fork server: its connection, its pid, and the modules it preloads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._preload: list[str] = []
        self._sock: socket.socket | None = None
        self._pid: int | None = None
        #: The environment and umask the running server was started with (its children's, unless sent).
        self._environ: dict[bytes, bytes] | None = None
        self._umask: int | None = None

    @property
    def pid(self) -> int | None:
        """The pid of the server running now, or None if none was started (or it was found dead)."""
        return self._pid

    @property
    def preload(self) -> list[str]:
        """The modules the server imports once for all its children (a copy)."""
        with self._lock:
            return list(self._preload)

    def set_preload(self, module_names: list[str]) -> None:
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
        with self._lock:
            self._set_preload_locked(list(module_names))

    def preload_also(self, module_names: list[str]) -> None:
        """Add to the preload list, keeping what is there (see :meth:`set_preload`)."""
        with self._lock:
            missing = [name for name in module_names if name not in self._preload]
            if missing:
                self._set_preload_locked(self._preload + missing)

    def send_request(self, request: bytes, fds: list[int] | None = None) -> None:
        """Send ``request`` (with ``fds``, for a start) to the server, starting one first if none runs.

        A server found dead is replaced once, and the request sent to its successor.

        Raises:
            OSError: the server cannot be started, or its successor cannot be reached either.
        """
        with self._lock:
            for attempt in range(2):
                sock = self._running_locked()
                try:
                    if fds:
                        socket.send_fds(sock, [request], fds)
                    else:
                        sock.sendall(request)
                    return
                except OSError:
                    self._discard_locked()
                    if attempt:
                        raise

    def caller_state(self) -> tuple[dict[str, str] | None, int | None]:
        """This process's environment and umask, for a child to start with; None for each that the
        server's children have already (the server started with it and it has not changed since).

        A fork is a copy of its caller at that moment; a fork server's child would
        otherwise have the server's state, however old. (Resource limits, nice
        value, CPU affinity and signal dispositions are not sent: see the README.)
        """
        data = getattr(os.environ, "_data", None)
        environ = None if data is not None and data == self._environ else dict(os.environ)
        umask = current_umask()
        return environ, (None if umask == self._umask else umask)

    def report_lost_start(self) -> None:
        """A start got no pid: the server died first (or could not fork, which it said on the
        child's stderr). Say so through the ``processing`` logger, with the server's end if known."""
        from .. import logs

        with self._lock:
            pid, preload = self._pid, list(self._preload)
            status = None
            if pid is not None:
                try:
                    done, raw = os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    done, raw = 0, 0
                if done:
                    status = os.waitstatus_to_exitcode(raw)
                    self._discard_locked()
        if status is not None:
            logs.report(
                "the fork server died (exit code %s) before it could start a child, which did not run "
                "(exit code 255); the next start starts a new server%s", status,
                f" (preloaded: {preload})" if preload else "",
            )

    def forget_in_child(self) -> None:
        """In a forked child: let go of the parent's server; a fresh lock (a parent's thread may hold it)."""
        self._lock = threading.Lock()
        if self._sock is not None:
            self._sock.close()
        self._sock = self._pid = None

    def _set_preload_locked(self, module_names: list[str]) -> None:
        self._preload = module_names
        if self._sock is not None:
            try:
                self._sock.sendall(protocol.preload_request(module_names))
            except OSError:
                self._discard_locked()  # dead: its successor imports them when it starts

    def _running_locked(self) -> socket.socket:
        if self._sock is None:
            ours, theirs = socket.socketpair()
            data = getattr(os.environ, "_data", None)
            self._environ = None if data is None else data.copy()
            self._umask = current_umask()
            try:
                self._pid = interpreter.start(server_call(theirs.fileno(), self._preload), [theirs.fileno()],
                                              new_group=True)
            except BaseException:
                ours.close()
                raise
            finally:
                theirs.close()
            self._sock = ours
            self._wait_ready_locked()
        return self._sock

    def _wait_ready_locked(self) -> None:
        """Wait until the new server has imported what it preloads (it says so).

        Raises:
            ProcessError: it died first: a preloaded module crashes the interpreter, and every
                server started with that list would die the same way.
        """
        assert self._sock is not None
        try:
            ready = self._sock.recv(len(protocol.READY)) == protocol.READY
        except OSError:
            ready = False
        if ready:
            return
        pid, preload = self._pid, list(self._preload)
        status = None
        self._sock.close()
        self._sock = self._pid = None
        if pid is not None:
            try:
                status = os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])
            except ChildProcessError:
                pass
        raise ProcessError(
            f"the fork server died (exit code {status}) while it imported its preload modules "
            f"{preload}: one of them ends or crashes the interpreter when imported. Remove it with "
            "setForkserverPreload(), or import it in the child instead."
        )

    def _discard_locked(self) -> None:
        if self._sock is not None:
            self._sock.close()
        pid, self._sock, self._pid = self._pid, None, None
        if pid is not None:
            try:
                os.waitpid(pid, os.WNOHANG)
            except ChildProcessError:
                pass


def current_umask() -> int:
    """This process's umask, read without changing it (``os.umask`` can only swap it, and a file
    another thread creates meanwhile would get the wrong mode)."""
    try:
        with open("/proc/self/status", "rb") as status:
            text = status.read()
        start = text.index(b"Umask:") + 6
        return int(text[start : text.index(b"\n", start)], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o22)  # no /proc (macOS, old Linux): the swap is the only way
    os.umask(mask)
    return mask


_fork_server = ForkServer()
os.register_at_fork(after_in_child=_fork_server.forget_in_child)


def fork_server() -> ForkServer:
    """This process's fork server client (the same object for the life of the process)."""
    return _fork_server


setForkserverPreload = set_forkserver_preload = _fork_server.set_preload
preload_also = _fork_server.preload_also

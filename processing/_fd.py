"""Small file-descriptor helpers shared by the start methods, the monitor and the child."""

from __future__ import annotations

import os
import select
import socket

__all__ = ["close_all", "enlarge_pipe", "process_sentinel", "recv_exact", "wait_readable"]


def wait_readable(fd: int, timeout: float | None) -> bool:
    """Block until ``fd`` is readable (or hung up) or ``timeout`` seconds pass.

    Uses ``poll`` rather than ``select`` because a busy parent easily holds
    descriptors numbered above select's limit of 1024.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    while True:
        try:
            return bool(poller.poll(ms))
        except InterruptedError:  # pragma: no cover - PEP 475 retries for us
            continue


def process_sentinel(pid: int) -> int | None:
    """A pidfd for ``pid`` (Linux 5.3+): readable once the process has exited.

    Returns None where pidfds do not exist; callers then use a pipe that the
    child holds open for its whole life.
    """
    if not hasattr(os, "pidfd_open"):
        return None
    try:
        return os.pidfd_open(pid)
    except OSError:
        return None


def enlarge_pipe(fd: int, size: int = 1 << 18) -> None:
    """Give a capture pipe room (Linux), so a flooding child blocks less while reads are batched."""
    import fcntl

    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
        except OSError:
            pass  # over the user's pipe budget: the default size still works


def close_all(*fds: int | None) -> None:
    for fd in fds:
        if fd is not None and fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def recv_exact(sock: socket.socket, size: int, *, eof: str) -> bytes:
    """Exactly ``size`` bytes from a stream socket.

    Raises:
        EOFError: with the message ``eof``, if the peer closes first.
    """
    chunks = bytearray()
    while len(chunks) < size:
        chunk = sock.recv(min(size - len(chunks), 1 << 20))
        if not chunk:
            raise EOFError(eof)
        chunks += chunk
    return bytes(chunks)

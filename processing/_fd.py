"""Small file-descriptor helpers shared by the start methods, the monitor, the channels and the wire."""

from __future__ import annotations

import os
import select
import socket
import time

__all__ = ["close_all", "enlarge_pipe", "process_sentinel", "read_exact", "wait_readable"]


def wait_readable(fd: int, timeout: float | None) -> bool:
    """Block until ``fd`` is readable (or hung up) or ``timeout`` seconds pass.

    Uses ``poll`` rather than ``select`` because a busy parent easily holds
    descriptors numbered above select's limit of 1024.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    return bool(poller.poll(ms))


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
    """Close each descriptor given (None and negative numbers are skipped); errors are ignored."""
    for fd in fds:
        if fd is not None and fd >= 0:
            try:
                os.close(fd)
            except OSError:
                pass


def read_exact(
    source: socket.socket | int,
    size: int,
    *,
    deadline: float | None = None,
    eof: str = "the other end closed the connection",
) -> bytes:
    """Exactly ``size`` bytes from a stream socket or from a pipe's descriptor.

    With ``deadline`` (a :func:`time.monotonic` value) the whole read must be
    over by then. The time left is recomputed before every read, so a peer
    that trickles one byte at a time cannot stretch it to ``size`` timeouts.

    Raises:
        EOFError: with the message ``eof``, if the other end closes first.
        TimeoutError: the deadline passed first.
    """
    fd = source if isinstance(source, int) else source.fileno()
    buffer = bytearray(size)
    view = memoryview(buffer)
    received = 0
    while received < size:
        if deadline is not None and not wait_readable(fd, max(0.0, deadline - time.monotonic())):
            raise TimeoutError(f"only {received} of the {size} bytes expected arrived in time")
        if isinstance(source, int):
            count = os.readv(fd, [view[received:]])
        else:
            count = source.recv_into(view[received:])
        if not count:
            raise EOFError(eof)
        received += count
    return bytes(buffer)

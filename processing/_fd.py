"""Small file-descriptor helpers shared by the start methods, the monitor, the channels and the wire."""

from __future__ import annotations

import fcntl  # here, not at the first captured start: at the descriptor limit an import fails
import os
import select
import socket
import threading
import time

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = ["close_all", "enlarge_pipe", "hand_over", "process_sentinel", "read_exact", "wait_readable"]

#: Descriptors on their way to a child being started, with the thread starting it. Between their
#: creation and the parent's close a fork from another thread would copy them into a child that has
#: nothing to do with them: there they would hold a status or output pipe open, and whoever waits for
#: its end would wait for that unrelated child. (Dict updates are atomic: no lock, none to inherit.)
_in_flight: dict[int, int] = {}


def hand_over(fd: int) -> int:
    """Note ``fd`` as a descriptor this thread hands to the child it starts; returns it."""
    _in_flight[fd] = threading.get_ident()
    return fd


def _drop_foreign_in_flight() -> None:
    """In a forked child: let go of what other threads were handing to their children.

    The forking thread's own (the new child's, under fork) stay. Each is
    replaced by /dev/null rather than closed, so that its number stays taken
    until whatever object owns it closes it.
    """
    me = threading.get_ident()
    foreign = [fd for fd, owner in _in_flight.items() if owner != me]
    if not foreign:
        return
    try:
        null = os.open(os.devnull, os.O_RDWR)
    except OSError:
        return
    for fd in foreign:
        try:
            os.dup2(null, fd, inheritable=False)
        except OSError:
            pass
        del _in_flight[fd]
    os.close(null)


os.register_at_fork(after_in_child=_drop_foreign_in_flight)


def wait_readable(fd: int, timeout: float | None) -> bool:
    """Block until ``fd`` is readable (or hung up) or ``timeout`` seconds pass.

    Uses ``poll`` rather than ``select`` because a busy parent easily holds
    descriptors numbered above select's limit of 1024.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    ms = None if timeout is None else max(0, int(timeout * 1000 + 0.999))
    return bool(poller.poll(ms))


def process_sentinel(pid: int) -> int:
    """A pidfd for ``pid`` (Linux 5.3+): readable once the process has exited.

    Callers use it where ``os.pidfd_open`` exists, else a pipe that the child
    holds open for its whole life.

    Raises:
        OSError: no pidfd (the process is at its descriptor limit, say).
    """
    return os.pidfd_open(pid)


def enlarge_pipe(fd: int, size: int = 1 << 18) -> None:
    """Give a capture pipe room (Linux), so a flooding child blocks less while reads are batched."""
    if hasattr(fcntl, "F_SETPIPE_SZ"):
        try:
            fcntl.fcntl(fd, fcntl.F_SETPIPE_SZ, size)
        except OSError:
            pass  # over the user's pipe budget: the default size still works


def close_all(*fds: int | None) -> None:
    """Close each descriptor given (None and negative numbers are skipped); errors are ignored."""
    for fd in fds:
        if fd is not None and fd >= 0:
            _in_flight.pop(fd, None)
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
    receive_into: Callable[[memoryview], int] | None = None,
) -> bytes:
    """Exactly ``size`` bytes from a stream socket or from a pipe's descriptor.

    With ``deadline`` (a :func:`time.monotonic` value) the whole read must be
    over by then. The time left is recomputed before every read, so a peer
    that trickles one byte at a time cannot stretch it to ``size`` timeouts.
    ``receive_into(view)``, if given, does each read of a socket instead of
    ``recv_into`` (to take the descriptors that come with the bytes).

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
            count = (receive_into or source.recv_into)(view[received:])
        if not count:
            raise EOFError(eof)
        received += count
    return bytes(buffer)

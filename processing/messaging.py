"""Messages between a child and its parent, from the child's side: :func:`sendToParent`,
:func:`receiveFromParent` (the parent's side is ``Process.messages`` and ``Process.sendToChild``).

Kept apart from the bootstrap so that ``import processing`` does not pay for
sockets and the start-up machinery; the bootstrap sets :data:`channel` in a
new child.
"""

from __future__ import annotations

import os

from .errors import ProcessStateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .channel import ChildChannel

__all__ = ["receiveFromParent", "receive_from_parent", "sendToParent", "send_to_parent"]

#: Set by the bootstrap in a child started by processing; None in the main process.
channel: ChildChannel | None = None


def sendToParent(obj: object) -> None:
    """From inside a child: send ``obj`` to the parent, signed with this process's auth key.

    The parent finds it in ``process.messages`` and through the ``message`` event.
    Objects defined in ``__main__`` travel by value, as targets do. On Linux, buffers of
    1 MiB or more that pickle out of band (numpy arrays, DataFrame blocks) are not copied
    into the message: they reach the parent as a shared-memory file that it maps
    copy-on-write, so its copy is its own (see :mod:`processing.buffers`).

    Raises:
        ProcessStateError: called outside a child started by :mod:`processing`.
    """
    _channel("sendToParent").send(obj)


def receiveFromParent(timeout: float | None = None) -> object:
    """From inside a child: the next object the parent sent with ``sendToChild``, in order.

    Blocks until one arrives (or ``timeout`` seconds pass). Objects arrive
    signed with this process's auth key; big out-of-band buffers in them
    arrive as a private (copy-on-write) mapping of the parent's shared-memory
    file. One call at a time reads the channel, so a child that must keep
    doing other work reads from a thread of its own.

    Raises:
        ProcessStateError: called outside a child started by :mod:`processing`.
        TimeoutError: nothing arrived within ``timeout`` seconds.
        EOFError: the parent closed the channel (it has gone, or it was told the child ended).
        AuthenticationError: a message was not signed with this process's key.
    """
    return _channel("receiveFromParent").receive(timeout)


def _channel(action: str) -> ChildChannel:
    if channel is None:
        raise ProcessStateError(
            f"{action}() works only inside a child started by processing; this process has no parent channel"
        )
    if channel.pid != os.getpid():
        # The channel's frames are numbered: a copy writing or reading on it would break the stream
        # for the child itself, so the copy is refused and the child's own messages still arrive.
        raise ProcessStateError(
            f"{action}() works only in the child processing started (pid {channel.pid}), not in a copy "
            f"of it made by os.fork() (pid {os.getpid()}); start the copy as a processing.Process instead"
        )
    return channel


send_to_parent = sendToParent
receive_from_parent = receiveFromParent

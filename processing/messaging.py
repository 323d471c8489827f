"""Messages from a child to its parent: :func:`sendToParent`.

Kept apart from the bootstrap so that ``import processing`` does not pay for
sockets and the start-up machinery; the bootstrap sets :data:`channel` in a
new child.
"""

from __future__ import annotations

from .errors import ProcessStateError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .channel import ChildChannel

__all__ = ["sendToParent", "send_to_parent"]

#: Set by the bootstrap in a child started by processing; None in the main process.
channel: ChildChannel | None = None


def sendToParent(obj: object) -> None:
    """From inside a child: send ``obj`` to the parent, signed with this process's auth key.

    The parent finds it in ``process.messages`` and through the ``message`` event.
    Objects defined in ``__main__`` travel by value, as targets do.

    Raises:
        ProcessStateError: called outside a child started by :mod:`processing`.
    """
    if channel is None:
        raise ProcessStateError(
            "sendToParent() works only inside a child started by processing; "
            "this process has no parent channel"
        )
    channel.send(obj)


send_to_parent = sendToParent

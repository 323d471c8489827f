"""Subscriber events for processes that the monitor thread does not watch: remote ones.

``processing.subscribe`` callbacks are fired by :mod:`processing.monitor`,
which learns of a local child from its sentinel. A remote child has no local
sentinel; its handle learns of its start, messages and exit over the network
and fires the same events through these two functions, so that subscribers
(the notebook's panel) treat local and remote processes alike. They belong in
``monitor`` as public names; until then they forward to its internals.
"""

from __future__ import annotations

from . import monitor

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["guarded", "notify"]


def notify(event: str, process: Any, *args: Any) -> None:
    """Call every subscriber's ``event`` callback (``started``, ``exited``, ``message``) for ``process``."""
    monitor._notify(event, process, *args)


def guarded(callback: Callable[..., Any], *args: Any) -> None:
    """Call a user's callback; an exception is printed to stderr, as the monitor does, and swallowed."""
    monitor._guarded(callback, *args)

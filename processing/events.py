"""Lifecycle events: who is told when a child starts, exits, or sends an object.

The bus keeps the subscriptions of this process behind one lock. Every
subscribe or cancel replaces the tuple of subscriptions under it, and an event
is delivered to the tuple as it was when the event fired, so a subscriber may
subscribe or cancel from inside a callback, and concurrent calls lose nothing.

Subscribers are called on the thread that learns the news: ``started`` on the
thread that called ``start()``, ``exited`` and ``message`` on the monitor
thread for a local child (on its relay thread for a remote one). A
subscriber's exception is reported through the ``processing`` logger and does
not stop the others.
"""

from __future__ import annotations

import os
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Subscription", "exited", "guarded", "message", "started", "subscribe"]


class Subscription:
    """A registration returned by :func:`subscribe`; ``cancel()`` (or leaving a ``with``) ends it."""

    def __init__(
        self,
        started: Callable[[Any], Any] | None,
        exited: Callable[[Any, int | None], Any] | None,
        message: Callable[[Any, Any], Any] | None,
    ) -> None:
        self.started = started
        self.exited = exited
        self.message = message

    def cancel(self) -> None:
        """Stop calling this subscription's callbacks; calling it twice is harmless."""
        _bus.remove(self)

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


def subscribe(
    *,
    started: Callable[[Any], Any] | None = None,
    exited: Callable[[Any, int | None], Any] | None = None,
    message: Callable[[Any, Any], Any] | None = None,
) -> Subscription:
    """Be told about every child this process starts from now on.

    - ``started(process)``: right after the child exists, on the starting thread.
    - ``exited(process, exitcode)``: once, after the child has exited, been reaped,
      and everything it wrote before dying has been delivered (``exitcode`` is
      None only for a remote child whose worker was lost).
    - ``message(process, obj)``: for each object the child sends with
      :func:`processing.sendToParent`, after its signature was checked.

    Returns the subscription; it holds until cancelled (a forked child starts
    with none of its parent's).
    """
    subscription = Subscription(started, exited, message)
    _bus.add(subscription)
    return subscription


def started(process: Any) -> None:
    """Tell every subscriber that ``process`` has started (remote handles call it too)."""
    for subscription in _bus.subscriptions:
        if subscription.started is not None:
            guarded(subscription.started, process)


def exited(process: Any, exitcode: int | None) -> None:
    """Tell every subscriber that ``process`` has exited with ``exitcode`` and its output is delivered."""
    for subscription in _bus.subscriptions:
        if subscription.exited is not None:
            guarded(subscription.exited, process, exitcode)


def message(process: Any, obj: Any) -> None:
    """Tell every subscriber that ``process`` sent ``obj``."""
    for subscription in _bus.subscriptions:
        if subscription.message is not None:
            guarded(subscription.message, process, obj)


def guarded(callback: Callable[..., Any], *args: Any) -> None:
    """Call a user's callback; an exception is reported through the ``processing`` logger and swallowed."""
    try:
        callback(*args)
    except Exception:
        try:
            from . import logs  # on the first report only: import processing stays cheap

            logs.report_exception("exception in %r", callback)
        except Exception:
            pass  # a broken stderr must not kill the thread that delivers events: they must keep coming


class _Bus:
    """The subscriptions of this process: one lock guards every change."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.subscriptions: tuple[Subscription, ...] = ()

    def add(self, subscription: Subscription) -> None:
        with self._lock:
            self.subscriptions = (*self.subscriptions, subscription)

    def remove(self, subscription: Subscription) -> None:
        with self._lock:
            self.subscriptions = tuple(s for s in self.subscriptions if s is not subscription)

    def reset_after_fork(self) -> None:
        """In a forked child: none of the parent's subscribers, and a lock no thread of the parent holds."""
        self.__init__()  # type: ignore[misc]


_bus = _Bus()
os.register_at_fork(after_in_child=_bus.reset_after_fork)

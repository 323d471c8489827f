"""Lifecycle events and output delivery, driven by each child's sentinel.

One daemon thread per process ("processing-monitor") sleeps in a selector on
every child's sentinel, control channel and captured output pipes. Nothing
polls on a timer: a child's exit, a line it prints or a message it sends wakes
the thread directly. On exit it drains what the child wrote before dying, reaps
the child, and only then fires ``exited``, so subscribers see complete output.

Subscribers are called on the monitor thread (``started`` on the thread that
called ``start()``); an exception in a subscriber is printed to stderr and does
not stop the others.
"""

from __future__ import annotations

import os
import selectors
import sys
import threading
import time

from .errors import AuthenticationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Subscription", "guarded", "notify", "subscribe", "wait_delivered", "watch"]

_READ_SIZE = 1 << 16
#: A stream read again within this many seconds is parked for as long: under a
#: flood of short lines, one wake-up then carries many lines instead of one.
_COALESCE = 0.002
_DRAIN_LIMIT = 256


class Subscription:
    """A registration returned by :func:`subscribe`; ``cancel()`` (or leaving a ``with``) ends it."""

    def __init__(
        self,
        started: Callable[[Any], Any] | None,
        exited: Callable[[Any, int], Any] | None,
        message: Callable[[Any, Any], Any] | None,
    ) -> None:
        self.started = started
        self.exited = exited
        self.message = message

    def cancel(self) -> None:
        _state.subscriptions = [s for s in _state.subscriptions if s is not self]

    def __enter__(self) -> Subscription:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.cancel()


def subscribe(
    *,
    started: Callable[[Any], Any] | None = None,
    exited: Callable[[Any, int], Any] | None = None,
    message: Callable[[Any, Any], Any] | None = None,
) -> Subscription:
    """Be told about every child this process starts from now on.

    - ``started(process)``: right after the child exists, on the starting thread.
    - ``exited(process, exitcode)``: once, after the child has exited, been reaped,
      and everything it wrote before dying has been delivered.
    - ``message(process, obj)``: for each object the child sends with
      :func:`processing.sendToParent`, after its signature was checked.
    """
    subscription = Subscription(started, exited, message)
    _state.subscriptions = [*_state.subscriptions, subscription]
    return subscription


def notify(event: str, *args: Any) -> None:
    """Call every subscriber's ``event`` callback (``started``, ``exited``, ``message``).

    Public so that handles the monitor does not watch (remote processes, whose
    news arrives over the network) fire the same events as local children.
    """
    for subscription in _state.subscriptions:
        callback = getattr(subscription, event)
        if callback is not None:
            guarded(callback, *args)


def guarded(callback: Callable[..., Any], *args: Any) -> None:
    """Call a user's callback; an exception is printed to stderr and swallowed."""
    try:
        callback(*args)
    except Exception:
        try:
            import traceback

            print(f"processing: exception in {callback!r}:", file=sys.stderr)
            traceback.print_exc()
        except Exception:
            pass  # a broken stderr must not kill the monitor thread: events must keep coming


def watch(process: Any) -> None:
    """Track a just-started child: fire ``started`` now, the rest from the monitor thread."""
    notify("started", process)
    _state.add(process)


def wait_delivered(process: Any, timeout: float | None) -> None:
    """Wait until the monitor has delivered the exited child's output and events."""
    if threading.current_thread() is not _state.thread:
        process._finished.wait(timeout)


class _State:
    def __init__(self) -> None:
        self.subscriptions: list[Subscription] = []
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None
        self._parked: dict[int, tuple[float, Any]] = {}
        self._last_read: dict[int, float] = {}

    def add(self, process: Any) -> None:
        # Registering straight from the starting thread is safe: epoll and
        # kqueue take new descriptors while another thread waits in them, and
        # it spares a wake-up of the monitor thread on every start.
        with self._lock:
            if self.thread is None:
                self._selector = selectors.DefaultSelector()
                self.thread = threading.Thread(target=self._run, name="processing-monitor", daemon=True)
                self.thread.start()
            self._register(process)

    def _run(self) -> None:
        assert self._selector is not None
        registered = self._selector.get_map()
        while True:
            timeout = None
            if self._parked:
                timeout = max(0.0, min(due for due, _ in self._parked.values()) - time.monotonic())
            for key, _ in self._selector.select(timeout):
                # An earlier handler in this batch may have closed this descriptor
                # (and the number may even be in use again): act only on live keys.
                if registered.get(key.fd) is key:
                    guarded(key.data, key.fd)
            if self._parked:
                self._unpark_due()

    def _register(self, process: Any) -> None:
        popen = process._popen
        selector = self._selector
        assert selector is not None
        if popen.channel is not None:
            selector.register(
                popen.channel.fileno(), selectors.EVENT_READ, lambda fd: self._on_channel(process)
            )
        for stream, fd in popen.output_fds():
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ, lambda fd, s=stream: self._on_output(process, s, fd))
        # The sentinel goes last: once it is in, the monitor may handle the exit
        # (and close the other descriptors) at any moment.
        selector.register(popen.sentinel, selectors.EVENT_READ, lambda fd: self._on_exit(process))

    def _on_output(self, process: Any, stream: str, fd: int) -> bool:
        """Deliver one read; False when nothing more is there right now (or ever)."""
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return False
        if not data:
            self._forget(fd)
            process._popen.output_closed(fd)
            return False
        if process._output is not None:
            guarded(process._output, stream, data)
        now = time.monotonic()
        selector = self._selector
        if now - self._last_read.get(fd, 0.0) < _COALESCE and fd in selector.get_map():
            key = selector.get_key(fd)
            selector.unregister(fd)
            self._parked[fd] = (now + _COALESCE, key.data)
        self._last_read[fd] = now
        return True

    def _unpark_due(self) -> None:
        now = time.monotonic()
        for fd, (due, data) in list(self._parked.items()):
            if due <= now:
                del self._parked[fd]
                self._selector.register(fd, selectors.EVENT_READ, data)

    def _on_channel(self, process: Any) -> None:
        channel = process._popen.channel
        if channel is None or channel.closed:
            return
        while True:
            try:
                messages = channel.pump()
            except AuthenticationError as error:
                print(f"processing: {process._name}: {error}", file=sys.stderr)
                break
            for problem in channel.take_problems():
                print(
                    f"processing: {process._name}: a message could not be loaded: "
                    f"{type(problem).__name__}: {problem}",
                    file=sys.stderr,
                )
            for obj in messages:
                process.messages.append(obj)
                notify("message", process, obj)
            if not messages:
                break
        if channel.eof:
            self._forget(channel.fileno())
            channel.close()

    def _on_exit(self, process: Any) -> None:
        popen = process._popen
        if popen.poll() is None:
            return  # not reapable yet: there is nothing to report
        self._forget(popen.sentinel)
        try:
            for stream, fd in popen.output_fds():
                for _ in range(_DRAIN_LIMIT):
                    if not self._on_output(process, stream, fd):
                        break
            self._on_channel(process)
            exitcode = popen.wait()
            notify("exited", process, exitcode)
        finally:
            process._finished.set()

    def _forget(self, fd: int) -> None:
        assert self._selector is not None
        self._parked.pop(fd, None)
        self._last_read.pop(fd, None)
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def reset_after_fork(self) -> None:
        """In a forked child: no thread, no registrations, no subscribers of the parent's."""
        if self._selector is not None:
            self._selector.close()
        self.__init__()  # type: ignore[misc]


_state = _State()
os.register_at_fork(after_in_child=_state.reset_after_fork)

"""The monitor thread: output delivery and lifecycle events, driven by each child's sentinel.

One daemon thread per process ("processing-monitor") sleeps in a selector on
every child's sentinel, control channel and captured output pipes. Nothing
polls on a timer: a child's exit, a line it prints or a message it sends wakes
the thread directly. On exit it drains what the child wrote before dying, reaps
the child, and only then fires ``exited`` (see :mod:`processing.events`), so
subscribers see complete output.

Output and messages come in the order the child made them, when it flushed
its streams before sending: before it delivers a message, the monitor reads
whatever the child's pipes hold, which includes all the child wrote before it
sent the message.
"""

from __future__ import annotations

import os
import selectors
import threading
import time

from . import events
from .errors import AuthenticationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["Watch", "wait_delivered", "watch"]

_READ_SIZE = 1 << 16
#: A stream read again within this many seconds is parked for as long: under a
#: flood of short lines, one wake-up then carries many lines instead of one.
_COALESCE = 0.002
_DRAIN_LIMIT = 256


class Watch:
    """What the monitor holds for one child: its popen, where its output and messages go, and when all
    was delivered.

    ``delivered`` is set once the child's exit, its last output and its last
    messages have been delivered and ``exited`` has fired.
    """

    __slots__ = ("delivered", "output", "popen", "process", "received")

    def __init__(self, process: Any, popen: Any, output: Callable[[str, bytes], Any] | None,
                 received: Callable[[Any], Any]) -> None:
        self.process = process
        self.popen = popen
        self.output = output
        self.received = received
        self.delivered = threading.Event()


def watch(
    process: Any, popen: Any, output: Callable[[str, bytes], Any] | None, received: Callable[[Any], Any]
) -> Watch:
    """Track a just-started child: fire ``started`` now (on this thread), the rest from the monitor thread.

    ``output(stream, data)`` gets what the child writes (when captured),
    ``received(obj)`` each object it sends, both on the monitor thread.
    """
    record = Watch(process, popen, output, received)
    events.started(process)
    _monitor.add(record)
    return record


def wait_delivered(record: Watch, timeout: float | None) -> bool:
    """Wait until the monitor has delivered the exited child's output and events; False on timeout.

    On the monitor thread itself (a subscriber joining a child) it returns at
    once: the delivery it would wait for is the one under way.
    """
    if threading.current_thread() is _monitor.thread:
        return record.delivered.is_set()
    return record.delivered.wait(timeout)


class _Monitor:
    """The selector thread; started with the first child, for the life of the process."""

    def __init__(self) -> None:
        self.thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._selector: selectors.BaseSelector | None = None
        self._parked: dict[int, tuple[float, Any]] = {}
        self._last_read: dict[int, float] = {}

    def add(self, record: Watch) -> None:
        # Registering straight from the starting thread is safe: epoll and
        # kqueue take new descriptors while another thread waits in them, and
        # it spares a wake-up of the monitor thread on every start.
        with self._lock:
            if self.thread is None:
                self._selector = selectors.DefaultSelector()
                self.thread = threading.Thread(target=self._run, name="processing-monitor", daemon=True)
                self.thread.start()
            self._register(record)

    def _run(self) -> None:
        assert self._selector is not None
        while True:
            timeout = None
            if self._parked:
                timeout = max(0.0, min(due for due, _ in self._parked.values()) - time.monotonic())
            self._handle(self._selector.select(timeout))
            if self._parked:
                self._unpark_due()

    def _handle(self, ready: list[tuple[selectors.SelectorKey, int]]) -> None:
        """Handle one batch of ready descriptors.

        A method of its own so that nothing of the batch outlives it: a loop
        variable left in ``_run`` would keep the last child's process object
        alive after its owner closed and dropped it.
        """
        registered = self._selector.get_map()
        for key, _ in ready:
            # An earlier handler in this batch may have closed this descriptor
            # (and the number may even be in use again): act only on live keys.
            if registered.get(key.fd) is key:
                events.guarded(key.data, key.fd)

    def _register(self, record: Watch) -> None:
        popen = record.popen
        selector = self._selector
        assert selector is not None
        if popen.channel is not None:
            channel_fd = popen.channel.fileno()
            selector.register(channel_fd, selectors.EVENT_READ, lambda fd: self._on_channel(record))
        for stream, fd in popen.output_fds():
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ, lambda fd, s=stream: self._on_output(record, s, fd))
        # The sentinel goes last: once it is in, the monitor may handle the exit
        # (and close the other descriptors) at any moment.
        selector.register(popen.sentinel, selectors.EVENT_READ, lambda fd: self._on_exit(record))

    def _on_output(self, record: Watch, stream: str, fd: int) -> bool:
        """Deliver one read; False when nothing more is there right now (or ever)."""
        try:
            data = os.read(fd, _READ_SIZE)
        except BlockingIOError:
            return False
        if not data:
            self._forget(fd)
            record.popen.output_closed(fd)
            return False
        if record.output is not None:
            events.guarded(record.output, stream, data)
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

    def _on_channel(self, record: Watch) -> None:
        channel = record.popen.channel
        if channel is None or channel.closed:
            return
        process = record.process
        while True:
            try:
                messages = channel.pump()
            except AuthenticationError as error:
                _report("%s: %s", process.name, error)
                break
            for problem in channel.take_problems():
                _report("%s: a message could not be loaded: %s: %s",
                        process.name, type(problem).__name__, problem)
            if messages:
                self._drain_output(record)
            for obj in messages:
                events.guarded(record.received, obj)
            if not messages:
                break
        if channel.eof:
            self._forget(channel.fileno())
            channel.close()

    def _drain_output(self, record: Watch) -> None:
        """Deliver what the child's pipes hold now (at most ``_DRAIN_LIMIT`` reads each)."""
        for stream, fd in record.popen.output_fds():
            for _ in range(_DRAIN_LIMIT):
                if not self._on_output(record, stream, fd):
                    break

    def _on_exit(self, record: Watch) -> None:
        popen = record.popen
        if popen.poll() is None:
            return  # not reapable yet: there is nothing to report
        self._forget(popen.sentinel)
        try:
            self._drain_output(record)
            self._on_channel(record)
            events.exited(record.process, popen.wait())
        finally:
            record.delivered.set()

    def _forget(self, fd: int) -> None:
        assert self._selector is not None
        self._parked.pop(fd, None)
        self._last_read.pop(fd, None)
        try:
            self._selector.unregister(fd)
        except (KeyError, ValueError):
            pass

    def reset_after_fork(self) -> None:
        """In a forked child: no thread and no registrations of the parent's."""
        if self._selector is not None:
            self._selector.close()
        self.__init__()  # type: ignore[misc]


def _report(message: str, *args: object) -> None:
    from . import logs  # on the first report only: import processing stays cheap

    logs.report(message, *args)


_monitor = _Monitor()
os.register_at_fork(after_in_child=_monitor.reset_after_fork)

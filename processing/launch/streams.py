"""A captured child's ``sys.stdout`` and ``sys.stderr``: fresh streams on its fds 1 and 2.

A forked child must not write through its parent's stream objects (in a
kernel they talk to ZeroMQ sockets), so the bootstrap gives it these. They are
line-buffered, as a terminal's are, so a flood of lines costs a write per line
and no more; what is left without a newline (``print('x', end='')``, a
progress bar's ``\\r``-less update) is flushed by one lazy daemon thread within
:data:`FLUSH_DELAY`, so the parent sees it while the child runs instead of at
its next newline or its exit.
"""

from __future__ import annotations

import io
import os
import threading
import time

__all__ = ["FLUSH_DELAY", "CapturedStream", "open_captured"]

#: How long a partial write may wait in a captured stream's buffer.
FLUSH_DELAY = 0.05


class CapturedStream(io.TextIOWrapper):
    """A line-buffered text stream whose partial writes are flushed within :data:`FLUSH_DELAY`."""

    def write(self, text: str) -> int:
        written = super().write(text)
        if "\n" not in text and "\r" not in text:  # else line buffering flushed it already
            _flusher.soon(self)
        return written


def open_captured(fd: int, *, write_through: bool) -> CapturedStream:
    raw = io.FileIO(fd, "w", closefd=False)
    return CapturedStream(
        io.BufferedWriter(raw),
        encoding="utf-8",
        errors="backslashreplace",
        line_buffering=True,
        write_through=write_through,
    )


class _Flusher:
    """The one thread that flushes partial writes; started by the first. One lock guards the set."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pending: set[CapturedStream] = set()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def soon(self, stream: CapturedStream) -> None:
        if stream in self._pending:
            return  # the common case under a flood: already due, nothing to do
        with self._lock:
            self._pending.add(stream)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="processing-flush", daemon=True)
                self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            time.sleep(FLUSH_DELAY)  # the window: writes that come meanwhile share one flush
            self._wake.clear()
            with self._lock:
                streams, self._pending = self._pending, set()
            for stream in streams:
                try:
                    stream.flush()
                except (OSError, ValueError):
                    pass  # closed, or the parent stopped reading: the exit reports the rest

    def reset_after_fork(self) -> None:
        """In a forked copy: no thread, and a lock no thread of the parent holds."""
        self.__init__()  # type: ignore[misc]


_flusher = _Flusher()
os.register_at_fork(after_in_child=_flusher.reset_after_fork)

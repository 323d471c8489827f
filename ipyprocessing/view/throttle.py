"""Coalescing display updates: each view is flushed at most once per interval, from one thread.

A child may write a million small chunks; sending each as a message would
freeze the browser and trip the server's IOPub rate limit. Marking a view
dirty is cheap (the monitor thread does it per chunk); a single daemon thread
flushes it at once if it was quiet for an interval (so a lone line shows
without delay), otherwise when the interval since its last flush is over.
The thread sleeps on a condition when nothing is dirty: no polling.
"""

from __future__ import annotations

import threading
import time
import weakref
from typing import Protocol

from processing import logs

__all__ = ["INTERVAL", "Throttle"]

#: Shortest time between two display updates of one process.
INTERVAL = 0.05


class Flushable(Protocol):
    def flush(self) -> None: ...


class Throttle:
    """Calls ``flush()`` on marked objects, each at most once per ``interval`` seconds."""

    def __init__(self, interval: float = INTERVAL) -> None:
        self.interval = interval
        self._condition = threading.Condition()
        self._due: dict[Flushable, float] = {}
        self._last: weakref.WeakKeyDictionary[Flushable, float] = weakref.WeakKeyDictionary()
        self._thread: threading.Thread | None = None

    def mark(self, target: Flushable) -> None:
        """Ask for ``target.flush()`` soon; marking an already marked target costs a lookup."""
        with self._condition:
            if target in self._due:
                return
            interval = getattr(target, "flush_interval", self.interval)  # a big target may ask for longer
            earliest = self._last.get(target, -interval) + interval
            self._due[target] = max(time.monotonic(), earliest)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ipyprocessing-throttle", daemon=True)
                self._thread.start()
            self._condition.notify()

    def _run(self) -> None:
        while True:
            with self._condition:
                while True:
                    now = time.monotonic()
                    ready = [target for target, due in self._due.items() if due <= now]
                    if ready:
                        break
                    self._condition.wait(min(self._due.values()) - now if self._due else None)
                for target in ready:
                    del self._due[target]
                    self._last[target] = now
            for target in ready:
                try:
                    target.flush()
                except Exception:  # one broken view must not stop the others
                    logs.report_exception("error while updating %r", target)

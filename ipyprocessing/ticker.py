"""Once a second, refresh the elapsed time, CPU and memory of the processes still running.

These figures change continuously, so no event announces them; one daemon
thread refreshes every live status widget, and ends when none is left (it is
started again by the next process).
"""

from __future__ import annotations

import sys
import threading
import time
import traceback
from typing import Protocol

__all__ = ["PERIOD", "Ticker"]

#: Seconds between two refreshes.
PERIOD = 1.0


class Tickable(Protocol):
    def tick(self) -> bool:
        """Refresh; return False once there is nothing left to refresh."""


class Ticker:
    """Calls ``tick()`` on each added object every ``period`` seconds until it returns False."""

    def __init__(self, period: float = PERIOD) -> None:
        self.period = period
        self._lock = threading.Lock()
        self._targets: list[Tickable] = []
        self._thread: threading.Thread | None = None

    def add(self, target: Tickable) -> None:
        with self._lock:
            self._targets.append(target)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="ipyprocessing-ticker", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            time.sleep(self.period)
            with self._lock:
                targets = list(self._targets)
            done = [target for target in targets if not _tick(target)]
            with self._lock:
                self._targets = [target for target in self._targets if target not in done]
                if not self._targets:
                    self._thread = None
                    return


def _tick(target: Tickable) -> bool:
    try:
        return target.tick()
    except Exception:  # a broken view is dropped, the others go on
        print(f"ipyprocessing: error while refreshing {target!r}:", file=sys.stderr)
        traceback.print_exc()
        return False

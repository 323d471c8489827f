"""Where the kernel is between its cells: the one record of whether a cell executes now.

Two things need it. Pulled values are assigned only between cells (see
:mod:`.pulls`). And a message sent from a background thread to a client that
listens only to the cell it runs (nbclient, so ``jupyter nbconvert --execute``
and CI) is lost if that cell ended before the message went out: the child's
final record must then be sent again from the next cell (see
:meth:`CellClock.reached`).

IPython's ``pre_execute`` and ``post_execute`` events drive the clock; a
message queued on the IOPub socket before ``post_execute`` fires goes out
before the cell's ``idle`` status, which ipykernel sends after it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

__all__ = ["CellClock", "clock"]


class CellClock:
    """Counts the kernel's executing and ended cells; keeps what must run as the next one starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executing = 0
        self._ended = 0
        self._at_next_start: list[Callable[[], Any]] = []
        self._started_hooks: list[Callable[[], Any]] = []
        self._ended_hooks: list[Callable[[], Any]] = []

    @property
    def executing(self) -> bool:
        """Whether a cell executes now (read under a lock of the caller's, its answer may change next)."""
        return self._executing > 0

    def mark(self) -> int:
        """A mark to pass to :meth:`reached` after sending: how many cells have ended so far."""
        return self._ended

    def reached(self, mark: int) -> bool:
        """Whether what was queued on IOPub since ``mark`` reached the running cell's listener.

        True only if a cell executes now and none ended since the mark: then the
        message went out before that cell's ``idle``. False means a listener of
        that cell only (nbclient) may have missed it.
        """
        with self._lock:
            return self._executing > 0 and self._ended == mark

    def at_next_start(self, action: Callable[[], Any]) -> None:
        """Run ``action`` (no arguments) on the kernel's main thread as the next cell starts."""
        with self._lock:
            self._at_next_start.append(action)

    def on_cells(self, started: Callable[[], Any], ended: Callable[[], Any]) -> None:
        """Call ``started`` as every cell starts and ``ended`` as it ends, after the count has changed."""
        with self._lock:
            self._started_hooks.append(started)
            self._ended_hooks.append(ended)

    def install(self, shell: Any) -> None:
        """Be driven by ``shell``'s events; idempotent (reloading the extension)."""
        events = shell.events
        if self.cell_starts not in events.callbacks["pre_execute"]:
            events.register("pre_execute", self.cell_starts)
            events.register("post_execute", self.cell_ends)

    def cell_starts(self) -> None:
        with self._lock:
            self._executing += 1
            actions, self._at_next_start = self._at_next_start, []
            hooks = list(self._started_hooks)
        for action in (*hooks, *actions):
            _guarded(action)

    def cell_ends(self) -> None:
        with self._lock:
            self._executing = max(0, self._executing - 1)
            self._ended += 1
            hooks = list(self._ended_hooks)
        for hook in hooks:
            _guarded(hook)


def _guarded(action: Callable[[], Any]) -> None:
    """Run ``action``; an error is logged, never raised into IPython's event loop (it would drop it)."""
    try:
        action()
    except Exception:
        from processing import logs

        logs.report_exception("a hook of the cells' start or end failed")


#: The interpreter's one clock of cells.
clock = CellClock()


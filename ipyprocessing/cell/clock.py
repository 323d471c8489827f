"""Where the kernel is between its cells: the one record of whether a cell executes now.

Two things need it. Pulled values are assigned only between cells (see
:mod:`.pulls`). And a message sent from a background thread to a client that
listens only to the cell it runs (nbclient, so ``jupyter nbconvert --execute``
and CI) is lost if that cell ended before the message went out: the child's
final record must then be sent again from the next cell (see
:meth:`CellClock.within_cell`).

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
    """Counts the kernel's executing cells; keeps what must run as the next one starts."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._executing = 0
        self._at_next_start: list[Callable[[], Any]] = []
        self._started_hooks: list[Callable[[], Any]] = []
        self._ended_hooks: list[Callable[[], Any]] = []

    @property
    def executing(self) -> bool:
        """Whether a cell executes now (read under a lock of the caller's, its answer may change next)."""
        return self._executing > 0

    def within_cell(self, send: Callable[[], Any]) -> bool:
        """If a cell executes, call ``send`` (no arguments) before it can end, and return True.

        What ``send`` queues on IOPub then goes out before that cell's ``idle``
        (its ``post_execute``, which ipykernel follows with ``idle``, waits for
        ``send``), so a listener of that cell hears all of it. False, without
        calling ``send``: no cell executes now. ``send`` must not wait for the
        kernel's main thread.
        """
        with self._lock:
            if self._executing > 0:
                send()
                return True
            return False

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


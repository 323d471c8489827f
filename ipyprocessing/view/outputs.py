"""What a ``%%process`` cell shows below its status row: the child's outputs, as a notebook cell's, bounded.

The child's stdout and stderr, its displays (``display()``, plots, widgets),
the last expression's result and its tracebacks, in the order the child made
them, as nbformat output dicts: what an ``ipywidgets.Output`` shows while the
child runs, and what the cell keeps as its own outputs once it has ended.

Bounded whatever the child does: at most ``max_lines`` lines of stream text
in all (older ones are counted, and a first line says how many are hidden and
where all of it is), at most ``max_displays`` rich outputs (the oldest go
first). ``\\r`` rewrites a line as a terminal does, so a progress bar stays one
line. ``update_display`` replaces a display in place by its id, and
``clear_output(wait=True)`` clears at the next output, as in a kernel. Events
arrive on the monitor thread and are applied in batches on the throttle's
thread (:meth:`CellOutputs.apply`): one lock guards the model.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from ..cell.messages import plain_traceback
from .output import Tail

__all__ = ["MAX_DISPLAYS", "CellOutputs", "text_of"]

#: Rich outputs a cell keeps; older ones are dropped (and counted).
MAX_DISPLAYS = 50
_WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


class CellOutputs:
    """The outputs of one child, in order, within the limits (see the module's doc)."""

    def __init__(self, max_lines: int, max_displays: int = MAX_DISPLAYS, hint: str = "") -> None:
        self._max_lines = max_lines
        self._max_displays = max_displays
        self._hint = hint
        self._lock = threading.Lock()
        self._items: list[list[Any]] = []  # ["stream", name, Tail] or ["rich", output dict, display id]
        self._hidden_lines = 0
        self._hidden_displays = 0
        self._clear_pending = False

    # -- changes (the throttle's thread applies a batch of the monitor thread's events) ---------------

    def apply(self, events: list[tuple[Any, ...]]) -> None:
        """Apply ``events`` in order: ``("stream", name, bytes)``, ``("display", data, metadata,
        display_id, update)``, ``("result", data, metadata, execution_count)``, ``("error", ename,
        evalue, traceback)``, ``("clear", wait)``. Runs of stream chunks are fed together, so a flood
        is decoded only at its end."""
        with self._lock:
            run: list[tuple[str, bytes]] = []
            for event in events:
                if event[0] == "stream" and (not run or run[-1][0] == event[1]):
                    run.append((event[1], event[2]))
                    continue
                self._feed(run)
                run = [(event[1], event[2])] if event[0] == "stream" else []
                if event[0] != "stream":
                    self._apply_one(event)
            self._feed(run)
            self._trim()

    def _apply_one(self, event: tuple[Any, ...]) -> None:
        kind = event[0]
        if kind == "clear":
            if event[1]:
                self._clear_pending = True
            else:
                self._clear()
            return
        if kind == "display":
            _, data, metadata, display_id, update = event
            if update:
                for item in self._items:
                    if item[0] == "rich" and item[2] == display_id:
                        item[1] = {**item[1], "data": data, "metadata": metadata}
                return
            output = {"output_type": "display_data", "data": data, "metadata": metadata}
            self._add_rich(output, display_id)
        elif kind == "result":
            _, data, metadata, execution_count = event
            self._add_rich({"output_type": "execute_result", "data": data, "metadata": metadata,
                            "execution_count": execution_count}, None)
        elif kind == "error":
            _, ename, evalue, traceback = event
            self._add_rich({"output_type": "error", "ename": ename, "evalue": evalue,
                            "traceback": list(traceback)}, None)

    def _feed(self, run: list[tuple[str, bytes]]) -> None:
        if not run:
            return
        self._before_output()
        name = run[0][0]
        last = self._items[-1] if self._items else None
        if last is None or last[0] != "stream" or last[1] != name:
            last = ["stream", name, Tail(self._max_lines)]
            self._items.append(last)
        last[2].feed(run)

    def _add_rich(self, output: dict[str, Any], display_id: str | None) -> None:
        self._before_output()
        self._items.append(["rich", output, display_id])

    def _before_output(self) -> None:
        if self._clear_pending:
            self._clear_pending = False
            self._clear()

    def _clear(self) -> None:
        self._items = []
        self._hidden_lines = self._hidden_displays = 0

    def _trim(self) -> None:
        """Keep the newest ``max_lines`` lines of stream text and ``max_displays`` rich outputs."""
        rich = [item for item in self._items if item[0] == "rich"]
        for item in rich[: max(0, len(rich) - self._max_displays)]:
            self._items.remove(item)
            self._hidden_displays += 1
        streams = [item[2] for item in self._items if item[0] == "stream"]
        excess = sum(tail.line_count for tail in streams) - self._max_lines
        for tail in streams:
            while excess > 0 and tail.drop_oldest():
                excess -= 1
        self._items = [item for item in self._items if item[0] != "stream" or item[2].line_count]

    # -- reading ------------------------------------------------------------------------------------

    def outputs(
        self, *, final: bool = False, widget_text: Callable[[str], str | None] | None = None
    ) -> list[dict[str, Any]]:
        """The outputs as nbformat dicts. ``final``: widget views become their text (the child's
        widgets are gone once it has ended), for a saved notebook that reads without a kernel;
        ``widget_text(model_id)`` says what a widget showed last, where it knows."""
        with self._lock:
            hidden = self._hidden_lines + sum(item[2].hidden for item in self._items if item[0] == "stream")
            outputs: list[dict[str, Any]] = []
            notes = []
            if hidden:
                notes.append(f"{hidden:,} earlier lines not shown")
            if self._hidden_displays:
                notes.append(f"{self._hidden_displays:,} earlier displays not shown")
            if notes:
                outputs.append(_stream("stdout", f"[{'; '.join(notes)}{self._hint}]\n"))
            for item in self._items:
                if item[0] == "stream":
                    text = item[2].visible()
                    if text:
                        outputs.append(_stream(item[1], text + "\n" if final else text))
                elif final and _WIDGET_VIEW in item[1].get("data", {}):
                    data = {key: value for key, value in item[1]["data"].items() if key != _WIDGET_VIEW}
                    shown = widget_text and widget_text(item[1]["data"][_WIDGET_VIEW].get("model_id", ""))
                    if shown is not None:
                        data = {"text/plain": shown}
                    outputs.append({**item[1], "data": data})
                else:
                    outputs.append(item[1])
            return outputs

    def text(self) -> str:
        """Everything shown, as plain text (for a front end that shows no widget)."""
        return text_of(self.outputs(final=True))

    def size(self) -> int:
        """About how many bytes the outputs take to send (what the throttle paces itself by)."""
        with self._lock:
            total = 0
            for item in self._items:
                if item[0] == "stream":
                    total += item[2].line_count * 80
                else:
                    total += sum(len(str(value)) for value in item[1].get("data", {}).values())
            return total


def text_of(outputs: list[dict[str, Any]]) -> str:
    """nbformat outputs as plain text: streams, tracebacks, the text form of displays and results."""
    parts = []
    for output in outputs:
        kind = output["output_type"]
        if kind == "stream":
            parts.append(output["text"])
        elif kind == "error":
            parts.append(plain_traceback(output["traceback"]) + "\n")
        else:
            text = output.get("data", {}).get("text/plain")
            if text:
                parts.append(str(text) + "\n")
    return "".join(parts)


def _stream(name: str, text: str) -> dict[str, Any]:
    return {"output_type": "stream", "name": name, "text": text}

"""The live status row of a ``%%process`` cell and the child's output below it, in a kernel.

Built from standard ipywidgets (HBox, HTML, Button), so it renders in
JupyterLab, Notebook 7 and VS Code with no front-end build. Every part has a
CSS class (``ipyprocessing-state`` ...) so a theme or a test can find it; the
state widget's value is exactly the repr's word (``started``,
``stopped[SIGTERM]``). The widget changes by itself: the core's ``exited``
event and a once-a-second ticker update it from their threads (ipykernel
forwards such sends to its IO thread). The output is not a widget: it is a
display in the originating cell (see ``iopub``), fed through ``Tail`` and
coalesced by ``Throttle``.
"""

from __future__ import annotations

import html
import threading
from typing import Any

import ipywidgets
import psutil
from IPython.display import display
from ipywidgets.widgets.widget_string import HTMLStyle

import processing

from .handle import CellProcess
from .iopub import CellChannel
from .output import Tail
from .status import describe_exit, format_bytes, format_elapsed
from .throttle import Throttle
from .ticker import Ticker

__all__ = ["StatusBox", "WidgetView"]

_BUTTON_REASON = "terminated from the Terminate button"
_KILL_REASON = "killed from the Kill button"


class StatusBox(ipywidgets.HBox):
    """The status row; where widgets cannot render (nbconvert, a console), its text says the same."""

    def __init__(self, children: list[ipywidgets.Widget], view: WidgetView) -> None:
        super().__init__(children, layout=ipywidgets.Layout(align_items="center", flex_flow="row wrap"),
                         _dom_classes=("ipyprocessing-status",))
        self._view = view

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        bundle = super()._repr_mimebundle_(**kwargs)
        bundle["text/plain"] = self._view.text()
        return bundle


class WidgetView:
    """Status row plus output display for one process, tied to the cell that started it."""

    def __init__(self, process: CellProcess, channel: CellChannel, throttle: Throttle, ticker: Ticker,
                 hint: str = "") -> None:
        self.process = process
        self._channel = channel
        self._throttle = throttle
        self._ticker = ticker
        self._hint = hint
        self._lock = threading.Lock()
        self._pending: list[tuple[str, bytes]] = []
        self._tail = Tail()
        self._shown = False
        self._finished = False
        self._usage: psutil.Process | None = None
        # One layout and one style shared by the labels: fewer models, fewer comm messages per cell.
        parts = {"layout": ipywidgets.Layout(margin="0 0.8em 0 0"), "style": HTMLStyle()}
        self.name = _html(f"<b>{html.escape(process.name)}</b>", "name", parts)
        self.pid = _html("pid -", "pid", parts)
        self.state = _html("initial", "state", parts)
        self.exitcode = _html("exit code -", "exitcode", parts)
        self.elapsed = _html("", "elapsed", parts)
        self.resources = _html("", "resources", parts)
        self.button = ipywidgets.Button(description="Terminate", button_style="danger", icon="stop",
                                        tooltip="Send SIGTERM to this process",
                                        _dom_classes=("ipyprocessing-terminate",))
        self.button.on_click(self._on_click)
        self.note = _html("", "note", parts)
        self.box = StatusBox([self.name, self.pid, self.state, self.exitcode, self.elapsed, self.resources,
                              self.button, self.note], self)

    def show(self) -> None:
        """Display the row in the current cell; call in the cell, after ``start()``."""
        with self._lock:
            if not self._finished:
                self.pid.value = f"pid {self.process.pid}"
                self.state.value = processing.status_word(None)
        display(self.box)
        with self._lock:
            self._shown = True
            pending = bool(self._pending)
        if pending:
            self._throttle.mark(self)
        self._ticker.add(self)

    def close(self) -> None:
        """Close the widgets: the process could not be started, so they are never displayed."""
        for widget in (*self.box.children, self.box):
            widget.close()

    def text(self) -> str:
        """The status as one line of text."""
        process = self.process
        line = f"{process.name} (pid {process.pid}): {processing.status_word(process.exitcode)}"
        return f"{line}; {self.note.value}" if self.note.value else line

    # -- called from the core's monitor thread --------------------------------

    def output(self, stream: str, data: bytes) -> None:
        with self._lock:
            self._pending.append((stream, data))
        self._throttle.mark(self)

    def exited(self, exitcode: int, note: str) -> None:
        self.flush()
        with self._lock:
            self._finished = True
            self.pid.value = f"pid {self.process.pid}"
            self.state.value = processing.status_word(exitcode)
            self.exitcode.value = f"exit code {exitcode}"
            self.exitcode.tooltip = describe_exit(exitcode)
            self.elapsed.value = format_elapsed(self.process.elapsed)
            self.button.description = "Terminate"
            self.button.disabled = True
            self.note.value = html.escape(note)

    # -- called from the throttle and ticker threads --------------------------

    def flush(self) -> None:
        """Show the output that arrived since the last flush (the tail of it)."""
        with self._lock:
            if not self._shown or not self._pending:
                return
            pending, self._pending = self._pending, []
            self._tail.feed(pending)
            self._channel.show_text(self._tail.render(self._hint))

    def tick(self) -> bool:
        with self._lock:
            if self._finished:
                return False
            self.elapsed.value = format_elapsed(self.process.elapsed)
            self.resources.value = self._usage_text()
            return True

    # -- called from the kernel's shell handler (a click) ---------------------

    def _on_click(self, _button: ipywidgets.Button) -> None:
        if self.button.description == "Kill":
            self.process.kill_because(_KILL_REASON)
            return
        self.process.terminate_because(_BUTTON_REASON)
        with self._lock:
            if not self._finished and self.process.exitcode is None:
                self.button.description = "Kill"
                self.button.tooltip = "Send SIGKILL, which cannot be ignored"
                self.note.value = "still running 2 s after SIGTERM: click Kill to send SIGKILL"

    def _usage_text(self) -> str:
        try:
            if self._usage is None:
                self._usage = psutil.Process(self.process.pid)
                self._usage.cpu_percent(None)  # the first reading only starts the measurement
                return f"memory {format_bytes(self._usage.memory_info().rss)}"
            cpu = self._usage.cpu_percent(None)
            return f"CPU {cpu:.0f}% · memory {format_bytes(self._usage.memory_info().rss)}"
        except (psutil.Error, ValueError):
            return ""


def _html(value: str, part: str, shared: dict[str, Any]) -> ipywidgets.HTML:
    return ipywidgets.HTML(value, _dom_classes=(f"ipyprocessing-{part}",), **shared)

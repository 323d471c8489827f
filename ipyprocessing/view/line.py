"""A one-line note about a process shown in another cell, with its Terminate button.

A cell that waits for a pulled name ("waiting for x: Process-3 (pid 4121) is
still running") and a re-run cell whose previous child still runs ("previous run
still running") both show such a line, so that the child stays controllable
from where the user is looking. In a kernel it is a small widget row whose
button goes through :meth:`Session.stop` (Terminate, then Kill if SIGTERM did not
end it); when it has said what it had to, :meth:`ProcessLine.end` replaces it
with plain text, which a saved notebook keeps. In terminal IPython it is printed.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable
from typing import Any

from ..session import Session
from ..words import KILL_TIP, pid_text
from .iopub import CellChannel

__all__ = ["ProcessLine", "describe", "show_line"]

_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class ProcessLine:
    """The line for ``process`` in a kernel: ``text`` (HTML) and its Terminate button."""

    def __init__(self, process: Any, text: str, session: Session, reason: str, channel: CellChannel) -> None:
        import ipywidgets

        self.process = process
        self._session = session
        self._reason = reason
        self._lock = threading.Lock()
        self._channel = channel  # the line's cell, whichever thread ends the line
        self._label = ipywidgets.HTML(text, _dom_classes=("ipyprocessing-line-text",))
        self._button = ipywidgets.Button(description="Terminate", button_style="danger", icon="stop",
                                         tooltip=f"Send SIGTERM to {process.name}",
                                         _dom_classes=("ipyprocessing-terminate",
                                                       "ipyprocessing-line-terminate"),
                                         layout=ipywidgets.Layout(width="auto"))
        self._button.on_click(self._clicked)
        self._row = ipywidgets.HBox([self._label, self._button],
                                    layout=ipywidgets.Layout(align_items="center", flex_flow="row wrap"),
                                    _dom_classes=("ipyprocessing-line",))
        self._plain = html.unescape(_strip_tags(text))
        self._ended = False

    def show(self) -> None:
        bundle = {"text/plain": self._plain,
                  _WIDGET_MIME: {"version_major": 2, "version_minor": 0, "model_id": self._row.model_id}}
        self._channel.publish("display_data", {"data": bundle, "metadata": {},
                                               "transient": {"display_id": self._channel.display_id}})

    def end(self, text: str) -> None:
        """Say ``text`` (plain) instead, for good; the widgets go."""
        with self._lock:
            if self._ended:
                return
            self._ended = True
        markup = f'<div class="ipyprocessing-line">{html.escape(text)}</div>'
        self._channel.update_display({"text/plain": text, "text/html": markup})
        for widget in (self._button, self._label, self._row):
            widget.close()

    def end_when_stopped(self, text: Callable[[], str]) -> None:
        """When the process has ended, say ``text()`` instead (checked at each of the sampler's sweeps)."""

        def check() -> bool:
            entry = self._session.entry(self.process)
            if entry is not None and entry.alive:
                return not self._ended
            self.end(text())
            return False

        self._session.sampler.listen(check)

    def _clicked(self, _button: Any) -> None:
        entry = self._session.entry(self.process)
        if entry is not None:
            self._session.stop([entry], terminated=self._reason, killed=self._reason.replace("terminated",
                                                                                             "killed"),
                               then=self._offer_kill)

    def _offer_kill(self) -> None:
        entry = self._session.entry(self.process)
        with self._lock:
            if entry is not None and entry.kill_offered and not self._ended:
                self._button.description = "Kill"
                self._button.tooltip = KILL_TIP


class _PrintedLine:
    """Terminal IPython: the line is printed, and so is its end."""

    def __init__(self, text: str) -> None:
        print(html.unescape(_strip_tags(text)))

    def end(self, text: str) -> None:
        print(text)

    def end_when_stopped(self, text: Callable[[], str]) -> None:
        """A terminal cannot change what it printed: the end shows in ``%processes``."""


def show_line(process: Any, text: str, session: Session, *, reason: str) -> ProcessLine | _PrintedLine:
    """Show ``text`` (HTML) about ``process`` with a Terminate button (``reason``: where it was clicked)."""
    import IPython

    kernel = getattr(IPython.get_ipython(), "kernel", None)
    if kernel is None:
        return _PrintedLine(text)
    line = ProcessLine(process, text, session, reason, CellChannel(kernel))
    line.show()
    return line


def describe(process: Any) -> str:
    """``<b>Process-3</b> (pid 4121)``: a process as the lines name it."""
    return f"<b>{html.escape(process.name)}</b> (pid {html.escape(pid_text(process))})"


def _strip_tags(text: str) -> str:
    import re

    return re.sub(r"<[^>]+>", "", text)

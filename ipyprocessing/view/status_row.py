"""The live status row of a ``%%process`` cell and the child's output below it, in a kernel.

Built from standard ipywidgets (HBox, HTML, Button), so it renders in
JupyterLab, Notebook 7 and VS Code with no front-end build. Every part has a
CSS class (``ipyprocessing-state`` ...) so a theme or a test can find it; the
state widget's value is exactly the repr's word (``started``,
``stopped[SIGTERM]``; ``pending`` and ``lost`` for a remote cell). The row
changes by itself: the core's ``exited`` event, a remote cell's news that a
worker runs it (its pid and host), and the session's sampler (elapsed time,
CPU, memory) update it from their threads (ipykernel forwards such sends to
its IO thread). The output is not a widget: it is a display in the
originating cell (see :mod:`.iopub`), fed through :class:`~.output.Tail` and
coalesced by :class:`~.throttle.Throttle`.
"""

from __future__ import annotations

import collections
import html
import threading
from typing import Any

import ipywidgets
from IPython.display import display
from ipywidgets.widgets.widget_string import HTMLStyle

from .. import settings
from ..cell.handle import CellHandle
from ..session import Entry, Session, current
from ..words import describe_exit, format_bytes, format_elapsed, pid_text, state_word
from .iopub import CellChannel
from .output import Tail
from .throttle import Throttle

__all__ = ["StatusBox", "WidgetView"]

_TERMINATED = "terminated from the Terminate button"
_KILLED = "killed from the Kill button"
_KILL_NOTE = "still running 2 s after SIGTERM: click Kill to send SIGKILL"
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


class StatusBox(ipywidgets.HBox):
    """The status row; where widgets cannot render (nbconvert, a console), its text says the same."""

    def __init__(self, children: list[ipywidgets.Widget], view: WidgetView) -> None:
        super().__init__(children, layout=ipywidgets.Layout(align_items="center", flex_flow="row wrap"),
                         _dom_classes=("ipyprocessing-status",))
        self._view = view

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # Built here rather than by HBox, whose text form is a repr of every child: slow and unreadable.
        return {"text/plain": self._view.text(),
                _WIDGET_MIME: {"version_major": 2, "version_minor": 0, "model_id": self.model_id}}


class WidgetView:
    """Status row plus output display for one process, tied to the cell that started it.

    The row is built when shown, after the start, so it is sent to the front
    end once with its pid and state rather than built and then corrected. It
    has few models, because each costs the cell a comm message: the name (with
    the pid), the state (its value is exactly the repr's word), the figures
    (exit code, elapsed time, CPU and memory, each a span with its own class),
    the button, and a note saying why it stopped and what was pulled.
    """

    def __init__(self, process: CellHandle, channel: CellChannel, throttle: Throttle,
                 session: Session | None = None, hint: str = "") -> None:
        self.process = process
        self._channel = channel
        self._throttle = throttle
        self._session = session or current()
        self._hint = hint
        self._lock = threading.Lock()
        # Filled by the monitor thread without a lock (deque appends and pops are atomic): a flood
        # delivers a chunk per pipe read, 100k of them for 100 MB, so each must cost next to nothing.
        self._pending: collections.deque[tuple[str, bytes]] = collections.deque()
        self._marked = False
        self._tail = Tail(settings.current().tail_lines)
        self._shown = False
        self._exitcode: int | None = None
        self._ended = False
        self._entry: Entry | None = None
        self._figures = {"exitcode": "exit code -", "elapsed": "", "resources": ""}
        self._note = ""
        self.box: StatusBox | None = None

    def show(self) -> None:
        """Build the row and display it in the current cell; call in the cell, after ``start()``."""
        self._entry = self._session.entry(self.process)
        with self._lock:
            self._build()
        display(self.box)
        with self._lock:
            self._shown = True
        self._throttle.mark(self)
        self._session.sampler.listen(self.tick)

    def text(self) -> str:
        """The status as one line of text."""
        process = self.process
        line = f"{process.name} (pid {pid_text(process)}): {self._state_word()}"
        return f"{line}; {self._note}" if self._note else line

    # -- called from the core's monitor thread --------------------------------

    def output(self, stream: str, data: bytes) -> None:
        self._pending.append((stream, data))
        if not self._marked:
            self._marked = True
            self._throttle.mark(self)

    def running(self) -> None:
        """A remote cell now runs on a worker: show its pid and host, and that it started."""
        with self._lock:
            if self.box is not None and not self._ended:  # else _build reads them when it comes
                self.name.value = self._name_html()
                self.state.value = self._state_word()

    def exited(self, exitcode: int | None, note: str) -> None:
        self.flush()
        with self._lock:
            self._exitcode, self._ended = exitcode, True
            self._figures["exitcode"] = "no exit code" if exitcode is None else f"exit code {exitcode}"
            self._figures["elapsed"] = format_elapsed(self.process.elapsed)
            self._note = note
            if self.box is not None:
                self.name.value = self._name_html()  # a remote cell stopped while pending has no pid
                self.state.value = self._state_word()
                self.figures.value = self._figures_html()
                self.figures.tooltip = describe_exit(exitcode)
                self.button.description = "Terminate"
                self.button.disabled = True
                self.note.value = html.escape(note)

    # -- called from the throttle and sampler threads -------------------------

    def flush(self) -> None:
        """Show the output that arrived since the last flush (the tail of it)."""
        with self._lock:
            if not self._shown:
                return
            self._marked = False  # before draining: a chunk appended from now on marks again
            pending = []
            while self._pending:
                pending.append(self._pending.popleft())
            if not pending:
                return
            self._tail.feed(pending)
            self._channel.show_text(self._tail.render(self._hint))

    def tick(self) -> bool:
        """Refresh the elapsed time and the sampled figures; False once the process has ended."""
        with self._lock:
            if self._ended:
                return False
            self._figures["elapsed"] = format_elapsed(self.process.elapsed)
            self._figures["resources"] = self._usage_text()
            self.figures.value = self._figures_html()
            return True

    # -- called from the kernel's shell handler (a click), and after the stop -------------

    def _on_click(self, _button: ipywidgets.Button) -> None:
        if self._entry is not None:
            self._session.stop([self._entry], terminated=_TERMINATED, killed=_KILLED, then=self._after_stop)

    def _after_stop(self) -> None:
        """SIGTERM did not end the child within 2 s: the button becomes Kill."""
        with self._lock:
            offered = self._entry is not None and self._entry.kill_offered
            if offered and not self._ended and self.box is not None:
                self.button.description = "Kill"
                self.button.tooltip = "Send SIGKILL, which cannot be ignored"
                self._note = _KILL_NOTE
                self.note.value = html.escape(self._note)

    def _build(self) -> None:
        # One layout and one label style shared by the row's parts: fewer models to send.
        shared = {"layout": ipywidgets.Layout(margin="0 0.8em 0 0")}
        labels = {**shared, "style": HTMLStyle()}
        finished = self._ended
        self.name = _html(self._name_html(), "name", labels)
        self.state = _html(self._state_word(), "state", labels)
        self.figures = _html(self._figures_html(), "figures", labels)
        if finished:
            self.figures.tooltip = describe_exit(self._exitcode)
        self.button = ipywidgets.Button(description="Terminate", button_style="danger", icon="stop",
                                        tooltip="Send SIGTERM to this process", disabled=finished,
                                        _dom_classes=("ipyprocessing-terminate",), **shared)
        self.button.on_click(self._on_click)
        self.note = _html(html.escape(self._note), "note", labels)
        self.box = StatusBox([self.name, self.state, self.figures, self.button, self.note], self)

    def _state_word(self) -> str:
        return state_word(self.process, self._exitcode, self._ended)

    def _name_html(self) -> str:
        return (f'<b>{html.escape(self.process.name)}</b> '
                f'<span class="ipyprocessing-pid">pid {html.escape(pid_text(self.process))}</span>')

    def _figures_html(self) -> str:
        return " · ".join(f'<span class="ipyprocessing-{key}">{html.escape(text)}</span>'
                          for key, text in self._figures.items() if text)

    def _usage_text(self) -> str:
        entry = self._entry
        if entry is None or entry.memory is None:
            return ""  # not sampled yet, or remote: its pid is on the worker's machine
        memory = f"memory {format_bytes(entry.memory)}"
        return memory if entry.cpu is None else f"CPU {entry.cpu:.0f}% · {memory}"


def _html(value: str, part: str, shared: dict[str, Any]) -> ipywidgets.HTML:
    return ipywidgets.HTML(value, _dom_classes=(f"ipyprocessing-{part}",), **shared)

"""What a ``%%process`` cell shows in a kernel: a live status row, and below it everything the child shows.

Built from standard ipywidgets (VBox, HBox, HTML, Button, Output), so it
renders in JupyterLab, Notebook 7 and VS Code with no front-end build. Every
part has a CSS class (``ipyprocessing-state`` ...) so a theme or a test can find
it; the state widget's value is exactly the repr's word (``started``,
``stopped[SIGTERM]``; ``pending`` and ``lost`` for a remote cell).

While the child runs, its outputs (streams, displays, plots, its widgets, the
last expression's result, tracebacks; see :mod:`.outputs`) live in an
``Output`` widget below the row: kernel-side state, so a page reloaded (or a
second front end) shows them and keeps following. They are coalesced by the
:class:`~.throttle.Throttle`, which paces itself by their size. When the child
has ended, the cell's display becomes a static record of how it ended, the
outputs become the cell's own outputs (plain nbformat outputs, which a saved
notebook keeps and any viewer shows), and the widgets close.

The row changes by itself: the core's ``exited`` event, a remote cell's news
that a worker runs it (its pid and host), and the session's sampler (elapsed
time, CPU, memory) update it from their threads (ipykernel forwards such sends
to its IO thread).
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
from ..cell.messages import Clear, CommClose, CommMsg, CommOpen, Display, Error, Result
from ..session import Entry, Session, current
from ..words import (
    KILL_TIP,
    describe_exit,
    exit_text,
    format_bytes,
    format_elapsed,
    pid_text,
    sent_text,
    state_word,
)
from .comms import CommRelay
from .iopub import CellChannel
from .outputs import CellOutputs, text_of
from .throttle import INTERVAL, Throttle

__all__ = ["CellBox", "WidgetView"]

_TERMINATED = "terminated from the Terminate button"
_KILLED = "killed from the Kill button"
_KILL_NOTE = "still running 2 s after SIGTERM: click Kill to send SIGKILL"
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"
#: The figures' width ("running · 12.5 s · CPU 100% · memory 512.0 MB"): the button stays where it is.
_FIGURES_WIDTH = "23em"
#: Bytes of outputs sent per second at most while they flood: a big output list is sent less often.
_SEND_RATE = 4 << 20


class CellBox(ipywidgets.VBox):
    """The status row and the outputs; where widgets cannot render (nbconvert, a console), text says so."""

    def __init__(self, children: list[ipywidgets.Widget], view: WidgetView) -> None:
        super().__init__(children, _dom_classes=("ipyprocessing-cell",))
        self._view = view

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any]:
        # Built here rather than by VBox, whose text form is a repr of every child: slow and unreadable.
        return {"text/plain": self._view.text(),
                _WIDGET_MIME: {"version_major": 2, "version_minor": 0, "model_id": self.model_id}}


class WidgetView:
    """Status row plus outputs for one process, tied to the cell that started it.

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
        self._lock = threading.Lock()
        # Filled by the monitor thread without a lock (deque appends and pops are atomic): a flood
        # delivers a chunk per pipe read, 100k of them for 100 MB, so each must cost next to nothing.
        self._pending: collections.deque[tuple[Any, ...]] = collections.deque()
        self._marked = False
        self._outputs = CellOutputs(settings.current().tail_lines, hint=hint)
        self.comms = CommRelay(process, channel, throttle)
        self.flush_interval = INTERVAL
        self._shown = False
        self._exitcode: int | None = None
        self._ended = False
        self._entry: Entry | None = None
        self._figures = {"exitcode": "running", "elapsed": "", "resources": ""}
        self._note = ""
        self.box: CellBox | None = None
        #: Set once the end is shown (the record and the outputs sent): a kernel shutting down waits for it.
        self.end_shown = threading.Event()

    def show(self) -> None:
        """Build the row and display it in the current cell; call in the cell, after ``start()``."""
        self._entry = self._session.entry(self.process)
        sent = sent_text(self.process.sent)
        if sent:
            self._figures["sent"] = sent
        with self._lock:
            self._build()
        display(self.box, display_id=self._channel.display_id)
        with self._lock:
            self._shown = True
            ended = self._ended
        if ended:  # the child was quicker than its row: the end could not replace a row not yet shown
            self._finalize()
            return
        self._throttle.mark(self)
        self._session.sampler.listen(self.tick)

    def text(self) -> str:
        """The status as one line of text."""
        process = self.process
        line = f"{process.name} (pid {pid_text(process)}): {self._state_word()}"
        return f"{line}; {self._note}" if self._note else line

    # -- called from the core's monitor thread (the relay thread for a remote cell) --------------

    def output(self, stream: str, data: bytes) -> None:
        self._queue(("stream", stream, data))

    def received(self, message: tuple[Any, ...]) -> None:
        """A message of the child's shell (see :mod:`ipyprocessing.cell.messages`)."""
        if isinstance(message, Display):
            display_id = message.transient.get("display_id")
            self._queue(("display", message.data, message.metadata,
                         None if display_id is None else f"{id(self)}-{display_id}", message.update))
        elif isinstance(message, Result):
            self._queue(("result", message.data, message.metadata, self.process.execution_count))
        elif isinstance(message, Error):
            self._queue(("error", message.ename, message.evalue, message.traceback))
        elif isinstance(message, Clear):
            self._queue(("clear", message.wait))
        elif isinstance(message, CommOpen):
            self.comms.opened(message)
        elif isinstance(message, CommMsg):
            self.comms.sent(message)
        elif isinstance(message, CommClose):
            self.comms.closed(message)

    def running(self) -> None:
        """A remote cell now runs on a worker: show its pid and host, and that it started."""
        with self._lock:
            if self.box is not None and not self._ended:  # else _build reads them when it comes
                self.name.value = self._name_html()
                self.state.value = self._state_word()

    def exited(self, exitcode: int | None, note: str) -> None:
        """The child has ended: its final record replaces the row, its outputs become the cell's own."""
        try:
            self._end(exitcode, note)
        finally:
            self.end_shown.set()

    def wait_shown(self, timeout: float) -> bool:
        """Wait until the end is shown; False if ``timeout`` seconds passed first."""
        return self.end_shown.wait(timeout)

    def _end(self, exitcode: int | None, note: str) -> None:
        self.flush()
        with self._lock:
            self._exitcode, self._ended = exitcode, True
            self._figures["exitcode"] = exit_text(exitcode)
            self._figures["elapsed"] = format_elapsed(self.process.elapsed)
            self._figures["resources"] = ""
            self._note = note
            shown = self._shown
            if self.box is not None:  # the row's last state, for a front end that watches it
                self.name.value = self._name_html()  # a remote cell stopped while pending has no pid
                self.state.value = self._state_word()
                self.figures.value = self._figures_html()
                self.figures.tooltip = describe_exit(exitcode)
                self.button.description = "Terminate"
                self.button.disabled = True
                self.note.value = html.escape(note)
        self.comms.close_all()
        if shown:  # else show() finalizes, once the row is displayed (or never, if show() raised)
            self._finalize()

    def _finalize(self) -> None:
        """Replace the shown row with the final record, and keep the outputs as the cell's own."""
        with self._lock:
            events = list(self._pending)
            self._pending.clear()
            if events:  # what came before the row was shown, which no flush could show
                self._outputs.apply(events)
        final = self._outputs.outputs(final=True, widget_text=self.comms.widget_text)
        # The record, with the output's tail for a client that hears only the cell it runs now (nbclient);
        # then the outputs as the cell's own.
        self._channel.show_final(self._record(), for_runner=self._record(tail=_tail(final)), outputs=final)
        # A page reloaded while the child ran knows the row only as a widget (the record's update
        # targets a display it never saw): the row stays, in its final state, without its button,
        # until the session forgets the process (release()).
        with self._lock:
            self.row.children = (self.name, self.state, self.figures, self.note)
            self.button.close()

    def release(self) -> None:
        """Close the row's widgets: the session has forgotten the process (Clear stopped, its limit)."""
        with self._lock:
            if self.box is None or not self._ended:
                return
            for widget in (self.name, self.state, self.figures, self.button, self.note, self.row,
                           self.output_widget, self.box):
                widget.close()

    # -- called from the throttle and sampler threads -------------------------

    def flush(self) -> None:
        """Show the outputs that arrived since the last flush (within the limits)."""
        with self._lock:
            if not self._shown or self._ended:
                return
            self._marked = False  # before draining: an event queued from now on marks again
            events = []
            while self._pending:
                events.append(self._pending.popleft())
            if not events:
                return
            self._outputs.apply(events)
            outputs = tuple(self._outputs.outputs())
            self._channel.as_cell(lambda: setattr(self.output_widget, "outputs", outputs))
            self.flush_interval = max(INTERVAL, self._outputs.size() / _SEND_RATE)

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
                self.button.tooltip = KILL_TIP
                self._note = _KILL_NOTE
                self.note.value = html.escape(self._note)

    # -- internals ------------------------------------------------------------------------

    def _queue(self, event: tuple[Any, ...]) -> None:
        self._pending.append(event)
        if not self._marked:
            self._marked = True
            self._throttle.mark(self)

    def _build(self) -> None:
        # One layout and one label style shared by the row's parts: fewer models to send.
        shared = {"layout": ipywidgets.Layout(margin="0 0.8em 0 0")}
        labels = {**shared, "style": HTMLStyle()}
        self.name = _html(self._name_html(), "name", labels)
        self.state = _html(self._state_word(), "state", labels)
        # Wide enough for its longest line while running, so the button does not move when the first
        # figures (CPU, memory) arrive.
        wide = ipywidgets.Layout(margin="0 0.8em 0 0", min_width=_FIGURES_WIDTH)
        self.figures = _html(self._figures_html(), "figures", {**labels, "layout": wide})
        self.button = ipywidgets.Button(description="Terminate", button_style="danger", icon="stop",
                                        tooltip="Send SIGTERM to this process",
                                        _dom_classes=("ipyprocessing-terminate",), **shared)
        self.button.on_click(self._on_click)
        self.note = _html(html.escape(self._note), "note", labels)
        self.row = ipywidgets.HBox([self.name, self.state, self.figures, self.button, self.note],
                                   layout=ipywidgets.Layout(align_items="center", flex_flow="row wrap"),
                                   _dom_classes=("ipyprocessing-status",))
        self.output_widget = ipywidgets.Output(_dom_classes=("ipyprocessing-output",))
        self.box = CellBox([self.row, self.output_widget], self)

    def _record(self, tail: str = "") -> dict[str, Any]:
        """The cell's final record in plain mime types: it reads the same in a saved notebook.
        ``tail``: the end of the output, written below it (where the outputs will not be kept)."""
        process = self.process
        figures = " · ".join(text for text in self._figures.values() if text)
        text = f"{process.name} (pid {pid_text(process)}): {self._state_word()} · {figures}"
        if self._note:
            text += f"; {self._note}"
        note = f' · <span class="ipyprocessing-note">{html.escape(self._note)}</span>' if self._note else ""
        below = f'<pre class="ipyprocessing-tail">{html.escape(tail)}</pre>' if tail else ""
        markup = (f'<div class="ipyprocessing-record" title="{html.escape(describe_exit(self._exitcode))}">'
                  f'{self._name_html()} <b class="ipyprocessing-state">{html.escape(self._state_word())}</b>'
                  f" · {self._figures_html()}{note}</div>{below}")
        return {"text/plain": f"{text}\n{tail}" if tail else text, "text/html": markup}

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


#: Lines of output a record carries when the outputs themselves will not be kept (see ``_finalize``).
TAIL_LINES = 20


def _tail(outputs: list[dict[str, Any]]) -> str:
    """The last :data:`TAIL_LINES` lines of the outputs' text."""
    return "\n".join(text_of(outputs).rstrip("\n").split("\n")[-TAIL_LINES:])


def _html(value: str, part: str, shared: dict[str, Any]) -> ipywidgets.HTML:
    return ipywidgets.HTML(value, _dom_classes=(f"ipyprocessing-{part}",), **shared)

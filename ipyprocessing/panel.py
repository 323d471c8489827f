"""``ProcessPanel``: one live table of every process of the session, with the auth-key controls.

Why it is built the way it is:

- Driven by events, not polling: the session (``session.py``) is told by
  the core when a process starts or exits, and wakes the panel's one
  background thread, which waits a moment (``COALESCE``) so that a burst of
  starts or exits becomes one update.
- One board for all panels: every ``ProcessPanel`` shows the same shared
  widget models (rows, buttons, auth-key box). Several panels therefore agree
  by construction, and a second panel costs one model, not a second table.
- Light with hundreds of processes: a row is four models (identity, state,
  figures, button) built with shared layouts and styles; a refresh assigns
  only values that changed, a button's several traits go in one message
  (``hold_sync``), and the resource figures (CPU %, memory, elapsed) come from
  the session's one sampler (one psutil sweep per refresh period for all rows
  and all status rows): at most one message per live row per sweep, none for
  stopped rows, none when nothing changed.
- Clicks never block the kernel: Terminate runs on a worker thread
  (:meth:`Session.stop`: the core's ``terminate()`` waits up to 2 s for the
  child to die); the row changes when the core reports the exit. A child still
  alive after SIGTERM gets a Kill button, in its cell's row too.

All widget changes happen on the board's thread under its lock; click
handlers only start work and wake it.
"""

from __future__ import annotations

import html
import threading
import time
from typing import Any

import ipywidgets
from ipywidgets.widgets.widget_string import HTMLStyle

from processing import logs

from . import authkey_ui
from .authkey_ui import AuthKeyBox
from .session import COLUMNS, NONE, Entry, Session, current, table, table_row
from .view.iopub import CellChannel
from .words import KILL_TIP, format_elapsed

__all__ = ["COALESCE", "PANEL_REASON", "Board", "ProcessPanel", "board_of"]

#: Seconds the board waits after an event for more to arrive before updating.
COALESCE = 0.05

PANEL_REASON = "terminated from the process panel"
_PANEL_KILL_REASON = "killed from the process panel"
_TERMINATE_TIP = "Send SIGTERM to this process"

# Column widths: the header and every row share one Layout per column.
# At 900 px and narrower the table scrolls as one (its rows keep their width), so every column stays aligned.
_WIDTHS = {"ident": "30em", "state": "9.5em", "figures": "21em", "button": "7em"}
_SPANS = {"name": "12em", "pid": "6em", "prompt": "4.5em", "key": "6.5em", "exitcode": "4em",
          "elapsed": "6.5em", "cpu": "4em", "memory": "6.5em"}


class ProcessPanel(ipywidgets.VBox):
    """A live table of every process of the session, plus "Terminate all", "Clear stopped" and the key.

    ``ProcessPanel()`` shows the kernel's session; every panel shows the same
    shared widgets, so several panels agree. ``close()`` closes this panel;
    the shared widgets and the board's thread go when the last panel closes.
    """

    def __init__(self, session: Session | None = None, **kwargs: Any) -> None:
        self.board = _board_for(session or current())
        super().__init__(self.board.parts(), _dom_classes=("ipyprocessing-panel",), **kwargs)
        self.board.add(self)

    def close(self) -> None:
        board = getattr(self, "board", None)
        super().close()
        if board is not None:
            board.remove(self)

    def text(self) -> str:
        """The table as text (what a front end without widgets shows)."""
        return self.board.session.table()

    def _repr_mimebundle_(self, **kwargs: Any) -> dict[str, Any] | None:
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle["text/plain"] = self.text()
        return bundle

    def _ipython_display_(self) -> None:
        """Shown in a kernel with a display id, so that the kernel's end can replace it with a record."""
        from IPython import get_ipython

        kernel = getattr(get_ipython(), "kernel", None)
        bundle = self._repr_mimebundle_()
        if kernel is None or bundle is None:
            print(self.text())
            return
        self.board.show(CellChannel(kernel), bundle)


class _Row:
    """The widgets of one process's row; updated only by the board's thread."""

    def __init__(self, entry: Entry, board: Board) -> None:
        self.entry = entry
        self.ident = ipywidgets.HTML(_ident_html(entry), layout=board.layouts["ident"], style=board.style,
                                     _dom_classes=("ipyprocessing-ident",))
        self.state = ipywidgets.HTML(entry.state, layout=board.layouts["state"], style=board.style,
                                     _dom_classes=("ipyprocessing-state",))
        self.figures = ipywidgets.HTML(_figures_html(entry, board.session.now()),
                                       layout=board.layouts["figures"], style=board.style,
                                       _dom_classes=("ipyprocessing-figures",))
        self.button = ipywidgets.Button(description="Terminate", tooltip=_TERMINATE_TIP,
                                        disabled=not entry.alive, layout=board.layouts["button"],
                                        style=board.button_style, _dom_classes=("ipyprocessing-terminate",))
        self.button.on_click(lambda _button: board.stop([self.entry]))
        self.box = ipywidgets.HBox([self.ident, self.state, self.figures, self.button],
                                   layout=board.row_layout, _dom_classes=("ipyprocessing-row",))
        self._figures_state = entry.state

    def update(self, now: float, figures: bool) -> None:
        """Bring the widgets up to date; figures only on a sweep or when the state just changed."""
        entry = self.entry
        _assign(self.ident, "value", _ident_html(entry))
        state = entry.state
        if figures or state != self._figures_state:
            self._figures_state = state
            _assign(self.figures, "value", _figures_html(entry, now))
        _assign(self.state, "value", state)
        alive = entry.alive
        kill = alive and entry.kill_offered
        wanted = {"disabled": not alive, "description": "Kill" if kill else "Terminate",
                  "tooltip": KILL_TIP if kill else _TERMINATE_TIP}
        changed = {name: value for name, value in wanted.items() if getattr(self.button, name) != value}
        if changed:
            with self.button.hold_sync():  # one message for all of the button's changes
                for name, value in changed.items():
                    setattr(self.button, name, value)

    def widgets(self) -> tuple[ipywidgets.Widget, ...]:
        return (self.ident, self.state, self.figures, self.button, self.box)


class Board:
    """The shared widgets of all panels of one session, and the one thread that keeps them current."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.lock = threading.RLock()
        self.panels: list[ProcessPanel] = []
        self.rows: dict[Entry, _Row] = {}
        self.ticks = 0  # sampler sweeps shown (tests count messages per sweep)
        self.ended: str | None = None  # why the kernel's session ended (then the panels are records)
        self._shown: list[CellChannel] = []  # where panels were displayed, to replace them at the end
        self.syncs = 0
        self.closed = False
        self.thread: threading.Thread | None = None
        self._order: list[Entry] = []
        self._wake = threading.Event()
        self._swept = False  # the sampler swept since the last sync: refresh the figures too
        self.layouts = {part: ipywidgets.Layout(width=width, flex="0 0 auto")
                        for part, width in _WIDTHS.items()}
        self.style = HTMLStyle()
        self.button_style = ipywidgets.ButtonStyle()
        # A row keeps its width and the table scrolls as one: no scrollbar per row, nothing cut off.
        self.row_layout = ipywidgets.Layout(align_items="center", overflow="visible", min_width="max-content",
                                            flex="0 0 auto")
        self.summary = ipywidgets.HTML("", _dom_classes=("ipyprocessing-summary",),
                                       layout=ipywidgets.Layout(margin="0 1em 0 0"))
        self.terminate_all = ipywidgets.Button(
            description="Terminate all", icon="stop", button_style="danger",
            tooltip="Send SIGTERM to every running process of the session",
            _dom_classes=("ipyprocessing-terminate-all",))
        self.clear_stopped = ipywidgets.Button(description="Clear stopped", icon="eraser",
                                               tooltip="Remove the rows of processes that have stopped",
                                               _dom_classes=("ipyprocessing-clear-stopped",))
        self.terminate_all.on_click(lambda _button: self.stop(self.session.live()))
        self.clear_stopped.on_click(lambda _button: self._clear())
        self.cleared = 0  # rows removed by Clear stopped, which the summary mentions
        self.toolbar = ipywidgets.HBox([self.summary, self.terminate_all, self.clear_stopped],
                                       layout=ipywidgets.Layout(align_items="center", flex_flow="row wrap"),
                                       _dom_classes=("ipyprocessing-toolbar",))
        self.header = ipywidgets.HBox(
            [ipywidgets.HTML(_header_ident(), layout=self.layouts["ident"], style=self.style),
             ipywidgets.HTML("<b>state</b>", layout=self.layouts["state"], style=self.style),
             ipywidgets.HTML(_header_figures(), layout=self.layouts["figures"], style=self.style)],
            layout=self.row_layout, _dom_classes=("ipyprocessing-header",))
        self.table = ipywidgets.VBox([self.header], _dom_classes=("ipyprocessing-table",),
                                     layout=ipywidgets.Layout(overflow="auto hidden", max_width="100%"))
        self.authkey = AuthKeyBox()
        self._forget_session = session.listen(self._wake.set)
        self._forget_key = authkey_ui.on_key_change(self._wake.set)
        self._forget_sweeps = lambda: None
        self.sync(figures=True)

    def parts(self) -> list[ipywidgets.Widget]:
        return [self.toolbar, self.table, self.authkey]

    # -- panels come and go -------------------------------------------------------

    def add(self, panel: ProcessPanel) -> None:
        with self.lock:
            self.panels.append(panel)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="ipyprocessing-panel", daemon=True)
                self.thread.start()
                self._forget_sweeps = self.session.sampler.listen(self._on_sweep)

    def remove(self, panel: ProcessPanel) -> None:
        with self.lock:
            self.panels = [other for other in self.panels if other is not panel]
            if self.panels or self.closed:
                return
            self.closed = True
            self._forget_session()
            self._forget_key()
            self._forget_sweeps()
            widgets = [w for row in self.rows.values() for w in row.widgets()]
            self.rows.clear()
            for widget in [*widgets, *self.header.children, self.header, self.table, self.summary,
                           self.terminate_all, self.clear_stopped, self.toolbar, *self._authkey_widgets(),
                           *self.layouts.values(), self.style, self.button_style, self.row_layout]:
                widget.close()
        self._wake.set()
        with _boards_lock:
            if _boards.get(self.session) is self:
                del _boards[self.session]

    def _authkey_widgets(self) -> list[ipywidgets.Widget]:
        box = self.authkey
        return [box.value, box.reveal, box.regenerate, box.field, box.apply, box.message,
                *box.children, box]

    # -- the thread -------------------------------------------------------------------

    def _on_sweep(self) -> bool:
        """The sampler's news (on its thread): new figures to show; False once this board is closed."""
        self._swept = True
        self._wake.set()
        return not self.closed

    def _run(self) -> None:
        while not self.closed:
            self._wake.wait()
            self._wake.clear()
            time.sleep(COALESCE)  # let the rest of a burst of starts or exits arrive
            self._wake.clear()
            if self.closed:
                return
            swept, self._swept = self._swept, False
            try:
                self.sync(figures=swept)
                if swept:
                    with self.lock:
                        self.ticks += 1
            except Exception:  # keep the panel alive; say what went wrong
                logs.report_exception("error while refreshing the process panel")

    def sync(self, figures: bool) -> None:
        """Make the widgets show the session as it is now (figures too if ``figures``)."""
        with self.lock:
            if self.closed:
                return
            now = self.session.now()
            entries = self.session.entries()
            for entry in entries:
                row = self.rows.get(entry)
                if row is None:
                    self.rows[entry] = _Row(entry, self)
                else:
                    row.update(now, figures)
            present = set(entries)
            for entry in [entry for entry in self.rows if entry not in present]:
                for widget in self.rows.pop(entry).widgets():
                    widget.close()
            if entries != self._order:
                self._order = entries
                self.table.children = (self.header, *(self.rows[entry].box for entry in entries))
            running = sum(entry.alive for entry in entries)
            stopped = len(entries) - running
            _assign(self.summary, "value", _summary(running, stopped, self.cleared, self.ended))
            _assign(self.terminate_all, "disabled", running == 0 or self.ended is not None)
            _assign(self.clear_stopped, "disabled", stopped == 0 or self.ended is not None)
            self.authkey.refresh()
            self.syncs += 1

    # -- shown in cells, replaced at the kernel's end ----------------------------------------

    def show(self, channel: CellChannel, bundle: dict[str, Any]) -> None:
        """Display a panel (``bundle``) in ``channel``'s cell, under a display id the end replaces."""
        with self.lock:
            self._shown.append(channel)
        channel.publish("display_data", {"data": bundle, "metadata": {},
                                         "transient": {"display_id": channel.display_id}})

    def end(self, reason: str) -> None:
        """The kernel is going (``reason``): every panel it showed becomes a static record of the table."""
        with self.lock:
            self.ended = reason
            shown = list(self._shown)
        self.sync(figures=True)
        record = self.record(reason)
        for channel in shown:
            channel.update_display(record)

    def record(self, reason: str) -> dict[str, Any]:
        """The table as it is now, in plain HTML and text: a saved notebook shows it without a kernel."""
        now = self.session.now()
        entries = self.session.entries()  # one snapshot for the HTML and the text
        rows = [table_row(entry, now) for entry in entries]
        head = "".join(f"<th>{html.escape(column)}</th>" for column in COLUMNS)
        body = "".join("<tr>" + "".join(f"<td>{html.escape(value)}</td>" for value in row) + "</tr>"
                       for row in rows)
        markup = (f'<div class="ipyprocessing-panel-record"><p><b>processes</b>: {html.escape(reason)}</p>'
                  f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>")
        return {"text/plain": f"processes: {reason}\n{table(entries, now)}", "text/html": markup}

    # -- clicks (on the kernel's shell thread) ---------------------------------------------

    def _clear(self) -> None:
        cleared = self.session.clear_stopped()
        with self.lock:
            self.cleared += cleared
        self._wake.set()

    def stop(self, entries: list[Entry]) -> None:
        """Terminate (or kill, where offered) the entries' processes on worker threads; return at once."""
        self.session.stop(entries, terminated=PANEL_REASON, killed=_PANEL_KILL_REASON)


_boards: dict[Session, Board] = {}
_boards_lock = threading.Lock()


def board_of(session: Session) -> Board | None:
    """The board that ``session``'s panels share, or None while no panel shows it."""
    with _boards_lock:
        board = _boards.get(session)
        return None if board is None or board.closed else board


def _board_for(session: Session) -> Board:
    with _boards_lock:
        board = _boards.get(session)
        if board is None or board.closed:
            board = _boards[session] = Board(session)
        return board


def _assign(widget: ipywidgets.Widget, name: str, value: Any) -> None:
    """Set a trait only if it differs (no message otherwise), whatever its type's equality rules."""
    if getattr(widget, name) != value:
        setattr(widget, name, value)


def _span(part: str, text: str, bold: bool = False, title: bool = False) -> str:
    """One cell; ``title`` repeats the text as a tooltip, for cells that may be cut short."""
    escaped = html.escape(text)
    body = f"<b>{escaped}</b>" if bold else escaped
    tooltip = f" title='{escaped}'" if title else ""
    return f"<span class='ipyprocessing-cell ipyprocessing-{part}'{tooltip}>{body}</span>"


def _style() -> str:
    """The cells' widths, sent once in the header rather than with every refresh of every row."""
    widths = "".join(f".ipyprocessing-panel .ipyprocessing-cell.ipyprocessing-{part}{{width:{width}}}"
                     for part, width in _SPANS.items())
    return ("<style>.ipyprocessing-panel .ipyprocessing-cell{display:inline-block;overflow:hidden;"
            f"text-overflow:ellipsis;white-space:nowrap;vertical-align:bottom}}{widths}</style>")


def _ident_html(entry: Entry) -> str:
    return (_span("name", entry.name, bold=True, title=True) + _span("pid", entry.pid_text, title=True)
            + _span("prompt", entry.cell) + _span("key", entry.fingerprint))


def _figures_html(entry: Entry, now: float) -> str:
    exitcode = NONE if entry.exitcode is None else str(entry.exitcode)
    cpu, memory = entry.resources()
    return (_span("exitcode", exitcode) + _span("elapsed", format_elapsed(entry.elapsed(now)))
            + _span("cpu", cpu) + _span("memory", memory))


def _header_ident() -> str:
    return (_style() + _span("name", "name", True) + _span("pid", "pid", True) + _span("prompt", "cell", True)
            + _span("key", "key", True))


def _header_figures() -> str:
    return (_span("exitcode", "exit", True) + _span("elapsed", "elapsed", True) + _span("cpu", "CPU", True)
            + _span("memory", "memory", True))


def _summary(running: int, stopped: int, cleared: int, ended: str | None) -> str:
    """``3 running, 1 stopped (4 cleared)``; ``none running (4 stopped cleared)``; then why it ended."""
    if ended is not None:
        return f"<b>processes</b>: {html.escape(ended)}"
    if not running and not stopped:
        if cleared:
            return f"<b>processes</b>: none running ({cleared} stopped cleared)"
        return "<b>processes</b>: none started yet in this session"
    counts = f"{running} running, {stopped} stopped"
    return f"<b>processes</b>: {counts} ({cleared} cleared)" if cleared else f"<b>processes</b>: {counts}"

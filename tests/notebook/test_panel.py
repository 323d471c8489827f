"""The process panel in this process: real children, real events, the widgets' values (no front end).

The kernel-level tests (``test_panel_kernel.py``) check the comm messages a
front end receives; these check the panel's logic quickly, with a private
session registry so that other tests' processes do not show up.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import proc_targets
import pytest
from support import run_python, wait_until

import processing
from ipyprocessing import session as session_module
from ipyprocessing import settings
from ipyprocessing.panel import ProcessPanel, board_of
from ipyprocessing.session import Session, table

pytestmark = pytest.mark.timeout(60)


@pytest.fixture
def session() -> Iterator[Session]:
    registry = Session().watch()
    yield registry
    registry.close()


@pytest.fixture
def panel(session: Session) -> Iterator[ProcessPanel]:
    shown = ProcessPanel(session=session)
    yield shown
    shown.close()


def start(target=proc_targets.sleep_forever, name: str | None = None, **kwargs) -> processing.Process:
    process = processing.Process(target=target, name=name, **kwargs)
    process.start()
    return process


def row_of(panel: ProcessPanel, process: processing.Process):
    """The panel's row for ``process``, once the board has made it (it does so by itself)."""
    board = panel.board
    found = []

    def made() -> bool:
        with board.lock:
            found[:] = [row for entry, row in board.rows.items() if entry.process is process]
            return bool(found) and row_box_shown(panel, found[0])
    assert wait_until(made), f"no row for {process!r}"
    return found[0]


def row_box_shown(panel: ProcessPanel, row) -> bool:
    return row.box in panel.board.table.children


def wait_value(widget, name: str, value) -> None:
    assert wait_until(lambda: getattr(widget, name) == value), (
        f"{name} of {widget!r} stayed {getattr(widget, name)!r}, expected {value!r}")


def test_rows_appear_on_start_and_change_on_exit_by_themselves(panel: ProcessPanel) -> None:
    process = start(name="sleeper")
    row = row_of(panel, process)
    assert row.state.value == "started"
    assert "sleeper" in row.ident.value and str(process.pid) in row.ident.value
    assert process.authkey_fingerprint in row.ident.value
    assert not row.button.disabled
    assert "1 running, 0 stopped" in panel.board.summary.value
    process.terminate()
    wait_value(row.state, "value", "stopped[SIGTERM]")
    assert row.button.disabled
    assert "ipyprocessing-exitcode'>-15<" in row.figures.value
    assert "0 running, 1 stopped" in panel.board.summary.value


def test_rows_follow_events_not_the_refresh_timer(session: Session, monkeypatch) -> None:
    """With the once-a-second sweep pushed out of reach, starts and exits still show at once."""
    monkeypatch.setattr(settings.current(), "refresh_period", 3600.0)
    shown = ProcessPanel(session=session)
    try:
        assert wait_until(lambda: shown.board.ticks == 1)  # the first sweep, when the thread starts
        process = start(name="evented")
        row = row_of(shown, process)
        process.terminate()
        wait_value(row.state, "value", "stopped[SIGTERM]")
        assert shown.board.ticks == 1, "no sweep was involved"
    finally:
        shown.close()


def test_a_process_running_before_the_registry_existed_is_adopted() -> None:
    process = start(name="early")
    registry = Session().watch()
    try:
        assert [entry.name for entry in registry.entries()] == ["early"]
        assert registry.entries()[0].state == "started"
        process.terminate()
        assert wait_until(lambda: registry.entries()[0].state == "stopped[SIGTERM]")
    finally:
        registry.close()


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_an_adopted_process_keeps_its_real_start_time(method: str) -> None:
    before = time.monotonic()
    process = start(name="early", method=method)
    after = time.monotonic()
    time.sleep(0.3)  # not synchronisation: so that a start time taken at adoption would be visibly wrong
    registry = Session().watch()
    try:
        started = registry.entries()[0].started
        # Within the 10 ms granularity of the kernel's process start times.
        assert before - 0.02 <= started <= after + 0.02
    finally:
        registry.close()
        process.terminate()


def test_an_adopted_fork_server_child_is_never_older_than_its_start() -> None:
    """The fork server forks ahead of need, so the OS's creation time would overstate its age."""
    before = time.monotonic()
    process = start(name="early", method="forkserver")
    registry = Session().watch()
    try:
        assert registry.entries()[0].started >= before
    finally:
        registry.close()
        process.terminate()


def test_terminate_button_stops_the_process_and_is_disabled(panel: ProcessPanel) -> None:
    process = start()
    row = row_of(panel, process)
    row.button.click()  # returns at once: the work is done on a worker thread
    wait_value(row.state, "value", "stopped[SIGTERM]")
    wait_value(row.button, "disabled", True)
    assert process.exitcode == -15


@pytest.mark.slow
def test_a_child_ignoring_sigterm_gets_a_kill_button(panel: ProcessPanel) -> None:
    process = start(proc_targets.ignore_sigterm_then_sleep)
    assert wait_until(lambda: process.messages == ["ready"])
    row = row_of(panel, process)
    row.button.click()
    wait_value(row.button, "description", "Kill")  # after the core's 2 s wait for SIGTERM
    assert row.state.value == "started" and not row.button.disabled
    row.button.click()
    wait_value(row.state, "value", "stopped[SIGKILL]")
    assert row.button.disabled and row.button.description == "Terminate"


def test_terminate_all_then_clear_stopped(panel: ProcessPanel) -> None:
    board = panel.board
    finished = start(proc_targets.noop, name="quick")
    finished.join()
    sleepers = [start(name=f"sleeper-{i}") for i in range(3)]
    rows = [row_of(panel, process) for process in [finished, *sleepers]]
    wait_value(rows[0].state, "value", "stopped")
    assert "3 running, 1 stopped" in board.summary.value
    assert not board.terminate_all.disabled and not board.clear_stopped.disabled
    board.terminate_all.click()
    for row in rows[1:]:
        wait_value(row.state, "value", "stopped[SIGTERM]")
    wait_value(board.terminate_all, "disabled", True)
    board.clear_stopped.click()
    assert wait_until(lambda: board.table.children == (board.header,))
    assert board.rows == {}
    assert all(row.box.comm is None for row in rows), "the rows' widgets were closed"
    # the summary says what happened to the rows, and Terminate all has nothing to stop
    assert wait_until(lambda: "none running (4 stopped cleared)" in board.summary.value), board.summary.value
    assert board.clear_stopped.disabled and board.terminate_all.disabled


def test_several_panels_show_the_same_widgets_and_agree(session: Session) -> None:
    first, second = ProcessPanel(session=session), ProcessPanel(session=session)
    try:
        assert first.children == second.children  # the same models: they cannot disagree
        process = start(name="shared")
        row = row_of(second, process)
        assert row.box in first.board.table.children
        first.close()
        process.terminate()
        wait_value(row.state, "value", "stopped[SIGTERM]")  # the other panel lives on
        thread = second.board.thread
    finally:
        first.close()
        second.close()
    assert second.board.closed and second.board.table.comm is None
    thread.join(5)
    assert not thread.is_alive(), "the board's thread ends with the last panel"
    assert ProcessPanel(session=session).board is not second.board  # a new panel starts afresh


@pytest.mark.slow
def test_one_resource_sweep_per_period_for_all_panels(session: Session, monkeypatch) -> None:
    sweeps = []
    original = session.sample
    monkeypatch.setattr(session, "sample", lambda: sweeps.append(1) or original())
    panels = [ProcessPanel(session=session) for _ in range(3)]
    processes = [start() for _ in range(3)]
    try:
        board = panels[0].board
        rows = [row_of(panels[0], process) for process in processes]
        assert wait_until(lambda: board.ticks >= 3)
        with board.lock:
            ticks, swept = board.ticks, len(sweeps)
        assert ticks <= swept <= ticks + 1, "one sweep per refresh, however many panels"
        assert wait_until(lambda: all("MB" in row.figures.value for row in rows))
        assert all(row.entry.cpu is not None and row.entry.memory for row in rows)
    finally:
        for shown in panels:
            shown.close()
        for process in processes:
            process.terminate()


@pytest.mark.slow
def test_stopped_rows_are_not_refreshed(panel: ProcessPanel) -> None:
    process = start()
    row = row_of(panel, process)
    process.terminate()
    wait_value(row.state, "value", "stopped[SIGTERM]")
    board = panel.board
    changes = []
    for widget in (row.ident, row.state, row.figures, row.button):
        widget.observe(changes.append)
    ticks = board.ticks
    assert wait_until(lambda: board.ticks >= ticks + 2)
    assert changes == []


def test_text_table_shows_what_the_widget_shows(session: Session) -> None:
    assert table([], 0.0) == "no process has been started in this session"
    process = start(name="texty")
    process.terminate()
    assert wait_until(lambda: session.entries()[0].state == "stopped[SIGTERM]")
    lines = session.table().splitlines()
    assert lines[0].split() == ["name", "pid", "cell", "key", "state", "exit", "elapsed", "CPU", "memory"]
    expected = ["texty", str(process.pid), "\u2013", process.authkey_fingerprint, "stopped[SIGTERM]", "-15"]
    assert lines[1].split()[:6] == expected  # a plain Process: no cell started it


def test_the_registry_keeps_a_bounded_number_of_stopped_processes(session: Session, monkeypatch) -> None:
    monkeypatch.setattr(settings.current(), "max_stopped", 2)
    live = start(name="live")
    for i in range(4):
        done = start(proc_targets.noop, name=f"done-{i}")
        done.join()
    assert wait_until(lambda: len(session.entries()) == 3)
    assert [entry.name for entry in session.entries()] == ["live", "done-2", "done-3"]
    live.terminate()


def test_the_registry_is_one_per_kernel() -> None:
    assert session_module.current() is session_module.current()


def test_no_panel_thread_is_left_running(session: Session) -> None:
    shown = ProcessPanel(session=session)
    thread = shown.board.thread
    shown.close()
    thread.join(5)
    assert not thread.is_alive()
    assert board_of(session) is None


def test_without_a_widget_front_end_the_magics_print_text() -> None:
    """Terminal IPython: %process_panel prints the table; %authkey the fingerprint, never the key."""
    result = run_python("""
        import time
        from IPython.core.interactiveshell import InteractiveShell
        import processing
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "ipyprocessing")
        p = processing.Process(target=time.sleep, args=(600,), name="terminal-sleeper")
        p.start()
        shell.run_line_magic("process_panel", "")
        shell.run_line_magic("authkey", "")
        print("KEY", processing.currentProcess().getAuthKey())
        p.terminate()
    """)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split()[:5] == ["name", "pid", "cell", "key", "state"]
    assert lines[1].split()[0] == "terminal-sleeper" and lines[1].split()[4] == "started"
    key = lines[-1].split()[1]
    assert lines[2].startswith("auth key ") and key not in "\n".join(lines[:-1])

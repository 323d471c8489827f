"""The status widget driven by a real child, in this process (no kernel: the output display is recorded)."""

from __future__ import annotations

import marshal
import re
import threading
from collections.abc import Iterator

import pytest
from support import wait_until

from ipyprocessing import settings
from ipyprocessing.cell.handle import CellProcess
from ipyprocessing.cell.target import CellTarget
from ipyprocessing.session import Session
from ipyprocessing.view.status_row import WidgetView
from ipyprocessing.view.throttle import Throttle

pytestmark = pytest.mark.timeout(60)


@pytest.fixture(autouse=True)
def session(monkeypatch: pytest.MonkeyPatch) -> Iterator[Session]:
    """A session of this module's own, whose sampler refreshes the figures often."""
    monkeypatch.setattr(settings.current(), "refresh_period", 0.05)
    watching = Session().watch()
    yield watching
    watching.close()


class Display:
    """Stands where the kernel's IOPub would be: keeps what the view showed."""

    def __init__(self) -> None:
        self.texts: list[str] = []
        self.changed = threading.Condition()

    def show_text(self, text: str) -> None:
        with self.changed:
            self.texts.append(text)
            self.changed.notify_all()

    def wait_for(self, text: str) -> None:
        with self.changed:
            assert self.changed.wait_for(lambda: self.texts and text in self.texts[-1], timeout=30)


def start(session: Session, source: str, **kwargs: object) -> tuple[CellProcess, WidgetView, Display]:
    code = marshal.dumps(compile(source, "<cell>", "exec"))
    target = CellTarget(code, source, "<cell>", namespace={})
    process = CellProcess(target, user_ns={}, method="fork", **kwargs)
    display = Display()
    view = WidgetView(process, display, Throttle(), session)
    process.attach(view)
    process.start()
    view.show()
    return process, view, display


def test_terminate_button_stops_the_child_and_the_row_says_so(session: Session) -> None:
    process, view, display = start(session, "import time\nprint('working', flush=True)\ntime.sleep(600)",
                                   name="busy")
    display.wait_for("working")
    assert view.state.value == "started" and f"pid {process.pid}<" in view.name.value
    assert not view.button.disabled
    view.button.click()  # returns at once: the terminate runs on a worker thread
    process.join()
    assert wait_until(lambda: view.state.value == "stopped[SIGTERM]")
    assert ">exit code -15<" in view.figures.value
    assert view.button.disabled
    note = "terminated from the Terminate button"
    assert view.note.value == note
    assert view.text() == f"busy (pid {process.pid}): stopped[SIGTERM]; {note}"


@pytest.mark.slow
def test_a_child_that_ignores_sigterm_gets_a_kill_button(session: Session) -> None:
    process, view, display = start(
        session,
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('armed', flush=True)\n"
        "time.sleep(600)"
    )
    display.wait_for("armed")
    view.button.click()
    assert wait_until(lambda: view.button.description == "Kill")  # SIGTERM was sent, 2 s ago
    assert process.exitcode is None and "click Kill" in view.note.value
    view.button.click()
    process.join()
    assert wait_until(lambda: view.state.value == "stopped[SIGKILL]")
    assert view.note.value.startswith("killed from the Kill button")


def test_the_sampler_shows_elapsed_time_and_resources_while_running(session: Session) -> None:
    process, view, display = start(session, "import time\nprint('up', flush=True)\ntime.sleep(600)")
    display.wait_for("up")
    changed = threading.Event()
    view.figures.observe(lambda change: changed.set() if "CPU" in change.new else None, "value")
    assert changed.wait(30)  # CPU is measured between two ticks
    figures = r'"ipyprocessing-elapsed">[\d.]+ s<.*"ipyprocessing-resources">CPU \d+% · memory [\d.]+ MB<'
    assert re.search(figures, view.figures.value)
    process.terminate()
    process.join()

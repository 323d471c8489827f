"""The status widget driven by a real child, in this process (no kernel: the output display is recorded)."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator

import pytest
from comm.base_comm import CommManager
from support import wait_until

from ipyprocessing import settings
from ipyprocessing.cell.handle import CellProcess
from ipyprocessing.cell.target import CellTarget, ShellSettings
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


class Channel:
    """Stands where the kernel's IOPub would be (there is no kernel here): keeps what the view sent."""

    def __init__(self) -> None:
        self.display_id = "the-cell"
        self.sent: list[tuple[str, dict]] = []
        self.comm_manager = CommManager()

    def as_cell(self, action):
        return action()

    def publish(self, msg_type: str, content: dict, **keys: object) -> None:
        self.sent.append((msg_type, content))

    def update_display(self, data: dict, metadata: dict | None = None) -> None:
        self.sent.append(("update_display_data", {"data": data}))

    def show_final(self, record: dict, for_runner: dict, outputs: list[dict]) -> None:
        self.update_display(record)  # no other cell runs here
        for output in outputs:
            self.publish_output(output)

    def publish_output(self, output: dict) -> None:
        self.sent.append((output["output_type"], output))


def start(session: Session, source: str, **kwargs: object) -> tuple[CellProcess, WidgetView, Channel]:
    target = CellTarget(source, ShellSettings(1, None, None, {}, False), namespace={})
    process = CellProcess(target, user_ns={}, method="fork", **kwargs)
    channel = Channel()
    view = WidgetView(process, channel, Throttle(), session)
    process.attach(view)
    process.start()
    view.show()
    return process, view, channel


def wait_shown(view: WidgetView, text: str) -> None:
    """Until the cell's Output widget shows ``text`` (what the child printed)."""
    assert wait_until(lambda: text in "".join(o.get("text", "") for o in view.output_widget.outputs))


def test_terminate_button_stops_the_child_and_the_row_says_so(session: Session) -> None:
    process, view, channel = start(session, "import time\nprint('working', flush=True)\ntime.sleep(600)",
                                   name="busy")
    wait_shown(view, "working")
    assert view.state.value == "started" and f"pid {process.pid}<" in view.name.value
    assert not view.button.disabled
    view.button.click()  # returns at once: the terminate runs on a worker thread
    process.join()
    assert wait_until(lambda: view.state.value == "stopped[SIGTERM]")
    assert ">terminated · exit code -15<" in view.figures.value
    assert view.button.disabled
    note = "terminated from the Terminate button"
    assert view.note.value == note
    assert view.text() == f"busy (pid {process.pid}): stopped[SIGTERM]; {note}"
    record = [content for kind, content in channel.sent if kind == "update_display_data"]
    final = f"busy (pid {process.pid}): stopped[SIGTERM] ·"
    assert record and record[-1]["data"]["text/plain"].startswith(final)
    assert ("stream", {"output_type": "stream", "name": "stdout", "text": "working\n"}) in channel.sent


@pytest.mark.slow
def test_a_child_that_ignores_sigterm_gets_a_kill_button(session: Session) -> None:
    process, view, _ = start(
        session,
        "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\nprint('armed', flush=True)\n"
        "time.sleep(600)"
    )
    wait_shown(view, "armed")
    view.button.click()
    assert wait_until(lambda: view.button.description == "Kill")  # SIGTERM was sent, 2 s ago
    assert process.exitcode is None and "click Kill" in view.note.value
    view.button.click()
    process.join()
    assert wait_until(lambda: view.state.value == "stopped[SIGKILL]")
    assert view.note.value.startswith("killed from the Kill button")


def test_the_sampler_shows_elapsed_time_and_resources_while_running(session: Session) -> None:
    process, view, _ = start(session, "import time\nprint('up', flush=True)\ntime.sleep(600)")
    wait_shown(view, "up")
    changed = threading.Event()
    view.figures.observe(lambda change: changed.set() if "CPU" in change.new else None, "value")
    assert changed.wait(30)  # CPU is measured between two ticks
    figures = r'"ipyprocessing-elapsed">[\d.]+ s<.*"ipyprocessing-resources">CPU \d+% · memory [\d.]+ MB<'
    assert re.search(figures, view.figures.value)
    process.terminate()
    process.join()

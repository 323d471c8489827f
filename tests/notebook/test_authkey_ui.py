"""The auth-key controls: masked by default, Reveal on purpose, Regenerate and Set for later processes only.

conftest's ``restore_global_state`` puts the main process's key back after each test.
"""

from __future__ import annotations

import json

import proc_targets
import pytest
from support import wait_until

import processing
from ipyprocessing import authkey_ui
from ipyprocessing.authkey_ui import AuthKeyBox
from ipyprocessing.panel import ProcessPanel
from ipyprocessing.session import Session
from processing.authkey import fingerprint

pytestmark = pytest.mark.timeout(60)


def key_text() -> str:
    return processing.currentProcess().getAuthKey()


def test_the_key_is_masked_and_its_fingerprint_shown() -> None:
    box = AuthKeyBox()
    assert key_text() not in box.value.value
    assert fingerprint(processing.currentProcess().authkey) in box.value.value
    assert authkey_ui.MASK in box.value.value
    assert key_text() not in box.text()


def test_reveal_shows_the_key_and_hiding_it_again_removes_it() -> None:
    box = AuthKeyBox()
    assert box.reveal.description == "Reveal"
    box.reveal.value = True
    assert key_text() in box.value.value and key_text() in box.text()
    assert box.reveal.description == "Hide"  # the button says what a click does now
    box.reveal.value = False
    assert key_text() not in box.value.value
    assert box.reveal.description == "Reveal"


def test_regenerate_changes_the_key_of_later_processes_only() -> None:
    running = processing.Process(target=proc_targets.sleep_forever)
    running.start()
    try:
        old = processing.currentProcess().authkey
        box = AuthKeyBox()
        box.regenerate.click()
        new = processing.currentProcess().authkey
        assert new != old and len(new) == 64
        assert running.authkey == old, "a running process keeps the key it started with"
        assert processing.Process(target=proc_targets.noop).authkey == new
        assert fingerprint(new) in box.value.value and fingerprint(old) not in box.value.value
        assert "the running process keeps the key it started with" in box.message.value
        assert new.decode() not in box.message.value
    finally:
        running.terminate()


def test_setting_a_key_from_the_field_empties_the_field() -> None:
    box = AuthKeyBox()
    box.field.value = "a key typed by hand"
    box.apply.click()
    assert processing.currentProcess().authkey == b"a key typed by hand"
    assert box.field.value == "", "the typed key must not stay in the widget's state"
    assert fingerprint(b"a key typed by hand") in box.value.value
    assert "a key typed by hand" not in box.value.value + box.message.value


@pytest.mark.parametrize(("typed", "problem"), [
    ("", "must not be empty"),
    (" padded ", "spaces or line breaks"),
    ("key\n", "spaces or line breaks"),
])
def test_an_invalid_key_is_refused_with_a_clear_error_and_nothing_changes(typed: str, problem: str) -> None:
    before = processing.currentProcess().authkey
    box = AuthKeyBox()
    shown = box.value.value
    box.field.value = typed
    box.apply.click()
    assert processing.currentProcess().authkey == before
    assert box.value.value == shown
    assert "key not changed" in box.message.value and problem in box.message.value
    assert "ipyprocessing-error" in box.message.value
    assert box.field.value == ""


def test_set_key_checks_types_like_the_core() -> None:
    before = processing.currentProcess().authkey
    with pytest.raises(TypeError, match="must be a str or bytes, not int"):
        authkey_ui.set_key(123)
    with pytest.raises(ValueError, match="must not be empty"):
        authkey_ui.set_key(b"")
    assert processing.currentProcess().authkey == before
    assert authkey_ui.set_key(b"\x00\xffbinary") == fingerprint(b"\x00\xffbinary")


def test_a_key_changed_elsewhere_is_picked_up_by_refresh() -> None:
    box = AuthKeyBox()
    processing.currentProcess().setAuthKey("changed by code")
    box.refresh()
    assert fingerprint(b"changed by code") in box.value.value


def test_no_widget_of_the_panel_holds_the_key_unless_revealed() -> None:
    """What a saved notebook keeps of widgets is their state: the key must not be in it."""
    registry = Session().watch()
    shown = ProcessPanel(session=registry)
    process = processing.Process(target=proc_targets.sleep_forever)
    process.start()
    try:
        assert wait_until(lambda: len(shown.board.table.children) == 2)
        shown.board.authkey.regenerate.click()
        secret = key_text()

        def state() -> str:
            widgets = [shown, *shown.board.parts(), *shown.board.authkey.children,
                       *shown.board.authkey.children[0].children, *shown.board.table.children,
                       *(w for row in shown.board.rows.values() for w in row.widgets())]
            return json.dumps([w.get_state() for w in widgets], default=str)

        assert secret not in state() and process.getAuthKey() not in state()
        shown.board.authkey.reveal.value = True
        assert secret in state()  # on purpose only
    finally:
        process.terminate()
        shown.close()
        registry.close()

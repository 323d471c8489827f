"""The process panel and ``%authkey`` in a real kernel, seen as a front end sees them: comm messages.

The panel must change by itself (no cell re-run) when processes start and
exit, obey a click sent as a front end sends it, and stay light: these tests
count the comm messages it sends with 200 live processes.
"""

from __future__ import annotations

from typing import Any

import pytest
from ipy_kernel import LIVE_IN_KERNEL, Kernel, Message, is_reply_idle
from support import wait_until

# The session's shared kernel (tests/conftest.py): after each test it checks that every process
# the test started there has ended, then forgets the test's stopped processes, panels and variables.
pytestmark = pytest.mark.timeout(180)


# -- reading the widgets from the messages ----------------------------------------------------------


def opened(kernel: Kernel, css_class: str, after: Message | None = None) -> list[Message]:
    """comm_open messages of widgets with ``css_class`` (after message ``after``)."""
    messages = kernel.messages(None, "comm_open")
    if after is not None:
        everything = kernel.messages()
        seen = set(map(id, everything[: everything.index(after) + 1]))
        messages = [m for m in messages if id(m) not in seen]
    return [m for m in messages if css_class in m["content"]["data"]["state"].get("_dom_classes", ())]


def state_of(kernel: Kernel, comm_id: str) -> dict[str, Any]:
    """A widget's state as the front end knows it: its comm_open plus every update since."""
    state: dict[str, Any] = {}
    for message in kernel.messages(None, "comm_open", "comm_msg"):
        content = message["content"]
        if content.get("comm_id") == comm_id:
            state.update(content.get("data", {}).get("state", {}))
    return state


def model(comm_id: str) -> str:
    return "IPY_MODEL_" + comm_id


def find_row(kernel: Kernel, name: str) -> dict[str, str]:
    """The comm ids of the panel row of process ``name``: box, ident, state, figures, button."""
    def ident_opened(m: Message) -> bool:
        state = m["content"]["data"]["state"] if m["msg_type"] == "comm_open" else {}
        return "ipyprocessing-ident" in state.get("_dom_classes", ()) and f"<b>{name}</b>" in state["value"]
    ident = kernel.wait_for(ident_opened)["content"]["comm_id"]
    box = kernel.wait_for(lambda m: m["msg_type"] == "comm_open"
                          and model(ident) in m["content"]["data"]["state"].get("children", ()))
    children = [child.removeprefix("IPY_MODEL_") for child in box["content"]["data"]["state"]["children"]]
    return dict(zip(("ident", "state", "figures", "button"), children, strict=True),
                box=box["content"]["comm_id"])


def wait_state(kernel: Kernel, comm_id: str, key: str, value: Any) -> None:
    assert wait_until(lambda: state_of(kernel, comm_id).get(key) == value, limit=60), \
        f"{key} of {comm_id} is {state_of(kernel, comm_id).get(key)!r}"


def table_children(kernel: Kernel) -> list[str]:
    table = opened(kernel, "ipyprocessing-table")[-1]["content"]["comm_id"]
    return state_of(kernel, table)["children"]


# -- the tests ---------------------------------------------------------------------------------------


def test_the_panel_follows_plain_processes_and_obeys_its_terminate_button(kernel: Kernel) -> None:
    shown = kernel.run("%process_panel")
    kernel.wait_for(lambda m: is_reply_idle(m, shown))
    displays = kernel.messages(shown, "display_data")
    assert len(displays) == 1
    bundle = displays[0]["content"]["data"]
    assert "application/vnd.jupyter.widget-view+json" in bundle
    assert bundle["text/plain"].startswith(("no process", "name"))
    panel = bundle["application/vnd.jupyter.widget-view+json"]["model_id"]
    assert "ipyprocessing-panel" in state_of(kernel, panel)["_dom_classes"]

    # A later cell starts a plain processing.Process: the panel shows it without being re-run.
    kernel.run("import processing, time\n"
               "plain = processing.Process(target=time.sleep, args=(600,), name='plain-sleeper')\n"
               "plain.start()")
    row = find_row(kernel, "plain-sleeper")
    assert state_of(kernel, row["state"])["value"] == "started"
    pid, fingerprint = kernel.eval("[plain.pid, plain.authkey_fingerprint]")
    assert f">{pid}<" in state_of(kernel, row["ident"])["value"]
    assert f">{fingerprint}<" in state_of(kernel, row["ident"])["value"]
    assert model(row["box"]) in table_children(kernel)

    # The resource figures arrive from the once-a-second sweep.
    kernel.wait_for(lambda m: m["content"].get("comm_id") == row["figures"]
                    and "MB" in m["content"]["data"].get("state", {}).get("value", ""))

    kernel.click(row["button"])
    wait_state(kernel, row["state"], "value", "stopped[SIGTERM]")
    wait_state(kernel, row["button"], "disabled", True)
    assert kernel.eval("plain.exitcode") == -15
    assert ">-15<" in state_of(kernel, row["figures"])["value"]


def test_the_panel_shows_process_cells_and_its_terminate_tells_the_cell_why(kernel: Kernel) -> None:
    shown = kernel.run("%process_panel")
    kernel.wait_for(lambda m: is_reply_idle(m, shown))
    kernel.run("%%process --name via-magic --proc via_magic\nimport time\ntime.sleep(600)")
    row = find_row(kernel, "via-magic")
    assert state_of(kernel, row["state"])["value"] == "started"
    kernel.click(row["button"])
    wait_state(kernel, row["state"], "value", "stopped[SIGTERM]")
    exitcode, reason = kernel.eval("[via_magic.exitcode, via_magic.stop_reason]")
    assert (exitcode, reason) == (-15, "terminated from the process panel")


def test_a_second_panel_shows_the_same_models(kernel: Kernel) -> None:
    first, second = kernel.run("%process_panel"), kernel.run("%process_panel")
    kernel.wait_for(lambda m: is_reply_idle(m, second))
    panels = [kernel.messages(msg_id, "display_data")[0]["content"]["data"]
              ["application/vnd.jupyter.widget-view+json"]["model_id"] for msg_id in (first, second)]
    assert panels[0] != panels[1]
    assert state_of(kernel, panels[0])["children"] == state_of(kernel, panels[1])["children"]


def test_process_panel_text_prints_the_table(kernel: Kernel) -> None:
    kernel.run("import processing, time\n"
               "texty = processing.Process(target=time.sleep, args=(600,), name='texty')\n"
               "texty.start()")
    text = kernel.stdout_of("%process_panel --text")
    header, line = text.splitlines()[:2]
    assert header.split()[:5] == ["name", "pid", "cell", "key", "state"]
    pid, fingerprint = kernel.eval("[texty.pid, texty.authkey_fingerprint]")
    assert line.split()[:5] == ["texty", str(pid), "\u2013", fingerprint, "started"]  # no cell started it
    kernel.run("texty.terminate()")


def test_authkey_magic_prints_the_fingerprint_and_reveals_only_with_show(kernel: Kernel) -> None:
    current = "__import__('processing').currentProcess()"
    key, fingerprint = kernel.eval(f"[{current}.getAuthKey(), {current}.authkey_fingerprint]")
    shown = kernel.stdout_of("%authkey")
    assert f"fingerprint {fingerprint}" in shown and key not in shown
    renewed = kernel.stdout_of("%authkey --new")
    new_key, new_fingerprint = kernel.eval(f"[{current}.getAuthKey(), {current}.authkey_fingerprint]")
    assert new_key != key and f"new key {new_fingerprint}" in renewed and new_key not in renewed
    assert "processes started from now on use it" in renewed
    revealed = kernel.stdout_of("%authkey --show")
    assert new_key in revealed and f"fingerprint {new_fingerprint}" in revealed
    assert "--show" in kernel.eval("get_ipython().find_line_magic('authkey').__doc__")


BOARD = ("__import__('ipyprocessing.panel').panel.board_of("
         "__import__('ipyprocessing.session').session.current())")


def board_counts(kernel: Kernel) -> tuple[int, int]:
    """(sweeps, syncs) the kernel's board has done so far."""
    return tuple(kernel.eval(f"[{BOARD}.ticks, {BOARD}.syncs]"))


def wait_sweeps(kernel: Kernel, count: int) -> None:
    target = board_counts(kernel)[0] + count
    assert wait_until(lambda: board_counts(kernel)[0] >= target, limit=60, interval=0.1), \
        f"the board did not sweep {count} times"


def test_two_hundred_live_processes_do_not_cause_a_message_storm(kernel: Kernel) -> None:
    """Comm messages: 5 models per row when it appears, at most one per live row per sweep, none at rest."""
    count = 200
    shown = kernel.run("%process_panel")
    kernel.wait_for(lambda m: is_reply_idle(m, shown))
    start_mark = kernel.messages()[-1]
    _, syncs_before = board_counts(kernel)
    kernel.run("import processing, time\n"
               "crowd = [processing.Process(target=time.sleep, args=(600,), name=f'crowd-{i}', daemon=True)\n"
               f"         for i in range({count})]\n"
               "for p in crowd:\n"
               "    p.start()", timeout=120)
    assert wait_until(lambda: len(table_children(kernel)) >= count + 1, limit=60, interval=0.05), \
        "not every process got a row"
    _, syncs_after = board_counts(kernel)
    opens = since(kernel, start_mark, "comm_open")
    rows = [m for m in opens if "ipyprocessing-row" in m["content"]["data"]["state"]["_dom_classes"]]
    assert len(rows) == count
    assert len(opens) == 5 * count, "a row is 5 models (box, identity, state, figures, button), no more"
    children_updates = [m for m in updates(kernel, start_mark) if "children" in m["content"]["data"]["state"]]
    assert len(children_updates) <= syncs_after - syncs_before, "at most one table update per sync"
    print(f"{count} starts: {len(children_updates)} table updates in {syncs_after - syncs_before} syncs")

    # At rest: only the figures of live rows change, at most once per sweep each.
    figures = {m["content"]["comm_id"] for m in opens if "ipyprocessing-figures" in
               m["content"]["data"]["state"]["_dom_classes"]}
    first_sweep, _ = board_counts(kernel)
    rest_mark = kernel.messages()[-1]
    wait_sweeps(kernel, 3)
    last_sweep, _ = board_counts(kernel)
    at_rest = updates(kernel, rest_mark)
    sweeps = last_sweep - first_sweep + 1  # one may be under way at either end
    assert {m["content"]["comm_id"] for m in at_rest} <= figures, "only the figures change at rest"
    per_widget: dict[str, int] = {}
    for message in at_rest:
        per_widget[message["content"]["comm_id"]] = per_widget.get(message["content"]["comm_id"], 0) + 1
    assert max(per_widget.values()) <= sweeps
    assert len(at_rest) <= count * sweeps
    print(f"at rest: {len(at_rest)} updates in {sweeps} sweeps for {count} live rows")

    # Terminate all: each row changes once (state, figures, button), plus figures of rows not yet stopped.
    stop_mark = kernel.messages()[-1]
    sweeps_before, syncs_before = board_counts(kernel)
    kernel.click(opened(kernel, "ipyprocessing-terminate-all")[-1]["content"]["comm_id"])
    assert wait_until(lambda: not kernel.eval(LIVE_IN_KERNEL), limit=60, interval=0.1), "not all stopped"
    wait_sweeps(kernel, 1)
    sweeps_after, syncs_after = board_counts(kernel)
    stopping = updates(kernel, stop_mark)
    bound = 3 * count + count * (sweeps_after - sweeps_before + 1) + 3 * (syncs_after - syncs_before + 1)
    assert len(stopping) <= bound
    print(f"terminate all: {len(stopping)} updates (bound {bound})")

    # Nothing running: silence.
    quiet_mark = kernel.messages()[-1]
    wait_sweeps(kernel, 2)
    assert updates(kernel, quiet_mark) == [], "a panel with nothing running sends nothing"


def since(kernel: Kernel, mark: Message, *types: str) -> list[Message]:
    everything = kernel.messages()
    return [m for m in everything[everything.index(mark) + 1:] if m["msg_type"] in types]


def updates(kernel: Kernel, mark: Message) -> list[Message]:
    """Widget state updates sent to the front end after ``mark``."""
    return [m for m in since(kernel, mark, "comm_msg") if m["content"]["data"].get("method") == "update"]

"""The notebook tells the truth, in a real kernel: pulls between cells, Run All, re-runs, the kernel's end.

Each test drives a kernel through ``jupyter_client`` as a front end does (cells
sent back to back as Run All sends them, ``cellId`` metadata as JupyterLab
sends it, clicks as comm messages, a restart and a shutdown request) and checks
what the front end receives on IOPub.
"""

from __future__ import annotations

import json
import uuid

import pytest
from ipy_kernel import Kernel, is_reply_idle, output_text, parent_of
from support import wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

_LIVE = "[p.name for p in __import__('ipyprocessing').processes() if p.is_alive()]"


def shown_texts(kernel: Kernel, msg_id: str) -> str:
    """Every text the cell ``msg_id`` was sent until now: streams, displays, their updates, errors.

    Waits for the cell's idle status first: a reply can come before IOPub has delivered the cell's
    own output (a loaded machine's IO thread lags).
    """
    kernel.wait_for(lambda m: is_reply_idle(m, msg_id))
    parts = []
    for message in kernel.messages(msg_id, "stream", "display_data", "update_display_data", "error",
                                   "execute_result"):
        content = message["content"]
        if message["msg_type"] == "stream":
            parts.append(content["text"])
        elif message["msg_type"] == "error":
            parts.append(output_text({"output_type": "error", **content}))
        else:
            parts.append(content["data"].get("text/plain", ""))
    return "\n".join(parts)


def updates_with(kernel: Kernel, text: str) -> list[dict]:
    """The update_display_data messages, to any cell, whose text contains ``text``."""
    return [m for m in kernel.messages(None, "update_display_data")
            if text in m["content"]["data"].get("text/plain", "")]


def test_a_loop_sees_one_value_while_a_pull_arrives(kernel: Kernel) -> None:
    """Fails before: the pulled value replaced x while the loop ran ([0, 0, ..., 99, 99])."""
    kernel.run("x = 0")
    kernel.run("%%process --method fork --pull x --name late\nimport time\ntime.sleep(0.3)\nx = 99")
    # globals() hides the read from the wait for pulled names: only the delivery rule is at work here
    kernel.run("import time\nseen = []\nfor _ in range(100):\n    seen.append(globals()['x'])\n"
               "    time.sleep(0.01)")
    assert kernel.eval("sorted(set(seen))") == [0]  # the child had ended long before the loop did
    assert wait_until(lambda: kernel.eval("x") == 99)  # assigned once the cell had ended
    assert wait_until(lambda: not kernel.eval(_LIVE))


def test_run_all_waits_for_a_pulled_name_then_runs_with_it(kernel: Kernel) -> None:
    first = kernel.execute("%%process --pull x --name maker\nimport time\ntime.sleep(1)\nx = 21")
    second = kernel.execute("print(x * 2)")  # sent at once, as Run All sends its cells
    assert kernel.reply(first)["status"] == "ok"
    assert kernel.reply(second)["status"] == "ok"
    kernel.wait_for(lambda m: is_reply_idle(m, second))
    shown = shown_texts(kernel, second)
    assert "42" in shown
    assert "waiting for x: maker (pid" in shown  # it said why it waited, on one line
    assert "ended, stopped" in shown  # and, once done, how the wait ended


def test_a_failed_pull_raises_a_name_error_naming_the_process(kernel: Kernel) -> None:
    first = kernel.execute("%%process --pull y --name broken\nimport time\ntime.sleep(0.5)\n"
                           "raise ValueError('bad data')", fails=True)
    second = kernel.execute("print(y)", fails=True)
    kernel.reply(first)
    reply = kernel.reply(second)
    assert reply["status"] == "error" and reply["ename"] == "NameError"
    assert "broken (pid" in reply["evalue"] and "stopped[1]" in reply["evalue"]
    assert "the cell raised ValueError: bad data" in reply["evalue"]


def test_pulling_a_missing_name_says_so_once(kernel: Kernel) -> None:
    msg_id = kernel.run("%%process --wait --pull missing --name nothing\npass")
    assert wait_until(lambda: kernel.messages(msg_id, "update_display_data"))
    record = kernel.messages(msg_id, "update_display_data")[-1]["content"]["data"]["text/plain"]
    assert "cannot pull 'missing': the cell did not define it" in record
    assert "the cell raised an exception" not in record


def test_a_finished_row_and_a_running_row_say_so(kernel: Kernel) -> None:
    running = kernel.run("%%process --name runner\nimport time\ntime.sleep(600)")
    figures = kernel.widget(running, "HTMLModel", "ipyprocessing-figures")
    value = kernel.latest(figures, "value")
    assert "running" in value and "exit code -" not in value
    kernel.run("%process_terminate runner")
    done = kernel.run("%%process --wait --name done\npass")
    assert wait_until(lambda: kernel.messages(done, "update_display_data"))
    record = kernel.messages(done, "update_display_data")[-1]["content"]["data"]["text/plain"]
    assert "done (pid" in record and ": stopped · finished · exit code 0" in record


def test_a_record_sent_between_cells_comes_again_from_the_next_cell(kernel: Kernel, tmp_path) -> None:
    """nbclient (nbconvert, CI) hears only the cell it runs: the record of a child that ended after its
    cell, while no cell ran, must reach it from the next cell. Fails before: the next cell got nothing,
    and the executed notebook kept the live row's widget where the record belongs."""
    go = tmp_path / "go"
    first = kernel.run(f"%%process --name between\nimport os, time\nwhile not os.path.exists({str(go)!r}):\n"
                       "    time.sleep(0.01)\nprint('done waiting')")
    go.touch()  # the child ends now, while no cell runs

    def record_of_first(message: dict) -> bool:
        text = message["content"].get("data", {}).get("text/plain", "")
        return (message["msg_type"] == "update_display_data" and parent_of(message) == first
                and "between (pid" in text and ": stopped · finished" in text)

    own = kernel.wait_for(record_of_first)  # sent as the cell's own, after the cell's idle
    second = kernel.run("pass")
    kernel.wait_for(lambda m: is_reply_idle(m, second))
    again = [m["content"] for m in kernel.messages(second, "update_display_data")
             if m["content"]["transient"]["display_id"] == own["content"]["transient"]["display_id"]]
    assert again, "the next cell was not sent the record"
    assert "between (pid" in again[0]["data"]["text/plain"]
    assert "done waiting" in again[0]["data"]["text/plain"]  # with the output's tail: nbclient sees no other
    # and then the cell's own again, so that JupyterLab, which applies both, ends with it
    assert [m["content"]["data"] for m in kernel.messages(first, "update_display_data")
            if record_of_first(m)] == [own["content"]["data"]] * 2


def test_rerunning_a_cell_keeps_its_running_child_in_sight(kernel: Kernel) -> None:
    cell = str(uuid.uuid4())
    kernel.run("%%process --name first\nimport time\ntime.sleep(600)", cell_id=cell)
    again = kernel.run("%%process --name second\nimport time\ntime.sleep(600)", cell_id=cell)
    first_pid = kernel.eval("[p.pid for p in __import__('ipyprocessing').processes()"
                            " if p.name == 'first'][0]")
    assert f"previous run still running: first (pid {first_pid})" in shown_texts(kernel, again)
    # the previous run's own Terminate button, in the cell that was run again
    button = kernel.widget(again, "ButtonModel", "ipyprocessing-line-terminate", description="Terminate")
    kernel.click(button)
    assert wait_until(lambda: kernel.eval(_LIVE) == ["second"])
    assert wait_until(lambda: updates_with(kernel, f"previous run ended: first (pid {first_pid}): "
                                                   "stopped[SIGTERM]"), limit=30)
    kernel.run("%process_terminate second")


def test_replace_terminates_the_previous_run_first(kernel: Kernel) -> None:
    cell = str(uuid.uuid4())
    first = kernel.run("%%process --name old\nimport time\ntime.sleep(600)", cell_id=cell)
    again = kernel.run("%%process --replace --name new\nimport time\ntime.sleep(600)", cell_id=cell)
    assert kernel.eval(_LIVE) == ["new"]
    assert "terminated the previous run old" in shown_texts(kernel, again)
    assert wait_until(lambda: kernel.messages(first, "update_display_data"))
    record = kernel.messages(first, "update_display_data")[-1]["content"]["data"]["text/plain"]
    assert "terminated: its cell was run again with --replace" in record
    kernel.run("%process_terminate new")


def test_the_panel_says_which_cell_started_each_process(kernel: Kernel) -> None:
    msg_id = kernel.execute("%%process --name counted\nimport time\ntime.sleep(600)")
    count = kernel.reply(msg_id)["execution_count"]
    entries = "[e.cell for e in __import__('ipyprocessing.session').session.current().entries(cells=True)]"
    assert kernel.eval(entries) == [f"In[{count}]"]
    table = kernel.stdout_of("%processes")
    assert f"In[{count}]" in table
    kernel.run("%process_terminate counted")


@pytest.mark.parametrize("restart", [True, False], ids=["restart", "shutdown"])
def test_the_kernels_end_turns_live_rows_and_panels_into_records(fresh_kernel: Kernel, restart: bool) -> None:
    """Fails before: the rows stayed 'started' with a dead Terminate button, the panel live."""
    kernel = fresh_kernel
    cell = kernel.run("%%process --name sleeper\nimport time\nprint('before the end', flush=True)\n"
                      "time.sleep(600)")
    panel = kernel.run("%process_panel")
    assert wait_until(lambda: "before the end" in json.dumps([m["content"]
                                                               for m in kernel.messages(cell, "comm_msg")]))
    if restart:
        kernel.manager.restart_kernel(now=False)
        reason = "ended: the kernel was restarted"
    else:
        kernel.client.shutdown()
        reply = kernel.client.get_control_msg(timeout=30)
        assert reply["msg_type"] == "shutdown_reply"
        reason = "ended: the kernel shut down"
    record = kernel.wait_for(lambda m: m["msg_type"] == "update_display_data" and parent_of(m) == cell,
                             timeout=30)["content"]["data"]
    assert "sleeper (pid" in record["text/plain"] and reason in record["text/plain"]
    assert "terminated · exit code -15" in record["text/plain"]
    # its output, kept as the cell's own after the record (a saved notebook shows it without the widget)
    assert wait_until(lambda: "before the end" in "".join(m["content"]["text"]
                                                          for m in kernel.messages(cell, "stream")))
    table = kernel.wait_for(lambda m: m["msg_type"] == "update_display_data" and parent_of(m) == panel
                            and "<table>" in m["content"]["data"].get("text/html", ""),
                            timeout=30)["content"]["data"]
    assert reason in table["text/plain"] and "sleeper" in table["text/plain"]
    assert "<table>" in table["text/html"] and "stopped[SIGTERM]" in table["text/html"]

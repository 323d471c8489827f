"""``%%process`` end to end in a real kernel, driven through jupyter_client as a front end drives it."""

from __future__ import annotations

import pytest
from ipy_kernel import Kernel, is_output_of, is_reply_idle, output_text, parent_of, shown

# The session's shared kernel (tests/conftest.py): after each test it checks that every
# %%process child has ended and been reaped, and forgets what the test made.
pytestmark = pytest.mark.timeout(120)


def test_output_reaches_the_originating_cell_while_another_cell_runs(kernel: Kernel, tmp_path) -> None:
    release = tmp_path / "release"
    first = kernel.run(
        "%%process --name streamer --proc streamer\n"
        "import time\n"
        "i = 0\n"
        "while True:\n"
        "    print('tick', i, flush=True)\n"
        "    i += 1\n"
        "    time.sleep(0.02)\n"
    )
    assert kernel.eval("streamer.is_alive()") is True  # the cell returned while its child runs
    second = kernel.execute(f"import os, time\nwhile not os.path.exists({str(release)!r}):\n"
                            "    time.sleep(0.01)\n")
    busy = kernel.wait_for(lambda m: m["msg_type"] == "status" and parent_of(m) == second
                           and m["content"]["execution_state"] == "busy")
    output = kernel.wait_for(lambda m: is_output_of(m, first), after=busy)
    assert not kernel.messages(second, "status")[1:], "the second cell is still running"
    assert "tick" in shown(output)
    release.touch()
    assert kernel.reply(second)["status"] == "ok"
    assert kernel.eval("streamer.is_alive()") is True
    assert "terminated streamer" in kernel.stdout_of("%process_terminate streamer")


def test_terminate_button_click_stops_the_child(kernel: Kernel) -> None:
    cell = kernel.run("%%process --name victim\nimport time\ntime.sleep(600)\n")
    state, button, note = kernel.status_widgets(cell)
    kernel.wait_state(state, "value", "started")
    kernel.click(button)
    kernel.wait_state(state, "value", "stopped[SIGTERM]")
    kernel.wait_state(button, "disabled", True)
    assert "Terminate button" in kernel.note(note, "Terminate")
    assert kernel.eval("__import__('ipyprocessing').processes()[-1].exitcode") == -15


def test_wait_serves_the_terminate_button_and_runs_queued_cells_after(kernel: Kernel) -> None:
    waiting = kernel.execute("%%process --wait --name waiter\nimport time\ntime.sleep(600)\n")
    state, button, _ = kernel.status_widgets(waiting)
    kernel.wait_state(state, "value", "started")
    queued = kernel.execute("ran_after_the_wait = True")
    kernel.click(button)
    assert kernel.reply(waiting)["status"] == "ok"
    kernel.wait_state(state, "value", "stopped[SIGTERM]")
    assert kernel.reply(queued)["status"] == "ok"
    waiting_idle = kernel.wait_for(lambda m: is_reply_idle(m, waiting))
    kernel.wait_for(lambda m: m["msg_type"] == "execute_input" and parent_of(m) == queued, after=waiting_idle)
    assert kernel.eval("ran_after_the_wait") is True


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_pull_with_a_function_from_an_earlier_cell(kernel: Kernel, method: str) -> None:
    kernel.run("def triple(x):\n    return 3 * x\n")
    cell = kernel.run(f"%%process --method {method} --pull got_{method} --proc puller\n"
                      f"got_{method} = triple(14)\n")
    kernel.run("puller.join()")
    assert kernel.eval(f"got_{method}") == 42
    _, _, note = kernel.status_widgets(cell)
    assert kernel.note(note, "pulled") == f"pulled got_{method} into the notebook"


def test_failing_cell_shows_its_traceback_and_pulls_nothing(kernel: Kernel) -> None:
    cell = kernel.run("%%process --wait --pull lost\nlost = 1\nraise ValueError('boom')\n")
    state, _, note = kernel.status_widgets(cell)
    kernel.wait_state(state, "value", "stopped[1]")
    assert "nothing pulled (lost)" in kernel.note(note, "nothing pulled")
    assert kernel.eval("'lost' in globals()") is False
    text = shown(kernel.wait_for(lambda m: is_output_of(m, cell) and "ValueError" in shown(m)))
    assert "raise ValueError('boom')" in text and text.endswith("ValueError: boom")


@pytest.mark.parametrize(("code", "word", "explanation"), [
    ("import os, signal\nos.kill(os.getpid(), signal.SIGKILL)", "stopped[SIGKILL]", "out-of-memory killer"),
    ("import ctypes\nctypes.string_at(0)", "stopped[SIGSEGV]", "segmentation fault"),
])
def test_death_by_signal_is_explained(kernel: Kernel, code: str, word: str, explanation: str) -> None:
    cell = kernel.run(f"%%process --wait\n{code}\n")
    state, _, note = kernel.status_widgets(cell)
    kernel.wait_state(state, "value", word)
    kernel.note(note, explanation)


def test_timeout_terminates_and_says_so(kernel: Kernel) -> None:
    cell = kernel.run("%%process --timeout 0.2 --name slow\nimport time\ntime.sleep(600)\n")
    state, _, note = kernel.status_widgets(cell)
    kernel.wait_state(state, "value", "stopped[SIGTERM]")
    kernel.note(note, "0.2 s timeout")


def test_progress_bar_shows_as_one_updating_line(kernel: Kernel) -> None:
    cell = kernel.run(
        "%%process --wait\n"
        "for i in range(1, 2001):\n"
        "    print(f'\\rprogress {i}/2000', end='', flush=True)\n"
        "print()\n"
        "print('done')\n"
    )
    kernel.wait_for(lambda m: is_output_of(m, cell) and shown(m).endswith("done"))
    kernel.wait_for(lambda m: is_reply_idle(m, cell))  # IOPub's idle comes after the cell's own outputs
    assert "".join(output_text(o) for o in kernel.outputs_of(cell)) == "progress 2000/2000\ndone\n"


def test_flood_is_coalesced_and_kept_whole(kernel: Kernel) -> None:
    lines = 200_000
    cell = kernel.run(f"%%process --wait --proc flood\nfor i in range({lines}):\n    print(i)\n")
    kernel.wait_for(lambda m: is_output_of(m, cell) and shown(m).endswith(f"\n{lines - 1}"))
    assert len(kernel.display_texts(cell)) < lines / 10  # coalesced: few messages for many lines
    kernel.wait_for(lambda m: is_reply_idle(m, cell))  # IOPub's idle comes after the cell's own outputs
    kept = "".join(output_text(o) for o in kernel.outputs_of(cell))  # the cell's outputs, once it ended
    assert kept.startswith("[") and "all output is in flood.output" in kept.splitlines()[0]
    assert len(kept.splitlines()) <= 201 and kept.endswith(f"\n{lines - 1}\n")
    assert kernel.eval(f"flood.output == b''.join(b'%d\\n' % i for i in range({lines}))") is True


def test_syntax_error_and_bad_option_start_nothing(kernel: Kernel) -> None:
    before = kernel.eval("len(__import__('ipyprocessing').processes())")
    for code, error in (("%%process\nx = (\n", "SyntaxError"), ("%%process --bogus\npass\n", "UsageError")):
        cell = kernel.execute(code, fails=True)
        reply = kernel.reply(cell)
        assert (reply["status"], reply["ename"]) == ("error", error)
        kernel.wait_for(lambda m, cell=cell: is_reply_idle(m, cell))
        assert not kernel.messages(cell, "comm_open")
    assert kernel.eval("len(__import__('ipyprocessing').processes())") == before


def test_processes_table_and_terminate_by_name(kernel: Kernel) -> None:
    kernel.run("%%process --name tabled\nimport time\ntime.sleep(600)\n")
    table = kernel.stdout_of("%processes")
    header = ["name", "pid", "cell", "key", "state", "exit", "elapsed", "CPU", "memory"]
    assert table.splitlines()[0].split() == header
    assert any(line.split()[:1] == ["tabled"] and "started" in line for line in table.splitlines())
    assert "stopped[SIGTERM]" in kernel.stdout_of("%process_terminate tabled")

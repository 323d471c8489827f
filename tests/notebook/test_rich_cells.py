"""A ``%%process`` cell is a notebook cell: in a real kernel, under every start method.

Rich displays, the last expression, matplotlib figures, ``!`` and ``%`` lines,
``update_display`` and ``clear_output``, the order of prints and displays, the
child's widgets both ways, tqdm's widget bar, tracebacks as IPython shows them,
and ``input()``: each checked in the IOPub messages a front end receives.
"""

from __future__ import annotations

import base64
import json

import pytest
from ipy_kernel import Kernel, is_reply_idle, output_text, parent_of, widget_state
from support import wait_until

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]

METHODS = ("fork", "spawn", "forkserver")


@pytest.fixture(params=METHODS)
def method(request: pytest.FixtureRequest) -> str:
    return request.param


def finished(kernel: Kernel, msg_id: str) -> list[dict]:
    """The outputs cell ``msg_id`` keeps once its ``--wait`` child has ended (they come after its reply)."""
    kernel.wait_for(lambda m: is_reply_idle(m, msg_id))
    assert wait_until(lambda: kernel.messages(msg_id, "update_display_data"), limit=30), "no final record"
    return kernel.outputs_of(msg_id)


def run_wait(kernel: Kernel, method: str, body: str, *, fails: bool = False) -> tuple[str, list[dict]]:
    msg_id = kernel.execute(f"%%process --wait --method {method}\n{body}", fails=fails)
    reply = kernel.reply(msg_id)
    if not fails:
        assert reply["status"] == "ok", reply
    kernel.numbers[msg_id] = reply["execution_count"]
    return msg_id, finished(kernel, msg_id)


def texts(outputs: list[dict]) -> str:
    return "".join(output_text(output) for output in outputs)


def test_display_html_and_the_last_expression_as_out(kernel: Kernel, method: str) -> None:
    msg_id, outputs = run_wait(kernel, method, "from IPython.display import HTML\n"
                                               "display(HTML('<b>bold</b>'))\n"
                                               "6 * 7")
    kinds = [output["output_type"] for output in outputs]
    assert kinds == ["display_data", "execute_result"], outputs
    assert outputs[0]["data"]["text/html"] == "<b>bold</b>"
    assert outputs[1]["data"]["text/plain"] == "42"
    assert outputs[1]["execution_count"] == kernel.numbers[msg_id]  # the cell's own number: Out[N]


def test_a_matplotlib_figure_arrives_as_png(kernel: Kernel, method: str) -> None:
    _, outputs = run_wait(kernel, method, "import matplotlib.pyplot as plt\n"
                                          "plt.plot([1, 3, 2])\n"
                                          "plt.show()\n"
                                          "plt.figure(); plt.plot([0, 1])  # left open: shown at the end")
    pngs = [base64.b64decode(output["data"]["image/png"]) for output in outputs
            if "image/png" in output.get("data", {})]
    assert len(pngs) == 2, outputs
    assert all(png.startswith(b"\x89PNG\r\n\x1a\n") for png in pngs)


def test_shell_commands_and_line_magics_work(kernel: Kernel, method: str) -> None:
    _, outputs = run_wait(kernel, method, "word = 'echoed'\n"
                                          "!echo {word} by the shell\n"
                                          "%time total = sum(range(1000))\n"
                                          "print('total', total)")
    shown = texts(outputs)
    assert "echoed by the shell" in shown
    assert "Wall time" in shown and "total 499500" in shown


def test_update_display_and_clear_output(kernel: Kernel, method: str) -> None:
    _, outputs = run_wait(kernel, method, "from IPython.display import display, clear_output\n"
                                          "print('gone')\n"
                                          "clear_output()\n"
                                          "handle = display('first', display_id=True)\n"
                                          "handle.update('second')\n"
                                          "print('after')")
    assert texts(outputs) == "'second'\nafter\n", outputs


def test_prints_and_displays_keep_their_order_and_stderr_stays_stderr(kernel: Kernel, method: str) -> None:
    _, outputs = run_wait(kernel, method, "import sys\n"
                                          "print('one')\n"
                                          "display('two')\n"
                                          "print('three', file=sys.stderr)\n"
                                          "display('four')\n"
                                          "print('five')")
    order = [(output["output_type"], output_text(output).strip()) for output in outputs]
    assert order == [("stream", "one"), ("display_data", "'two'"), ("stream", "three"),
                     ("display_data", "'four'"), ("stream", "five")], order
    assert [output["name"] for output in outputs if output["output_type"] == "stream"] == \
        ["stdout", "stderr", "stdout"]


def test_a_background_cells_display_lands_in_its_own_cell_while_another_runs(kernel: Kernel) -> None:
    cue = "__import__('os').path.exists('background-cue')"
    background = kernel.run("%%process --name behind\n"
                            "import os, time\n"
                            "while not os.path.exists('background-cue'):\n"
                            "    time.sleep(0.01)\n"
                            "display('from behind')")
    busy = kernel.execute("open('background-cue', 'w').close()\n"
                          "import time\n"
                          f"while not {cue}: pass\n"
                          "time.sleep(1.5)")
    shown = kernel.wait_for(lambda m: m["msg_type"] == "comm_msg" and "from behind" in json.dumps(
        m["content"].get("data", {}).get("state", {}).get("outputs", [])))
    assert parent_of(shown) == background, "the display went to the cell that started the child"
    assert kernel.reply(busy)["status"] == "ok"
    kernel.run("import os; os.remove('background-cue')")


def _comm_opened(kernel: Kernel, msg_id: str, model: str) -> dict:
    return kernel.wait_for(lambda m: m["msg_type"] == "comm_open" and parent_of(m) == msg_id
                           and m["content"]["data"]["state"].get("_model_name") == model)


def test_a_widget_made_in_the_child_shows_and_updates(kernel: Kernel, method: str) -> None:
    msg_id = kernel.run(f"%%process --method {method} --name slider\n"
                        "import ipywidgets, time\n"
                        "s = ipywidgets.IntSlider(description='n')\n"
                        "display(s)\n"
                        "for n in range(1, 6):\n"
                        "    s.value = n\n"
                        "    time.sleep(0.05)")
    opened = _comm_opened(kernel, msg_id, "IntSliderModel")
    comm_id = opened["content"]["comm_id"]
    kernel.wait_for(lambda m: widget_state(m, comm_id).get("value") == 5)
    shown = kernel.wait_for(lambda m: m["msg_type"] == "comm_msg" and comm_id in json.dumps(
        m["content"].get("data", {}).get("state", {}).get("outputs", [])))
    assert parent_of(shown) == msg_id  # the view of the widget is in the cell's outputs
    kernel.wait_for(lambda m: m["msg_type"] == "comm_close" and m["content"]["comm_id"] == comm_id)


def test_a_change_made_in_the_front_end_reaches_the_childs_widget(kernel: Kernel, method: str) -> None:
    msg_id = kernel.run(f"%%process --method {method} --name listener --timeout 60\n"
                        "import ipywidgets, threading\n"
                        "s = ipywidgets.IntSlider()\n"
                        "moved = threading.Event()\n"
                        "s.observe(lambda change: moved.set() if change['new'] == 7 else None, 'value')\n"
                        "display(s)\n"
                        "moved.wait(50)\n"
                        "print('the child saw', s.value)")
    comm_id = _comm_opened(kernel, msg_id, "IntSliderModel")["content"]["comm_id"]
    update = {"comm_id": comm_id, "data": {"method": "update", "state": {"value": 7}, "buffer_paths": []}}
    kernel.client.shell_channel.send(kernel.client.session.msg("comm_msg", update))
    assert wait_until(lambda: "the child saw 7" in texts(kernel.outputs_of(msg_id)), limit=60)
    # the child printed its last line and now ends: its exit, not only its output, belongs to the test
    assert wait_until(lambda: not kernel.eval("[p.name for p in __import__('ipyprocessing').processes()"
                                              " if p.is_alive()]"), limit=30)


def test_tqdm_auto_draws_a_widget_progress_bar(kernel: Kernel, method: str) -> None:
    msg_id, outputs = run_wait(kernel, method, "from tqdm.auto import tqdm\n"
                                               "for _ in tqdm(range(30), desc='steps'):\n"
                                               "    pass")
    _comm_opened(kernel, msg_id, "FloatProgressModel")
    assert "steps" in texts(outputs) and "30/30" in texts(outputs)  # its last look, kept as text


def test_a_traceback_reads_like_a_plain_cells(kernel: Kernel, method: str) -> None:
    definition = kernel.execute("def helper(x):\n"
                                "    y = x + 1\n"
                                "    return y / 0\n")
    defined = kernel.reply(definition)["execution_count"]
    msg_id, outputs = run_wait(kernel, method, "value = 1\nhelper(value)", fails=True)
    count = kernel.numbers[msg_id]
    errors = [output for output in outputs if output["output_type"] == "error"]
    assert len(errors) == 1 and errors[0]["ename"] == "ZeroDivisionError", outputs
    text = output_text(errors[0])
    assert f"Cell In[{count}], line 2" in text  # the cell's own number, the line in its body
    assert "helper(value)" in text
    assert f"Cell In[{defined}], line 3" in text and "return y / 0" in text  # an earlier cell's source
    assert "ipyprocessing" not in text and "IPython" not in text and "zmq" not in text
    assert "stopped[1]" in kernel.messages(msg_id, "update_display_data")[-1]["content"]["data"]["text/plain"]


def test_a_syntax_error_is_shown_as_a_plain_cells_and_nothing_starts(kernel: Kernel) -> None:
    before = kernel.eval("len(__import__('ipyprocessing').processes())")
    msg_id = kernel.execute("%%process\nx = (1,\n", fails=True)
    reply = kernel.reply(msg_id)
    assert reply["status"] == "error" and reply["ename"] == "SyntaxError"
    kernel.wait_for(lambda m: is_reply_idle(m, msg_id))
    shown = "".join(output_text({"output_type": m["msg_type"], **m["content"]})
                    for m in kernel.messages(msg_id, "stream", "error"))
    assert "SyntaxError" in shown and "Cell In[" in shown
    assert "ipyprocessing" not in shown and "magic" not in shown
    assert kernel.eval("len(__import__('ipyprocessing').processes())") == before


def test_input_under_wait_is_answered_through_the_stdin_channel(kernel: Kernel, method: str) -> None:
    msg_id = kernel.client.execute(f"%%process --wait --method {method}\n"
                                   "name = input('your name? ')\nprint('hello', name)", allow_stdin=True)
    request = kernel.client.get_stdin_msg(timeout=60)
    assert request["content"]["prompt"] == "your name? "
    kernel.client.input("Ada")
    assert kernel.reply(msg_id)["status"] == "ok"
    assert "hello Ada" in texts(finished(kernel, msg_id))


def test_input_without_wait_fails_at_once_saying_why(kernel: Kernel) -> None:
    msg_id = kernel.run("%%process --name asks\ninput('anyone? ')")
    assert wait_until(lambda: kernel.messages(msg_id, "update_display_data"), limit=30)
    shown = texts(kernel.outputs_of(msg_id))
    assert "StdinNotImplementedError" in shown and "needs --wait" in shown


def test_top_level_await_runs(kernel: Kernel, method: str) -> None:
    _, outputs = run_wait(kernel, method, "import asyncio\n"
                                          "await asyncio.sleep(0.01)\n"
                                          "print('awaited')")
    assert texts(outputs) == "awaited\n"

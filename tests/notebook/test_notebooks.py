"""The example notebooks run top to bottom in a real kernel (nbclient), and say what they should.

Each test checks the outputs a reader sees, not just that nothing raised. The
panel tour also checks that a saved notebook (outputs and widget state) does
not contain the auth key, unless ``%authkey --show`` asked for it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:  # imported where used: nbformat and nbclient take 2 s to import, which the quick
    import nbformat  # loop (-m "not slow") would pay at collection

# Each notebook runs in a kernel nbclient starts for it, as a reader's would.
pytestmark = [pytest.mark.timeout(180), pytest.mark.slow]

NOTEBOOKS = Path(__file__).resolve().parents[2] / "notebooks"

def run(name: str, tmp_path: Path, extra_cells: tuple[str, ...] = ()) -> nbformat.NotebookNode:
    """Execute notebook ``name`` (plus ``extra_cells`` at the end) in a fresh kernel; return it executed."""
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(NOTEBOOKS / name, as_version=4)
    assert nb.metadata.kernelspec.name == "python3"
    nb.cells.extend(nbformat.v4.new_code_cell(source) for source in extra_cells)
    client = NotebookClient(nb, timeout=120, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    return nb


def text(cell: Any) -> str:
    """Everything a reader sees as text in a cell's outputs (streams and text/plain)."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream":
            parts.append(output.text)  # a stream may come in several outputs: join them as written
        elif output.output_type in ("display_data", "execute_result"):
            parts.append(output.data.get("text/plain", "") + "\n")
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}\n")
    return "".join(parts)


def cell(nb: nbformat.NotebookNode, first_line: str) -> Any:
    """The code cell whose source starts with ``first_line``."""
    found = [c for c in nb.cells if c.cell_type == "code" and c.source.startswith(first_line)]
    assert len(found) == 1, f"{len(found)} cells start with {first_line!r}"
    return found[0]


def has_widget(cell: Any) -> bool:
    return any("application/vnd.jupyter.widget-view+json" in output.get("data", {})
               for output in cell.outputs)


def no_errors(nb: nbformat.NotebookNode) -> None:
    errors = [text(c) for c in nb.cells if c.cell_type == "code"
              for o in c.outputs if o.output_type == "error" or getattr(o, "name", "") == "stderr"]
    assert errors == []


def test_quickstart(tmp_path: Path) -> None:
    nb = run("01-quickstart.ipynb", tmp_path)
    no_errors(nb)
    assert text(cell(nb, "import signal")).splitlines() == [
        "<Process(Process-1, initial)> False",
        "<Process(Process-1, started)> True",
        "<Process(Process-1, stopped[SIGTERM])> False",
        "True",
    ]
    train = cell(nb, "%%process --name train")
    # A later cell joined it, so the saved notebook has its final record, not a widget, and its output.
    assert not has_widget(train)
    status, *printed = text(train).splitlines()
    assert re.fullmatch(r"train \(pid \d+\): stopped · finished · exit code 0 · [\d.]+ s; "
                        r"pulled model into the notebook", status), status
    assert printed == ["fitted 38.5"]  # in the record (its tail) or as an output of its own, not both
    assert text(cell(nb, "train.join()")).splitlines() == ["<CellProcess(train, stopped)>", "model = 38.5"]
    status, *printed = text(cell(nb, "%%process --wait")).splitlines()
    # the final record
    assert re.fullmatch(r"hello \(pid \d+\): stopped · finished · exit code 0 · [\d.]+ s", status)
    # Once the child has ended, its outputs are the cell's own (--wait: before the cell's end).
    assert len(printed) == 1 and printed[0].startswith("hello from pid")
    hello = re.fullmatch(r"0 hello from pid (\d+) - the kernel is (\d+)\n", text(cell(nb, "print(hello.")))
    assert hello, text(cell(nb, "print(hello."))
    assert hello[1] != hello[2], "the cell ran in a child process"
    assert text(cell(nb, "forever.terminate()")).strip() == "<CellProcess(forever, stopped[SIGTERM])>"
    table = [line.split() for line in text(cell(nb, "%processes")).splitlines()]
    assert [row[0] for row in table] == ["name", "train", "hello", "forever"]
    assert table[3][4] == "stopped[SIGTERM]"


def test_panel_and_auth_key_tour_keeps_the_key_out_of_the_saved_notebook(tmp_path: Path) -> None:
    import nbformat

    keys = tmp_path / "keys.json"
    nb = run("02-panel-and-auth-keys.ipynb", tmp_path, extra_cells=(
        f"import json\njson.dump([sleepers[0].getAuthKey(), processing.currentProcess().getAuthKey()], "
        f"open({str(keys)!r}, 'w'))",))
    no_errors(nb)
    nb.cells.pop()  # the cell above only fetched the keys for this test
    old_key, new_key = json.loads(keys.read_text())

    panel = next(c for c in nb.cells if c.cell_type == "code" and c.source == "%process_panel")
    assert has_widget(panel)
    assert text(panel).splitlines()[0].split() == ["name", "pid", "cell", "key", "state", "exit", "elapsed",
                                                   "CPU", "memory"]
    shown = next(c for c in nb.cells if c.cell_type == "code" and c.source == "%authkey")
    first = re.search(r"fingerprint ([0-9a-f]{8})", text(shown))
    renewed = text(cell(nb, "%authkey --new"))
    second = re.search(r"new key ([0-9a-f]{8}): processes started from now on use it; "
                       r"the 2 running processes keep the key they started with", renewed)
    assert first and second and first[1] != second[1]
    assert text(cell(nb, "late = ")).splitlines() == ["late has the new key: True",
                                                      "the sleepers kept theirs: True"]
    assert has_widget(cell(nb, "from ipyprocessing.panel import ProcessPanel"))
    final = [line.split() for line in text(cell(nb, "%process_panel --text")).splitlines()]
    assert [(row[0], row[3], row[4]) for row in final[1:]] == [
        ("sleeper-0", first[1], "stopped[SIGTERM]"),
        ("sleeper-1", first[1], "stopped[SIGTERM]"),
        ("quick", first[1], "stopped"),
        ("late", second[1], "stopped[SIGTERM]"),
    ]

    saved = nbformat.writes(nb)
    assert "application/vnd.jupyter.widget-state+json" in nb.metadata.get("widgets", {}), (
        "the widgets' state is saved too, so the check below covers it")
    assert old_key not in saved and new_key not in saved


def test_authkey_show_puts_the_key_in_the_saved_notebook_on_purpose(tmp_path: Path) -> None:
    """The control for the test above: the check does find a key that was revealed."""
    import nbformat

    keys = tmp_path / "keys.json"
    nb = run("02-panel-and-auth-keys.ipynb", tmp_path, extra_cells=(
        "%authkey --show",
        f"import json\njson.dump(processing.currentProcess().getAuthKey(), open({str(keys)!r}, 'w'))"))
    assert json.loads(keys.read_text()) in nbformat.writes(nb)


def test_spawn_and_forkserver_run_functions_defined_in_cells(tmp_path: Path) -> None:
    nb = run("03-spawn-and-forkserver.ipynb", tmp_path)
    no_errors(nb)
    lines = text(cell(nb, "import os")).splitlines()
    assert [re.sub(r"pid \d+", "pid N", line) for line in lines] == [
        "spawn: square(7) = 49 in pid N, exit code 0",
        "forkserver: square(7) = 49 in pid N, exit code 0",
    ]
    assert text(cell(nb, "offset = 100")).splitlines() == ["spawn: lambda sent [101]",
                                                           "forkserver: lambda sent [101]"]
    assert text(cell(nb, "class Greeter")).splitlines() == ["hello from greeter-spawn",
                                                            "hello from greeter-forkserver"]
    for method, computed in (("spawn", "[3, 6, 9]"), ("forkserver", "[12, 15, 18]")):
        shown = cell(nb, f"%%process --method {method}")
        status, *printed = text(shown).splitlines()
        assert has_widget(shown) or "stopped" in status  # the live row, or the final record replacing it
        assert re.fullmatch(rf"scaler-{method} \(pid \d+\): (started|stopped( · .*)?)", status)
        assert printed in ([], [f"{method} child computed {computed}"])  # printed before the cell ended?
    assert text(cell(nb, "for job in")).splitlines() == [
        "<CellProcess(scaler-spawn, stopped)> spawn",
        "<CellProcess(scaler-forkserver, stopped)> forkserver",
        "scaled_spawn = [3, 6, 9]",
        "scaled_forkserver = [12, 15, 18]",
    ]


def test_rich_cells_show_a_plot_a_dataframe_a_progress_bar_and_magics(tmp_path: Path) -> None:
    import base64

    nb = run("04-rich-cells.ipynb", tmp_path)
    no_errors(nb)
    for name in ("plot", "frame", "progress", "syntax"):  # each --wait cell: its final record first
        status = text(cell(nb, f"%%process --wait --name {name}")).splitlines()[0]
        record = rf"{name} \(pid \d+\): stopped · finished · exit code 0 · [\d.]+ s"
        assert re.fullmatch(record, status), status
    plot = cell(nb, "%%process --wait --name plot").outputs
    pngs = [base64.b64decode(o.data["image/png"]) for o in plot if "image/png" in o.get("data", {})]
    assert len(pngs) == 1 and pngs[0].startswith(b"\x89PNG")
    frame = cell(nb, "%%process --wait --name frame").outputs
    assert "<table" in frame[1].data["text/html"]  # display(df.head(3))
    assert frame[2].output_type == "execute_result" and "<table" in frame[2].data["text/html"]  # describe()
    progress = text(cell(nb, "%%process --wait --name progress"))
    assert "working" in progress and "20/20" in progress  # the bar's last look, kept as text
    syntax = text(cell(nb, "%%process --wait --name syntax"))
    assert "hello from the shell" in syntax and "Wall time" in syntax and "total 499999500000" in syntax


def test_every_notebook_is_checked() -> None:
    checked = {"01-quickstart.ipynb", "02-panel-and-auth-keys.ipynb", "03-spawn-and-forkserver.ipynb",
               "04-rich-cells.ipynb", "05-run-all-and-the-record.ipynb"}
    assert {path.name for path in NOTEBOOKS.glob("*.ipynb")} == checked


def test_load_ext_registers_the_panel_magics(tmp_path: Path) -> None:
    import nbformat
    from nbclient import NotebookClient

    notebook = tmp_path / "load.ipynb"
    nbformat.write(nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("%load_ext ipyprocessing\n"
                                         "magics = get_ipython().magics_manager.magics['line']\n"
                                         "print('process_panel' in magics, 'authkey' in magics)")],
        metadata={"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                 "language": "python"}}), notebook)
    nb = nbformat.read(notebook, as_version=4)
    NotebookClient(nb, timeout=60, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    assert text(nb.cells[0]).strip() == "True True"


def test_run_all_and_the_record(tmp_path: Path) -> None:
    """Run All (nbclient sends the cells one after the other): the reading cell waits for its value,
    the loop sees one value, and the saved cells hold plain records, never a widget."""
    nb = run("05-run-all-and-the-record.ipynb", tmp_path)
    assert text(cell(nb, 'print("twice the total:"')).splitlines()[-1] == "twice the total: 1000001000000"
    # the line that said it waited, as saved: how the wait ended
    waited = text(cell(nb, 'print("twice the total:"')).splitlines()[0]
    assert re.fullmatch(r"waited [\d.]+ s for total: summer \(pid \d+\) ended, stopped", waited), waited
    summer = cell(nb, "%%process --name summer")
    assert not has_widget(summer)
    record, *rest = text(summer).splitlines()
    assert re.fullmatch(r"summer \(pid \d+\): stopped · finished · exit code 0 · [\d.]+ s; "
                        r"pulled total into the notebook", record), record
    assert rest[-1] == "summed"  # the tail of its output
    assert text(cell(nb, "import time\n\nseen")).strip() == "seen during the cell: [0]"
    assert text(cell(nb, "print('after the cell:'")).strip() == "after the cell: 99"
    failing = text(cell(nb, "%%process --wait --name failing"))
    assert "stopped[1]" in failing and "the cell raised ValueError: no data today" in failing
    assert "nothing pulled (never): the cell did not finish" in failing
    table = [line.split() for line in text(cell(nb, "%processes")).splitlines()]
    assert [row[0] for row in table] == ["name", "summer", "counter", "failing"]
    counts = {row[0]: row[2] for row in table[1:]}
    assert counts == {"summer": f"In[{summer.execution_count}]",
                      "counter": f"In[{cell(nb, '%%process --method fork --name counter').execution_count}]",
                      "failing": f"In[{cell(nb, '%%process --wait --name failing').execution_count}]"}


def test_a_child_ending_between_its_cells_end_and_idle_shows_its_output_once(tmp_path: Path) -> None:
    """A child that ends after its cell's post_execute but before its idle: nbclient may or may not
    hear what is sent then, so it must not be sent then. Fails before: the cell kept the child's
    line twice, as an output of its own and in the record's tail sent again from the next cell."""
    import nbformat
    from nbclient import NotebookClient

    go = tmp_path / "go"
    nb = nbformat.v4.new_notebook()
    nb.metadata.kernelspec = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_code_cell(source) for source in (
        "%load_ext ipyprocessing",
        "import pathlib, ipyprocessing\n"
        "def hold_the_idle(result):\n"
        "    if result.info.raw_cell.startswith('%%process --name window'):\n"
        f"        pathlib.Path({str(go)!r}).touch()  # the cell has ended; its idle waits for this hook\n"
        "        [p for p in ipyprocessing.processes() if p.name == 'window'][0].wait_shown(60)\n"
        "get_ipython().events.register('post_run_cell', hold_the_idle)",
        f"%%process --name window\nimport os, time\nwhile not os.path.exists({str(go)!r}):\n"
        "    time.sleep(0.01)\nprint('in the window')",
        "pass",
    )]
    NotebookClient(nb, timeout=120, kernel_name="python3",
                   resources={"metadata": {"path": str(tmp_path)}}).execute()
    window = nb.cells[2]
    assert not has_widget(window)
    assert text(window).count("in the window") == 1, text(window)

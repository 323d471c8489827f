"""The magics in a real (terminal-like) ``InteractiveShell``: parsing, namespaces, errors, text output."""

from __future__ import annotations

import re
import subprocess
import sys
import threading

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import ipyprocessing
import processing

pytestmark = pytest.mark.timeout(60)


def run(shell: InteractiveShell, line: str, cell: str) -> None:
    shell.run_cell_magic("process", line, cell)


def last() -> ipyprocessing.CellProcess:
    return ipyprocessing.processes()[-1]


def test_help_lists_every_option(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_cell("%%process?")
    text = capsys.readouterr().out
    assert "%%process [--name NAME] [--daemon] [--method {fork,spawn,forkserver}]" in text
    for option in ("--wait", "--timeout SECONDS", "--push NAMES", "--pull NAMES", "--proc VAR"):
        assert option in text


@pytest.mark.parametrize(("line", "message"), [
    ("--bogus", "unrecognized arguments: --bogus"),
    ("--method thread", "invalid choice: 'thread'"),
    ("--timeout soon", "invalid float value"),
    ("--timeout 0", "--timeout must be a finite number of seconds, at least 0.01, not 0"),
    ("--timeout -5", "not -5"),
    ("--timeout inf", "not inf"),
    ("--timeout nan", "not nan"),
    ("--timeout 1e-300", "not 1e-300"),
    ("--pull 1st", "'1st' is not a Python name"),
    ("--push for", "'for' is not a Python name"),
    ("--proc a.b", "'a.b' is not a Python name"),
])
def test_bad_options_are_usage_errors_and_start_nothing(shell: InteractiveShell, line: str,
                                                        message: str) -> None:
    before = len(ipyprocessing.processes())
    with pytest.raises(UsageError, match=re.escape(message)):
        run(shell, line, "print('never')")
    assert len(ipyprocessing.processes()) == before


def test_syntax_error_is_reported_before_anything_starts(shell: InteractiveShell,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    before = len(ipyprocessing.processes())
    result = shell.run_cell("%%process\nx = 1\ny = (\n")
    assert isinstance(result.error_in_exec, SyntaxError)  # the cell failed, as a plain cell would
    shown = re.sub(r"\x1b\[[0-9;]*m", "", capsys.readouterr().out)  # without the terminal's colours
    assert "Cell In[" in shown and "line 2" in shown and "SyntaxError" in shown
    assert "ipyprocessing" not in shown  # no frames of the magic's
    assert len(ipyprocessing.processes()) == before
    assert not processing.activeChildren()


def test_text_lines_without_a_widget_front_end(shell: InteractiveShell,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "--wait --name texty --method fork", "print('hello')")
    lines = capsys.readouterr().out.splitlines()
    assert re.fullmatch(r"\[texty\] started, pid \d+ \(fork\)", lines[0])
    assert lines[1:] == ["hello", "[texty] exited with code 0 (stopped)"]


def test_proc_binds_the_process_with_its_whole_output(shell: InteractiveShell) -> None:
    cell = "import sys\nprint('out')\nprint('err', file=sys.stderr)"
    run(shell, "--wait --proc handle --method fork", cell)
    handle = shell.user_ns["handle"]
    assert isinstance(handle, processing.Process) and handle is last()
    assert (handle.stdout, handle.stderr, handle.exitcode) == (b"out\n", b"err\n", 0)
    assert sorted(handle.output.splitlines()) == [b"err", b"out"]


def test_daemon_flag(shell: InteractiveShell) -> None:
    run(shell, "--wait --daemon", "pass")
    assert last().daemon is True


def test_unsendable_name_is_named_before_anything_starts(shell: InteractiveShell) -> None:
    shell.user_ns["lock"] = threading.Lock()
    before = len(ipyprocessing.processes())
    for method in ("spawn", "forkserver"):
        with pytest.raises(UsageError, match=r"cannot send 'lock' \(lock: TypeError: cannot pickle"):
            run(shell, f"--method {method}", "print(lock.locked())")
    assert len(ipyprocessing.processes()) == before
    run(shell, "--wait --method fork --pull held", "held = lock.locked()")
    assert shell.user_ns["held"] is False


def test_functions_data_and_modules_from_earlier_cells_travel(shell: InteractiveShell) -> None:
    shell.run_cell("import math as m\nscale = 3\nclass Box:\n    def __init__(self, v):\n        self.v = v\n"
                   "def measure(x):\n    return Box(m.sqrt(x) * scale)\n")
    for method in ("spawn", "forkserver"):
        run(shell, f"--wait --method {method} --pull box", "box = measure(16)")
        box = shell.user_ns.pop("box")
        assert box.v == 12.0 and isinstance(box, shell.user_ns["Box"])  # the notebook's class, not a copy


def test_push_sends_names_the_code_does_not_show(shell: InteractiveShell) -> None:
    shell.user_ns["secret"] = 7
    run(shell, "--wait --method spawn --push secret --pull found", "found = eval('secret')")
    assert shell.user_ns.pop("found") == 7
    run(shell, "--wait --method spawn --pull found", "found = eval('secret')")
    assert last().exitcode == 1 and b"NameError: name 'secret' is not defined" in last().stderr
    assert "found" not in shell.user_ns
    with pytest.raises(UsageError, match="--push 'nowhere': not defined in the notebook"):
        run(shell, "--method spawn --push nowhere", "pass")


@pytest.mark.parametrize(("cell", "message"), [
    ("x = 1", "cannot pull 'missing': the cell did not define it"),
    ("missing = (i for i in range(3))", "cannot pull 'missing': it cannot be sent to the notebook"),
])
def test_pull_failures_say_why_and_pull_nothing(shell: InteractiveShell, cell: str, message: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "--wait --method fork --pull missing", cell)
    assert last().exitcode == 1 and message in last().stderr.decode()
    assert "missing" not in shell.user_ns
    assert "nothing pulled (missing)" in capsys.readouterr().out


def test_traceback_shows_the_cell_not_the_machinery(shell: InteractiveShell) -> None:
    run(shell, "--wait --method spawn", "def f():\n    raise KeyError('k')\nf()")
    traceback = last().stderr.decode()  # kept in the handle's output too, without its colours
    assert "Cell In[" in traceback and "line 3" in traceback and "KeyError: 'k'" in traceback
    assert "    raise KeyError('k')" in traceback and "ipyprocessing" not in traceback


def test_timeout_stops_a_waited_child_and_says_so(shell: InteractiveShell,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "--wait --timeout 0.2 --name late", "import time\ntime.sleep(600)")
    assert last().exitcode == -15
    assert "terminated after the 0.2 s timeout (--timeout)" in capsys.readouterr().out


def test_processes_and_process_terminate(shell: InteractiveShell, capsys: pytest.CaptureFixture[str]) -> None:
    run(shell, "--name napper", "import time\ntime.sleep(600)")
    napper = last()
    capsys.readouterr()
    shell.run_line_magic("processes", "")
    table = capsys.readouterr().out.splitlines()
    assert table[0].split() == ["name", "pid", "cell", "key", "state", "exit", "elapsed", "CPU", "memory"]
    row = ["napper", str(napper.pid), f"In[{napper.execution_count}]", napper.authkey_fingerprint, "started",
           "\u2013"]
    assert any(line.split()[:6] == row for line in table)  # the cell that started it
    with pytest.raises(UsageError, match="no process named 'nobody'"):
        shell.run_line_magic("process_terminate", "nobody")
    with pytest.raises(UsageError, match="or --all"):
        shell.run_line_magic("process_terminate", "")
    shell.run_line_magic("process_terminate", str(napper.pid))
    assert napper.exitcode == -15
    assert f"terminated napper (pid {napper.pid}): stopped[SIGTERM]" in capsys.readouterr().out
    shell.run_line_magic("process_terminate", "--all")
    assert "nothing to terminate" in capsys.readouterr().out


def test_terminal_ipython_loads_it_from_its_configuration(tmp_path) -> None:
    cell = "%%process --wait --name term\nprint('from the child')"
    done = subprocess.run(
        [sys.executable, "-m", "IPython", "--no-banner", "--colors=nocolor", "--HistoryManager.enabled=False",
         "--InteractiveShellApp.extensions=['ipyprocessing']", "-c", cell],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert re.fullmatch(r"\[term\] started, pid \d+ \(forkserver\)", lines[0])
    assert lines[1:] == ["from the child", "[term] exited with code 0 (stopped)"]

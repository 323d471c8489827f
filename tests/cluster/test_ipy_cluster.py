"""``%%process --cluster`` in a real InteractiveShell against a real Dask LocalCluster (loopback only).

The session's cluster (tests/cluster/conftest.py) runs in a helper process: its
workers are not children of the test process, and they see only what is installed.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
import textwrap
import time
from typing import Any

import pytest
import support
from cluster_support import Cluster
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

import ipyprocessing
import processing
from processing.remote import get_client

pytestmark = pytest.mark.timeout(60)


def test_cluster_cell_runs_streams_output_and_pulls(shell: InteractiveShell, address: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    shell.user_ns["base"] = 20
    shell.run_cell_magic("process", f"--cluster {address} --pull answer --proc h",
                         "import os\nanswer = base + 22\nprint('hello from', os.getpid())\n")
    handle = shell.user_ns["h"]
    assert handle is ipyprocessing.processes()[-1]
    handle.join(30)
    assert handle.exitcode == 0, handle.output
    assert handle.host.startswith("tcp://127.0.0.1:")
    assert shell.user_ns["answer"] == 42
    assert handle.pulled == ("answer",)  # the names only: the value is the notebook's alone
    assert f"hello from {handle.pid}" in handle.stdout.decode()
    assert "pulled answer into the notebook" in capsys.readouterr().out


def test_text_view_shows_output_and_host(shell: InteractiveShell, address: str,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    shell.user_ns["client_var"] = get_client(address)
    shell.run_cell_magic("process", "--cluster-client client_var --proc h2", "print('remote line')\n")
    handle = shell.user_ns["h2"]
    handle.join(30)
    assert handle.exitcode == 0
    out = capsys.readouterr().out
    assert "remote line" in out
    assert re.search(r"exited with code 0", out), out
    # Where it runs is said once a worker has it: on the start line, or on a line of its own after.
    assert f"pid {handle.pid} on {handle.host}" in out, out


def test_unreachable_scheduler_is_a_clear_error_and_starts_nothing(shell: InteractiveShell) -> None:
    before = len(ipyprocessing.processes())
    dead = "tcp://127.0.0.1:1"
    with pytest.raises(UsageError, match=re.escape(dead)):
        shell.run_cell_magic("process", f"--cluster {dead} --proc never", "print('never')\n")
    assert len(ipyprocessing.processes()) == before
    assert "never" not in shell.user_ns


def test_terminate_through_the_handle(shell: InteractiveShell, address: str) -> None:
    code = textwrap.dedent("""
        import time
        print('ready', flush=True)
        time.sleep(60)
    """)
    shell.run_cell_magic("process", f"--cluster {address} --proc h3 --pull never_set", code)
    handle = shell.user_ns["h3"]
    assert support.wait_until(lambda: b"ready" in handle.stdout, limit=20)
    handle.terminate()
    handle.join(10)
    assert handle.state == "stopped"
    assert processing.status_word(handle.exitcode) == "stopped[SIGTERM]"
    assert "never_set" not in shell.user_ns


def test_local_cells_and_loading_the_extension_never_import_dask() -> None:
    code = textwrap.dedent("""
        import sys
        from IPython.core.interactiveshell import InteractiveShell
        shell = InteractiveShell.instance()
        shell.run_line_magic("load_ext", "ipyprocessing")
        shell.run_cell_magic("process", "--proc h", "print('local')")
        shell.user_ns["h"].join(30)
        assert shell.user_ns["h"].exitcode == 0
        print(sorted(name for name in sys.modules if name.split(".")[0] in ("dask", "distributed")))
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().endswith("[]"), result.stdout


def test_status_learns_pid_and_host_when_a_worker_takes_the_cell(shell: InteractiveShell, cluster: Cluster,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    with cluster.busy():
        shell.run_cell_magic("process", f"--cluster {cluster.address} --name queued --proc queued",
                             "print('taken')\n")
        handle = shell.user_ns["queued"]
        assert handle.state == "pending"
        started = capsys.readouterr().out
        assert "[queued] started, pid - (waiting for a worker)" in started, started
        shell.run_line_magic("processes", "")
        table = capsys.readouterr().out
        pending = r"queued\s+- \(waiting for a worker\)\s+In\[\d+\]\s+[0-9a-f]{8}\s+pending\s"
        assert re.search(pending, table), table
    handle.join(30)
    out = capsys.readouterr().out
    running = f"[queued] running, pid {handle.pid} on {handle.host}"
    assert running in out, out
    assert out.index(running) < out.index("[queued] exited with code 0"), out
    shell.run_line_magic("processes", "")
    table = capsys.readouterr().out
    row = rf"queued\s+{handle.pid} on {re.escape(handle.host)}\s+In\[\d+\]\s+[0-9a-f]{{8}}\s+stopped\s"
    assert re.search(row, table), table


def test_wait_blocks_until_the_remote_child_exits_and_pulls(shell: InteractiveShell, address: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    shell.run_cell_magic("process", f"--cluster {address} --wait --pull waited --name hw --proc hw",
                         "import time\ntime.sleep(0.5)\nwaited = 'yes'\n")
    handle = shell.user_ns["hw"]
    assert handle.exitcode == 0 and not handle.is_alive()  # no join: --wait returned after the exit
    assert shell.user_ns["waited"] == "yes"
    assert "[hw] exited with code 0 (stopped): pulled waited into the notebook" in capsys.readouterr().out


def test_wait_with_timeout_terminates_the_remote_child(shell: InteractiveShell, address: str) -> None:
    began = time.monotonic()
    shell.run_cell_magic("process", f"--cluster {address} --wait --timeout 1 --proc slow",
                         "import time\nprint('begun', flush=True)\ntime.sleep(600)\n")
    handle = shell.user_ns["slow"]
    assert time.monotonic() - began < 20
    assert processing.status_word(handle.exitcode) == "stopped[SIGTERM]"
    assert handle.stop_reason == "terminated after the 1 s timeout (--timeout)"
    assert support.pid_gone(handle.pid)  # loopback: the worker's machine is this one


def test_daemon_is_refused_with_the_reason(shell: InteractiveShell, address: str) -> None:
    before = len(ipyprocessing.processes())
    with pytest.raises(UsageError, match="always daemonic on its worker"):
        shell.run_cell_magic("process", f"--cluster {address} --daemon", "print('never')\n")
    assert len(ipyprocessing.processes()) == before


def test_the_panel_shows_remote_and_local_cells_side_by_side(shell: InteractiveShell,
                                                             cluster: Cluster) -> None:
    """One panel, a local cell and a --cluster cell: the remote row names its worker's host beside the pid,
    is never sampled here (its pid is another machine's), and its Terminate button stops the remote child."""
    from ipyprocessing.panel import ProcessPanel

    panel = ProcessPanel()
    sleeper = "import time\nprint('ready', flush=True)\ntime.sleep(60)\n"
    try:
        shell.run_cell_magic("process", "--name here --proc here", sleeper)
        shell.run_cell_magic("process", f"--cluster {cluster.address} --name there --proc there", sleeper)
        here, there = shell.user_ns["here"], shell.user_ns["there"]
        assert support.wait_until(lambda: b"ready" in here.stdout and b"ready" in there.stdout, limit=30)
        local, remote = _panel_row(panel, here), _panel_row(panel, there)
        shown_there = f">{there.pid} on {there.host}<"
        assert support.wait_until(lambda: shown_there in remote.ident.value), remote.ident.value
        assert support.wait_until(lambda: local.entry.memory is not None), "a local child is sampled"
        assert f">{here.pid}<" in local.ident.value
        ticks = panel.board.ticks
        assert support.wait_until(lambda: panel.board.ticks >= ticks + 2)
        assert remote.entry.memory is None, "a remote pid names a process elsewhere: never sampled here"
        remote.button.click()
        stopped = "stopped[SIGTERM]"
        assert support.wait_until(lambda: remote.state.value == stopped, limit=20), remote.state.value
        assert there.exitcode == -signal.SIGTERM
        assert local.state.value == "started"
    finally:
        panel.close()
        for name in ("here", "there"):
            if name in shell.user_ns:
                shell.user_ns[name].terminate()
                shell.user_ns[name].join(30)


def _panel_row(panel: Any, process: Any) -> Any:
    board, found = panel.board, []

    def made() -> bool:
        with board.lock:
            found[:] = [row for entry, row in board.rows.items() if entry.process is process]
        return bool(found)

    assert support.wait_until(made, limit=20), f"no panel row for {process!r}"
    return found[0]

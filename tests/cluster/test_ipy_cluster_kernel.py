"""``%%process --cluster`` end to end: a real Jupyter kernel, driven through jupyter_client as a front
end drives it, against a real Dask LocalCluster (worker processes on loopback).

The session's cluster and its shared kernel (``cluster``, ``kernel``: tests/cluster/conftest.py,
tests/conftest.py) serve these tests, and each checks after a test that it was left clean. The
cluster runs in a helper process (see cluster_support), so its workers are not children of the
test process; the remote children are on this machine, so a test can check their pids directly.
The test that kills a worker waits for the nanny to start a new one.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cluster_support import WORKERS, Cluster
from ipy_kernel import Kernel, is_output_of, shown
from support import pid_gone, wait_until

pytestmark = pytest.mark.timeout(120)

#: Seconds within which a dead worker must show as ``lost`` (the connection ends at once; the rest is margin).
LOST_WITHIN = 10


@pytest.fixture(scope="module", autouse=True)
def no_client_left_in_the_kernel(shared_kernel: object, running_cluster: Cluster) -> Iterator[None]:
    """The cells here make the shared kernel keep a Dask client of the cluster; it goes with the module."""
    yield
    current = shared_kernel.current  # type: ignore[attr-defined]
    if current is not None and not current.closed:
        current.run("from processing.remote import get_client\n"
                    f"get_client({running_cluster.address!r}).close()\n"
                    "del get_client")


def cluster_cell(cluster: Cluster, options: str, body: str) -> str:
    return f"%%process --cluster {cluster.address} {options}\n{body}"


def test_the_cell_returns_at_once_and_its_output_arrives_live(kernel: Kernel, cluster: Cluster,
                                                              tmp_path: Path) -> None:
    cue = tmp_path / "cue"
    cell = kernel.execute(cluster_cell(cluster, "--name live --proc live", (
        "import os, time\n"
        "print('before the wait', flush=True)\n"
        f"while not os.path.exists({str(cue)!r}):\n"
        "    time.sleep(0.01)\n"
        "print('after the wait', flush=True)\n"
    )))
    # The child cannot end before the cue exists: a cell that waited for it would never reply.
    assert kernel.reply(cell, timeout=30)["status"] == "ok"
    kernel.wait_for(lambda m: is_output_of(m, cell) and "before the wait" in shown(m), timeout=30)
    assert kernel.eval("[live.is_alive(), live.state]") == [True, "running"]
    assert not pid_gone(kernel.eval("live.pid"))  # loopback: the worker's machine is this one
    cue.touch()
    last = kernel.wait_for(lambda m: is_output_of(m, cell) and "after the wait" in shown(m), timeout=30)
    assert shown(last).endswith("before the wait\nafter the wait")
    kernel.run("live.join(30)")
    assert kernel.eval("live.exitcode") == 0


def test_the_status_learns_pid_and_host_live_and_terminate_stops_the_remote_child(
        kernel: Kernel, cluster: Cluster) -> None:
    with cluster.busy():  # no free thread: the cell waits for a worker while its row is built
        cell = kernel.run(cluster_cell(cluster, "--name victim --proc victim",
                                       "import time\nprint('ready', flush=True)\ntime.sleep(600)\n"))
        name = kernel.widget(cell, "HTMLModel", "ipyprocessing-name")
        state, button, note = kernel.status_widgets(cell)
        assert "pid - (waiting for a worker)" in kernel.latest(name, "value")
        assert kernel.latest(state, "value") == "pending"
        assert kernel.eval("victim.state") == "pending"
    placed = kernel.wait_value(name, " on tcp://127.0.0.1:", timeout=30)
    assert placed["msg_type"] == "comm_msg"  # an update of the row already shown, not a new row
    pid, host = kernel.eval("[victim.pid, victim.host]")
    assert f"pid {pid} on {host}" in kernel.latest(name, "value")
    assert host in cluster.workers()
    kernel.wait_state(state, "value", "started", timeout=30)
    kernel.click(button)
    kernel.wait_state(state, "value", "stopped[SIGTERM]", timeout=30)
    kernel.wait_state(button, "disabled", True)
    assert "Terminate button" in kernel.note(note, "Terminate")
    assert f"pid {pid} on {host}" in kernel.latest(name, "value")  # the stopped row still says where
    assert kernel.eval("victim.exitcode") == -signal.SIGTERM
    assert wait_until(lambda: pid_gone(pid), limit=10)


def test_wait_and_pull_bring_the_value_back(kernel: Kernel, cluster: Cluster) -> None:
    kernel.run("base = 20")
    cell = kernel.run(cluster_cell(cluster, "--wait --pull answer",
                                   "import time\ntime.sleep(0.3)\nanswer = base + 22\n"))
    assert kernel.eval("answer") == 42  # no join: --wait returned once the value was pulled
    _, _, note = kernel.status_widgets(cell)
    assert kernel.note(note, "pulled") == "pulled answer into the notebook"


def test_wait_serves_the_terminate_button(kernel: Kernel, cluster: Cluster) -> None:
    waiting = kernel.execute(cluster_cell(cluster, "--wait --name waiter", "import time\ntime.sleep(600)\n"))
    state, button, _ = kernel.status_widgets(waiting)
    kernel.wait_state(state, "value", "started", timeout=30)
    kernel.click(button)  # handled while the cell waits, or the cell would wait 600 s
    assert kernel.reply(waiting, timeout=30)["status"] == "ok"
    kernel.wait_state(state, "value", "stopped[SIGTERM]")


def test_interrupting_a_waiting_cell_terminates_the_remote_child(cluster: Cluster,
                                                                 fresh_kernel: Kernel) -> None:
    """An interrupt hurts a kernel for good (see test_ipy_lifecycle), so this test has a kernel of its own."""
    own = fresh_kernel
    waiting = own.execute(cluster_cell(cluster, "--wait --name remote_sleeper --proc remote_sleeper",
                                       "import time\nprint('ready', flush=True)\ntime.sleep(600)\n"),
                          fails=True)
    state, _, note = own.status_widgets(waiting)
    own.wait_for(lambda m: is_output_of(m, waiting) and "ready" in shown(m), timeout=30)
    own.manager.interrupt_kernel()
    reply = own.reply(waiting, timeout=30)
    assert (reply["status"], reply["ename"]) == ("error", "KeyboardInterrupt")
    own.wait_state(state, "value", "stopped[SIGTERM]", timeout=30)
    assert "the kernel was interrupted" in own.note(note, "interrupted")
    pid = own.eval("remote_sleeper.pid")
    assert wait_until(lambda: pid_gone(pid), limit=10)  # loopback: the worker's machine is this one


def test_a_killed_worker_turns_the_cell_lost_within_seconds(kernel: Kernel, cluster: Cluster) -> None:
    """A worker dies here, and the test waits until the nanny has replaced it."""
    cell = kernel.run(cluster_cell(cluster, "--name doomed --proc doomed --pull never",
                                   "import time\nprint('ready', flush=True)\ntime.sleep(600)\n"))
    state, button, note = kernel.status_widgets(cell)
    kernel.wait_state(state, "value", "started", timeout=30)
    pid, host = kernel.eval("[doomed.pid, doomed.host]")
    kernel.run("from ipyprocessing import ProcessPanel\npanel = ProcessPanel()")
    os.kill(cluster.worker_pid(host), signal.SIGKILL)
    began = time.monotonic()
    kernel.wait_state(state, "value", "lost", timeout=LOST_WITHIN)
    assert time.monotonic() - began < LOST_WITHIN
    text = kernel.note(note, "lost:")
    assert f"worker {host}" in text and "died" in text, text
    assert "nothing pulled (never)" in text
    kernel.wait_state(button, "disabled", True)
    assert "no exit code" in kernel.latest(kernel.widget(cell, "HTMLModel", "ipyprocessing-figures"), "value")
    assert kernel.eval("[doomed.state, doomed.exitcode, doomed.is_alive(), 'never' in globals()]") == [
        "lost", None, False, False]
    row = [line for line in kernel.stdout_of("%processes").splitlines() if line.startswith("doomed ")]
    assert row and f"{pid} on {host}" in row[0] and " lost " in row[0], row
    panel_row = "[row.state.value for entry, row in panel.board.rows.items() if entry.name == 'doomed']"
    assert wait_until(lambda: kernel.eval(panel_row) == ["lost"], limit=10), kernel.eval(panel_row)
    line = [line for line in kernel.eval("panel.text()").splitlines() if line.startswith("doomed ")]
    assert line and f"{pid} on {host}" in line[0] and " lost " in line[0], line
    kernel.run("panel.close()")
    assert wait_until(lambda: pid_gone(pid), limit=10)  # the worker's fork server killed the child
    replaced = lambda: host not in cluster.workers() and len(cluster.workers()) == WORKERS  # noqa: E731
    assert wait_until(replaced, limit=60), "the nanny did not replace the killed worker"

"""Fault injection at kernel level (issues 5, 14): no ``%%process`` child, nor its own subprocesses,
outlives its kernel or a Terminate; pulled and sent values do not stay in the kernel.

A real kernel driven through jupyter_client (tests/helpers/ipy_kernel.py) starts
``%%process`` children under every start method, then dies by SIGKILL (as the
out-of-memory killer or a crash kills it) or is restarted by the client. Its
children must be gone within a few seconds, except one started explicitly
with ``detached=True``.
"""

from __future__ import annotations

import os
import signal

import psutil
import pytest
from ipy_kernel import Kernel
from support import pid_gone, wait_until

# Each test kills or restarts its kernel: a fresh_kernel of its own (tests/conftest.py).
pytestmark = pytest.mark.timeout(180)

METHODS = ("fork", "spawn", "forkserver")
GONE_WITHIN = 15  # a generous liveness bound, not a measurement


def _start_children(kernel: Kernel, tmp_path) -> dict[str, int]:
    """One sleeping ``%%process`` child per start method; their pids, read from files they write."""
    files = {}
    for method in METHODS:
        path = str(tmp_path / f"pid-{method}")
        files[method] = path
        kernel.run(
            f"%%process --method {method} --name sleeper-{method}\n"
            "import os, time\n"
            f"with open({path + '.tmp'!r}, 'w') as f:\n"
            "    f.write(str(os.getpid()))\n"
            f"os.replace({path + '.tmp'!r}, {path!r})\n"
            "time.sleep(1000)\n"
        )
    pids = {}
    for method, path in files.items():
        assert wait_until(lambda path=path: os.path.exists(path), 60), f"the {method} child did not start"
        with open(path) as f:
            pids[method] = int(f.read())
    for method, pid in pids.items():
        assert not pid_gone(pid), f"the {method} child {pid} is not running"
    return pids


def _descendants(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children(recursive=True)]


def _still_running(pids: list[int]) -> list[int]:
    return [pid for pid in pids if not pid_gone(pid)]


def _kill_all(pids: list[int]) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def test_children_die_with_a_kernel_killed_by_sigkill_but_a_detached_one_survives(
        fresh_kernel: Kernel, tmp_path) -> None:
    children = _start_children(fresh_kernel, tmp_path)
    detached = fresh_kernel.eval(
        "(lambda p: (p.start(), p.pid)[1])(__import__('processing').Process("
        "target=__import__('time').sleep, args=(1000,), detached=True))")
    kernel_pid = fresh_kernel.manager.provisioner.pid
    everything = _descendants(kernel_pid)  # the %%process children, the kernel's fork server ...
    assert set(children.values()) <= set(everything)
    assert detached in everything
    others = [pid for pid in everything if pid != detached]
    try:
        os.kill(kernel_pid, signal.SIGKILL)
        assert wait_until(lambda: not _still_running(others), GONE_WITHIN, 0.05), (
            f"children of the killed kernel still running: {_still_running(others)} "
            f"(the %%process children by method: {children})")
        assert not pid_gone(detached), "the detached child died with its kernel"
    finally:
        _kill_all(everything)
    assert wait_until(lambda: pid_gone(detached), 10)


def test_a_kernel_restart_from_the_client_leaves_no_children(fresh_kernel: Kernel, tmp_path) -> None:
    children = _start_children(fresh_kernel, tmp_path)
    old_kernel = fresh_kernel.manager.provisioner.pid
    everything = _descendants(old_kernel)
    assert set(children.values()) <= set(everything)
    try:
        fresh_kernel.manager.restart_kernel(now=True)
        assert fresh_kernel.manager.provisioner.pid != old_kernel
        assert wait_until(lambda: not _still_running(everything), GONE_WITHIN, 0.05), (
            f"children of the restarted kernel still running: {_still_running(everything)} "
            f"(the %%process children by method: {children})")
    finally:
        _kill_all(everything)


def test_the_children_are_outside_the_kernels_process_group(fresh_kernel: Kernel, tmp_path) -> None:
    """So a kernel interrupt (SIGINT to its group) does not hit them: the watchdog, not the group,
    must end them when the kernel dies (the test above)."""
    children = _start_children(fresh_kernel, tmp_path)
    kernel_group = os.getpgid(fresh_kernel.manager.provisioner.pid)
    try:
        for method, pid in children.items():
            assert os.getpgid(pid) != kernel_group, f"the {method} child is in the kernel's process group"
    finally:
        fresh_kernel.run("%process_terminate --all")
    assert wait_until(lambda: not _still_running(list(children.values())), GONE_WITHIN, 0.05)


def _start_with_subprocess(kernel: Kernel, tmp_path, method: str) -> int:
    """A ``%%process`` child that starts a ``sleep`` subprocess of its own; the subprocess's pid."""
    path = str(tmp_path / f"sub-{method}")
    kernel.run(
        f"%%process --method {method} --name parent-{method}\n"
        "import os, subprocess, time\n"
        "sub = subprocess.Popen(['sleep', '1000'])\n"
        f"with open({path + '.tmp'!r}, 'w') as f:\n"
        "    f.write(str(sub.pid))\n"
        f"os.replace({path + '.tmp'!r}, {path!r})\n"
        "time.sleep(1000)\n"
    )
    assert wait_until(lambda: os.path.exists(path), 60)
    with open(path) as f:
        return int(f.read())


@pytest.mark.parametrize("method", METHODS)
def test_terminate_stops_the_cells_own_subprocesses(kernel: Kernel, tmp_path, method: str) -> None:
    """Fails before: Terminate signalled the child alone; its subprocess ran on."""
    sub = _start_with_subprocess(kernel, tmp_path, method)
    try:
        assert "stopped[SIGTERM]" in kernel.stdout_of(f"%process_terminate parent-{method}")
        assert wait_until(lambda: pid_gone(sub), GONE_WITHIN), f"the cell's subprocess {sub} ran on"
    finally:
        if not pid_gone(sub):
            os.kill(sub, signal.SIGKILL)


def test_a_cells_subprocesses_die_with_a_kernel_killed_by_sigkill(fresh_kernel: Kernel, tmp_path) -> None:
    subs = [_start_with_subprocess(fresh_kernel, tmp_path, method) for method in METHODS]
    try:
        os.kill(fresh_kernel.manager.provisioner.pid, signal.SIGKILL)
        for sub in subs:
            assert wait_until(lambda sub=sub: pid_gone(sub), GONE_WITHIN), f"{sub} outlived the kernel"
    finally:
        for sub in subs:
            if not pid_gone(sub):
                os.kill(sub, signal.SIGKILL)


MIB = 1 << 20


@pytest.mark.slow
def test_the_kernel_gives_back_the_memory_of_pulled_and_sent_values(fresh_kernel: Kernel) -> None:
    """Fails before: the handle kept every pulled value (three 200 MiB pulls then del: 54 -> 655 MiB)."""
    kernel = fresh_kernel
    kernel.run("import gc, psutil, numpy as np\nrss = lambda: psutil.Process().memory_info().rss")
    before = kernel.eval("rss()")
    for _ in range(3):
        kernel.run("big = np.ones(200 * 2**20 // 8)")  # 200 MiB of float64, sent to the child by value
        kernel.run("%%process --wait --method forkserver --pull y\ny = big + 1")
        assert kernel.eval("float(y[0])") == 2.0
        kernel.run("del big, y\ngc.collect()")
    grown = kernel.eval("rss()") - before
    assert grown < 100 * MIB, f"the kernel kept {grown / MIB:.0f} MiB after three 200 MiB round trips"

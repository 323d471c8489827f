"""Interrupting and shutting down a kernel with ``%%process`` children around, each test in a fresh kernel.

An interrupt signals the kernel's whole process group, and what it reaches
stays hurt for the rest of the kernel's life, so no other test shares these
kernels. The tests wait until the child runs the cell (it prints ``ready``)
before interrupting, so they test the extension, not the child's start-up.
"""

from __future__ import annotations

from collections.abc import Iterator

import psutil
import pytest
from ipy_kernel import Kernel, children_left, is_output_of, parent_of

pytestmark = pytest.mark.timeout(120)

SLEEPER = "import time\nprint('ready', flush=True)\ntime.sleep(600)\n"


@pytest.fixture
def kernel(tmp_path) -> Iterator[Kernel]:
    started = Kernel(str(tmp_path))
    yield started
    started.close()


@pytest.fixture(autouse=True)
def no_child_left_behind(kernel: Kernel) -> Iterator[None]:
    """This module's form of the conftest check (see test_ipy_kernel)."""
    yield
    problems = children_left(kernel)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def test_interrupt_during_wait_terminates_the_child(kernel: Kernel) -> None:
    waiting = kernel.execute(f"%%process --wait --name sleeper\n{SLEEPER}", fails=True)
    state, _, note = kernel.status_widgets(waiting)
    kernel.wait_for(lambda m: is_output_of(m, waiting))
    kernel.manager.interrupt_kernel()
    reply = kernel.reply(waiting)
    assert (reply["status"], reply["ename"]) == ("error", "KeyboardInterrupt")
    kernel.wait_state(state, "value", "stopped[SIGTERM]")
    assert "the kernel was interrupted" in kernel.note(note, "interrupted")


def test_interrupting_another_cell_spares_background_children(kernel: Kernel) -> None:
    background = kernel.run(f"%%process --name survivor --proc survivor\n{SLEEPER}")
    kernel.wait_for(lambda m: is_output_of(m, background))
    busy = kernel.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n", fails=True)
    kernel.wait_for(lambda m: m["msg_type"] == "stream" and parent_of(m) == busy)
    kernel.manager.interrupt_kernel()
    assert kernel.reply(busy)["ename"] == "KeyboardInterrupt"
    assert kernel.eval("survivor.is_alive()") is True
    assert "stopped[SIGTERM]" in kernel.stdout_of("%process_terminate survivor")


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_shutting_the_kernel_down_terminates_its_children(kernel: Kernel, tmp_path, method: str) -> None:
    said_goodbye = tmp_path / "said-goodbye"
    cell = kernel.run(
        f"%%process --method {method}\n"
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(said_goodbye)!r}, 'w').close(), sys.exit(0)))\n"
        f"{SLEEPER}"
    )
    kernel.wait_for(lambda m: is_output_of(m, cell))
    pid = kernel.eval("__import__('ipyprocessing').processes()[-1].pid")
    kernel.close(graceful=True)
    try:
        assert said_goodbye.exists()  # SIGTERM, from the kernel's exit; SIGKILL would leave no file
        assert not psutil.pid_exists(pid)
    finally:
        if psutil.pid_exists(pid):
            psutil.Process(pid).kill()  # the orphan of a failed run must not outlive the test


def test_a_forkserver_process_starts_after_an_interrupt(kernel: Kernel) -> None:
    # The interrupt's SIGINT also reaches the fork server's pre-forked idle children; the next
    # start is handed a dead one, and its exit is never reported.
    kernel.run("%%process --wait\npass")
    busy = kernel.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n", fails=True)
    kernel.wait_for(lambda m: m["msg_type"] == "stream" and parent_of(m) == busy)
    kernel.manager.interrupt_kernel()
    assert kernel.reply(busy)["ename"] == "KeyboardInterrupt"
    try:
        kernel.run("%%process --proc after\nprint('still works')")
        kernel.run("after.join(3)")
        assert kernel.eval("after.exitcode") == 0
    finally:
        kernel.close()  # a lost child would hang the clean-up check, which waits for its exit

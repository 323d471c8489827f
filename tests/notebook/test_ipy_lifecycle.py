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


@pytest.fixture(autouse=True)
def nothing_left_in_the_kernel(fresh_kernel: Kernel) -> Iterator[None]:
    """What the conftest check does for the test process, for the test's kernel: every ``%%process``
    child there has ended and been reaped (or, the kernel shut down, none of them outlived it)."""
    yield
    problems = children_left(fresh_kernel)
    if problems:
        pytest.fail("; ".join(problems), pytrace=False)


def test_interrupt_during_wait_terminates_the_child(fresh_kernel: Kernel) -> None:
    waiting = fresh_kernel.execute(f"%%process --wait --name sleeper\n{SLEEPER}", fails=True)
    state, _, note = fresh_kernel.status_widgets(waiting)
    fresh_kernel.wait_for(lambda m: is_output_of(m, waiting))
    fresh_kernel.manager.interrupt_kernel()
    reply = fresh_kernel.reply(waiting)
    assert (reply["status"], reply["ename"]) == ("error", "KeyboardInterrupt")
    fresh_kernel.wait_state(state, "value", "stopped[SIGTERM]")
    assert "the kernel was interrupted" in fresh_kernel.note(note, "interrupted")


def test_interrupting_another_cell_spares_background_children(fresh_kernel: Kernel) -> None:
    background = fresh_kernel.run(f"%%process --name survivor --proc survivor\n{SLEEPER}")
    fresh_kernel.wait_for(lambda m: is_output_of(m, background))
    busy = fresh_kernel.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n", fails=True)
    fresh_kernel.wait_for(lambda m: m["msg_type"] == "stream" and parent_of(m) == busy)
    fresh_kernel.manager.interrupt_kernel()
    assert fresh_kernel.reply(busy)["ename"] == "KeyboardInterrupt"
    assert fresh_kernel.eval("survivor.is_alive()") is True
    assert "stopped[SIGTERM]" in fresh_kernel.stdout_of("%process_terminate survivor")


@pytest.mark.parametrize("method", ["spawn", "forkserver"])
def test_shutting_the_kernel_down_terminates_its_children(fresh_kernel: Kernel, tmp_path,
                                                           method: str) -> None:
    said_goodbye = tmp_path / "said-goodbye"
    cell = fresh_kernel.run(
        f"%%process --method {method}\n"
        "import signal, sys, time\n"
        f"signal.signal(signal.SIGTERM, lambda *_: (open({str(said_goodbye)!r}, 'w').close(), sys.exit(0)))\n"
        f"{SLEEPER}"
    )
    fresh_kernel.wait_for(lambda m: is_output_of(m, cell))
    pid = fresh_kernel.eval("__import__('ipyprocessing').processes()[-1].pid")
    fresh_kernel.close(graceful=True)
    try:
        assert said_goodbye.exists()  # SIGTERM, from the kernel's exit; SIGKILL would leave no file
        assert not psutil.pid_exists(pid)
    finally:
        if psutil.pid_exists(pid):
            psutil.Process(pid).kill()  # the orphan of a failed run must not outlive the test


def test_a_forkserver_process_starts_after_an_interrupt(fresh_kernel: Kernel) -> None:
    # The interrupt's SIGINT also reaches the fork server's pre-forked idle children; the next
    # start is handed a dead one, and its exit is never reported.
    fresh_kernel.run("%%process --wait\npass")
    busy = fresh_kernel.execute("import time\nprint('sleeping', flush=True)\ntime.sleep(600)\n", fails=True)
    fresh_kernel.wait_for(lambda m: m["msg_type"] == "stream" and parent_of(m) == busy)
    fresh_kernel.manager.interrupt_kernel()
    assert fresh_kernel.reply(busy)["ename"] == "KeyboardInterrupt"
    try:
        fresh_kernel.run("%%process --proc after\nprint('still works')")
        fresh_kernel.run("after.join(3)")
        assert fresh_kernel.eval("after.exitcode") == 0
    finally:
        fresh_kernel.close()  # a lost child would hang the clean-up check, which waits for its exit

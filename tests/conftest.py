"""What every directory of tests shares: the helpers on sys.path, the clean-up checks, the common fixtures.

Every test runs real child processes. After each test the autouse fixture
``no_child_left_behind`` terminates whatever :func:`processing.activeChildren`
still lists and fails the test if any child of the test process is still
running or is an unreaped zombie. The exceptions are the fork server (a
long-lived child that :mod:`processing` starts itself) and the long-lived
helpers of the session-scoped fixtures (the shared kernel, the LocalCluster's
helper process), which check what a test left in them themselves.

The directories run in the order of ``ORDER``, whatever the command line: the
core library's tests first, before any session-scoped helper exists.

The fixtures of a real kernel live here because tests/notebook and
tests/cluster both use them: ``kernel`` (one kernel for the whole session,
tidied after each test) and ``fresh_kernel`` (a kernel of the test's own).
They import Jupyter only when a test asks for them, so tests/core runs with
nothing but the ``test-core`` extra installed.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# The helpers (support, proc_targets ...) are imported by name, by the tests and by the children they
# start, which get this process's sys.path: one entry here serves every directory of tests.
TESTS = Path(__file__).resolve().parent
HELPERS = str(TESTS / "helpers")
if HELPERS not in sys.path:
    sys.path.insert(0, HELPERS)

from support import SESSION_CHILDREN, Events, Output, is_zombie, os_children, wait_until  # noqa: E402

import processing  # noqa: E402

#: The order in which the directories run.
ORDER = ("core", "notebook", "browser", "cluster")


def pytest_report_header() -> str:
    return f"processing {processing.__version__} from {os.path.dirname(processing.__file__)}"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        parents = Path(item.path).resolve().parents
        return next((i for i, name in enumerate(ORDER) if TESTS / name in parents), len(ORDER))

    items.sort(key=rank)  # stable: within a directory the order of collection stays


@pytest.fixture(autouse=True)
def no_child_left_behind() -> Iterator[None]:
    yield
    problems = []
    for child in processing.activeChildren():
        problems.append(f"{child!r} was still running")
        try:
            child.kill()
            child.join(30)
        except Exception as error:
            problems.append(f"cleaning up {child!r} failed: {error!r}")
    # Exited children of processing are reaped by activeChildren() above or by the
    # monitor thread; wait for the latter before calling anything a zombie.
    strays = os_children()

    def reaped_or_running() -> bool:
        strays[:] = os_children()
        return not strays or not all(is_zombie(child) for child in strays)

    wait_until(reaped_or_running, limit=10)
    for child in strays:
        state = "an unreaped zombie" if is_zombie(child) else "running"
        problems.append(f"child pid {child.pid} left {state}")
        try:
            child.kill()
        except Exception:
            pass
        try:
            os.waitpid(child.pid, 0)
        except ChildProcessError:
            pass
    if problems:
        pytest.fail("the test left children behind: " + "; ".join(problems), pytrace=False)


@pytest.fixture(autouse=True)
def restore_global_state() -> Iterator[None]:
    """Undo changes a test makes to the default start method and to the main process's key."""
    method = processing.getStartMethod()
    key = processing.currentProcess().authkey
    yield
    processing.setStartMethod(method)
    processing.currentProcess().setAuthKey(key)


@pytest.fixture
def output() -> Output:
    return Output()


@pytest.fixture
def events() -> Iterator[Events]:
    recorder = Events()
    yield recorder
    recorder.cancel()


# -- IPython: an in-process shell and real kernels (tests/notebook, tests/cluster) -----------------------


@pytest.fixture(scope="session")
def shell() -> Any:
    """The process's InteractiveShell (a singleton) with ``%load_ext ipyprocessing`` done."""
    from IPython.core.interactiveshell import InteractiveShell

    instance = InteractiveShell.instance()
    instance.run_line_magic("load_ext", "ipyprocessing")
    return instance


class SharedKernel:
    """The session's one kernel, started at first use; replaced if a test leaves it unable to answer."""

    def __init__(self, tmp_path_factory: pytest.TempPathFactory) -> None:
        self._tmp_path_factory = tmp_path_factory
        self.current: Any = None

    def get(self) -> Any:
        from ipy_kernel import Kernel

        if self.current is None:
            self.current = Kernel(str(self._tmp_path_factory.mktemp("kernel")))
            SESSION_CHILDREN.add(self.current.manager.provisioner.pid)
        return self.current

    def close(self) -> None:
        if self.current is not None:
            pid = self.current.manager.provisioner.pid
            self.current.close()
            SESSION_CHILDREN.discard(pid)
            self.current = None


@pytest.fixture(scope="session")
def shared_kernel(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedKernel]:
    shared = SharedKernel(tmp_path_factory)
    yield shared
    shared.close()


@pytest.fixture
def kernel(shared_kernel: SharedKernel) -> Iterator[Any]:
    """The session's kernel (``%load_ext ipyprocessing`` done), shared by every test that asks for it.

    After the test, nothing the test started may still run in the kernel or beside it (a
    ``%%process`` cell, a plain ``processing.Process``, a child of the kernel or of the test
    process): what does is stopped and the test fails. Then the kernel forgets the test: its
    stopped processes, its widgets (panels included) and its variables, so that no test sees
    what another made. A test that interrupts, kills, restarts or shuts down its kernel uses
    ``fresh_kernel`` instead.
    """
    from ipy_kernel import tidy

    current = shared_kernel.get()
    yield current
    try:
        problems = tidy(current)
    except Exception as error:  # it cannot answer: the next test gets a new one
        shared_kernel.close()
        problems = [f"the shared kernel failed after the test and was replaced: {error!r}"]
    if problems:
        pytest.fail("the test left the kernel unclean: " + "; ".join(problems), pytrace=False)


@pytest.fixture
def fresh_kernel(tmp_path: Path) -> Iterator[Any]:
    """A kernel of the test's own, closed after it: for a test that interrupts, kills, restarts or
    shuts down its kernel (an interrupt, for one, hurts a kernel for good)."""
    from ipy_kernel import Kernel

    started = Kernel(str(tmp_path))
    yield started
    started.close()

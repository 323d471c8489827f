"""Shared fixtures: the start methods and the clean-up checks.

Every test runs real child processes. After each test the autouse fixture
``no_child_left_behind`` terminates whatever :func:`processing.activeChildren`
still lists and fails the test if any child of the test process is still
running or is an unreaped zombie (the fork server, a long-lived child that
:mod:`processing` starts itself, is the one exception).
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator

import pytest

# The helpers (support, proc_targets ...) are imported by name, by the tests and by the children they
# start, which get this process's sys.path: one entry here serves every directory of tests.
HELPERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "helpers")
if HELPERS not in sys.path:
    sys.path.insert(0, HELPERS)

from support import Events, Output, is_zombie, os_children  # noqa: E402

import processing  # noqa: E402


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
    # monitor thread; give the latter a moment before calling anything a zombie.
    deadline = time.monotonic() + 10
    strays = os_children()
    while strays and all(is_zombie(child) for child in strays) and time.monotonic() < deadline:
        time.sleep(0.02)
        strays = os_children()
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

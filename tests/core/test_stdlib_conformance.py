"""CPython's and the original package's own tests of Process objects, run against ours (issue 14).

- ``cpython_test_multiprocessing`` (tests/helpers): CPython 3.11's Process,
  connection and pickling test classes, bodies unchanged, Process mapped to
  ours, each under every start method;
- ``processing052_tests`` (tests/helpers): processing 0.52's Process,
  connection and pickling tests ported to Python 3.

A test that checks a documented difference (README: *The standard library's
primitives*) is skipped here with its reason; everything else must pass.
"""

from __future__ import annotations

import unittest

import pytest

pytest.importorskip("test.support", reason="CPython's test support package is not installed")

import cpython_test_multiprocessing
import processing052_tests

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

#: CPython tests of documented differences: test name -> why it is skipped.
DIFFERENCES = {
    "test_set_executable": "processing always starts sys.executable (no set_executable)",
    "test_parent_process": "a child dies with its creator unless detached=True: the grandchild cannot "
                           "report its parent's death",
    "test_forkserver_sigint": "it kills the standard library's fork server, not ours (see test_reliability)",
    "test_forkserver_sigkill": "it kills the standard library's fork server, not ours (see test_reliability)",
    "test_issue16955": "Client() before accept() in one thread: our connections authenticate both ways, "
                       "so the client waits for the listener's challenge",
}
#: Listener tests of documented differences (the same Client-before-accept reason).
LISTENER_DIFFERENCES = {"test_context", "test_abstract_socket"}


def _skip_differences(cases: dict[str, type]) -> None:
    for name, case in cases.items():
        for test, reason in DIFFERENCES.items():
            if hasattr(case, test):
                setattr(case, test, unittest.skip(reason)(getattr(case, test)))
        if name.startswith("TestListener_"):
            for test in LISTENER_DIFFERENCES:
                setattr(case, test, unittest.skip(DIFFERENCES["test_issue16955"])(getattr(case, test)))


_skip_differences(cpython_test_multiprocessing.CASES)
globals().update(cpython_test_multiprocessing.CASES)
globals().update(processing052_tests.CASES)

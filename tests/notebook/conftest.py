"""The IPython extension's tests: in-process parts and shells, real kernels, the example notebooks.

The kernel fixtures are in tests/conftest.py (tests/cluster uses them too):
``kernel``, the session's one shared kernel, tidied after each test, and
``fresh_kernel``, a kernel of the test's own for a test that interrupts,
kills, restarts or shuts down its kernel. The in-process tests use the
process's ``shell`` (an InteractiveShell) or the parts directly.

Every test that uses a real kernel is marked ``slow`` here; so are the
notebooks (test_notebooks.py) and the in-process tests that take over a
second, where they are defined.
"""

from __future__ import annotations

import pytest

KERNEL_FIXTURES = {"kernel", "fresh_kernel"}


def pytest_itemcollected(item: pytest.Item) -> None:
    if KERNEL_FIXTURES & set(getattr(item, "fixturenames", ())):
        item.add_marker(pytest.mark.slow)

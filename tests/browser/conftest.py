"""JupyterLab in a real browser (Debian's Chromium driven by Playwright), set up by browser_support.

Each test starts a JupyterLab server and a Chromium of its own, in its
temporary directory. Without Chromium, Playwright or JupyterLab the browser
tests skip and say what is missing (``.ci/install-browser`` installs them).

Every test here is marked ``slow``.
"""

from __future__ import annotations

import pytest


def pytest_itemcollected(item: pytest.Item) -> None:
    item.add_marker(pytest.mark.slow)

"""JupyterLab in a real browser: a ``%%process`` cell's Terminate button, and the process panel.

Headless Chromium opens a notebook in a JupyterLab server of its own, runs
it, and clicks as a user does: the ``%%process`` status widget must go from
``started`` to ``stopped[SIGTERM]``, the panel must show that row changing by
itself, and the panel's own Terminate button must stop a plain
``processing.Process``. A screenshot goes to ``test-artifacts/``. Without
Chromium, Playwright or JupyterLab the test is skipped and says what is missing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import KERNEL_IDLE, chromium, isolated_env, jupyterlab, missing, notebook, screenshot

pytestmark = pytest.mark.timeout(180)
needs_browser = pytest.mark.skipif(missing() is not None, reason=missing() or "")

CELLS = [
    "%load_ext ipyprocessing\n"
    "import processing, time\n"
    "from ipyprocessing.panel import ProcessPanel",
    "%%process --name browser-sleeper\n"
    "import time\n"
    "time.sleep(600)",
    "plain = processing.Process(target=time.sleep, args=(600,), name='plain-sleeper')\n"
    "plain.start()",
    "ProcessPanel()",
]
#: Long enough for a cold start of the page and kernel on a busy CI machine; a guard, not a measure.
WAIT_MS = 60_000


@pytest.fixture
def page(tmp_path: Path) -> Iterator[Any]:
    env = isolated_env(tmp_path)
    with jupyterlab(tmp_path, env) as lab:
        (lab.root / "browser.ipynb").write_text(json.dumps(notebook(CELLS)))
        with chromium(tmp_path, env) as browser_page:
            browser_page.set_default_timeout(WAIT_MS)
            browser_page.goto(lab.url("browser.ipynb"))
            try:
                yield browser_page
            finally:
                screenshot(browser_page, "browser-panel-end.png")
                # Stop the kernel's children before the server goes (it kills the kernel's group anyway).
                for kernel in lab.api("GET", "/api/kernels"):
                    lab.api("DELETE", f"/api/kernels/{kernel['id']}")


@needs_browser
def test_terminate_in_jupyterlab_and_the_panel_follows(page: Any) -> None:
    from playwright.sync_api import expect

    expect.set_options(timeout=WAIT_MS)
    # The readiness trap: the notebook says idle before it has a kernel; wait for the kernel's name.
    expect(page.get_by_text(KERNEL_IDLE)).to_be_visible()
    page.get_by_role("menuitem", name="Run", exact=True).click()
    page.get_by_role("menuitem", name="Run All Cells", exact=True).click()
    expect(page.locator(".jp-InputArea-prompt").filter(has_text=f"[{len(CELLS)}]:")).to_have_count(1)

    # The %%process cell's own status widget.
    status = page.locator(".ipyprocessing-status")
    expect(status.locator(".ipyprocessing-state")).to_have_text("started")

    panel = page.locator(".ipyprocessing-panel")
    cell_row = panel.locator(".ipyprocessing-row").filter(has_text="browser-sleeper")
    plain_row = panel.locator(".ipyprocessing-row").filter(has_text="plain-sleeper")
    expect(cell_row.locator(".ipyprocessing-state")).to_have_text("started")
    expect(plain_row.locator(".ipyprocessing-state")).to_have_text("started")
    expect(panel.locator(".ipyprocessing-authkey-fingerprint")).to_have_text(
        plain_row.locator(".ipyprocessing-key").inner_text())

    expect(plain_row.locator(".ipyprocessing-memory")).to_contain_text("MB")  # the first resource sweep
    screenshot(page, "browser-panel-running.png")

    # Terminate from the cell: its row becomes the static record of how it ended and, by itself, the
    # panel's row follows.
    cell_output = page.locator(".jp-Notebook .jp-Cell").nth(1)  # the %%process cell
    status.get_by_role("button", name="Terminate").click()
    expect(cell_output.locator(".ipyprocessing-record .ipyprocessing-state")).to_have_text("stopped[SIGTERM]")
    expect(page.locator(".ipyprocessing-status")).to_have_count(0)  # the live row is gone
    expect(cell_row.locator(".ipyprocessing-state")).to_have_text("stopped[SIGTERM]")
    expect(cell_row.get_by_role("button", name="Terminate")).to_be_disabled()

    # Terminate from the panel: a plain processing.Process.
    plain_row.get_by_role("button", name="Terminate").click()
    expect(plain_row.locator(".ipyprocessing-state")).to_have_text("stopped[SIGTERM]")
    expect(plain_row.locator(".ipyprocessing-exitcode")).to_have_text("-15")
    expect(plain_row.get_by_role("button", name="Terminate")).to_be_disabled()
    expect(panel.locator(".ipyprocessing-summary")).to_contain_text("0 running, 2 stopped")


def test_a_missing_browser_is_named_in_the_skip_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """The skip must say what is missing and how to get it, never pass silently."""
    import browser_support

    monkeypatch.setattr(browser_support, "CHROMIUM", "/nonexistent/chromium")
    reason = browser_support.missing()
    assert reason is not None
    assert "Chromium at /nonexistent/chromium" in reason and ".ci/install-browser" in reason

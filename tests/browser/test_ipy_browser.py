"""JupyterLab in a real browser: a ``%%process`` child's output lands in its own cell, live.

The kernel tests check the messages; this checks what a user sees, because
whether an output reaches a cell that has finished executing is the front
end's decision. The child's first line and its carriage-return progress must
show in the ``%%process`` cell, updating, while the next cell is still
running, and the progress must stay one line. Uses the browser set-up of
``browser_support`` and is skipped, saying what is missing, without it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import KERNEL_IDLE, chromium, isolated_env, jupyterlab, missing, notebook, screenshot

pytestmark = [pytest.mark.timeout(180), pytest.mark.skipif(missing() is not None, reason=missing() or "")]

#: A guard for a cold start of the page and the kernel on a busy machine, not a measure.
WAIT_MS = 60_000


def cells(release: Path) -> list[str]:
    return [
        "%load_ext ipyprocessing",
        "%%process --name talker\n"
        "import time\n"
        "print('first line', flush=True)\n"
        "i = 0\n"
        "while True:\n"
        "    i += 1\n"
        "    print(f'\\rprogress {i}', end='', flush=True)\n"
        "    time.sleep(0.02)",
        "import os, time\n"
        f"while not os.path.exists({str(release)!r}):\n"
        "    time.sleep(0.05)\n"
        "print('third cell done')",
    ]


@pytest.fixture
def page(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    env = isolated_env(tmp_path)
    release = tmp_path / "release"
    with jupyterlab(tmp_path, env) as lab:
        (lab.root / "output.ipynb").write_text(json.dumps(notebook(cells(release))))
        with chromium(tmp_path, env) as browser_page:
            browser_page.set_default_timeout(WAIT_MS)
            browser_page.goto(lab.url("output.ipynb"))
            try:
                yield browser_page, release
            finally:
                screenshot(browser_page, "browser-process-output.png")
                release.touch()
                for kernel in lab.api("GET", "/api/kernels"):
                    lab.api("DELETE", f"/api/kernels/{kernel['id']}")


def test_the_childs_output_updates_in_its_own_cell_while_another_runs(page: tuple[Any, Path]) -> None:
    from playwright.sync_api import expect

    browser, release = page
    expect.set_options(timeout=WAIT_MS)
    expect(browser.get_by_text(KERNEL_IDLE)).to_be_visible()
    browser.get_by_role("menuitem", name="Run", exact=True).click()
    browser.get_by_role("menuitem", name="Run All Cells", exact=True).click()

    notebook_cells = browser.locator(".jp-Notebook .jp-Cell")
    talker, waiter = notebook_cells.nth(1), notebook_cells.nth(2)
    expect(waiter.locator(".jp-InputArea-prompt")).to_have_text("[*]:")  # the third cell is running
    expect(talker.locator(".ipyprocessing-state")).to_have_text("started")
    # What the child printed, as the cell's Output widget renders it: stdout text.
    shown = talker.locator(".ipyprocessing-output [data-mime-type='application/vnd.jupyter.stdout']").filter(
        has_text="first line")
    expect(shown).to_contain_text("progress")
    before = shown.inner_text()
    expect(shown).not_to_have_text(before)  # it updates by itself
    text = shown.inner_text()
    assert text.count("progress") == 1 and text.index("first line") < text.index("progress")
    expect(waiter.locator(".jp-InputArea-prompt")).to_have_text("[*]:")  # all that while it ran
    assert "progress" not in waiter.locator(".jp-Cell-outputWrapper").inner_text()

    release.touch()
    expect(waiter.locator(".jp-OutputArea-output")).to_have_text("third cell done")
    talker.get_by_role("button", name="Terminate").click()
    # The live row becomes the static record of the end, and the child's output the cell's own.
    expect(talker.locator(".ipyprocessing-record .ipyprocessing-state")).to_have_text("stopped[SIGTERM]")
    kept = talker.locator("[data-mime-type='application/vnd.jupyter.stdout']").filter(has_text="first line")
    expect(kept).to_contain_text("progress")
    expect(talker.locator(".ipyprocessing-output")).to_have_count(0)

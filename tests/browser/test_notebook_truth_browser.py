"""JupyterLab in a real browser: the notebook tells the truth after a reload, a reopen, and at 900 px.

- Reload the page while a child prints: the cell shows what it printed up to now and keeps
  streaming (its outputs are kernel-side state, an Output widget).
- Shut the kernel down, save, reopen: every row that was live is its final record in plain
  mime types, the panel a static table, and nowhere "model not found" or "started".
- A child that ends between cells: its record comes again from the next cell (for nbclient), and the
  page ends with the cell's own record, the child's line shown once.
- The panel at 900 px wide: one scroll area for the table (no scrollbar per row), the columns
  aligned, every column and button there.

Screenshots of each step go to ``test-artifacts/``. Uses the browser set-up of
``browser_support`` and is skipped, saying what is missing, without it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from browser_support import KERNEL_IDLE, chromium, isolated_env, jupyterlab, missing, notebook, screenshot

pytestmark = [pytest.mark.timeout(240), pytest.mark.skipif(missing() is not None, reason=missing() or "")]

#: A guard for a cold start of the page and the kernel on a busy machine, not a measure.
WAIT_MS = 60_000
_WIDGET_MIME = "application/vnd.jupyter.widget-view+json"


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[tuple[Any, Path]]:
    env = isolated_env(tmp_path)
    with jupyterlab(tmp_path, env) as server:
        try:
            yield server, env
        finally:
            for kernel in server.api("GET", "/api/kernels"):
                server.api("DELETE", f"/api/kernels/{kernel['id']}")


def _open(browser: Any, server: Any, name: str) -> None:
    from playwright.sync_api import expect

    browser.set_default_timeout(WAIT_MS)
    expect.set_options(timeout=WAIT_MS)
    browser.goto(server.url(name))
    expect(browser.get_by_text(KERNEL_IDLE)).to_be_visible()


def _run_all(browser: Any) -> None:
    browser.get_by_role("menuitem", name="Run", exact=True).click()
    browser.get_by_role("menuitem", name="Run All Cells", exact=True).click()


def _ticks(text: str) -> list[int]:
    return [int(n) for n in re.findall(r"tick (\d+)", text)]


def test_after_a_reload_the_cell_shows_the_output_so_far_and_keeps_streaming(lab, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    server, env = lab
    (server.root / "reload.ipynb").write_text(json.dumps(notebook([
        "%load_ext ipyprocessing",
        "%%process --name ticker\nimport time\nfor i in range(100000):\n"
        "    print(f'tick {i}', flush=True)\n    time.sleep(0.1)",
    ])))
    with chromium(tmp_path, env) as browser:
        _open(browser, server, "reload.ipynb")
        _run_all(browser)
        cell = browser.locator(".jp-Notebook .jp-Cell").nth(1)
        output = cell.locator(".ipyprocessing-output")
        expect(output).to_contain_text("tick 5")
        seen = max(_ticks(output.inner_text()))
        screenshot(browser, "truth-reload-1-before.png")

        browser.keyboard.press("Control+s")  # as autosave does: a reload shows what was saved
        expect(browser.locator(".jp-mod-dirty")).to_have_count(0)
        browser.reload()
        expect(browser.get_by_text(KERNEL_IDLE)).to_be_visible()
        cell = browser.locator(".jp-Notebook .jp-Cell").nth(1)
        output = cell.locator(".ipyprocessing-output")
        expect(output).to_contain_text("tick")
        after_reload = max(_ticks(output.inner_text()))
        assert after_reload >= seen, "the reloaded page shows less than it showed before"
        expect(output).to_contain_text(f"tick {after_reload + 5}")  # it keeps streaming after the reload
        screenshot(browser, "truth-reload-2-after.png")
        expect(cell.locator(".ipyprocessing-state")).to_have_text("started")
        cell.get_by_role("button", name="Terminate").click()
        # This page never saw the row's display id, so the record's update cannot reach it: the row
        # itself says the end, and its button goes.
        expect(cell.locator(".ipyprocessing-state")).to_have_text("stopped[SIGTERM]")
        expect(cell.locator(".ipyprocessing-figures")).to_contain_text("terminated · exit code -15")
        expect(cell.get_by_role("button", name="Terminate")).to_have_count(0)
        expect(output).to_contain_text("tick")
        screenshot(browser, "truth-reload-3-terminated.png")


def test_shut_down_save_and_reopen_shows_the_final_state(lab, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    server, env = lab
    (server.root / "reopen.ipynb").write_text(json.dumps(notebook([
        "%load_ext ipyprocessing",
        "%%process --name saver\nimport time\nprint('saved line', flush=True)\ntime.sleep(600)",
        "%%process --wait --name quick\nprint('quick line')",
        "%process_panel",
    ])))
    with chromium(tmp_path, env) as browser:
        _open(browser, server, "reopen.ipynb")
        _run_all(browser)
        cells = browser.locator(".jp-Notebook .jp-Cell")
        saver = cells.nth(1)
        expect(saver.locator(".ipyprocessing-output")).to_contain_text("saved line")
        expect(cells.nth(2).locator(".ipyprocessing-record")).to_contain_text("finished · exit code 0")
        expect(cells.nth(3).locator(".ipyprocessing-row")).to_have_count(2)
        screenshot(browser, "truth-reopen-1-running.png")

        browser.get_by_role("menuitem", name="Kernel", exact=True).click()
        browser.get_by_role("menuitem", name="Shut Down Kernel", exact=True).click()
        expect(saver.locator(".ipyprocessing-record")).to_contain_text("ended: the kernel shut down")
        expect(cells.nth(3).locator(".ipyprocessing-panel-record")).to_contain_text("saver")
        screenshot(browser, "truth-reopen-2-shut-down.png")
        browser.keyboard.press("Control+s")
        expect(browser.locator(".jp-mod-dirty")).to_have_count(0)

        saved = json.loads((server.root / "reopen.ipynb").read_text())
        outputs = [cell["outputs"] for cell in saved["cells"]]
        assert not any(_WIDGET_MIME in output.get("data", {}) for output in outputs[1] + outputs[3])
        record = "".join(outputs[1][0]["data"]["text/plain"])  # a saved notebook keeps text as lines
        assert "saver (pid" in record and "stopped[SIGTERM]" in record
        assert "ended: the kernel shut down" in record
        assert any("saved line" in "".join(output.get("text", "")) for output in outputs[1])

        browser.goto("about:blank")
        _open(browser, server, "reopen.ipynb")  # a new page, as after closing the tab; a new kernel
        cells = browser.locator(".jp-Notebook .jp-Cell")
        expect(cells.nth(1).locator(".ipyprocessing-record")).to_contain_text("ended: the kernel shut down")
        expect(cells.nth(1)).to_contain_text("saved line")
        expect(cells.nth(2).locator(".ipyprocessing-record")).to_contain_text("finished · exit code 0")
        expect(cells.nth(3).locator(".ipyprocessing-panel-record table")).to_contain_text("stopped[SIGTERM]")
        page_text = browser.locator(".jp-Notebook").inner_text()
        assert "model not found" not in page_text and "Error displaying widget" not in page_text
        assert "started" not in page_text
        screenshot(browser, "truth-reopen-3-reopened.png")


def test_a_child_that_ends_between_cells_shows_its_record_once(lab, tmp_path: Path) -> None:
    """Its record is sent again from the next cell, for nbclient (with the output's tail): JupyterLab,
    which applies both, must end with the cell's own record, and the child's line shown once."""
    from playwright.sync_api import expect

    server, env = lab
    release = tmp_path / "release"
    (server.root / "between.ipynb").write_text(json.dumps(notebook([
        "%load_ext ipyprocessing",
        f"%%process --name between\nimport os, time\nwhile not os.path.exists({str(release)!r}):\n"
        "    time.sleep(0.02)\nprint('done waiting')",
        "print('next cell ran')",
    ])))
    with chromium(tmp_path, env) as browser:
        _open(browser, server, "between.ipynb")
        _run_all(browser)
        cells = browser.locator(".jp-Notebook .jp-Cell")
        between, last = cells.nth(1), cells.nth(2)
        expect(last.locator(".jp-OutputArea-output")).to_have_text("next cell ran")
        expect(between.locator(".ipyprocessing-state")).to_have_text("started")
        release.touch()  # the child ends now, while no cell runs
        expect(between.locator(".ipyprocessing-record")).to_contain_text("finished · exit code 0")
        last.locator(".jp-InputArea-editor").click()
        browser.keyboard.press("Shift+Enter")  # the next cell, from which the record comes again
        expect(last.locator(".jp-InputArea-prompt")).to_have_text("[4]:")
        expect(last.locator(".jp-OutputArea-output")).to_have_text("next cell ran")
        screenshot(browser, "truth-between-cells.png")
        expect(between.locator(".ipyprocessing-record")).to_have_count(1)
        expect(between.locator(".ipyprocessing-tail")).to_have_count(0)  # the cell's own record, last
        assert between.locator(".jp-OutputArea").inner_text().count("done waiting") == 1


@pytest.mark.parametrize("theme", ["light", "dark"])
def test_the_panel_at_900_px_keeps_its_columns_aligned_and_whole(lab, tmp_path: Path, theme: str) -> None:
    from playwright.sync_api import expect

    server, env = lab
    (server.root / "panel.ipynb").write_text(json.dumps(notebook([
        "%load_ext ipyprocessing",
        "%%process --name a-rather-long-process-name\nimport time\ntime.sleep(600)",
        "%%process --name stubborn\nimport signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "time.sleep(600)",
        "%%process --wait --name done\npass",
        "%process_panel",
    ])))
    with chromium(tmp_path, env) as browser:
        browser.set_viewport_size({"width": 900, "height": 1000})
        _open(browser, server, "panel.ipynb")
        if theme == "dark":
            browser.get_by_role("menuitem", name="Settings", exact=True).click()
            browser.get_by_text("Theme", exact=True).click()
            browser.get_by_role("menuitem", name="JupyterLab Dark", exact=True).click()
            expect(browser.locator("body[data-jp-theme-light='false']")).to_have_count(1)
        _run_all(browser)
        panel = browser.locator(".ipyprocessing-panel")
        rows = panel.locator(".ipyprocessing-row")
        expect(rows).to_have_count(3)
        expect(panel.locator(".ipyprocessing-summary")).to_contain_text("2 running, 1 stopped")
        stubborn = rows.filter(has_text="stubborn")
        stubborn.get_by_role("button", name="Terminate").click()
        expect(stubborn.get_by_role("button", name="Kill")).to_be_visible()  # SIGTERM was ignored
        screenshot(browser, f"truth-panel-900-{theme}.png")

        table = panel.locator(".ipyprocessing-table")
        header_state = panel.locator(".ipyprocessing-header .widget-html").nth(1)  # its "state" heading
        for index in range(3):
            row = rows.nth(index)
            sizes = row.evaluate("node => [node.scrollWidth, node.clientWidth]")
            assert sizes[0] <= sizes[1] + 1, f"row {index} scrolls on its own: {sizes}"
            for part in ("ident", "state", "figures", "terminate"):
                expect(row.locator(f".ipyprocessing-{part}")).to_have_count(1)
            assert abs(row.locator(".ipyprocessing-state").bounding_box()["x"]
                       - header_state.bounding_box()["x"]) < 2, "the state column is not aligned"
            cell_text = row.locator(".ipyprocessing-prompt").inner_text()
            assert re.fullmatch(r"In\[\d+\]", cell_text), cell_text  # which cell started it
        # the table scrolls as one: its far end (the buttons) is reachable, nothing is cut off
        table.evaluate("node => { node.scrollLeft = node.scrollWidth; }")
        for index in range(3):
            expect(rows.nth(index).locator(".ipyprocessing-terminate")).to_be_in_viewport()
        screenshot(browser, f"truth-panel-900-{theme}-scrolled.png")
        stubborn.get_by_role("button", name="Kill").click()
        panel.get_by_role("button", name="Terminate all").click()
        expect(panel.locator(".ipyprocessing-summary")).to_contain_text("0 running, 3 stopped")
        expect(panel.get_by_role("button", name="Terminate all")).to_be_disabled()
        panel.get_by_role("button", name="Clear stopped").click()
        expect(panel.locator(".ipyprocessing-summary")).to_contain_text("none running (3 stopped cleared)")
        panel.get_by_role("button", name="Reveal").click()
        expect(panel.get_by_role("button", name="Hide")).to_be_visible()
        secret = panel.locator(".ipyprocessing-authkey-secret")
        expect(secret).to_have_text(re.compile(r"[0-9a-f]{64}"))
        box, area = secret.bounding_box(), panel.bounding_box()
        assert box["x"] + box["width"] <= area["x"] + area["width"] + 1, "the key runs past the panel"
        screenshot(browser, f"truth-panel-900-{theme}-cleared.png")

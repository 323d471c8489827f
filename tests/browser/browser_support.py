"""JupyterLab and Chromium for the real-browser test, set up the way that works on these machines.

See ``shared/notes/browser-testing.md``: Debian's Chromium driven by Playwright
(never Playwright's own browser download), JupyterLab headless on 127.0.0.1
with a token, every piece of state (HOME, Jupyter and IPython directories,
XDG directories) inside the test's temporary directory.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from support import wait_until

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage"]
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
KERNEL_IDLE = "Python 3 (ipykernel) | Idle"


def missing() -> str | None:
    """Why the browser test cannot run here, or None when everything it needs is installed."""
    needs = []
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        needs.append(f"Chromium at {CHROMIUM} (apt-get install chromium)")
    for module, package in (("playwright", "playwright"), ("jupyterlab", "jupyterlab")):
        if importlib.util.find_spec(module) is None:
            needs.append(f"the {package} Python package")
    if not needs:
        return None
    return "the browser test needs " + ", ".join(needs) + ": run .ci/install-browser"


def isolated_env(root: Path) -> dict[str, str]:
    """The environment with every per-user directory moved under ``root``."""
    env = dict(os.environ)
    dirs = {
        "HOME": "home", "JUPYTER_CONFIG_DIR": "jupyter/config", "JUPYTER_DATA_DIR": "jupyter/data",
        "JUPYTER_RUNTIME_DIR": "jupyter/runtime", "JUPYTERLAB_SETTINGS_DIR": "jupyter/lab-settings",
        "JUPYTERLAB_WORKSPACES_DIR": "jupyter/lab-workspaces", "IPYTHONDIR": "ipython",
        "XDG_CONFIG_HOME": "xdg/config", "XDG_CACHE_HOME": "xdg/cache", "XDG_DATA_HOME": "xdg/data",
        "XDG_RUNTIME_DIR": "xdg/runtime",
    }
    for name, relative in dirs.items():
        path = root / relative
        path.mkdir(parents=True, exist_ok=True)
        env[name] = str(path)
    os.chmod(root / "xdg/runtime", 0o700)
    # No "get notified about Jupyter news?" toast over the notebook (it would also fetch from outside).
    notification = Path(env["JUPYTERLAB_SETTINGS_DIR"], "@jupyterlab", "apputils-extension",
                        "notification.jupyterlab-settings")
    notification.parent.mkdir(parents=True, exist_ok=True)
    notification.write_text(json.dumps({"fetchNews": "false", "checkForUpdates": False}))
    env.pop("PYTHONSTARTUP", None)
    env.pop("JUPYTER_PATH", None)
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Lab:
    """A running JupyterLab server: its URL, token and the folder it serves."""

    def __init__(self, process: subprocess.Popen[bytes], port: int, token: str, root: Path,
                 log: Path) -> None:
        self.process = process
        self.port = port
        self.token = token
        self.root = root
        self.log = log

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url(self, notebook: str) -> str:
        return f"{self.base}/lab/tree/{notebook}?token={self.token}"

    def api(self, method: str, path: str) -> Any:
        request = urllib.request.Request(f"{self.base}{path}", method=method,
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=5) as response:
            body = response.read()
        return json.loads(body) if body else None

    def log_tail(self) -> str:
        try:
            return self.log.read_text(errors="replace")[-4000:]
        except OSError:
            return ""


@contextlib.contextmanager
def jupyterlab(tmp: Path, env: dict[str, str]) -> Iterator[Lab]:
    """Start JupyterLab on a free port of 127.0.0.1 with a random token; shut it down afterwards."""
    root = tmp / "notebooks"
    root.mkdir(exist_ok=True)
    port, token = free_port(), secrets.token_hex(16)
    log = tmp / "jupyterlab.log"
    command = [sys.executable, "-m", "jupyterlab", "--no-browser", "--ServerApp.ip=127.0.0.1",
               f"--ServerApp.port={port}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={token}",
               f"--ServerApp.root_dir={root}", "--LabApp.news_url=",
               "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]
    if os.geteuid() == 0:
        command.append("--allow-root")
    with open(log, "wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=root,
                                   start_new_session=True)  # its own group, so all of it can be killed
    lab = Lab(process, port, token, root, log)

    def answers() -> bool:
        if process.poll() is not None:
            raise RuntimeError(f"JupyterLab exited with {process.returncode}:\n{lab.log_tail()}")
        try:
            lab.api("GET", "/api/status")
            return True
        except (OSError, urllib.error.URLError):
            return False

    try:
        if not wait_until(answers, limit=60, interval=0.1):
            raise RuntimeError(f"JupyterLab did not answer within 60 s:\n{lab.log_tail()}")
        yield lab
    finally:
        _shut_down(lab)


def _shut_down(lab: Lab) -> None:
    with contextlib.suppress(OSError, urllib.error.URLError):
        lab.api("POST", "/api/shutdown")
    try:
        lab.process.wait(15)
    except subprocess.TimeoutExpired:
        pass
    # Whatever is left of its group (kernels, their children) goes too.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(lab.process.pid, signal.SIGKILL)
    lab.process.wait()


def notebook(cells: list[str]) -> dict[str, Any]:
    """A notebook of code cells, with the python3 kernelspec (so Lab starts the kernel by itself)."""
    return {
        "nbformat": 4, "nbformat_minor": 5,
        "metadata": {"kernelspec": {"name": "python3", "display_name": "Python 3 (ipykernel)",
                                    "language": "python"},
                     "language_info": {"name": "python"}},
        "cells": [{"cell_type": "code", "id": f"cell-{i}", "metadata": {}, "source": source,
                   "outputs": [], "execution_count": None} for i, source in enumerate(cells)],
    }


@contextlib.contextmanager
def chromium(tmp: Path, env: dict[str, str]) -> Iterator[Any]:
    """A Playwright page in Debian's headless Chromium, with a fresh profile."""
    from playwright.sync_api import sync_playwright

    profile = tmp / "chromium-profile"
    saved = {name: os.environ.get(name) for name in ("HOME", "XDG_CONFIG_HOME", "XDG_CACHE_HOME")}
    os.environ.update({name: env[name] for name in saved})  # Chromium writes there even with a profile
    os.environ["PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD"] = "1"
    try:
        with sync_playwright() as playwright:
            context = playwright.chromium.launch_persistent_context(
                str(profile), executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS,
                viewport={"width": 1500, "height": 1000})
            try:
                yield context.pages[0] if context.pages else context.new_page()
            finally:
                context.close()
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def screenshot(page: Any, name: str) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path), full_page=True)
    return path


def clean(tmp: Path) -> None:
    shutil.rmtree(tmp, ignore_errors=True)

"""Helpers shared by the test modules of every directory (imported by them and by the conftest files)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import Any

import psutil

METHODS = ("fork", "spawn", "forkserver")
#: This directory: the PYTHONPATH of a fresh interpreter that imports proc_targets or fault_targets.
HERE = os.path.dirname(os.path.abspath(__file__))


def fork_server_pid() -> int | None:
    """The pid of this process's fork server, if it has one running."""
    from processing.forkserver.client import fork_server

    return fork_server().pid


#: Long-lived children of the test process started by session-scoped fixtures (the shared kernel, the
#: LocalCluster's helper process), which check after each test what it left in them. Like the fork
#: server, they are not "left behind" by the test that happens to run while they live.
SESSION_CHILDREN: set[int] = set()


def stdlib_helpers() -> set[int]:
    """The long-lived helpers the standard library starts for this process once (its resource tracker,
    its fork server), which, like our fork server, no test leaves behind."""
    pids = set()
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    if tracker is not None:
        pids.add(getattr(tracker._resource_tracker, "_pid", None))
    forkserver = sys.modules.get("multiprocessing.forkserver")
    if forkserver is not None:
        pids.add(getattr(forkserver._forkserver, "_forkserver_pid", None))
    return pids - {None}


def os_children() -> list[psutil.Process]:
    """This process's direct children, except the fork servers and the session's long-lived helpers."""
    helpers = {fork_server_pid(), *stdlib_helpers(), *SESSION_CHILDREN}
    return [child for child in psutil.Process().children() if child.pid not in helpers]


def is_zombie(child: psutil.Process) -> bool:
    try:
        return child.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def pid_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs (it does not exist, or is a zombie waiting for its reaper)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


class Output:
    """An ``output=`` callback that records ``(stream, bytes)`` chunks."""

    def __init__(self) -> None:
        self.chunks: list[tuple[str, bytes]] = []
        self.lock = threading.Lock()

    def __call__(self, stream: str, data: bytes) -> None:
        with self.lock:
            self.chunks.append((stream, data))

    def data(self, stream: str) -> bytes:
        with self.lock:
            return b"".join(data for name, data in self.chunks if name == stream)

    def text(self, stream: str) -> str:
        return self.data(stream).decode()

    @property
    def streams(self) -> set[str]:
        with self.lock:
            return {name for name, _ in self.chunks}


def run_python(code: str, *args: str, timeout: float = 60, cwd: str | None = None,
               env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``code`` with ``python -c`` in a fresh interpreter (so ``__main__`` has no file)."""
    full_env = dict(os.environ)
    full_env.pop("PYTHONSTARTUP", None)
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
        env=full_env,
    )


def wait_until(predicate: Any, limit: float = 30.0, interval: float = 0.01) -> bool:
    """Poll ``predicate`` until true or ``limit`` seconds pass: a guard against hanging, not a measurement."""
    deadline = time.monotonic() + limit
    while True:
        if predicate():
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


def monitor_settled() -> None:
    """Return once the monitor thread has finished whatever it was doing (e.g. printing a traceback).

    The monitor handles one event at a time, so once it has handled a new
    child's exit it is done with everything before. Needed before a test fails
    on purpose: on Python 3.11 a traceback printed on the monitor thread (which
    calls ast.parse for its carets) while pytest parses source for its report
    can raise "SystemError: AST constructor recursion depth mismatch" (gh-106905).
    """
    import processing

    p = processing.Process(target=int, method="fork")
    p.start()
    p.join()


class Events:
    """Record lifecycle events of the processes a test starts (a subscription filtered by process)."""

    def __init__(self) -> None:
        import processing

        self.lock = threading.Lock()
        self.log: list[tuple[str, Any, Any]] = []
        self.changed = threading.Condition(self.lock)
        self.subscription = processing.subscribe(
            started=lambda p: self._add("started", p, None),
            exited=lambda p, code: self._add("exited", p, code),
            message=lambda p, obj: self._add("message", p, obj),
        )

    def _add(self, event: str, process: Any, value: Any) -> None:
        with self.changed:
            self.log.append((event, process, value))
            self.changed.notify_all()

    def of(self, process: Any) -> list[tuple[str, Any]]:
        with self.lock:
            return [(event, value) for event, p, value in self.log if p is process]

    def wait_for(self, process: Any, event: str, value: Any = None, limit: float = 30.0) -> bool:
        def seen() -> bool:
            return any(e == event and (value is None or v == value) for e, v in self._of_locked(process))

        with self.changed:
            return self.changed.wait_for(seen, timeout=limit)

    def _of_locked(self, process: Any) -> list[tuple[str, Any]]:
        return [(event, value) for event, p, value in self.log if p is process]

    def cancel(self) -> None:
        self.subscription.cancel()

"""The processes this session started, which ``%processes`` and ``%process_terminate`` read."""

from __future__ import annotations

import threading

from .handle import CellProcess
from .status import format_elapsed, pid_text, state_word

__all__ = ["Registry"]


class Registry:
    """Every ``%%process`` child of the session, in start order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._processes: list[CellProcess] = []

    def add(self, process: CellProcess) -> None:
        with self._lock:
            self._processes.append(process)

    def all(self) -> list[CellProcess]:
        with self._lock:
            return list(self._processes)

    def stop_all(self, reason: str) -> list[CellProcess]:
        """Stop every running process (SIGTERM, then SIGKILL if it survives 2 s); returns those stopped.

        Registered to run when the kernel exits: the children are in process
        groups of their own, so the kernel's own clean-up, which signals its
        group, does not reach them, and a notebook's children should not outlive it.
        """
        running = [process for process in self.all() if process.is_alive()]
        for process in running:
            process.stop(reason)
        return running

    def find(self, key: str) -> list[CellProcess]:
        """The processes whose name is ``key``, or whose pid is ``key``."""
        return [p for p in self.all() if p.name == key or str(p.pid) == key]

    def table(self) -> str:
        """A text table: name, pid (and host, for a remote cell), state, exit code, elapsed time."""
        rows = [("name", "pid", "state", "exit code", "elapsed")]
        for process in self.all():
            exitcode = process.exitcode
            ended = process.ended_at is not None  # set once the exit (or the loss) was handled
            rows.append((process.name, pid_text(process), state_word(process, exitcode, ended),
                         "-" if exitcode is None else str(exitcode), format_elapsed(process.elapsed)))
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
                 for row in rows)
        return "\n".join(line.rstrip() for line in lines)

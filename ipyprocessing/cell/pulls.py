"""Pulled names arrive between cells, and a cell that needs one waits for it.

A child's ``--pull`` values come in on the core's monitor thread, whenever the
child ends. Assigned then, they could change a name under a running cell (a
loop over ``x`` would see two values). :class:`Deliveries` assigns them at once
when no cell executes, and otherwise keeps them until the running cell has
finished (``post_execute``), or the next one starts (``pre_execute``), or the
running cell joins that child (``h.join()``: it asked to wait for the values).

Run All, or a cell run right after a ``%%process --pull x``, reads ``x``
before the child has sent it. :class:`WaitForPulls`, one of the shell's AST
transformers, sees the cell's code before it runs: when it reads a name that a
running cell's child will pull, it waits for that child (one line says so, with
a Terminate button; an interrupt stops the wait, not the child), and the cell
then runs with the value (a cell that calls that child's ``join()`` waits by
itself, and the join assigns the values). If the child ends without it, the cell raises a
``NameError`` that names the process and why it failed. The transformer never
raises itself (IPython would drop it): what it must report, it reports by
rewriting the cell into a ``raise`` on the line that reads the name.
"""

from __future__ import annotations

import ast
import threading
import time
from typing import Any

from .clock import clock

__all__ = ["Deliveries", "WaitForPulls", "deliveries", "install"]

#: Seconds a cell waits for a pulled name before it says so (a short wait is not worth a line).
_QUIET_WAIT = 0.5


class Deliveries:
    """Pulled values and the moment they may be assigned: never while a cell executes."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: list[tuple[object, dict[str, Any], dict[str, Any]]] = []
        # Called after the clock's count changed: a value delivered meanwhile is either assigned at
        # once (no cell executes) or waits and is assigned here, under the same lock.
        clock.on_cells(self.assign_waiting, self.assign_waiting)

    def deliver(self, owner: object, namespace: dict[str, Any], values: dict[str, Any]) -> None:
        """Assign ``owner``'s ``values`` in ``namespace`` now if no cell executes, else once it ends."""
        with self._lock:
            if clock.executing:
                self._waiting.append((owner, namespace, values))
            else:
                namespace.update(values)

    def assign_waiting(self, owner: object = None) -> None:
        """Assign now what waits (only ``owner``'s, if given): a cell started or ended, or the running
        cell asked for it, by reading a pulled name before its code started (see
        :class:`WaitForPulls`) or by joining the child."""
        with self._lock:
            kept = []
            for waiting in self._waiting:
                if owner is None or waiting[0] is owner:
                    waiting[1].update(waiting[2])
                else:
                    kept.append(waiting)
            self._waiting = kept


#: The interpreter's one home for pulled values on their way into a notebook.
deliveries = Deliveries()


class WaitForPulls(ast.NodeTransformer):
    """Before a cell runs: wait for the children that will pull the names it reads."""

    def __init__(self, shell: Any, session: Any) -> None:
        super().__init__()
        self._shell = shell
        self._session = session

    def visit_Module(self, node: ast.Module) -> ast.Module:
        try:
            pending = self._pending()
            if not pending:
                return node
            return self._wait(node, pending)
        except Exception:
            from processing import logs

            logs.report_exception("could not wait for the pulled names this cell reads")
            return node

    def _pending(self) -> dict[str, Any]:
        """Each name a running child will pull, with that child (the latest one, if several)."""
        pending: dict[str, Any] = {}
        for entry in self._session.live():
            for name in getattr(entry.process, "pull_names", ()):
                pending[name] = entry.process
        return pending

    def _wait(self, node: ast.Module, pending: dict[str, Any]) -> ast.Module:
        read: dict[str, int] = {}
        stored: set[str] = set()
        joined: set[str] = set()  # h.join(): the cell waits for that child itself, and join assigns
        for child in ast.walk(node):
            if isinstance(child, ast.Name):
                if isinstance(child.ctx, ast.Load):
                    read.setdefault(child.id, child.lineno)
                else:
                    stored.add(child.id)
            elif (isinstance(child, ast.Call) and isinstance(child.func, ast.Attribute)
                  and child.func.attr == "join" and isinstance(child.func.value, ast.Name)):
                joined.add(child.func.value.id)
        user_ns = self._shell.user_ns
        joined_processes = {id(user_ns.get(name)) for name in joined}
        needed = {name: line for name, line in read.items() if name in pending and name not in stored
                  and id(pending[name]) not in joined_processes}
        if not needed:
            return node
        by_process: dict[Any, list[str]] = {}
        for name in needed:
            by_process.setdefault(pending[name], []).append(name)
        for process, names in by_process.items():
            first = min(needed[name] for name in names)
            if not self._wait_for(process, names):
                return _raising(node, first, "KeyboardInterrupt",
                                f"stopped waiting for {_listed(names)}: {process.name} still runs")
        deliveries.assign_waiting()
        for name, line in sorted(needed.items(), key=lambda item: item[1]):
            if name not in user_ns:
                process = pending[name]
                return _raising(node, line, "NameError", _missing(name, process))
        return node

    def _wait_for(self, process: Any, names: list[str]) -> bool:
        """Wait for ``process`` to end, showing why once it takes a while; False if an interrupt stopped
        the wait."""
        from ..view.line import describe, show_line
        from .waiting import wait_ended, wait_for

        kernel = getattr(self._shell, "kernel", None)
        began = time.monotonic()
        try:
            if wait_ended(process, kernel, _QUIET_WAIT):
                process.join()
                return True
        except KeyboardInterrupt:
            return False
        line = show_line(process, f"waiting for {_listed(names)}: {describe(process)} is still running and "
                                  "will pull it when it ends (interrupt the kernel to stop waiting)",
                         self._session, reason="terminated from the line of a cell waiting for its pull")
        try:
            wait_for(process, kernel, None)
        except KeyboardInterrupt:
            line.end(f"stopped waiting for {_listed(names)}: {process.name} (pid {process.pid}) still runs")
            return False
        from ..words import state_word

        line.end(f"waited {time.monotonic() - began:.1f} s for {_listed(names)}: {process.name} "
                 f"(pid {process.pid}) ended, {state_word(process, process.exitcode, True)}")
        return True


def _missing(name: str, process: Any) -> str:
    from ..words import describe_exit, state_word

    reason = process.failed_because or process.stop_reason or describe_exit(process.exitcode)
    return (f"name {name!r} is not defined: {process.name} (pid {process.pid}), which was to pull it, "
            f"ended {state_word(process, process.exitcode, True)} without it ({reason})")


def _listed(names: list[str]) -> str:
    return ", ".join(names)


def _raising(node: ast.Module, line: int, exception: str, message: str) -> ast.Module:
    """The cell rewritten to raise ``exception(message)`` on ``line``, where it reads the name."""
    statement = ast.Raise(exc=ast.Call(func=ast.Name(exception, ast.Load()),
                                       args=[ast.Constant(message)], keywords=[]), cause=None)
    for part in ast.walk(statement):
        part.lineno = part.end_lineno = line  # type: ignore[attr-defined]
        part.col_offset = part.end_col_offset = 0  # type: ignore[attr-defined]
    node.body = [statement]
    return node


def install(shell: Any, session: Any) -> None:
    """Hook the deliveries and the wait into ``shell``; idempotent (reloading the extension)."""
    clock.install(shell)
    shell.ast_transformers[:] = [transformer for transformer in shell.ast_transformers
                                 if not isinstance(transformer, WaitForPulls)]
    shell.ast_transformers.append(WaitForPulls(shell, session))

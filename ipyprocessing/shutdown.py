"""The kernel's end: before a shutdown or a restart, every live row becomes its final record.

A front end keeps what the kernel last sent. If the kernel went without a
word, every status row would still say ``started`` with a Terminate button
that does nothing, and the panel would show rows that no longer exist. So the
kernel's ``do_shutdown`` (a shutdown request, and a restart, which is one with
``restart=True``) first stops every process of the session, waits (a few
seconds at most) until each cell has shown its end ("ended: the kernel was
restarted", the exit code, the tail of its output, in plain mime types), and
replaces every panel with a static table; then the kernel goes on shutting
down. A kernel killed by SIGKILL cannot speak: its children die with it (the
core's parent-death guard, which takes their own subprocesses too), and the
rows keep their last live state until the cell is run again.
"""

from __future__ import annotations

import functools
import time
from typing import Any

from .session import Session

__all__ = ["RESTARTED", "SHUT_DOWN", "end_session", "install"]

RESTARTED = "ended: the kernel was restarted"
SHUT_DOWN = "ended: the kernel shut down"
#: Seconds the kernel waits, at most, for the cells to show their end after their children were stopped.
_SHOW_WAIT = 4.0


def end_session(session: Session, reason: str) -> None:
    """Stop every process of ``session`` and let every view say so (``reason``), before the kernel goes."""
    from .cell.handle import CellHandle
    from .panel import board_of

    stopped = session.stop_all(reason, cells=False)
    deadline = time.monotonic() + _SHOW_WAIT
    for process in stopped:
        if isinstance(process, CellHandle):
            process.wait_shown(max(0.0, deadline - time.monotonic()))
    board = board_of(session)
    if board is not None:
        board.end(reason)


def install(kernel: Any, session: Session) -> None:
    """Make ``kernel``'s shutdown (and restart) end the session first; idempotent."""
    original = kernel.do_shutdown
    if getattr(original, "ends_session", False):
        return

    @functools.wraps(original)
    def do_shutdown(restart: bool) -> Any:
        try:
            end_session(session, RESTARTED if restart else SHUT_DOWN)
        except Exception:
            from processing import logs

            logs.report_exception("could not end the session before the kernel's shutdown")
        return original(restart)

    do_shutdown.ends_session = True  # type: ignore[attr-defined]
    kernel.do_shutdown = do_shutdown

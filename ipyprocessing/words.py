"""Words for a process: its state, its exit, its pid and host, its figures; one home for each.

Shared by the status row, the text view, the panel and the session's table.

An exit code alone (``-9``) tells a notebook user little; these say what
probably happened (``killed by SIGKILL, often the out-of-memory killer``).
"""

from __future__ import annotations

import signal

import processing

__all__ = [
    "KILL_TIP", "describe_exit", "exit_text", "format_bytes", "format_elapsed", "outcome", "pid_text",
    "sent_text", "state_word",
]

_SIGNAL_WORDS = {
    signal.SIGKILL: "killed by SIGKILL, often the out-of-memory killer",
    signal.SIGTERM: "terminated by SIGTERM",
    signal.SIGSEGV: "segmentation fault (SIGSEGV): the process crashed, usually inside a C extension",
    signal.SIGABRT: "aborted (SIGABRT), usually by a failed check inside a C extension",
    signal.SIGINT: "interrupted by SIGINT",
    signal.SIGBUS: "bus error (SIGBUS): the process crashed, often on a truncated memory-mapped file",
    signal.SIGFPE: "arithmetic error (SIGFPE): the process crashed",
}


def describe_exit(exitcode: int | None) -> str:
    """What an exit code means, in words: ``finished``, ``the cell raised ...``, ``killed by SIGKILL ...``.

    None, the end of a remote process whose worker went away, is said too.
    """
    if exitcode is None:
        return "lost: its worker went away before the exit code was reported"
    if exitcode == 0:
        return "finished"
    if exitcode == 1:
        return "the cell raised an exception (see the traceback) or called sys.exit(1)"
    if exitcode > 0:
        return f"the cell called sys.exit({exitcode})"
    try:
        signum = signal.Signals(-exitcode)
    except ValueError:
        return f"killed by signal {-exitcode}"
    return _SIGNAL_WORDS.get(signum, f"killed by {signum.name}")


def outcome(exitcode: int | None) -> str:
    """How it ended, in one word the row puts before the exit code: ``finished``, ``failed``,
    ``terminated``, ``killed``, ``killed by SIGSEGV``, ``lost``."""
    if exitcode is None:
        return "lost"
    if exitcode >= 0:
        return "finished" if exitcode == 0 else "failed"
    if exitcode == -signal.SIGTERM:
        return "terminated"
    if exitcode == -signal.SIGKILL:
        return "killed"
    try:
        return f"killed by {signal.Signals(-exitcode).name}"
    except ValueError:
        return f"killed by signal {-exitcode}"


def exit_text(exitcode: int | None) -> str:
    """The row's exit figure: ``finished · exit code 0``, ``terminated · exit code -15``,
    ``lost · no exit code``."""
    code = "no exit code" if exitcode is None else f"exit code {exitcode}"
    return f"{outcome(exitcode)} · {code}"


#: The tooltip of every Kill button (a row's, the panel's, a line's).
KILL_TIP = "Send SIGKILL, which cannot be ignored"

#: A shipment smaller than this is not worth a figure on the row.
SENT_SHOWN = 1 << 20


def sent_text(sent: tuple[int, float] | None) -> str:
    """``sent 200.0 MB in 40 ms``: what a cell's child was sent and how long it took; empty when small."""
    if sent is None or sent[0] < SENT_SHOWN:
        return ""
    size, seconds = sent
    duration = f"{seconds * 1000:.0f} ms" if seconds < 10 else format_elapsed(seconds)
    return f"sent {format_bytes(size)} in {duration}"


def format_elapsed(seconds: float) -> str:
    """``4.2 s``, ``3 min 05 s``, ``2 h 07 min``: precise while short, compact when long."""
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {secs:02d} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min"


def format_bytes(size: float) -> str:
    """``812 KB``, ``1.5 GB``: memory sizes as people read them (powers of 1024)."""
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024:
            return f"{size:.0f} {unit}" if unit in ("B", "KB") else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"


def pid_text(process: processing.ProcessHandle) -> str:
    """The one way a pid is written: ``4121``; for a remote process, with its worker's address beside it
    (``4121 on tcp://10.0.0.7:39227``: the pid alone would name a process of this machine).

    A process not yet started has none: ``-``; a remote one not yet taken by a worker,
    ``- (waiting for a worker)``.
    """
    pid = process.pid
    pid_word = "-" if pid is None else str(pid)
    if not process.remote:
        return pid_word
    host = process.host
    return f"{pid_word} on {host}" if host else f"{pid_word} (waiting for a worker)"


def state_word(process: processing.ProcessHandle, exitcode: int | None, ended: bool) -> str:
    """The state as the repr says it, plus the two words only a remote handle needs.

    ``started``, ``stopped``, ``stopped[SIGTERM]`` ... for every process;
    ``pending`` for a remote process no worker has taken yet, and ``lost``
    for one that ended without an exit code (its worker died). ``ended`` is
    the caller's own knowledge that the exit was reported (the widget and the
    panel learn it from the core's event, which may come after ``exitcode``
    is set).
    """
    if not ended:
        return "pending" if process.remote and process.state == "pending" else "started"
    if exitcode is None:
        return "lost"
    return processing.status_word(exitcode)

"""The parent-death guard: a child dies with its creator unless it was started ``detached``.

A creator that exits normally terminates or joins its children itself (see
``processing.process.shutdown_children``). This module covers the creator that
dies without cleaning up (SIGKILL, a crash, the out-of-memory killer), with
the cheapest mechanism that is right for how the child was made:

- ``PDEATHSIG``: Linux's ``PR_SET_PDEATHSIG``, set by the child right after
  the fork. The kernel fires it when the *thread* that forked dies, so it is
  used only for a child forked from the creator's main thread.
- ``EOF``: the child watches, on a daemon thread, the read end of a pipe whose
  write end only the creator holds (:func:`alive_fd`); at EOF the creator is
  gone. (Not the control channel: the creator closes that for other reasons,
  such as a forged message.)
- a fork server's children need neither: the server kills the children of a
  client that went away (``processing.forkserver.server``).

A child that leads a process group of its own (``new_process_group``, as a
``%%process`` cell's does) takes its group with it: its guard is ``EOF`` and
kills the group, and the fork server signals the group, so the subprocesses
the child's code started do not outlive a killed creator either.
"""

from __future__ import annotations

import enum
import os
import signal
import sys
import threading

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Guard", "alive_fd", "arm", "choose", "prepare"]

_PR_SET_PDEATHSIG = 1


class Guard(enum.Enum):
    """How a child learns that its creator died."""

    PDEATHSIG = "pdeathsig"
    EOF = "eof"


def choose(*, detached: bool, guarded_by_parent: bool, group_leader: bool = False) -> Guard | None:
    """The guard for a child about to be created by this thread (None: no guard here).

    ``guarded_by_parent`` is False where someone else guards the child (the fork server).
    A child that leads a process group of its own (``group_leader``) takes its
    group with it (the subprocesses its code started), which only a watching
    thread can do: ``PDEATHSIG`` would kill the child alone, at once.
    """
    if detached or not guarded_by_parent:
        return None
    main = threading.current_thread() is threading.main_thread()
    return Guard.PDEATHSIG if main and sys.platform == "linux" and not group_leader else Guard.EOF


_alive: tuple[int, int] | None = None


def alive_fd() -> int:
    """The read end of a pipe whose write end only this process holds: at its EOF, this process is gone."""
    global _alive
    if _alive is None:
        _alive = os.pipe()
    return _alive[0]


def _drop_alive_pipe_in_child() -> None:
    """A forked child keeps the read end (its guard may watch it) but must not keep its parent alive."""
    global _alive
    if _alive is not None:
        os.close(_alive[1])
        _alive = None


os.register_at_fork(after_in_child=_drop_alive_pipe_in_child)

_prctl: Any = None


def prepare(guard: Guard | None) -> None:
    """In the creator, before a fork: load ``prctl`` now, so that the child need not import ctypes."""
    global _prctl
    if guard is Guard.PDEATHSIG and _prctl is None:
        import ctypes

        _prctl = ctypes.CDLL(None, use_errno=True).prctl


def arm(guard: Guard | None, parent_pid: int, watched_fd: int | None, *, group_leader: bool = False) -> None:
    """In the new child: start guarding. If the creator died before the guard was up, die now.

    With ``group_leader``, the child's whole process group dies with the creator.
    """
    if guard is Guard.PDEATHSIG:
        prepare(guard)
        _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
        if os.getppid() != parent_pid:
            os.kill(os.getpid(), signal.SIGKILL)
    elif guard is Guard.EOF:
        assert watched_fd is not None
        threading.Thread(
            target=_die_on_eof, args=(watched_fd, group_leader), name="processing-parent-guard", daemon=True
        ).start()


def _die_on_eof(fd: int, group_leader: bool) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except OSError:
        pass
    if group_leader and os.getpgrp() == os.getpid():
        os.killpg(os.getpid(), signal.SIGKILL)
    os.kill(os.getpid(), signal.SIGKILL)

"""The fork server: a small, fresh interpreter that forks children on request.

Forking it costs the same whatever the client's heap holds, it never runs the
client's ``__main__`` again, and it is not multi-threaded the way a Jupyter
kernel is. The client (one server per client process) talks to it over a
private socketpair: each start request is a fixed-size header plus descriptors
passed with SCM_RIGHTS (exit-status pipe, pid pipe, control channel, fds 1 and 2);
a preload request is the header and the names of modules to import now.

The server forks children ahead of time that wait for a request, so that a
start costs a hand-over, not a fork. When it is at rest, it does so once it
has been quiet for a moment (a fork racing a starting child for the CPUs slows
both), and a spare that still has no request after that moment rehearses the
start-up work (:func:`~processing.bootstrap.rehearse`) so that the real one
costs fewer page faults. When requests come back to back, it forks one spare
right after each hand-over, while the child it handed over runs on another
CPU, unless more requests are already waiting: those it serves by forking on
demand, since every CPU is busy anyway. For each child the server writes
its pid (8 bytes) to the pid pipe and, once it has reaped it, its exit code
(4 bytes) to the status pipe; the client's end of that pipe is the child's
sentinel, readable only once the child is gone. When the
client goes away (EOF) the server terminates the children that were not
started detached, so nothing outlives a dead kernel.

Every child pays, right after the fork, for the after-fork hooks that imported
modules registered: Python code whose first run in a fresh copy-on-write
address space costs a page fault (~2 us) for nearly every page it touches.
threading's and logging's hooks (~170 faults, ~0.3 ms a child) only reset locks
that another thread might have held at the fork; the server forks from its only
thread, holding none, so it imports its own modules with those hooks held back
(see :func:`server_call`) and registers them only if a preloaded module started
a thread. The other hooks (random's reseed among them) are kept.

Modules to preload can be added while the server runs: it imports them before
it serves the next start, and retires the spares forked without them.
"""

from __future__ import annotations

import collections
import gc
import importlib
import os
import selectors
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable

from ._fd import wait_readable

__all__ = ["EXIT", "PID", "PRELOAD", "REQUEST", "START", "main", "server_call"]

START, PRELOAD = 0, 1
#: kind, then for START: detached, new process group, the client's process group;
#: for PRELOAD: two unused flags and the length of the newline-separated module names that follow.
REQUEST = struct.Struct("<B??q")
PID = struct.Struct("<q")
EXIT = struct.Struct("<i")
_FDS_PER_REQUEST = 5
_SHUTDOWN_GRACE = 2.0
_IDLE_CHILDREN = 2
_QUIET = 0.002
_BACK_TO_BACK = 0.005  # requests closer than this keep a spare forked at every hand-over


_OWN_PRELOAD = ("processing.bootstrap", "processing.serialization", "cloudpickle")
_LOCK_RESETS = frozenset({"threading", "logging"})
_Hooks = dict[str, Callable[[], object]]  # keyword arguments of one os.register_at_fork call

#: The first statement the server's interpreter runs, before anything imports
#: threading or logging: it holds back the after-fork hooks registered meanwhile.
_HOLD_FORK_HOOKS = (
    "import os; held = []; register = os.register_at_fork; "
    "os.register_at_fork = lambda **hooks: held.append(hooks)"
)


def server_call(client_fd: int, preload: list[str]) -> str:
    """The code a fresh interpreter runs to become the fork server for the client on ``client_fd``."""
    return (
        f"{_HOLD_FORK_HOOKS}; from processing.forkserver import main; "
        f"main({client_fd}, {preload!r}, register, held)"
    )


def main(
    client_fd: int, preload: list[str], register_at_fork: Callable[..., None], held_hooks: list[_Hooks]
) -> None:
    """Serve fork requests until the client closes its end.

    ``register_at_fork`` is the real ``os.register_at_fork`` and ``held_hooks``
    what modules registered while :func:`server_call` held it back.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    _stdin_to_devnull()
    try:
        for name in _OWN_PRELOAD:
            importlib.import_module(name)
    finally:
        os.register_at_fork = register_at_fork
    hooks = _HeldHooks(register_at_fork, held_hooks)
    _import(preload, hooks)
    client = socket.socket(fileno=client_fd)
    wake_r, wake_w = os.pipe()
    os.set_blocking(wake_r, False)
    os.set_blocking(wake_w, False)
    signal.set_wakeup_fd(wake_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    children: dict[int, tuple[int, bool]] = {}
    own_fds = (client.fileno(), wake_r, wake_w)
    idle: collections.deque[tuple[int, socket.socket]] = collections.deque()
    selector = selectors.DefaultSelector()
    selector.register(client, selectors.EVENT_READ)
    selector.register(wake_r, selectors.EVENT_READ)
    last_request = 0.0
    while True:
        events = selector.select(_QUIET if len(idle) < _IDLE_CHILDREN else None)
        if not events:
            idle.append(_fork_idle(children, own_fds))
        back_to_back = False
        for key, _ in events:
            if key.fileobj is client:
                message, fds, _flags, _addr = socket.recv_fds(client, REQUEST.size, _FDS_PER_REQUEST)
                if not message:
                    _retire(idle)
                    _shut_down(children)
                    return
                kind, _, _, value = REQUEST.unpack(message)
                if kind == PRELOAD:
                    _import(_recv_exact(client, value).decode().split("\n"), hooks)
                    _retire(idle)  # forked without them
                    continue
                _start_child(idle, message, fds, children, own_fds)
                now = time.monotonic()
                back_to_back = now - last_request < _BACK_TO_BACK
                last_request = now
            else:
                _drain(wake_r)
                _reap(children)
        if back_to_back and not idle and not selector.select(0):
            idle.append(_fork_idle(children, own_fds))


class _HeldHooks:
    """The after-fork hooks held back while the server imported its own modules, until they are needed."""

    def __init__(self, register_at_fork: Callable[..., None], held: list[_Hooks]) -> None:
        self._register_at_fork = register_at_fork
        self._held = list(held)

    def settle(self, *, single_threaded: bool) -> None:
        """Register what is needed: threading's and logging's lock resets only once there are threads."""
        still_held = []
        for hooks in self._held:
            resets_locks = all(getattr(hook, "__module__", None) in _LOCK_RESETS for hook in hooks.values())
            if single_threaded and resets_locks:
                still_held.append(hooks)
            else:
                self._register_at_fork(**hooks)
        self._held = still_held


def _import(names: list[str], hooks: _HeldHooks) -> None:
    """Import preloaded modules, then make the heap shareable.

    A module that fails to import is skipped: a child that needs it imports it
    itself, and so reports the error where it can be seen.
    """
    for name in filter(None, names):
        try:
            importlib.import_module(name)
        except Exception:
            pass
    hooks.settle(single_threaded=threading.active_count() == 1)
    gc.freeze()  # objects made so far are shared, not copied, by every child


def _retire(idle: collections.deque[tuple[int, socket.socket]]) -> None:
    """Let the idle children go: each exits when its socket closes, and is reaped like any child."""
    for _pid, sock in idle:
        sock.close()
    idle.clear()


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _start_child(
    idle: collections.deque[tuple[int, socket.socket]],
    message: bytes,
    fds: list[int],
    children: dict[int, tuple[int, bool]],
    own_fds: tuple[int, ...],
) -> None:
    """Serve a request with an idle child (or a fresh fork), tell the client its pid, keep its status pipe.

    The pid goes out before the idle child is woken: on a busy machine the woken
    child may take the server's CPU, and the client (a status line showing the
    pid, say) should not wait for that.
    """
    _, detached, new_group, client_group = REQUEST.unpack(message)
    status_w, pid_w, *child_ends = fds
    spare = _live_spare(idle, None if detached else (new_group, client_group))
    if spare is None:
        pid = _fork_child(children, own_fds, fds, message)[0]
        if not detached:
            try:
                os.setpgid(pid, pid if new_group else client_group)
            except OSError:
                pass  # the child did it first
        _announce(pid_w, pid)
    else:
        pid, sock = spare
        _announce(pid_w, pid)
        try:
            socket.send_fds(sock, [message], fds)
        except OSError:
            exitcode = 255  # it died since _live_spare looked: the start is lost, as if killed at once
            _report(status_w, exitcode)
            status_w = -1
        finally:
            sock.close()
    if status_w >= 0:
        children[pid] = (status_w, detached)
    for fd in (pid_w, *child_ends):
        os.close(fd)


def _live_spare(
    idle: collections.deque[tuple[int, socket.socket]], group: tuple[bool, int] | None
) -> tuple[int, socket.socket] | None:
    """The first idle child still alive, placed in its process group now (``group``: new, or the client's)."""
    while idle:
        pid, sock = idle.popleft()
        if not wait_readable(sock.fileno(), 0):  # a live idle child never writes: readable means it is gone
            try:
                # As the child itself does first thing: whoever is first wins.
                if group is not None:
                    os.setpgid(pid, pid if group[0] else group[1])
                return pid, sock
            except OSError:
                pass
        sock.close()
    return None


def _announce(pid_w: int, pid: int) -> None:
    try:
        os.write(pid_w, PID.pack(pid))
    except OSError:
        pass  # the client has gone


def _report(status_w: int, exitcode: int) -> None:
    try:
        os.write(status_w, EXIT.pack(exitcode))
    except OSError:
        pass  # the client has gone
    os.close(status_w)


def _fork_idle(children: dict[int, tuple[int, bool]], own_fds: tuple[int, ...]) -> tuple[int, socket.socket]:
    """Fork a child ahead of time: it warms up, then waits for a request."""
    pid, sock = _fork_child(children, own_fds, None, None)
    assert sock is not None
    return pid, sock


def _fork_child(
    children: dict[int, tuple[int, bool]],
    own_fds: tuple[int, ...],
    request_fds: list[int] | None,
    message: bytes | None,
) -> tuple[int, socket.socket | None]:
    """Fork a child that serves ``request_fds`` at once or, given None, waits for a request on a socket."""
    ours, theirs = socket.socketpair() if request_fds is None else (None, None)
    pid = os.fork()
    if pid == 0:
        exitcode = 1
        try:
            signal.set_wakeup_fd(-1)
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            for fd in (*own_fds, *(w for w, _ in children.values())):
                os.close(fd)
            from .bootstrap import enter_group, rehearse, spawn_main

            if theirs is not None:
                ours.close()
                if not wait_readable(theirs.fileno(), _QUIET):
                    rehearse()  # at rest: there is time to take the faults now
                message, request_fds, _flags, _addr = socket.recv_fds(theirs, REQUEST.size, _FDS_PER_REQUEST)
                theirs.close()
                if not message:
                    os._exit(0)  # retired: the server is shutting down, or preloaded more
            _, detached, new_group, client_group = REQUEST.unpack(message)
            enter_group(detached=detached, new_group=new_group, pgid=client_group)
            status_w, pid_w, channel_fd, out_fd, err_fd = request_fds
            os.close(status_w)
            os.close(pid_w)
            spawn_main(channel_fd, out_fd, err_fd)
        finally:
            os._exit(exitcode)
    if theirs is not None:
        theirs.close()
    return pid, ours


def _stdin_to_devnull() -> None:
    """Children must not read the client's stdin; doing this once here spares each child the work."""
    devnull = os.open(os.devnull, os.O_RDONLY)
    os.dup2(devnull, 0)
    os.close(devnull)
    sys.stdin = open(os.devnull)  # noqa: SIM115 - it lives as long as the server


def _drain(fd: int) -> None:
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass


def _reap(children: dict[int, tuple[int, bool]]) -> None:
    while True:
        try:
            pid, status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return
        entry = children.pop(pid, None)
        if entry is not None:
            _report(entry[0], os.waitstatus_to_exitcode(status))


def _shut_down(children: dict[int, tuple[int, bool]]) -> None:
    """The client has gone: terminate its attached children, then kill what is left."""
    attached = [pid for pid, (_, detached) in children.items() if not detached]
    for signum in (signal.SIGTERM, signal.SIGKILL):
        for pid in attached:
            try:
                os.kill(pid, signum)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + _SHUTDOWN_GRACE
        while any(pid in children for pid in attached) and time.monotonic() < deadline:
            _reap(children)
            time.sleep(0.01)
        attached = [pid for pid in attached if pid in children]
        if not attached:
            return

"""The fork server: a small, fresh interpreter that forks children on request.

Forking it costs the same whatever the client's heap holds, it never runs the
client's ``__main__`` again, and it is not multi-threaded the way a Jupyter
kernel is. Its client (one server per client process, see
:mod:`~processing.forkserver.client`) talks to it over a private socketpair
(see :mod:`~processing.forkserver.protocol`).

The server forks children ahead of time that wait for a request, so that a
start costs a hand-over, not a fork. When it is at rest, it does so once it
has been quiet for a moment (a fork racing a starting child for the CPUs slows
both), and a spare that still has no request after that moment rehearses the
start-up work (:func:`~processing.launch.bootstrap.rehearse`) so that the real one
costs fewer page faults. When requests come back to back, it forks one spare
right after each hand-over, while the child it handed over runs on another
CPU, unless more requests are already waiting: those it serves by forking on
demand, since every CPU is busy anyway. When the client goes away (EOF) the
server terminates the children that were not started detached, so nothing
outlives a dead kernel: this is their parent-death guard.

Every child pays, right after the fork, for the after-fork hooks that imported
modules registered: Python code whose first run in a fresh copy-on-write
address space costs a page fault (~2 us) for nearly every page it touches.
threading's and logging's hooks (~170 faults, ~0.3 ms a child) reset locks that
another thread might have held at the fork (and threading's notes the new
native thread id, which a child here sets itself); the server forks from its only
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
import sys
import threading
import time
from collections.abc import Callable

from .._fd import close_all, read_exact, wait_readable
from .protocol import EXIT, FDS_PER_START, MAX_FDS, PID, READY, REQUEST, Kind

__all__ = ["Server", "main", "server_call"]

_SHUTDOWN_GRACE = 2.0
_IDLE_CHILDREN = 2
_QUIET = 0.002
_SPARE_BACKOFF = 1.0  # seconds without spares after a fork failed
_CLIENT_GONE = "the client closed its end in the middle of a request"
_BACK_TO_BACK = 0.005  # requests closer than this keep a spare forked at every hand-over
_SETTLE = 0.05  # seconds after a hand-over during which a spare waits for that child to end


#: What every child needs. The stdlib's resource tracker (and multiprocessing.util, spawn and
#: subprocess with it) is adopted by every child of a parent that has used the stdlib: without it
#: here, each of those children would import them afresh, some 10 ms a start.
_OWN_PRELOAD = ("processing.launch.bootstrap", "processing.serialization", "cloudpickle",
                "multiprocessing.resource_tracker")
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
        f"{_HOLD_FORK_HOOKS}; from processing.forkserver.server import main; "
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
    _load_prctl()
    server = Server(socket.socket(fileno=client_fd), hooks)
    server.client.sendall(READY)  # the client reports a server that dies before this (a preload crashed it)
    try:
        server.serve()
    finally:
        # Also when something above failed: a client that sees the server gone
        # counts its children as ended, so none may be left running.
        server.shut_down()


class Server:
    """The server's state: its client, the children it reports on, and the spares it keeps."""

    def __init__(self, client: socket.socket, hooks: _HeldHooks) -> None:
        self.client = client
        self.hooks = hooks
        self.wake_r, self.wake_w = os.pipe()
        os.set_blocking(self.wake_r, False)
        os.set_blocking(self.wake_w, False)
        signal.set_wakeup_fd(self.wake_w)
        signal.signal(signal.SIGCHLD, lambda *_: None)
        self.children: dict[int, tuple[int, bool]] = {}  # pid: (status pipe, detached)
        self.idle: collections.deque[tuple[int, socket.socket]] = collections.deque()
        self.selector = selectors.DefaultSelector()
        self.selector.register(client, selectors.EVENT_READ)
        self.selector.register(self.wake_r, selectors.EVENT_READ)
        self.last_request = 0.0
        self.no_spares_until = 0.0  # after a failed fork: forking again at once would fail too

    def serve(self) -> None:
        """Serve requests until the client closes its end."""
        while True:
            events = self.selector.select(self._timeout())
            if not events:
                self._fork_spare()
            back_to_back = False
            for key, _ in events:
                if key.fileobj is not self.client:
                    _drain(self.wake_r)
                    self.reap()
                    continue
                message, fds, flags, _addr = socket.recv_fds(self.client, REQUEST.size, MAX_FDS)
                if not message:
                    return
                kind, _, _, value, inherited = REQUEST.unpack(message)
                if kind == Kind.PRELOAD:
                    _import(read_exact(self.client, value, eof=_CLIENT_GONE).decode().split("\n"), self.hooks)
                    self.retire_spares()  # forked without them
                elif len(fds) != FDS_PER_START + inherited or flags & socket.MSG_CTRUNC:
                    close_all(*fds)  # descriptors lost on the way (none left?): the start fails
                else:
                    self._start_child(message, fds)
                    now = time.monotonic()
                    back_to_back = now - self.last_request < _BACK_TO_BACK
                    self.last_request = now
            if back_to_back and not self.idle and not self.selector.select(0):
                self._fork_spare()

    def _timeout(self) -> float | None:
        """Replenish the spares once the server has been quiet for a moment and, while a spare is
        still ready, not while a child it has just handed over may still be running (for up to
        ``_SETTLE`` seconds): a fork then would race that child for the CPUs and hold back the
        report of its end."""
        if len(self.idle) >= _IDLE_CHILDREN:
            return None
        now = time.monotonic()
        settled = self.last_request + _SETTLE if self.children and self.idle else 0.0
        return max(_QUIET, self.no_spares_until - now, settled - now)

    def _start_child(self, message: bytes, fds: list[int]) -> None:
        """Serve a request with an idle child or a fresh fork; tell the client its pid; keep the status pipe.

        The pid goes out before the idle child is woken: on a busy machine the
        woken child may take the server's CPU, and the client (a status line
        showing the pid, say) should not wait for that.
        """
        _, detached, new_group, client_group, _ = REQUEST.unpack(message)
        status_w, pid_w, *child_ends = fds
        try:
            spare = self._live_spare(None if detached else (new_group, client_group))
            if spare is None:
                try:
                    pid = self._fork(fds, message)[0]
                except OSError as error:
                    _fork_failed(status_w, pid_w, child_ends[2], error)
                    return
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
                    # It died since _live_spare looked, most likely of the client's own signal
                    # (a terminate() right after start() can follow the pid this fast): its own
                    # exit status, which reap() reports, says how it ended.
                    pass
                finally:
                    sock.close()
            self.children[pid] = (status_w, detached)
        finally:
            close_all(pid_w, *child_ends)

    def _live_spare(self, group: tuple[bool, int] | None) -> tuple[int, socket.socket] | None:
        """The first idle child still alive, placed in its process group (``group``: new, or the client's)."""
        while self.idle:
            pid, sock = self.idle.popleft()
            alive = not wait_readable(sock.fileno(), 0)  # a live idle child never writes: readable means gone
            if alive and group is not None:
                try:
                    # As the child itself does first thing: whoever is first wins.
                    os.setpgid(pid, pid if group[0] else group[1])
                except ProcessLookupError:
                    alive = False
                except OSError:
                    pass  # it cannot join that group (the client left its session?), nor could it itself
            if alive:
                return pid, sock
            sock.close()
        return None

    def _fork_spare(self) -> None:
        """Fork a child ahead of time: it warms up, then waits for a request."""
        try:
            pid, sock = self._fork(None, None)
        except OSError:
            self.no_spares_until = time.monotonic() + _SPARE_BACKOFF
            return
        assert sock is not None
        self.idle.append((pid, sock))

    def _fork(self, request_fds: list[int] | None, message: bytes | None) -> tuple[int, socket.socket | None]:
        """Fork a child that serves ``request_fds`` at once or, given None, a spare that waits on a socket."""
        ours, theirs = socket.socketpair() if request_fds is None else (None, None)
        inherited = [
            self.client.fileno(),
            self.wake_r,
            self.wake_w,
            self.selector.fileno(),
            *(status_w for status_w, _ in self.children.values()),
            *(sock.fileno() for _, sock in self.idle),
        ]
        server_pid = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            for sock in (ours, theirs):
                if sock is not None:
                    sock.close()
            raise
        if pid == 0:
            try:
                _die_with(server_pid)
                signal.set_wakeup_fd(-1)
                signal.signal(signal.SIGCHLD, signal.SIG_DFL)
                signal.signal(signal.SIGINT, signal.default_int_handler)
                threading.main_thread()._set_native_id()  # type: ignore[attr-defined]  # as the held-back hook did
                close_all(*inherited)
                if ours is not None:
                    ours.close()
                _run_child(theirs, request_fds, message)
            finally:
                os._exit(1)
        if theirs is not None:
            theirs.close()
        return pid, ours

    def retire_spares(self) -> None:
        """Let the idle children go: each exits when its socket closes, and is reaped like any child."""
        for _pid, sock in self.idle:
            sock.close()
        self.idle.clear()

    def reap(self) -> None:
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            entry = self.children.pop(pid, None)
            if entry is not None:
                _report(entry[0], os.waitstatus_to_exitcode(status))

    def shut_down(self) -> None:
        """The client has gone: terminate its attached children, then kill what is left."""
        self.retire_spares()
        attached = [pid for pid, (_, detached) in self.children.items() if not detached]
        for signum in (signal.SIGTERM, signal.SIGKILL):
            for pid in attached:
                _signal_with_group(pid, signum)
            deadline = time.monotonic() + _SHUTDOWN_GRACE
            while any(pid in self.children for pid in attached) and time.monotonic() < deadline:
                self.reap()
                time.sleep(0.01)
            attached = [pid for pid in attached if pid in self.children]
            if not attached:
                return


def _run_child(
    spare_sock: socket.socket | None, request_fds: list[int] | None, message: bytes | None
) -> None:
    """In a new child: a spare first waits for its request on ``spare_sock``; then run the request."""
    from ..launch import stdlib
    from ..launch.bootstrap import enter_group, rehearse, spawn_main

    if spare_sock is not None:
        if not wait_readable(spare_sock.fileno(), _QUIET):
            rehearse()  # at rest: there is time to take the faults now
        message, request_fds, _flags, _addr = socket.recv_fds(spare_sock, REQUEST.size, MAX_FDS)
        spare_sock.close()
        if not message:
            os._exit(0)  # retired: the server is shutting down, or preloaded more
    assert message is not None and request_fds is not None
    _, detached, new_group, client_group, _ = REQUEST.unpack(message)
    if detached and _prctl is not None:
        _prctl(_PR_SET_PDEATHSIG, 0)  # it may outlive its creator, and so the server
    enter_group(detached=detached, new_group=new_group, pgid=client_group)
    status_w, pid_w, channel_fd, out_fd, err_fd, *stdlib.inherited_fds = request_fds
    close_all(status_w, pid_w)
    spawn_main(channel_fd, out_fd, err_fd)


def _fork_failed(status_w: int, pid_w: int, err_fd: int, error: OSError) -> None:
    """Tell the client (pid 0: nothing runs), and the user on the would-be child's stderr."""
    try:
        os.write(err_fd, f"processing: the fork server could not start a child: {error}\n".encode())
    except OSError:
        pass
    _announce(pid_w, 0)
    _report(status_w, 255)


_PR_SET_PDEATHSIG = 1
_prctl: Callable[..., int] | None = None


def _load_prctl() -> None:
    """Linux: load ``prctl`` once, so that every child can ask to die with the server."""
    global _prctl
    if sys.platform == "linux":
        try:
            import ctypes

            _prctl = ctypes.CDLL(None, use_errno=True).prctl
        except (ImportError, OSError, AttributeError):
            _prctl = None


def _die_with(server_pid: int) -> None:
    """In a new child: be killed if the server dies (SIGKILL, a crash), so that no child outlives
    the one process that reports its status; if it already died, go now."""
    if _prctl is None:
        return
    _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != server_pid:
        os._exit(1)


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
        except BaseException:  # SystemExit too: a module's import must not end the server
            pass
    hooks.settle(single_threaded=threading.active_count() == 1)
    gc.freeze()  # objects made so far are shared, not copied, by every child


def _announce(pid_w: int, pid: int) -> None:
    try:
        os.write(pid_w, PID.pack(pid))
    except OSError:
        pass  # the client has gone


def _signal_with_group(pid: int, signum: int) -> None:
    """Signal a child, and its process group with it if it leads one (a cell's subprocesses)."""
    try:
        if os.getpgid(pid) == pid:
            os.killpg(pid, signum)
        else:
            os.kill(pid, signum)
    except ProcessLookupError:
        pass


def _report(status_w: int, exitcode: int) -> None:
    try:
        os.write(status_w, EXIT.pack(exitcode))
    except OSError:
        pass  # the client has gone
    os.close(status_w)


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

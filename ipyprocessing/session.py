"""The session registry: every process this kernel started, however it was started.

The ``%%process`` registry (``registry.py``) knows only the cells' children.
The panel must also show a plain ``processing.Process(...).start()`` from a
cell or from a library, so this registry listens to the core's lifecycle
events instead of being told by a magic. It knows nothing of widgets: panels
read it and are told when it changed; all panels read the same one, so they
agree.

Events arrive on foreign threads (``started`` on whichever thread called
``start()``, ``exited`` on the core's monitor thread). They only update the
entries under a lock and notify listeners, which must be quick: a listener
runs inside ``start()``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import psutil

import processing
from processing.authkey import fingerprint

from .status import state_word

__all__ = ["Entry", "Session", "current"]

#: Stopped entries kept at most; the oldest stopped ones go first (live ones are always kept).
MAX_STOPPED = 1000


class Entry:
    """What the session knows of one process: identity, lifecycle, and its last resource figures.

    ``cpu`` is None until two samples exist (psutil's first reading only starts
    the measurement); ``memory`` is the resident set size in bytes. A remote
    handle (``processing.remote.RemoteProcess``: it has a ``host``) goes
    through the same events; its pid is on another machine, so it is not
    sampled here, and a handle whose worker was lost ends without an exit code.
    """

    __slots__ = ("_pid", "_usage", "cpu", "ended", "exitcode", "fingerprint", "memory", "process", "remote",
                 "started")

    def __init__(self, process: processing.Process, started: float) -> None:
        self.process = process
        self.remote = process.remote
        self._pid: int | None = None  # read lazily: a fork server child's pid may not be known yet
        self.fingerprint: str = fingerprint(process.authkey)
        self.started = started
        self.ended: float | None = None
        self.exitcode: int | None = None
        self.cpu: float | None = None
        self.memory: int | None = None
        self._usage: psutil.Process | None = None

    @property
    def name(self) -> str:
        return self.process.name

    @property
    def pid(self) -> int | None:
        """The child's pid, read on first use (not in ``start()``'s event, which must stay quick)."""
        if self._pid is None:
            self._pid = self.process.pid
        return self._pid

    @property
    def host(self) -> str | None:
        """Where a remote process runs (None for a local one, or before it runs)."""
        return self.process.host

    @property
    def alive(self) -> bool:
        """Until the core reported the exit (so a row never says stopped before the output is in)."""
        return self.ended is None

    @property
    def state(self) -> str:
        """The repr's word: ``started``, ``stopped``, ``stopped[SIGTERM]``, ``stopped[1]``.

        A remote handle may also be ``pending`` (waiting for a worker) or ``lost``
        (its worker went away: no exit code will ever come).
        """
        return state_word(self.process, self.exitcode, self.ended is not None)

    def elapsed(self, now: float) -> float:
        """Seconds from start to ``now``, or to the exit once stopped."""
        return (self.ended if self.ended is not None else now) - self.started

    def sample(self) -> None:
        """Read CPU % and memory of the live process (the caller sweeps all entries at once)."""
        if self.ended is not None or self.remote or self.pid is None:
            return
        usage = self._usage  # the exited event may drop it meanwhile, on the monitor thread
        try:
            if usage is None:
                usage = self._usage = psutil.Process(self.pid)
                with usage.oneshot():
                    usage.cpu_percent(None)  # the first reading only starts the measurement
                    self.memory = usage.memory_info().rss
                return
            with usage.oneshot():
                self.cpu = usage.cpu_percent(None)
                self.memory = usage.memory_info().rss
        except psutil.Error:
            pass  # it is exiting: the exited event is on its way

    def __repr__(self) -> str:
        return f"<Entry {self.name} pid={self.pid} {self.state}>"


Listener = Callable[[], Any]


class Session:
    """All processes of the session in start order, kept current by the core's events."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[processing.Process, Entry] = {}
        self._listeners: list[Listener] = []
        self._subscription: processing.Subscription | None = None
        self.version = 0  # bumped on every change: a cheap "anything new?" for readers

    def watch(self) -> Session:
        """Subscribe to the core's events and adopt the children already running; idempotent."""
        with self._lock:
            if self._subscription is not None:
                return self
            self._subscription = processing.subscribe(started=self._started, exited=self._exited)
        # Adopted in start order (pids grow), with their real start time.
        for process in sorted(processing.activeChildren(), key=lambda process: process.pid or 0):
            self._started(process, _start_time(process, self._clock))
        return self

    def close(self) -> None:
        """Stop listening to the core (tests use this; the session's own registry lives for ever)."""
        with self._lock:
            if self._subscription is not None:
                self._subscription.cancel()
                self._subscription = None

    # -- reading --------------------------------------------------------------

    def entries(self) -> list[Entry]:
        with self._lock:
            return list(self._entries.values())

    def live(self) -> list[Entry]:
        with self._lock:
            return [entry for entry in self._entries.values() if entry.alive]

    def now(self) -> float:
        return self._clock()

    def sample(self) -> list[Entry]:
        """One psutil sweep over every live process; returns the entries sampled."""
        live = self.live()
        for entry in live:
            entry.sample()
        return live

    # -- changing ---------------------------------------------------------------

    def clear_stopped(self) -> int:
        """Forget the stopped processes; returns how many."""
        with self._lock:
            stopped = [process for process, entry in self._entries.items() if not entry.alive]
            for process in stopped:
                del self._entries[process]
            if stopped:
                self.version += 1
        if stopped:
            self._notify()
        return len(stopped)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener()`` after every change (on the thread that made it); returns a remover."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

        def remove() -> None:
            with self._lock:
                self._listeners = [other for other in self._listeners if other is not listener]

        return remove

    # -- the core's events ----------------------------------------------------------

    def _started(self, process: processing.Process, started: float | None = None) -> None:
        with self._lock:
            if process in self._entries:
                return
            self._entries[process] = Entry(process, self._clock() if started is None else started)
            self.version += 1
        self._notify()

    def _exited(self, process: processing.Process, exitcode: int | None) -> None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(process)
            if entry is None:  # started before the session watched, and missed by the adoption
                entry = self._entries[process] = Entry(process, now)
            entry.exitcode = exitcode
            entry.ended = now
            entry._usage = None
            self._trim()
            self.version += 1
        self._notify()

    def _trim(self) -> None:
        stopped = [process for process, entry in self._entries.items() if not entry.alive]
        for process in stopped[: max(0, len(stopped) - MAX_STOPPED)]:
            del self._entries[process]

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a broken panel must not break start() or the monitor
                import sys
                import traceback

                print("ipyprocessing: error in a session listener:", file=sys.stderr)
                traceback.print_exc()


def _start_time(process: processing.Process, clock: Callable[[], float]) -> float:
    """When a process adopted after its start began, on ``clock``'s scale (so its elapsed time is right)."""
    started_at = getattr(process, "started_at", None)  # a %%process child records it
    if isinstance(started_at, float) and clock is time.monotonic:
        return started_at
    if process.method == "forkserver":
        # The fork server forks children ahead of need: the OS's creation time may be long
        # before start(). Better to understate the elapsed time than to invent it.
        return clock()
    try:
        return clock() - max(0.0, _age(psutil.Process(process.pid).create_time()))
    except (psutil.Error, TypeError, ValueError):
        return clock()


def _age(create_time: float) -> float:
    """Seconds since ``create_time`` (psutil's). On Linux psutil derives it from a boot time
    rounded to the second, so compare on the boot clock, where that rounding cancels out."""
    if hasattr(time, "CLOCK_BOOTTIME"):
        return time.clock_gettime(time.CLOCK_BOOTTIME) - (create_time - psutil.boot_time())
    return time.time() - create_time


_session: Session | None = None
_session_lock = threading.Lock()


def current() -> Session:
    """The kernel's one session registry, watching the core from its first use on.

    Processes started before it was first used are adopted if still running
    (``%load_ext ipyprocessing`` creates it, so from then on none is missed).
    """
    global _session
    with _session_lock:
        if _session is None:
            _session = Session().watch()
        return _session

"""The session: every process this kernel started, however it was started, in one table.

``%%process`` cells are in it, and so is a plain ``processing.Process(...).start()``
from a cell or a library, because the session listens to the core's lifecycle
events rather than being told by a magic. ``%processes``, ``%process_terminate``
and ``ipyprocessing.processes()`` read its cells (``cells=True``); the panel
reads all of it. It knows nothing of widgets: views read it and are told when
it changed.

Events arrive on foreign threads (``started`` on whichever thread called
``start()``, ``exited`` on the core's monitor thread). They only update the
entries under the session's lock and notify listeners, which must be quick: a
listener runs inside ``start()``.

The CPU and memory figures come from one :class:`Sampler` for the whole
session (one psutil sweep per refresh period, however many rows and panels
show them), and stopping a process from a button has one home,
:meth:`Session.stop`, which offers Kill where SIGTERM did not end the child.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

import psutil

import processing
from processing import events, logs
from processing.authkey import fingerprint

from . import settings
from .cell.handle import CellHandle
from .words import format_bytes, format_elapsed, pid_text, state_word

__all__ = ["COLUMNS", "NONE", "Entry", "Sampler", "Session", "current", "table", "table_row"]

#: What a table shows for a figure it does not have.
NONE = "\u2013"


class Entry:
    """What the session knows of one process: identity, lifecycle, its last resource figures, and whether
    Kill is offered.

    ``cpu`` is None until two samples exist (psutil's first reading only starts
    the measurement); ``memory`` is the resident set size in bytes. A remote
    handle goes through the same events; its pid is on another machine, so it
    is not sampled here, and a handle whose worker was lost ends without an
    exit code.
    """

    __slots__ = ("_pid", "_usage", "cpu", "ended", "exitcode", "fingerprint", "kill_offered", "memory",
                 "process", "started")

    def __init__(self, process: processing.ProcessHandle, started: float) -> None:
        self.process = process
        self._pid: int | None = None  # read lazily: a fork server child's pid may not be known yet
        self.fingerprint: str = fingerprint(process.authkey)
        self.started = started
        self.ended: float | None = None
        self.exitcode: int | None = None
        self.cpu: float | None = None
        self.memory: int | None = None
        self.kill_offered = False  # set once SIGTERM from a button did not end the child
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
    def pid_text(self) -> str:
        """The pid as every view writes it (see :func:`ipyprocessing.words.pid_text`)."""
        return pid_text(self.process)

    @property
    def is_cell(self) -> bool:
        """Whether a ``%%process`` cell started it."""
        return isinstance(self.process, CellHandle)

    @property
    def cell(self) -> str:
        """Which cell started it: ``In[7]`` for a ``%%process`` cell, else none."""
        count = getattr(self.process, "execution_count", None) if self.is_cell else None
        return NONE if count is None else f"In[{count}]"

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

    def resources(self) -> tuple[str, str]:
        """CPU and memory as a table shows them: the last figures while it runs, none once it stopped."""
        alive = self.alive
        cpu = NONE if self.cpu is None or not alive else f"{self.cpu:.0f}%"
        memory = NONE if self.memory is None or not alive else format_bytes(self.memory)
        return cpu, memory

    def sample(self) -> None:
        """Read CPU % and memory of the live process (the sampler sweeps all entries at once)."""
        if self.ended is not None or self.process.remote or self.pid is None:
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
        self._entries: dict[processing.ProcessHandle, Entry] = {}
        self._listeners: tuple[Listener, ...] = ()
        self._subscription: processing.Subscription | None = None
        self.sampler = Sampler(self)

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
        """Stop listening to the core (tests use this; the kernel's own session lives for ever)."""
        with self._lock:
            if self._subscription is not None:
                self._subscription.cancel()
                self._subscription = None

    # -- reading --------------------------------------------------------------

    def entries(self, *, cells: bool = False) -> list[Entry]:
        """Every entry in start order; with ``cells``, only those of ``%%process`` cells."""
        with self._lock:
            entries = list(self._entries.values())
        return [entry for entry in entries if entry.is_cell] if cells else entries

    def entry(self, process: processing.ProcessHandle) -> Entry | None:
        with self._lock:
            return self._entries.get(process)

    def live(self) -> list[Entry]:
        with self._lock:
            return [entry for entry in self._entries.values() if entry.alive]

    def find(self, key: str) -> list[CellHandle]:
        """The cells' processes whose name is ``key``, or whose pid is ``key``."""
        return [entry.process for entry in self.entries(cells=True)  # type: ignore[misc]
                if entry.name == key or str(entry.pid) == key]

    def now(self) -> float:
        return self._clock()

    def table(self, *, cells: bool = False) -> str:
        """The session's table as text (``%processes``, the panel's text form)."""
        return table(self.entries(cells=cells), self.now())

    # -- changing ---------------------------------------------------------------

    def clear_stopped(self) -> int:
        """Forget the stopped processes (their cells' rows let go of their widgets); returns how many."""
        with self._lock:
            stopped = [process for process, entry in self._entries.items() if not entry.alive]
            for process in stopped:
                del self._entries[process]
        _release(stopped)
        if stopped:
            self._notify()
        return len(stopped)

    def stop(
        self, entries: Iterable[Entry], *, terminated: str, killed: str, then: Callable[[], Any] | None = None
    ) -> None:
        """Terminate the entries' processes, or kill those where Kill is offered; return at once.

        ``terminated`` and ``killed`` say why, for the cells' own rows
        ("terminated from the process panel").

        The work runs on worker threads (``terminate()`` waits up to 2 s for each
        child; in parallel, so that one stubborn child does not hold up the
        others, and never on the kernel's shell thread, where a button's click
        arrives). A child still alive after SIGTERM gets ``kill_offered``, and
        the listeners are told (and ``then()`` called). A ``%%process`` cell is told why,
        so that it can say so.
        """
        live = [entry for entry in entries if entry.alive]
        if live:
            threading.Thread(target=self._stop_all, args=(live, terminated, killed, then),
                             name="ipyprocessing-stop", daemon=True).start()

    def stop_all(self, reason: str, *, cells: bool = True) -> list[processing.ProcessHandle]:
        """Stop every running process (SIGTERM, then SIGKILL if it survives 2 s), here; returns those stopped.

        Registered to run when the kernel exits: the children are in process
        groups of their own, so the kernel's own clean-up, which signals its
        group, does not reach them, and a notebook's children should not outlive it.
        """
        running = [entry.process for entry in self.entries(cells=cells) if entry.process.is_alive()]
        self.stop_now(running, reason)
        return running

    def stop_now(self, processes: Iterable[processing.ProcessHandle], reason: str) -> None:
        """Stop each process (SIGTERM, then SIGKILL if it survives 2 s), all in parallel; return once
        all have ended. A ``%%process`` cell's row says ``reason``."""
        _in_parallel(lambda process: _stop_quietly(process, reason), processes)

    def listen(self, listener: Listener) -> Callable[[], None]:
        """Call ``listener()`` after every change (on the thread that made it); returns a remover."""
        with self._lock:
            self._listeners = (*self._listeners, listener)

        def remove() -> None:
            with self._lock:
                self._listeners = tuple(other for other in self._listeners if other is not listener)

        return remove

    def sample(self) -> list[Entry]:
        """One psutil sweep over every live process; returns the entries sampled."""
        live = self.live()
        for entry in live:
            entry.sample()
        return live

    # -- the core's events ----------------------------------------------------------

    def _started(self, process: processing.ProcessHandle, started: float | None = None) -> None:
        with self._lock:
            if process in self._entries:
                return
            self._entries[process] = Entry(process, self._clock() if started is None else started)
        self._notify()

    def _exited(self, process: processing.ProcessHandle, exitcode: int | None) -> None:
        now = self._clock()
        with self._lock:
            entry = self._entries.get(process)
            if entry is None:  # started before the session watched, and missed by the adoption
                entry = self._entries[process] = Entry(process, now)
            entry.exitcode = exitcode
            entry.ended = now
            entry._usage = None
            forgotten = self._trim_locked()
        _release(forgotten)
        self._notify()

    def _trim_locked(self) -> list[processing.ProcessHandle]:
        """Forget the oldest stopped processes beyond ``max_stopped``; returns them."""
        stopped = [process for process, entry in self._entries.items() if not entry.alive]
        forgotten = stopped[: max(0, len(stopped) - settings.current().max_stopped)]
        for process in forgotten:
            del self._entries[process]
        return forgotten

    def _stop_all(
        self, entries: list[Entry], terminated: str, killed: str, then: Callable[[], Any] | None
    ) -> None:
        _in_parallel(lambda entry: self._stop_one(entry, terminated, killed), entries)
        self._notify()
        if then is not None:
            events.guarded(then)

    def _stop_one(self, entry: Entry, terminated: str, killed: str) -> None:
        process = entry.process
        try:
            if entry.kill_offered:
                _because(process, "kill", killed)
            else:
                _because(process, "terminate", terminated)
                if process.exitcode is None and process.is_alive():
                    entry.kill_offered = True
        except Exception:
            logs.report_exception("could not stop %r", process)

    def _notify(self) -> None:
        for listener in self._listeners:
            try:
                listener()
            except Exception:  # a broken panel must not break start() or the monitor
                logs.report_exception("error in a session listener")


def _in_parallel(stop: Callable[[Any], None], items: Iterable[Any]) -> None:
    """``stop(item)`` for every item at once, each on a thread of its own (a stop waits up to 2 s for its
    child, and one stubborn child must not hold up the others); returns when all are done.

    Plain threads, not an executor: ``stop_all`` runs at interpreter exit, when an executor takes no work.
    """
    threads = [threading.Thread(target=stop, args=(item,), name="ipyprocessing-stop", daemon=True)
               for item in items]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def _release(processes: list[processing.ProcessHandle]) -> None:
    """Forgotten processes: a cell's row lets go of its widgets (outside the session's lock)."""
    for process in processes:
        if isinstance(process, CellHandle):
            try:
                process.release()
            except Exception:
                logs.report_exception("could not release the row of %r", process)


def _stop_quietly(process: processing.ProcessHandle, reason: str) -> None:
    try:
        if isinstance(process, CellHandle):
            process.stop(reason)
        else:
            process.terminate()
            if process.is_alive():
                process.kill()
    except Exception:
        logs.report_exception("could not stop %r", process)


def _because(process: processing.ProcessHandle, action: str, reason: str) -> None:
    """``terminate()`` or ``kill()``; a ``%%process`` cell is told why, so that its own row can say so."""
    if isinstance(process, CellHandle):
        getattr(process, f"{action}_because")(reason)
    else:
        getattr(process, action)()


class Sampler:
    """The session's one clock for figures that change without an event: CPU, memory, elapsed time.

    While anybody listens (status rows of running cells, panels), one daemon
    thread sweeps the live processes with psutil, at once and then every
    ``ProcessSettings.refresh_period`` seconds, and calls each listener after
    each sweep. A listener that returns False is done (a row whose process
    stopped); the thread ends when none is left, and the next listener starts
    it again.
    """

    def __init__(self, session: Session) -> None:
        self._session = session
        self._lock = threading.Lock()
        self._listeners: list[Callable[[], bool | None]] = []
        self.thread: threading.Thread | None = None
        self.sweeps = 0

    def listen(self, listener: Callable[[], bool | None]) -> Callable[[], None]:
        """Call ``listener()`` after every sweep until it returns False or the remover is called."""
        with self._lock:
            self._listeners.append(listener)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="ipyprocessing-sampler", daemon=True)
                self.thread.start()

        def remove() -> None:
            with self._lock:
                if listener in self._listeners:
                    self._listeners.remove(listener)

        return remove

    def _run(self) -> None:
        while True:
            self._session.sample()
            with self._lock:
                listeners = list(self._listeners)
                self.sweeps += 1
            done = [listener for listener in listeners if not _tick(listener)]
            with self._lock:
                self._listeners = [listener for listener in self._listeners if listener not in done]
                if not self._listeners:
                    self.thread = None
                    return
            time.sleep(settings.current().refresh_period)


def _tick(listener: Callable[[], bool | None]) -> bool:
    try:
        return listener() is not False
    except Exception:  # a broken view is dropped, the others go on
        logs.report_exception("error while refreshing %r", listener)
        return False


#: The table's columns, in every form it takes (text, the panel, the panel's final record).
COLUMNS = ("name", "pid", "cell", "key", "state", "exit", "elapsed", "CPU", "memory")


def table_row(entry: Entry, now: float) -> tuple[str, ...]:
    """One entry's values, in :data:`COLUMNS` order."""
    return (
        entry.name,
        entry.pid_text,
        entry.cell,
        entry.fingerprint,
        entry.state,
        NONE if entry.exitcode is None else str(entry.exitcode),
        format_elapsed(entry.elapsed(now)),
        *entry.resources(),
    )


def table(entries: list[Entry], now: float) -> str:
    """The one text table of processes: for ``%processes``, terminals, and front ends without widgets."""
    rows = [COLUMNS, *(table_row(entry, now) for entry in entries)]
    if len(rows) == 1:
        return "no process has been started in this session"
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()
                     for row in rows)


def _start_time(process: processing.ProcessHandle, clock: Callable[[], float]) -> float:
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
    """The kernel's one session, watching the core from its first use on.

    Processes started before it was first used are adopted if still running
    (``%load_ext ipyprocessing`` creates it, so from then on none is missed).
    """
    global _session
    with _session_lock:
        if _session is None:
            _session = Session().watch()
        return _session

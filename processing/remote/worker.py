"""The worker's side of a remote process: the Dask task :func:`serve`.

A :class:`processing.remote.RemoteProcess` is one Dask task, :func:`serve`. On
the worker it connects back to the notebook over a
:class:`~processing.remote.wire.Wire`, receives the payload, and starts a real
child with :class:`processing.Process` on the worker's machine. Dask cannot
stop a running task, so the task stays with its child until it exits: it
relays the child's output, the objects it sends with ``sendToParent`` and its
exit code (the last two straight from the monitor thread that learns them, so
that the end costs no hand-over to the task's thread), and obeys
:class:`~processing.remote.protocol.Stop` by signalling the child.

Dask workers are daemonic ``multiprocessing`` processes, and the standard
library refuses to let those have children. ``processing`` keeps its own
process tree and has no such rule, so the worker can start the child. What
the rule protects against, children outliving their daemonic parent, is
handled instead: the child is daemonic (a worker that exits normally
terminates it), the fork server kills it if the worker dies abruptly, and the
task stops it when the notebook goes away.

The worker never unpickles user code: the payload is opened in the child by
:func:`processing.remote.child.run_target` (which the worker's fork server
preloads, so that no child pays for importing it), so a worker stays free of
the notebook's classes, and a payload that cannot be loaded there fails like
any target (exit code 1, the traceback on stderr).
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from multiprocessing.connection import wait

from .. import serialization
from ..errors import AuthenticationError, ProcessError
from ..events import subscribe
from ..forkserver.client import preload_also
from ..process import Process
from .child import run_target
from .protocol import Exit, Failed, Message, Output, Running, Start, Stop, ToChild
from .wire import Wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from .protocol import ChildSettings
    from .wire import Credentials

__all__ = ["START_TIMEOUT", "serve"]

#: Seconds the worker's task waits to reach the notebook and then for its payload: a notebook
#: that is stuck or gone must not hold a Dask worker's thread forever.
START_TIMEOUT = 30.0


def serve(address: tuple[str, int], credentials: Credentials) -> int | None:
    """The Dask task: connect back, start the child, relay it until it exits; returns its exit code.

    Raises:
        AuthenticationError: the notebook at ``address`` does not hold the key.
        OSError: the notebook cannot be reached at ``address``.
        TimeoutError: the notebook was not reached, or sent no payload, within :data:`START_TIMEOUT` seconds.
    """
    from distributed import get_worker

    host = get_worker().address
    deadline = time.monotonic() + START_TIMEOUT
    try:
        wire = Wire.connect(address, credentials.key, credentials.challenge, START_TIMEOUT)
    except TimeoutError as error:
        raise TimeoutError(
            f"the notebook at {address} did not accept the connection within {START_TIMEOUT} s"
        ) from error
    child = subscription = reports = None
    try:
        try:
            start: Start = wire.recv(timeout=max(0.0, deadline - time.monotonic()))  # type: ignore[assignment]
        except TimeoutError as error:
            raise TimeoutError(
                f"the notebook at {address} sent no payload within {START_TIMEOUT} s of this task's start"
            ) from error
        try:
            reports = _Reports(wire, host)
            child = reports.child = _child(reports, start.payload, start.settings)
            subscription = subscribe(message=reports.message, exited=reports.exited)
            child.start()
        except BaseException:
            wire.send(Failed(host, traceback.format_exc()))
            raise
        reports.running()
        _supervise(wire, child, reports.ended)
        return child.exitcode
    finally:
        if child is not None and child.is_alive():  # something above failed: leave nothing running
            _signal(child, Stop(kill=True, tree=True))
        if subscription is not None:
            subscription.cancel()
        if reports is not None:
            reports.close()
        wire.close()


class _Reports:
    """What the notebook hears of the child: ``Running`` first, then its output and objects, then ``Exit``.

    The task's thread sends ``Running`` once the child's pid is known. The
    output, the objects and the exit go from the threads that learn them (the
    exit right after the child's output was delivered: a hand-over to the
    task's thread would cost a wake-up on every end). Whatever comes before
    ``Running`` went, which a child that writes or sends at once can cause, is
    held here and sent right after it, so that the notebook never hears of a
    child whose pid it does not know yet.

    ``ended`` is a descriptor that becomes readable once the exit was sent: the
    task's thread waits on it rather than on the child's sentinel, so that it
    does not wake, and compete with the monitor thread, at the moment the exit
    report is on its way.
    """

    def __init__(self, wire: Wire, host: str) -> None:
        self._wire = wire
        self._host = host
        self.child: Process | None = None  # set once made, before it starts
        self._lock = threading.RLock()  # re-entered: running() may send the exit, which closes the writer
        self._held: list[tuple[Any, ...]] | None = []  # None once Running went
        self.ended, self._ended_writer = os.pipe()

    def running(self) -> None:
        assert self.child is not None
        with self._lock:
            held, self._held = self._held or [], None
            for message in [Running(self.child.pid, self._host), *held]:
                self._transmit(message)

    def output(self, stream: str, data: bytes) -> None:
        self._send(Output(stream, data))

    def message(self, process: Process, obj: object) -> None:
        if process is self.child:
            self._send(Message(serialization.dumps(obj)))

    def exited(self, process: Process, exitcode: int) -> None:
        if process is self.child:
            self._send(Exit(exitcode))

    def close(self) -> None:
        os.close(self.ended)
        self._close_writer()

    def _send(self, message: tuple[Any, ...]) -> None:
        with self._lock:
            if self._held is not None:
                self._held.append(message)
                return
        self._transmit(message)

    def _transmit(self, message: tuple[Any, ...]) -> None:
        try:
            self._wire.send(message)
        except OSError:
            pass  # the notebook has gone; _supervise stops the child
        if isinstance(message, Exit):
            self._close_writer()  # ended becomes readable (EOF)

    def _close_writer(self) -> None:
        with self._lock:  # close() on the task's thread may race the exit's sender
            writer, self._ended_writer = self._ended_writer, -1
        if writer >= 0:
            os.close(writer)


def _child(reports: _Reports, payload: bytes, settings: ChildSettings) -> Process:
    # run_target's module is in every remote child: the fork server keeps it (once per worker).
    preload_also([run_target.__module__, *settings.preload])
    return Process(
        target=run_target,
        args=(payload,),
        name=settings.name,
        method=settings.method,
        daemon=True,
        new_process_group=True,  # so that terminate(tree=True) needs no psutil
        output=reports.output if settings.capture else None,
    )


def _supervise(wire: Wire, child: Process, ended: int) -> None:
    """Obey commands until the child's exit was reported (``ended``); stop the child if the notebook goes."""
    while ended not in wait([wire, ended]):
        try:
            command = wire.recv()
        except (EOFError, OSError, AuthenticationError):
            # Nobody is left to watch the child or stop it (or someone forged a command
            # and the connection cannot be trusted any more): do not let it run on.
            _signal(child, Stop(kill=False, tree=True))
            _signal(child, Stop(kill=True, tree=True))
            break
        if isinstance(command, Stop):
            _signal(child, command)
        elif isinstance(command, ToChild):
            try:
                child._send_pickled(command.data)
            except ProcessError:
                pass  # it has just exited: its exit report is on its way
    child.join()


def _signal(child: Process, stop: Stop) -> None:
    send = child.kill if stop.kill else child.terminate
    try:
        send(tree=stop.tree)
    except ProcessError:  # the tree needed psutil, missing here: at least stop the child
        send()

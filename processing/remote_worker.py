"""The worker's side of a remote process, and the wire both sides speak.

A :class:`processing.remote.RemoteProcess` is one Dask task, :func:`serve`. On
the worker it connects back to the notebook (``processing.connection.Client``:
HMAC challenge both ways with a one-time key derived from the notebook
process's auth key), receives the payload, and starts a real child with
:class:`processing.Process` on the worker's machine. Dask cannot stop a
running task, so the task stays with its child until it exits: it relays the
child's output, the objects it sends with ``sendToParent`` and its exit code,
and obeys ``terminate``/``kill`` by signalling the child.

Dask workers are daemonic ``multiprocessing`` processes, and the standard
library refuses to let those have children. ``processing`` keeps its own
process tree and has no such rule, so the worker can start the child. What
the rule protects against, children outliving their daemonic parent, is
handled instead: the child is daemonic (a worker that exits normally
terminates it), the fork server kills it if the worker dies abruptly, and the
task stops it when the notebook goes away.

The worker never unpickles user code: the payload is opened in the child by
:func:`processing.remote_child.run_target`, so a worker stays free of the
notebook's classes, and a payload that cannot be loaded there fails like any
target (exit code 1, the traceback on stderr).

Messages are tuples pickled with :func:`processing.serialization.dumps`, read
only after the handshake succeeded in both directions.
"""

from __future__ import annotations

import socket
import threading
import traceback
from multiprocessing.connection import wait

from . import serialization
from .connection import Client, Connection
from .errors import ProcessError
from .monitor import subscribe
from .popen_forkserver import preload_also
from .process import Process
from .remote_child import run_target

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["Wire", "serve"]

#: Keep-alive probing, so that a peer whose machine vanished (no FIN, no RST)
#: ends the connection in about KEEPIDLE + KEEPCNT * KEEPINTVL seconds.
_KEEPALIVE = {"TCP_KEEPIDLE": 5, "TCP_KEEPALIVE": 5, "TCP_KEEPINTVL": 2, "TCP_KEEPCNT": 3}


class Wire:
    """An authenticated connection carrying pickled tuples; ``send`` is safe from any thread."""

    def __init__(self, conn: Connection) -> None:
        self.conn = conn
        self._lock = threading.Lock()
        _keep_alive(conn)

    def send(self, message: tuple[Any, ...]) -> None:
        data = serialization.dumps(message)
        with self._lock:
            self.conn.send_bytes(data)

    def recv(self) -> tuple[Any, ...]:
        """The next message. Raises EOFError or OSError once the peer is gone."""
        return serialization.loads(self.conn.recv_bytes())

    def close(self) -> None:
        self.conn.close()


def _keep_alive(conn: Connection) -> None:
    sock = socket.socket(fileno=conn.fileno())
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
        for name, value in _KEEPALIVE.items():
            if hasattr(socket, name):
                sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)
    finally:
        sock.detach()  # the descriptor stays the Connection's


def serve(address: tuple[str, int], key: bytes) -> int | None:
    """The Dask task: connect back, start the child, relay it until it exits; returns its exit code.

    Raises:
        AuthenticationError: the listener at ``address`` does not hold ``key``.
        OSError: the notebook cannot be reached at ``address``.
    """
    from distributed import get_worker

    host = get_worker().address
    wire = Wire(Client(address, authkey=key))
    child = subscription = None
    try:
        _, payload, options = wire.recv()
        try:
            child = _child(wire, payload, options)
            subscription = subscribe(message=lambda process, obj: _relay_message(wire, child, process, obj))
            child.start()
        except BaseException:
            wire.send(("failed", host, traceback.format_exc()))
            raise
        wire.send(("running", child.pid, host))
        _supervise(wire, child)
        try:
            wire.send(("exit", child.exitcode))
        except OSError:
            pass  # the notebook has gone; the child has been stopped
        return child.exitcode
    finally:
        if child is not None and child.is_alive():  # something above failed: leave nothing running
            _signal(child, "kill", True)
        if subscription is not None:
            subscription.cancel()
        wire.close()


def _child(wire: Wire, payload: bytes, options: dict[str, Any]) -> Process:
    if options["preload"]:
        preload_also(options["preload"])

    def relay_output(stream: str, data: bytes) -> None:
        try:
            wire.send(("output", stream, data))
        except OSError:
            pass  # the notebook has gone; _supervise stops the child

    return Process(
        target=run_target,
        args=(payload,),
        name=options["name"],
        method=options["method"],
        daemon=True,
        new_process_group=True,  # so that terminate(tree=True) needs no psutil
        output=relay_output if options["capture"] else None,
    )


def _relay_message(wire: Wire, child: Process, process: Process, obj: object) -> None:
    if process is child:
        try:
            wire.send(("message", serialization.dumps(obj)))
        except OSError:
            pass  # the notebook has gone; _supervise stops the child


def _supervise(wire: Wire, child: Process) -> None:
    """Obey commands until the child exits; stop the child if the notebook goes away."""
    sentinel = child.sentinel
    while sentinel not in wait([wire.conn, sentinel]):
        try:
            _, command, tree = wire.recv()
        except (EOFError, OSError):
            # Nobody is left to watch the child or stop it: do not let it run on.
            _signal(child, "terminate", True)
            _signal(child, "kill", True)
            break
        if command in ("terminate", "kill"):
            _signal(child, command, tree)
    child.join()


def _signal(child: Process, command: str, tree: bool) -> None:
    try:
        getattr(child, command)(tree=tree)
    except ProcessError:  # the tree needed psutil, missing here: at least stop the child
        getattr(child, command)()

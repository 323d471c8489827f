"""The worker's side of a remote process, and the wire both sides speak.

A :class:`processing.remote.RemoteProcess` is one Dask task, :func:`serve`. On
the worker it connects back to the notebook over a :class:`Wire` (every
message signed with HMAC under a key derived from the notebook process's auth
key), receives the payload, and starts a real child with
:class:`processing.Process` on the worker's machine. Dask cannot stop a
running task, so the task stays with its child until it exits: it relays the
child's output, the objects it sends with ``sendToParent`` and its exit code
(the last two straight from the monitor thread that learns them, so that the
end costs no hand-over to the task's thread), and obeys ``terminate``/``kill``
by signalling the child.

Dask workers are daemonic ``multiprocessing`` processes, and the standard
library refuses to let those have children. ``processing`` keeps its own
process tree and has no such rule, so the worker can start the child. What
the rule protects against, children outliving their daemonic parent, is
handled instead: the child is daemonic (a worker that exits normally
terminates it), the fork server kills it if the worker dies abruptly, and the
task stops it when the notebook goes away.

The worker never unpickles user code: the payload is opened in the child by
:func:`processing.remote_child.run_target` (which the worker's fork server
preloads, so that no child pays for importing it), so a worker stays free of
the notebook's classes, and a payload that cannot be loaded there fails like
any target (exit code 1, the traceback on stderr).
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import struct
import threading
import traceback
from multiprocessing.connection import wait

from . import serialization
from .errors import AuthenticationError, ProcessError
from .monitor import subscribe
from .popen_forkserver import preload_also
from .process import Process
from .remote_child import run_target

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["NONCE_SIZE", "Wire", "serve"]

#: Bytes of each side's nonce.
NONCE_SIZE = 32
_TAG_SIZE = hashlib.sha256().digest_size
_LENGTH = struct.Struct("!Q")

#: Keep-alive probing, so that a peer whose machine vanished (no FIN, no RST)
#: ends the connection in about KEEPIDLE + KEEPCNT * KEEPINTVL seconds.
_KEEPALIVE = {"TCP_KEEPIDLE": 5, "TCP_KEEPALIVE": 5, "TCP_KEEPINTVL": 2, "TCP_KEEPCNT": 3}


class Wire:
    """A TCP connection between a notebook and a worker carrying pickled tuples, each one signed.

    Both sides hold a one-time ``key`` (derived from the notebook process's
    auth key, see :mod:`processing.remote`) and the notebook's ``challenge``,
    a fresh nonce that travels in the Dask task beside the key. The handshake
    takes one round trip instead of the standard library's two (a challenge
    each way, four messages, before the payload can go), and stays a
    challenge-response with fresh nonces from both sides:

    1. The worker sends its own fresh nonce and a signature over it and the
       notebook's challenge (:meth:`connect`). Only a holder of the key can make
       it; since the notebook accepts one connection per challenge and every
       start has a new key and challenge, a hello recorded earlier is refused.
    2. The notebook checks it (:meth:`accept`) before it sends anything, then
       its first message is the payload, signed under a session key made from
       the key and *both* nonces: the worker checks it before using a byte of
       it, and no recording can match the worker's fresh nonce.

    Every later message is signed too, under the session key, with the
    sender's side and a running count, so a message that was forged, altered,
    replayed, reordered or reflected back to its sender fails the check
    (:class:`processing.AuthenticationError`) and nothing of it is loaded.

    TCP_NODELAY is on: the messages are small and each is awaited by the
    other side, so Nagle's algorithm could only delay them. ``send`` is safe
    from any thread; ``recv`` belongs to one.
    """

    def __init__(
        self, sock: socket.socket, key: bytes, challenge: bytes, nonce: bytes, *, worker: bool
    ) -> None:
        self.sock = sock
        self._key = hmac.digest(key, b"processing.remote session\0" + challenge + nonce, "sha256")
        self._out, self._in = (b"worker", b"notebook") if worker else (b"notebook", b"worker")
        self._sent = self._received = 0
        self._lock = threading.Lock()
        _tune(sock)

    @classmethod
    def connect(cls, address: tuple[str, int], key: bytes, challenge: bytes) -> Wire:
        """The worker's side: connect and say hello (its nonce, signed together with the challenge).

        Raises:
            OSError: the notebook cannot be reached at ``address``.
        """
        sock = socket.create_connection(address)
        try:
            nonce = os.urandom(NONCE_SIZE)
            wire = cls(sock, key, challenge, nonce, worker=True)
            with wire._lock:
                sock.sendall(nonce + wire._sign(b""))
        except BaseException:
            sock.close()
            raise
        return wire

    @classmethod
    def accept(cls, sock: socket.socket, key: bytes, challenge: bytes, timeout: float) -> Wire:
        """The notebook's side: read the hello of a just-accepted connection and check it.

        Raises:
            AuthenticationError: the peer does not hold the key, or its hello was made for another challenge.
            EOFError, OSError: the peer closed the connection, or said nothing for ``timeout`` seconds.
        """
        sock.settimeout(timeout)
        hello = _recv_exact(sock, NONCE_SIZE + _TAG_SIZE)
        sock.settimeout(None)
        wire = cls(sock, key, challenge, hello[:NONCE_SIZE], worker=False)
        wire._check(hello[NONCE_SIZE:], b"")
        return wire

    def send(self, message: tuple[Any, ...]) -> None:
        body = serialization.dumps(message)
        with self._lock:
            self.sock.sendall(_LENGTH.pack(len(body)) + self._sign(body) + body)

    def recv(self) -> tuple[Any, ...]:
        """The next message, once its signature checked.

        Raises:
            AuthenticationError: it was not signed for this connection, side and place in the sequence.
            EOFError, OSError: the peer is gone.
        """
        head = _recv_exact(self.sock, _LENGTH.size + _TAG_SIZE)
        body = _recv_exact(self.sock, _LENGTH.unpack_from(head)[0])
        self._check(head[_LENGTH.size :], body)
        return serialization.loads(body)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def _mac(self, side: bytes, count: int, body: bytes) -> bytes:
        mac = hmac.new(self._key, side + count.to_bytes(8, "big"), hashlib.sha256)
        mac.update(body)
        return mac.digest()

    def _sign(self, body: bytes) -> bytes:
        """The signature of the next message this side sends (call with the lock held)."""
        self._sent += 1
        return self._mac(self._out, self._sent - 1, body)

    def _check(self, tag: bytes, body: bytes) -> None:
        self._received += 1
        if not hmac.compare_digest(tag, self._mac(self._in, self._received - 1, body)):
            raise AuthenticationError(
                f"a message from the {self._in.decode()} failed its HMAC check: it was not signed with "
                "this connection's key, or it was altered, replayed or reordered; it was dropped"
            )


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _KEEPALIVE.items():
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)


def _recv_exact(sock: socket.socket, size: int) -> bytes:
    buffer = bytearray(size)
    view = memoryview(buffer)
    while view:
        received = sock.recv_into(view)
        if not received:
            raise EOFError("the connection was closed by its other end")
        view = view[received:]
    return bytes(buffer)


def serve(address: tuple[str, int], key: bytes, challenge: bytes) -> int | None:
    """The Dask task: connect back, start the child, relay it until it exits; returns its exit code.

    Raises:
        AuthenticationError: the notebook at ``address`` does not hold ``key``.
        OSError: the notebook cannot be reached at ``address``.
    """
    from distributed import get_worker

    host = get_worker().address
    wire = Wire.connect(address, key, challenge)
    child = subscription = reports = None
    try:
        _, payload, options = wire.recv()
        try:
            child = _child(wire, payload, options)
            reports = _Reports(wire, child, host)
            subscription = subscribe(message=reports.message, exited=reports.exited)
            child.start()
        except BaseException:
            wire.send(("failed", host, traceback.format_exc()))
            raise
        reports.running()
        _supervise(wire, child, reports.ended)
        return child.exitcode
    finally:
        if child is not None and child.is_alive():  # something above failed: leave nothing running
            _signal(child, "kill", True)
        if subscription is not None:
            subscription.cancel()
        if reports is not None:
            reports.close()
        wire.close()


class _Reports:
    """What the notebook hears of the child: ``running``, the objects it sends, then ``exit``, in that order.

    The task's thread sends ``running`` once the child's pid is known. The
    objects and the exit go from the monitor thread that learns them, right
    after it delivered the child's output (a hand-over to the task's thread
    would cost a wake-up on every end); a child that ends before its pid
    arrived has its exit held here until ``running`` went, so as not to
    overtake it.

    ``ended`` is a descriptor that becomes readable once the exit was sent: the
    task's thread waits on it rather than on the child's sentinel, so that it
    does not wake, and compete with the monitor thread, at the moment the exit
    report is on its way.
    """

    def __init__(self, wire: Wire, child: Process, host: str) -> None:
        self._wire = wire
        self._child = child
        self._host = host
        self._lock = threading.RLock()  # re-entered: running() sends a held exit
        self._running_sent = False
        self._held_exit: int | None = None
        self.ended, self._ended_writer = os.pipe()

    def running(self) -> None:
        message = ("running", self._child.pid, self._host)
        with self._lock:
            self._wire.send(message)
            self._running_sent = True
            if self._held_exit is not None:
                self._send_exit(self._held_exit)

    def message(self, process: Process, obj: object) -> None:
        if process is self._child:
            self._send(("message", serialization.dumps(obj)))

    def exited(self, process: Process, exitcode: int) -> None:
        if process is not self._child:
            return
        with self._lock:
            if not self._running_sent:
                self._held_exit = exitcode
                return
        self._send_exit(exitcode)

    def close(self) -> None:
        os.close(self.ended)
        self._close_writer()

    def _send_exit(self, exitcode: int) -> None:
        self._send(("exit", exitcode))
        self._close_writer()  # ended becomes readable (EOF)

    def _close_writer(self) -> None:
        with self._lock:
            writer, self._ended_writer = self._ended_writer, -1
        if writer >= 0:
            os.close(writer)

    def _send(self, message: tuple[Any, ...]) -> None:
        try:
            self._wire.send(message)
        except OSError:
            pass  # the notebook has gone; _supervise stops the child


def _child(wire: Wire, payload: bytes, options: dict[str, Any]) -> Process:
    # run_target's module is in every remote child: the fork server keeps it (once per worker).
    preload_also([run_target.__module__, *options["preload"]])

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


def _supervise(wire: Wire, child: Process, ended: int) -> None:
    """Obey commands until the child's exit was reported (``ended``); stop the child if the notebook goes."""
    while ended not in wait([wire, ended]):
        try:
            _, command, tree = wire.recv()
        except (EOFError, OSError, AuthenticationError):
            # Nobody is left to watch the child or stop it (or someone forged a command
            # and the connection cannot be trusted any more): do not let it run on.
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

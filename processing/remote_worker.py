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
import time
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

__all__ = ["HELLO_SIZE", "MAX_FRAME", "NONCE_SIZE", "START_TIMEOUT", "Credentials", "Wire", "serve"]

#: Bytes of each side's nonce.
NONCE_SIZE = 32
_TAG_SIZE = hashlib.sha256().digest_size
#: Bytes of the worker's hello: its nonce and its signature.
HELLO_SIZE = NONCE_SIZE + _TAG_SIZE
_LENGTH = struct.Struct("!Q")
#: The largest message the wire carries (1 GiB, far above a real payload, chunk of output or
#: message). A frame's length arrives before its signature can be checked, so a larger one
#: is refused before anything is allocated for it: a forged length must not make a side
#: reserve memory it does not have.
MAX_FRAME = 1 << 30
#: Seconds the worker's task waits to reach the notebook and then for its payload: a notebook
#: that is stuck or gone must not hold a Dask worker's thread forever.
START_TIMEOUT = 30.0

#: Keep-alive probing, so that a peer whose machine vanished (no FIN, no RST)
#: ends the connection in about KEEPIDLE + KEEPCNT * KEEPINTVL seconds.
_KEEPALIVE = {"TCP_KEEPIDLE": 5, "TCP_KEEPALIVE": 5, "TCP_KEEPINTVL": 2, "TCP_KEEPCNT": 3}


class Credentials:
    """The one-time key and challenge of one start, as they travel in the Dask task.

    Dask writes ``repr`` of a failed task's arguments to the worker's log (and
    shows it on its dashboard), so the key must not be in it: the ``repr`` here
    names the object only. It pickles as any small object does.
    """

    __slots__ = ("challenge", "key")

    def __init__(self, key: bytes, challenge: bytes) -> None:
        self.key = key
        self.challenge = challenge

    def __reduce__(self) -> tuple[type[Credentials], tuple[bytes, bytes]]:
        return (Credentials, (self.key, self.challenge))

    def __repr__(self) -> str:
        return "<Credentials (hidden)>"


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
    def connect(
        cls, address: tuple[str, int], key: bytes, challenge: bytes, timeout: float | None = None
    ) -> Wire:
        """The worker's side: connect and say hello (its nonce, signed together with the challenge).

        Raises:
            OSError: the notebook cannot be reached at ``address`` (TimeoutError: not within
                ``timeout`` seconds).
        """
        sock = socket.create_connection(address, timeout)
        sock.settimeout(None)
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

        ``timeout`` bounds the whole hello, not each read, so a peer that
        trickles it byte by byte is dropped as soon as one that stays silent.

        Raises:
            AuthenticationError: the peer does not hold the key, or its hello was made for another challenge.
            EOFError, OSError: the peer closed the connection (TimeoutError: its hello was not complete
                within ``timeout`` seconds).
        """
        return cls.from_hello(sock, key, challenge, _recv_exact(sock, HELLO_SIZE, timeout))

    @classmethod
    def from_hello(cls, sock: socket.socket, key: bytes, challenge: bytes, hello: bytes) -> Wire:
        """The notebook's side, given the hello already read from ``sock`` (see :meth:`accept`).

        Raises:
            AuthenticationError: the peer does not hold the key, or its hello was made for another challenge.
        """
        sock.setblocking(True)
        wire = cls(sock, key, challenge, hello[:NONCE_SIZE], worker=False)
        wire._check(hello[NONCE_SIZE:], b"")
        return wire

    def send(self, message: tuple[Any, ...]) -> None:
        """Sign and send ``message``.

        Raises:
            ValueError: it pickles to more than :data:`MAX_FRAME` bytes (the other side would refuse it).
            OSError: the peer is gone.
        """
        body = serialization.dumps(message)
        if len(body) > MAX_FRAME:
            raise ValueError(
                f"a {message[0]!r} message pickles to {len(body)} bytes, more than the {MAX_FRAME} "
                "bytes a remote process's connection carries in one message"
            )
        with self._lock:
            self.sock.sendall(_LENGTH.pack(len(body)) + self._sign(body) + body)

    def recv(self, timeout: float | None = None) -> tuple[Any, ...]:
        """The next message, once its signature checked (within ``timeout`` seconds in all, if given).

        Raises:
            AuthenticationError: it was not signed for this connection, side and place in the sequence,
                or it announced more than :data:`MAX_FRAME` bytes.
            EOFError, OSError: the peer is gone (TimeoutError: the message was not complete in time).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        head = _recv_exact(self.sock, _LENGTH.size + _TAG_SIZE, deadline=deadline)
        size = _LENGTH.unpack_from(head)[0]
        if size > MAX_FRAME:
            raise AuthenticationError(
                f"a message from the {self._in.decode()} announced {size} bytes, more than the "
                f"{MAX_FRAME} bytes a remote process's connection carries in one message: it is not a "
                "genuine frame (the stream was corrupted or tampered with); nothing was read of it"
            )
        body = _recv_exact(self.sock, size, deadline=deadline)
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


def _recv_exact(
    sock: socket.socket, size: int, timeout: float | None = None, *, deadline: float | None = None
) -> bytes:
    """``size`` bytes from ``sock``; all of them within ``timeout`` seconds (or by ``deadline``), if given.

    The time left is recomputed before every read: a per-read timeout would let
    a peer that sends one byte at a time hold the reader for ``size`` timeouts.

    Raises:
        EOFError: the connection closed first.
        TimeoutError: the time ran out first.
    """
    if timeout is not None:
        deadline = time.monotonic() + timeout
    buffer = bytearray(size)
    view = memoryview(buffer)
    try:
        while view:
            if deadline is not None:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
            try:
                received = sock.recv_into(view)
            except TimeoutError:
                break
            if not received:
                raise EOFError("the connection was closed by its other end")
            view = view[received:]
    finally:
        if deadline is not None:
            sock.settimeout(None)
    if view:
        raise TimeoutError(f"only {size - len(view)} of the {size} bytes expected arrived in time")
    return bytes(buffer)


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
            _, payload, options = wire.recv(timeout=max(0.0, deadline - time.monotonic()))
        except TimeoutError as error:
            raise TimeoutError(
                f"the notebook at {address} sent no payload within {START_TIMEOUT} s of this task's start"
            ) from error
        try:
            reports = _Reports(wire, host)
            child = reports.child = _child(reports, payload, options)
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
    """What the notebook hears of the child: ``running`` first, then its output and objects, then ``exit``.

    The task's thread sends ``running`` once the child's pid is known. The
    output, the objects and the exit go from the threads that learn them (the
    exit right after the child's output was delivered: a hand-over to the
    task's thread would cost a wake-up on every end). Whatever comes before
    ``running`` went, which a child that writes or sends at once can cause, is
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
        self._held: list[tuple[Any, ...]] | None = []  # None once running went
        self.ended, self._ended_writer = os.pipe()

    def running(self) -> None:
        assert self.child is not None
        with self._lock:
            held, self._held = self._held or [], None
            for message in [("running", self.child.pid, self._host), *held]:
                self._transmit(message)

    def output(self, stream: str, data: bytes) -> None:
        self._send(("output", stream, data))

    def message(self, process: Process, obj: object) -> None:
        if process is self.child:
            self._send(("message", serialization.dumps(obj)))

    def exited(self, process: Process, exitcode: int) -> None:
        if process is self.child:
            self._send(("exit", exitcode))

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
        if message[0] == "exit":
            self._close_writer()  # ended becomes readable (EOF)

    def _close_writer(self) -> None:
        with self._lock:  # close() on the task's thread may race the exit's sender
            writer, self._ended_writer = self._ended_writer, -1
        if writer >= 0:
            os.close(writer)


def _child(reports: _Reports, payload: bytes, options: dict[str, Any]) -> Process:
    # run_target's module is in every remote child: the fork server keeps it (once per worker).
    preload_also([run_target.__module__, *options["preload"]])
    return Process(
        target=run_target,
        args=(payload,),
        name=options["name"],
        method=options["method"],
        daemon=True,
        new_process_group=True,  # so that terminate(tree=True) needs no psutil
        output=reports.output if options["capture"] else None,
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

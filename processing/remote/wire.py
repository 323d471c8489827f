"""The wire between a notebook and a worker: a TCP connection carrying signed, pickled messages.

Both sides hold a one-time key (derived from the notebook process's auth key
by :func:`one_time_key`; the key itself never travels) and the notebook's
challenge, a fresh nonce that travels in the Dask task beside the key
(:class:`Credentials`). The handshake takes one round trip instead of the
standard library's two (a challenge each way, four messages, before the
payload can go), and stays a challenge-response with fresh nonces from both
sides:

1. The worker sends its own fresh nonce and a signature over it and the
   notebook's challenge (:meth:`Wire.connect`). Only a holder of the key can
   make it; since the notebook accepts one connection per challenge and every
   start has a new key and challenge, a hello recorded earlier is refused.
2. The notebook checks it (:meth:`Wire.from_hello`) before it sends anything,
   then its first message is the payload, signed under a session key made
   from the key and *both* nonces: the worker checks it before using a byte
   of it, and no recording can match the worker's fresh nonce.

Every later message is a signed frame (:mod:`processing.frames`) under the
session key, with the sender's side and a running count, so a message that was
forged, altered, replayed, reordered or reflected back to its sender fails the
check (:class:`processing.AuthenticationError`) and nothing of it is loaded.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import socket
import threading
import time

from .. import frames, serialization
from .._fd import read_exact
from ..errors import AuthenticationError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["HELLO_SIZE", "MAX_FRAME", "NONCE_SIZE", "Credentials", "Wire", "one_time_key"]

#: Bytes of each side's nonce.
NONCE_SIZE = 32
#: Bytes of the worker's hello: its nonce and its signature.
HELLO_SIZE = NONCE_SIZE + frames.TAG_SIZE
#: The largest message the wire carries (1 GiB, far above a real payload, chunk of output or
#: message). A frame's length arrives before its signature can be checked, so a larger one
#: is refused before anything is allocated for it: a forged length must not make a side
#: reserve memory it does not have.
MAX_FRAME = 1 << 30

#: Keep-alive probing, so that a peer whose machine vanished (no FIN, no RST)
#: ends the connection in about KEEPIDLE + KEEPCNT * KEEPINTVL seconds.
_KEEPALIVE = {"TCP_KEEPIDLE": 5, "TCP_KEEPALIVE": 5, "TCP_KEEPINTVL": 2, "TCP_KEEPCNT": 3}
_CLOSED = "the connection was closed by its other end"


def one_time_key(authkey: bytes) -> bytes:
    """A key for one connection, derived from the process's key, so that the key itself never travels."""
    return hmac.new(authkey, b"processing.remote:" + os.urandom(32), hashlib.sha256).hexdigest().encode()


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
    """One side of a notebook-worker connection, once the hello is through.

    TCP_NODELAY is on: the messages are small and each is awaited by the
    other side, so Nagle's algorithm could only delay them. ``send`` is safe
    from any thread; ``recv`` belongs to one.
    """

    def __init__(
        self, sock: socket.socket, key: bytes, challenge: bytes, nonce: bytes, *, worker: bool
    ) -> None:
        self.sock = sock
        session = hmac.digest(key, b"processing.remote session\0" + challenge + nonce, "sha256")
        out, into = (b"worker", b"notebook") if worker else (b"notebook", b"worker")
        self._peer = into.decode()
        self._out = frames.Signer(session, out)
        self._in = frames.Signer(session, into)
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
                sock.sendall(nonce + wire._out.sign(b""))
        except BaseException:
            sock.close()
            raise
        return wire

    @classmethod
    def from_hello(cls, sock: socket.socket, key: bytes, challenge: bytes, hello: bytes) -> Wire:
        """The notebook's side, given the worker's hello read from a just-accepted ``sock``.

        Raises:
            AuthenticationError: the peer does not hold the key, or its hello was made for another challenge.
        """
        sock.setblocking(True)
        wire = cls(sock, key, challenge, hello[:NONCE_SIZE], worker=False)
        if not wire._in.check(hello[NONCE_SIZE:], b""):
            raise wire._forged()
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
                f"the {type(message).__name__} message pickles to {len(body)} bytes, more than the "
                f"{MAX_FRAME} bytes a remote process's connection carries in one message"
            )
        with self._lock:
            self.sock.sendall(self._out.seal(body))

    def recv(self, timeout: float | None = None) -> tuple[Any, ...]:
        """The next message, once its signature checked (within ``timeout`` seconds in all, if given).

        Raises:
            AuthenticationError: it was not signed for this connection, side and place in the sequence,
                or it announced more than :data:`MAX_FRAME` bytes.
            EOFError, OSError: the peer is gone (TimeoutError: the message was not complete in time).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        header = read_exact(self.sock, frames.HEADER_SIZE, deadline=deadline, eof=_CLOSED)
        size, tag = frames.parse_header(header)
        if size > MAX_FRAME:
            raise AuthenticationError(
                f"a message from the {self._peer} announced {size} bytes, more than the "
                f"{MAX_FRAME} bytes a remote process's connection carries in one message: it is not a "
                "genuine frame (the stream was corrupted or tampered with); nothing was read of it"
            )
        body = read_exact(self.sock, size, deadline=deadline, eof=_CLOSED)
        if not self._in.check(tag, body):
            raise self._forged()
        return serialization.loads(body)

    def fileno(self) -> int:
        return self.sock.fileno()

    def close(self) -> None:
        self.sock.close()

    def _forged(self) -> AuthenticationError:
        return AuthenticationError(
            f"a message from the {self._peer} failed its HMAC check: it was not signed with "
            "this connection's key, or it was altered, replayed or reordered; it was dropped"
        )


def _tune(sock: socket.socket) -> None:
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    for name, value in _KEEPALIVE.items():
        if hasattr(socket, name):
            sock.setsockopt(socket.IPPROTO_TCP, getattr(socket, name), value)

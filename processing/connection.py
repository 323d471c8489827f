"""Authenticated connections between processes: ``Listener``, ``Client`` and ``Pipe``.

Built on the standard library's ``multiprocessing.connection`` (its framing and
its HMAC challenge-response), with this package's rules on top:

- the key defaults to the current process's auth key (:func:`currentProcess`),
  so a parent and the children it started can talk without passing keys around;
- authentication always happens, in both directions: there is no key-less mode;
- a failed handshake raises :class:`processing.AuthenticationError` *and* closes
  the connection;
- listeners bind to a Unix socket with mode 0600 by default, or to loopback.
"""

from __future__ import annotations

import os
from multiprocessing import connection as _stdlib
from multiprocessing.connection import BufferTooShort, Connection, Pipe, families

from . import authkey as _authkey
from .process import currentProcess

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["BufferTooShort", "Client", "Connection", "Listener", "Pipe", "families"]


def _key(authkey: str | bytes | None) -> bytes:
    return currentProcess().authkey if authkey is None else _authkey.as_key(authkey)


def _handshake(conn: Connection, key: bytes, *, server: bool) -> Connection:
    try:
        if server:
            _stdlib.deliver_challenge(conn, key)
            _stdlib.answer_challenge(conn, key)
        else:
            _stdlib.answer_challenge(conn, key)
            _stdlib.deliver_challenge(conn, key)
    except BaseException:
        conn.close()
        raise
    return conn


class Listener:
    """Accepts connections that prove they hold the same auth key.

    ``address`` as in ``multiprocessing.connection``: a path (Unix socket) or a
    ``(host, port)`` pair. By default a fresh Unix socket in a private
    temporary directory, with mode 0600.

    Raises:
        TypeError, ValueError: ``authkey`` is not a valid key.
    """

    def __init__(
        self,
        address: Any = None,
        family: str | None = None,
        backlog: int = 1,
        authkey: str | bytes | None = None,
    ) -> None:
        self._key = _key(authkey)
        self._listener = _stdlib.Listener(address, family, backlog)
        address = self._listener.address
        abstract = isinstance(address, (str, bytes)) and address[:1] in ("\0", b"\0")
        if self._listener._listener._family == "AF_UNIX" and not abstract:  # type: ignore[attr-defined]
            os.chmod(address, 0o600)  # an abstract address (Linux) has no file, and no mode to set

    @property
    def address(self) -> Any:
        return self._listener.address

    @property
    def last_accepted(self) -> Any:
        return self._listener.last_accepted

    def accept(self) -> Connection:
        """Wait for a client and authenticate it.

        Raises:
            AuthenticationError: the client does not hold the key (its connection is closed).
        """
        return _handshake(self._listener.accept(), self._key, server=True)

    def close(self) -> None:
        self._listener.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def Client(address: Any, family: str | None = None, authkey: str | bytes | None = None) -> Connection:
    """Connect to a :class:`Listener` and authenticate with it.

    Raises:
        AuthenticationError: the listener does not hold the key (the connection is closed).
    """
    key = _key(authkey)  # a bad key is reported before anything connects
    return _handshake(_stdlib.Client(address, family), key, server=False)

"""The notebook's side of one remote child's connection: wait for its worker, hand it the payload, relay.

A :class:`Relay` owns one thread. It accepts on the handle's listener the
first connection whose hello proves the key (:class:`_Hellos`), sends the
payload (unless the child ended meanwhile, see
:meth:`~processing.remote.lifecycle.Lifecycle.connected`), then delivers what
the worker says to the handle until the child's exit (or the connection's
end) is known.
"""

from __future__ import annotations

import selectors
import socket
import threading
import time

from .. import logs
from ..errors import AuthenticationError
from .lifecycle import LOST, STOPPED
from .protocol import Exit, Failed, Message, Output, Running, Start
from .wire import HELLO_SIZE, Wire

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = ["HELLO_TIMEOUT", "MAX_PENDING_HELLOS", "Relay"]

#: How long in all a connection to the listener may take to say its whole hello before it is
#: dropped. A worker sends it at once, in one small segment; the hellos of several connections
#: are read side by side, so a slow or silent one does not delay the real worker, and this only
#: bounds how long it holds a descriptor here.
HELLO_TIMEOUT = 3.0
#: Connections whose hello is being read at one time; a further one drops the oldest, so that a
#: flood of connections cannot exhaust this process's descriptors.
MAX_PENDING_HELLOS = 16


class Relay:
    """The thread that connects one remote handle to its worker and delivers the worker's news to it.

    ``handle`` is a :class:`~processing.remote.RemoteProcess`; the relay calls
    its ``_lifecycle``, ``_end`` and delivery methods only.
    """

    def __init__(
        self, handle: Any, listener: socket.socket, key: bytes, challenge: bytes, start: Start
    ) -> None:
        self._handle = handle
        self._listener = listener
        self.address: tuple[str, int] = listener.getsockname()[:2]
        self._key, self._challenge = key, challenge
        self._start = start
        self.thread = threading.Thread(target=self._run, name=f"processing-remote-{handle.name}", daemon=True)

    def wake(self) -> None:
        """Make the thread look up from its listener (the task ended unconnected: nobody will come)."""
        try:
            socket.create_connection(self.address, timeout=1).close()
        except OSError:
            pass  # the thread has closed the listener already

    def _run(self) -> None:
        handle = self._handle
        wire = None
        try:
            wire = self._accept()
            while wire is not None and not self._dispatch(wire.recv()):
                pass
        except (EOFError, OSError) as error:
            handle._end(None, LOST, handle._lost_reason(error))
        except AuthenticationError as error:
            # Only someone on the network path can inject into the connection: trust none of it.
            handle._end(None, LOST, f"the connection to its worker was dropped: {error}")
        except BaseException as error:
            handle._end(None, LOST, f"its relay thread failed ({type(error).__name__}: {error})")
            raise
        finally:
            if wire is not None:
                wire.close()

    def _accept(self) -> Wire | None:
        """The first connection that proves it holds the key, the payload sent; None if nobody will come."""
        lifecycle = self._handle._lifecycle
        try:
            wire = _Hellos(self._listener, self._key, self._challenge, self._refuse).first_valid(
                lambda: lifecycle.ended
            )
        except OSError as error:
            self._handle._end(None, LOST, f"its listener at {self.address} failed: {error}")
            return None
        if wire is None:
            return None  # woken because the task ended unconnected
        if not lifecycle.connected(wire, lambda: wire.send(self._start)):
            wire.close()
            return None
        return wire

    def _refuse(self, peer: Any, error: BaseException) -> None:
        logs.report("%s refused a connection from %s (%s: %s)", self._handle.name, peer,
                    type(error).__name__, error)

    def _dispatch(self, message: tuple[Any, ...]) -> bool:
        """Act on one message from the worker; True for the last one."""
        handle = self._handle
        match message:
            case Output(stream, data):
                handle._deliver_output(stream, data)
            case Message(data):
                handle._deliver_message(data)
            case Running(pid, host):
                handle._lifecycle.running(pid, host)
                handle._on_running()
            case Exit(exitcode):
                handle._end(exitcode, STOPPED, None)
                return True
            case Failed(host, traceback):
                handle._end(None, LOST, f"the worker {host} could not start the child:\n{traceback}")
                return True
        return False


class _Hellos:
    """The listener's side of the handshake: the hellos of the connections that come, read side by side.

    Each connection gets :data:`HELLO_TIMEOUT` seconds in all for its whole
    hello (not per read, which a peer trickling one byte at a time would
    stretch without end), and they are read with a selector, so that a slow or
    silent connection, whoever made it, delays neither the real worker's hello
    nor anything else.
    """

    def __init__(
        self,
        listener: socket.socket,
        key: bytes,
        challenge: bytes,
        refuse: Callable[[Any, BaseException], None],
    ) -> None:
        self._listener = listener
        self._key, self._challenge = key, challenge
        self._refuse = refuse
        self._pending: dict[socket.socket, tuple[Any, bytearray, float]] = {}  # peer, hello so far, deadline
        self._selector = selectors.DefaultSelector()

    def first_valid(self, stop: Callable[[], bool]) -> Wire | None:
        """The first connection whose hello proves the key; None once ``stop()`` is true at a new connection.

        Closes the listener and every other connection before it returns.

        Raises:
            OSError: the listener failed.
        """
        self._selector.register(self._listener, selectors.EVENT_READ)
        try:
            while True:
                self._drop_late()
                deadlines = [deadline for _, _, deadline in self._pending.values()]
                timeout = max(0.0, min(deadlines) - time.monotonic()) if deadlines else None
                for selected, _ in self._selector.select(timeout):
                    if selected.fileobj is self._listener:
                        self._take_connection()
                        if stop():
                            return None
                    else:
                        wire = self._read_hello(selected.fileobj)  # type: ignore[arg-type]
                        if wire is not None:
                            return wire
        finally:
            self._selector.close()
            self._listener.close()
            for sock in self._pending:
                sock.close()

    def _take_connection(self) -> None:
        try:
            sock, peer = self._listener.accept()
        except (BlockingIOError, InterruptedError):
            return  # the connection went away before it was taken
        if len(self._pending) >= MAX_PENDING_HELLOS:
            oldest = next(iter(self._pending))
            self._drop(oldest, ConnectionError(f"more than {MAX_PENDING_HELLOS} connections said no hello"))
        sock.setblocking(False)
        self._pending[sock] = (peer, bytearray(), time.monotonic() + HELLO_TIMEOUT)
        self._selector.register(sock, selectors.EVENT_READ)

    def _read_hello(self, sock: socket.socket) -> Wire | None:
        hello = self._pending[sock][1]
        try:
            data = sock.recv(HELLO_SIZE - len(hello))
        except (BlockingIOError, InterruptedError):
            return None
        except OSError as error:
            self._drop(sock, error)
            return None
        if not data:
            self._drop(sock, EOFError("the connection was closed before its hello was complete"))
            return None
        hello += data
        if len(hello) < HELLO_SIZE:
            return None
        self._selector.unregister(sock)
        peer, _, _ = self._pending.pop(sock)
        try:
            return Wire.from_hello(sock, self._key, self._challenge, bytes(hello))
        except (AuthenticationError, OSError) as error:
            sock.close()
            self._refuse(peer, error)
            return None

    def _drop_late(self) -> None:
        now = time.monotonic()
        for sock in [sock for sock, (_, _, deadline) in self._pending.items() if deadline <= now]:
            self._drop(sock, TimeoutError(f"its hello was not complete within {HELLO_TIMEOUT} s"))

    def _drop(self, sock: socket.socket, error: BaseException) -> None:
        self._selector.unregister(sock)
        peer, _, _ = self._pending.pop(sock)
        sock.close()
        self._refuse(peer, error)

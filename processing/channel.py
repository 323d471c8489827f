"""The control channel between a parent and each child it starts.

It is a private socketpair. The parent sends the child's start payload down it
once (spawn and forkserver). Then objects travel both ways, each as a signed
frame (:mod:`processing.frames`) under the process's auth key, over a fresh
random challenge the parent chose for that child (and a different context for
each direction): up with :func:`processing.sendToParent`, down with
:meth:`processing.Process.sendToChild`. A side accepts a message only from a
peer that holds the key, and a replayed, reordered or reflected message fails
too. A bad signature raises ``AuthenticationError``; the parent then closes
the channel.

A message carrying big out-of-band buffers (a pulled array, a DataFrame), up
or down, goes without them in its frame: they travel as a shared-memory file
whose descriptor rides beside the frame (``SCM_RIGHTS``), see
:mod:`processing.buffers`; the receiver maps it copy-on-write.
The frame's signature covers the message and where each buffer lies in the
file; only the two ends of this private socketpair can put a descriptor on it.
"""

from __future__ import annotations

import array
import os
import socket
import threading
from collections import deque

from . import buffers, frames, serialization
from ._fd import read_exact, wait_readable
from .errors import AuthenticationError

__all__ = ["ChildChannel", "ParentChannel", "pack", "read_payload", "send_payload"]

_NO_PAYLOAD = "the parent closed the control channel before the payload arrived"
_PARENT_GONE = "the parent closed the control channel"
#: Appended to the challenge for the frames the parent sends down: a frame cannot be sent back as its own.
_DOWN = b"\0down"
#: Descriptors one read takes at most (a read stops at each message that carries one).
_MAX_FDS = 4
_CLOEXEC = getattr(socket, "MSG_CMSG_CLOEXEC", 0)
_ANCILLARY_SPACE = socket.CMSG_SPACE(_MAX_FDS * array.array("i").itemsize)


def send_payload(sock: socket.socket, data: bytes) -> None:
    """Send one length-prefixed block (the parent's start payload; the channel itself vouches for it)."""
    sock.sendall(frames.LENGTH.pack(len(data)) + data)


def read_payload(sock: socket.socket) -> bytes:
    """Receive the block sent by :func:`send_payload`.

    Raises:
        EOFError: the parent closed the channel first.
    """
    (size,) = frames.LENGTH.unpack(read_exact(sock, frames.LENGTH.size, eof=_NO_PAYLOAD))
    return read_exact(sock, size, eof=_NO_PAYLOAD)


class ChildChannel:
    """The child's end: sends signed messages to the parent from any thread, and receives the parent's."""

    def __init__(self, sock: socket.socket, key: bytes, challenge: bytes) -> None:
        self.pid = os.getpid()  # the one process that may use it (not an os.fork() copy)
        self._sock = sock
        self._signer = frames.Signer(key, challenge)
        self._checker = frames.Signer(key, challenge + _DOWN)
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        self._fds: deque[int] = deque()  # shared-memory files received, one per Attached message, in order

    def send(self, obj: object) -> None:
        body, shared = pack(obj)
        try:
            with self._lock:
                _send_frame(self._sock, self._signer.seal(body), shared)
        finally:
            if shared is not None:
                shared.close()  # the socket holds the file until the parent takes it

    def receive(self, timeout: float | None = None) -> object:
        """The next object the parent sent, once its signature checked; waits up to ``timeout`` for it.

        Raises:
            TimeoutError: nothing began to arrive within ``timeout`` seconds.
            EOFError: the parent closed the channel.
            AuthenticationError: the frame was not signed by the parent with this process's key.
        """
        with self._read_lock:
            # The timeout bounds the wait for a frame, never a frame half read: the stream stays whole.
            if timeout is not None and not wait_readable(self._sock.fileno(), timeout):
                raise TimeoutError(f"the parent sent nothing within {timeout:g} s")
            size, tag = frames.parse_header(
                read_exact(self._sock, frames.HEADER_SIZE, eof=_PARENT_GONE, receive_into=self._receive_into))
            body = read_exact(self._sock, size, eof=_PARENT_GONE, receive_into=self._receive_into)
            if not self._checker.check(tag, body):
                raise AuthenticationError(
                    "a message from the parent was not signed with this process's auth key; it was dropped"
                )
            return _unpack(body, self._fds)

    def _receive_into(self, view: memoryview) -> int:
        """One read of the stream; the descriptors that ride with its bytes wait in ``_fds``, in order."""
        count, fds = _receive_into(self._sock, view)
        self._fds.extend(fds)
        return count


class ParentChannel:
    """The parent's end: reads what is available without blocking and checks each signature."""

    def __init__(self, sock: socket.socket, key: bytes) -> None:
        self.sock = sock
        self.challenge = os.urandom(32)
        self._checker = frames.Signer(key, self.challenge)
        self._signer = frames.Signer(key, self.challenge + _DOWN)
        self._send_lock = threading.Lock()
        self._buffer = bytearray()
        self._fds: deque[int] = deque()  # shared-memory files received, one per Attached message, in order
        self._lock = threading.Lock()
        self.closed = False
        self.eof = False
        self._forgery: AuthenticationError | None = None
        self._problems: list[Exception] = []

    def fileno(self) -> int:
        return self.sock.fileno()

    def pump(self) -> list[object]:
        """Read what has arrived and return the complete, verified messages.

        A problem never costs the good messages read with it. A message that
        cannot be unpickled here is skipped; its error waits in
        :meth:`take_problems`. A forged message ends the reading (nothing after
        it can be trusted): the good messages before it are returned first, and
        the next call raises. After the child's end is closed (or a forgery),
        ``eof`` is True; the caller then closes this end (a selector must forget
        a descriptor before it is closed).

        Raises:
            AuthenticationError: a message was not signed with this process's key.
        """
        with self._lock:
            if self._forgery is not None:
                forgery, self._forgery = self._forgery, None
                raise forgery
            if self.closed:
                return []
            if self._read_available():
                self.eof = True
            messages = self._parse()
            if self._forgery is not None and not messages:
                forgery, self._forgery = self._forgery, None
                raise forgery
            return messages

    def send(self, body: bytes, shared: buffers.SharedBuffers | None = None) -> None:
        """Send an object packed by :func:`pack` to the child, which loads it with ``receiveFromParent``.

        The caller still owns ``shared`` and closes it after: the socket holds
        the file until the child takes it.

        Raises:
            OSError: the child has closed its end (it exited), or this end is closed.
        """
        with self._send_lock:
            _send_frame(self.sock, self._signer.seal(body), shared)

    def take_problems(self) -> list[Exception]:
        """The errors of messages that could not be unpickled since the last call."""
        with self._lock:
            problems, self._problems = self._problems, []
            return problems

    def _read_available(self) -> bool:
        while True:
            try:
                chunk, fds, flags = _receive(self.sock)
            except (BlockingIOError, InterruptedError):
                return False
            except OSError:
                return True
            self._fds.extend(fds)
            if flags & socket.MSG_CTRUNC:
                self._problems.append(OSError("descriptors sent with a message were dropped"))
            if not chunk:
                return True
            self._buffer += chunk

    def _parse(self) -> list[object]:
        messages: list[object] = []
        while len(self._buffer) >= frames.HEADER_SIZE:
            size, tag = frames.parse_header(self._buffer)
            end = frames.HEADER_SIZE + size
            if len(self._buffer) < end:
                break
            body = bytes(self._buffer[frames.HEADER_SIZE : end])
            del self._buffer[:end]
            if not self._checker.check(tag, body):
                self.eof = True
                self._buffer.clear()
                self._forgery = AuthenticationError(
                    "a message from the child was not signed with this process's auth key; "
                    "nothing more is read from its control channel"
                )
                break
            try:
                messages.append(_unpack(body, self._fds))
            except Exception as error:  # any unpickling failure: report it, keep the rest
                self._problems.append(error)
        return messages

    def close(self) -> None:
        """Close this end and the shared-memory files that arrived for messages not read.

        No lock: a forked child closes the channels of its parent's other
        children, whose locks another thread of the parent may have held.
        """
        if not self.closed:
            self.closed = True
            self.sock.close()
            while self._fds:
                os.close(self._fds.popleft())


def _receive(sock: socket.socket) -> tuple[bytes, list[int], int]:
    """What has arrived on ``sock`` (without waiting), the descriptors sent with it, and the flags.

    (``socket.recv_fds`` would do, but it drops its ``flags``: it would wait.)
    """
    chunk, ancillary, flags, _ = sock.recvmsg(1 << 20, _ANCILLARY_SPACE, socket.MSG_DONTWAIT | _CLOEXEC)
    return chunk, _descriptors(ancillary), flags


def _receive_into(sock: socket.socket, view: memoryview) -> tuple[int, list[int]]:
    """One read into ``view`` (waiting for it): how many bytes came, and the descriptors sent with them."""
    count, ancillary, _, _ = sock.recvmsg_into([view], _ANCILLARY_SPACE, _CLOEXEC)
    return count, _descriptors(ancillary)


def _descriptors(ancillary: list[tuple[int, int, bytes]]) -> list[int]:
    fds = array.array("i")
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            fds.frombytes(data[: len(data) - len(data) % fds.itemsize])
    return list(fds)


def _send_frame(sock: socket.socket, frame: bytes, shared: buffers.SharedBuffers | None) -> None:
    """Send a sealed frame; the descriptor of its shared memory, if any, rides with its first bytes."""
    if shared is None:
        sock.sendall(frame)
    else:
        sent = socket.send_fds(sock, [frame], [shared.fileno()])
        sock.sendall(memoryview(frame)[sent:])


def _unpack(body: bytes, fds: deque[int]) -> object:
    """The object of a verified frame; an ``Attached`` one is loaded with the next file of ``fds``.

    Raises:
        OSError: its file did not arrive, or could not be mapped.
        Exception: whatever unpickling the body raises.
    """
    message = serialization.loads(body)
    if not isinstance(message, buffers.Attached):
        return message
    if not fds:
        raise OSError("a message's shared memory did not arrive with it")
    views = buffers.map_views(fds.popleft(), message.layout, message.size)
    return serialization.loads(message.pickled, buffers=views)


def pack(obj: object) -> tuple[bytes, buffers.SharedBuffers | None]:
    """The body of ``obj``'s frame, and the shared memory of its big buffers if it has any.

    The caller closes the shared memory once the frame is sent.

    Raises:
        Exception: whatever pickling ``obj`` raises.
    """
    pickled, shared = buffers.pack(obj)
    if shared is None:
        return pickled, None
    return serialization.dumps(buffers.Attached(pickled, shared.layout, shared.size)), shared

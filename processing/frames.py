"""Signed frames: the one codec of every authenticated stream (a child's control channel, the remote wire).

A frame is its body's length (8 bytes, network order), an HMAC-SHA256 tag,
then the body. The tag covers the stream's *context* (the parent's fresh
challenge for a control channel; the sender's side for the remote wire), the
frame's position in its stream, and the body. A frame that was forged,
altered, replayed, reordered, or reflected back to its sender therefore fails
the check, and the reader trusts nothing of it.
"""

from __future__ import annotations

import hashlib
import hmac
import struct

__all__ = ["HEADER_SIZE", "LENGTH", "TAG_SIZE", "Signer", "parse_header"]

LENGTH = struct.Struct("!Q")
TAG_SIZE = hashlib.sha256().digest_size
#: The bytes before a frame's body: its length and its tag.
HEADER_SIZE = LENGTH.size + TAG_SIZE


class Signer:
    """One direction of one stream: signs the frames it sends, or checks the frames it receives, in order.

    Each side of a stream keeps one per direction, made from the same key and
    context; every frame sealed or checked moves its count on by one, so the
    two ends agree on where each frame belongs. Not thread-safe: a writer
    serialises its ``seal`` calls with the send they belong to.
    """

    __slots__ = ("_context", "_count", "_key")

    def __init__(self, key: bytes, context: bytes) -> None:
        self._key = key
        self._context = context
        self._count = 0

    def seal(self, body: bytes) -> bytes:
        """The next frame for ``body``: header and body, ready to send."""
        return LENGTH.pack(len(body)) + self.sign(body) + body

    def sign(self, body: bytes) -> bytes:
        """The tag of the next frame, for ``body`` (a handshake sends a bare tag over an empty body)."""
        tag = self._tag(body)
        self._count += 1
        return tag

    def check(self, tag: bytes, body: bytes) -> bool:
        """Whether ``tag`` is the right signature for ``body`` as the next frame of the stream.

        The count moves on either way: after a frame that failed, nothing
        that follows on the stream can be trusted, and callers stop reading.
        """
        good = hmac.compare_digest(tag, self._tag(body))
        self._count += 1
        return good

    def _tag(self, body: bytes) -> bytes:
        mac = hmac.new(self._key, self._context + self._count.to_bytes(8, "big"), hashlib.sha256)
        mac.update(body)
        return mac.digest()


def parse_header(header: bytes | bytearray | memoryview) -> tuple[int, bytes]:
    """The body's length and the tag, from the first :data:`HEADER_SIZE` bytes of a frame."""
    (size,) = LENGTH.unpack_from(header)
    return size, bytes(header[LENGTH.size : HEADER_SIZE])

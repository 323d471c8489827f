"""Authentication keys: creation, validation and a safe way to show them.

A key is kept as bytes. The main process's key is 32 random bytes from
:mod:`secrets`, written as 64 hex digits, so that it is also the "random
hexadecimal string" the original package promised. Nothing here ever puts a key
into an error message: errors describe the value's type or size, not its content.
"""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["as_key", "fingerprint", "key_text", "new_key"]


def new_key() -> bytes:
    """Return a fresh key: 32 bytes from ``secrets``, as 64 ASCII hex digits."""
    return secrets.token_hex(32).encode("ascii")


def as_key(value: object) -> bytes:
    """Validate a key given by a user and return it as bytes.

    Raises:
        TypeError: the value is neither ``str`` nor bytes-like.
        ValueError: the value is empty.
    """
    if isinstance(value, str):
        key = value.encode("utf-8")
    elif isinstance(value, (bytes, bytearray, memoryview)):
        key = bytes(value)
    else:
        raise TypeError(
            f"an authentication key must be a str or bytes, not {type(value).__name__}; "
            "pass e.g. secrets.token_hex(32)"
        )
    if not key:
        raise ValueError("an authentication key must not be empty; pass e.g. secrets.token_hex(32)")
    return key


def key_text(key: bytes) -> str:
    """The key as the string ``getAuthKey()`` returns: its text, or its hex if it is not UTF-8."""
    try:
        return key.decode("utf-8")
    except UnicodeDecodeError:
        return key.hex()


def fingerprint(key: bytes) -> str:
    """First 8 hex digits of the key's SHA-256: enough to tell keys apart, useless to an attacker."""
    return hashlib.sha256(key).hexdigest()[:8]

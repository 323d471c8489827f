"""The PEP 8 spellings of a process handle's camelCase methods, defined once for every kind of handle.

``Process`` and ``RemoteProcess`` both inherit them, so the two cannot drift:
code written against one works with the other.
"""

from __future__ import annotations

from . import authkey as _authkey

__all__ = ["Pep8Aliases"]


class Pep8Aliases:
    """``name``, ``pid``, ``ident``, ``exitcode``, ``authkey``, ``is_alive()`` over the seed's methods."""

    def is_alive(self) -> bool:
        return self.isAlive()  # type: ignore[attr-defined]

    @property
    def name(self) -> str:
        return self.getName()  # type: ignore[attr-defined]

    @name.setter
    def name(self, name: str) -> None:
        self.setName(name)  # type: ignore[attr-defined]

    @property
    def pid(self) -> int | None:
        return self.getPid()  # type: ignore[attr-defined]

    ident = pid

    @property
    def exitcode(self) -> int | None:
        return self.getExitCode()  # type: ignore[attr-defined]

    @property
    def authkey(self) -> bytes:
        return self._authkey  # type: ignore[attr-defined]

    @authkey.setter
    def authkey(self, authkey: str | bytes) -> None:
        self.setAuthKey(authkey)  # type: ignore[attr-defined]

    @property
    def authkey_fingerprint(self) -> str:
        """First 8 hex digits of the key's SHA-256: shows which processes share a key."""
        return _authkey.fingerprint(self._authkey)  # type: ignore[attr-defined]

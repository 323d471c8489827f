"""What every process handle shares: name and key methods, and the PEP 8 spellings of the seed's methods.

``Process`` and ``RemoteProcess`` both inherit them, so the two cannot drift:
code written against one works with the other.
"""

from __future__ import annotations

from . import authkey as _authkey

__all__ = ["Pep8Aliases"]


class Pep8Aliases:
    """``getName``/``setName``, ``getAuthKey``/``setAuthKey``, and ``name``, ``pid``, ``ident``,
    ``exitcode``, ``authkey``, ``is_alive()`` over the seed's methods."""

    _name: str
    _authkey: bytes

    def getName(self) -> str:
        return self._name

    def setName(self, name: str) -> None:
        """Set the name (identification only; names need not be unique).

        Raises:
            TypeError: ``name`` is not a str.
        """
        if not isinstance(name, str):
            raise TypeError(f"a process name must be a str, not {type(name).__name__}")
        self._name = name

    def getAuthKey(self) -> str:
        """The authentication key as a string (64 random hex digits unless set)."""
        return _authkey.key_text(self._authkey)

    def setAuthKey(self, authkey: str | bytes) -> None:
        """Set the key this process (and the children it creates later) authenticates with.

        Raises:
            TypeError: not a str or bytes.
            ValueError: empty.
        """
        self._authkey = _authkey.as_key(authkey)

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

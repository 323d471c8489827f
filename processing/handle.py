"""What every process handle shares, local or remote: name and key methods, the creator rule, where it runs,
and the PEP 8 spellings of the seed's methods.

``Process`` and ``RemoteProcess`` both inherit :class:`ProcessHandle`, so the
two cannot drift: code (and a widget) written against one works with the other.
"""

from __future__ import annotations

import os

from . import authkey as _authkey
from .errors import ProcessStateError

__all__ = ["ProcessHandle"]


class ProcessHandle:
    """``getName``/``setName``, ``getAuthKey``/``setAuthKey``, ``host``, and ``name``, ``pid``, ``ident``,
    ``exitcode``, ``authkey``, ``is_alive()``, ``send_to_child()`` over the seed's methods.

    Subclasses provide ``getPid``, ``getExitCode``, ``isAlive`` and ``sendToChild``, and set
    ``_name``, ``_authkey`` and ``_creator_pid``.
    """

    _name: str
    _authkey: bytes
    _creator_pid: int | None

    #: True for a handle whose child runs on another machine (its pid means nothing here).
    remote = False

    @property
    def host(self) -> str | None:
        """Where the child runs: None for a local child; a remote handle's worker address once known."""
        return None

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

    def send_to_child(self, obj: object) -> None:
        self.sendToChild(obj)  # type: ignore[attr-defined]

    @property
    def name(self) -> str:
        return self.getName()

    @name.setter
    def name(self, name: str) -> None:
        self.setName(name)

    @property
    def pid(self) -> int | None:
        return self.getPid()  # type: ignore[attr-defined]

    ident = pid

    @property
    def exitcode(self) -> int | None:
        return self.getExitCode()  # type: ignore[attr-defined]

    @property
    def authkey(self) -> bytes:
        return self._authkey

    @authkey.setter
    def authkey(self, authkey: str | bytes) -> None:
        self.setAuthKey(authkey)

    @property
    def authkey_fingerprint(self) -> str:
        """First 8 hex digits of the key's SHA-256: shows which processes share a key."""
        return _authkey.fingerprint(self._authkey)

    def _check_creator(self, action: str) -> None:
        """The seed's rule: ``start()``, ``join()`` and ``isAlive()`` belong to the process that created it.

        Raises:
            ProcessStateError: called from another process.
        """
        if self._creator_pid != os.getpid():
            raise ProcessStateError(
                f"{action}() on {self._name} must be called by the process that created it "
                f"(pid {self._creator_pid}), not by pid {os.getpid()}"
            )

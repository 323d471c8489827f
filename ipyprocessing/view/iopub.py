"""Sending display messages to the cell that started a process, from any thread, at any time.

A front end puts an output where its ``parent_header`` says: the request that
caused it. A background thread's messages would otherwise carry whichever
request the kernel handles at the moment, so the child's output would land in
another cell. ``CellChannel`` remembers the originating request when it is
created (in the cell) and stamps it on every message. The output is one
display with a ``display_id``: the first flush sends ``display_data`` and later
ones ``update_display_data``, which replace it, so the shown tail stays bounded
and a saved notebook keeps it as an ordinary output. ipykernel's IOPub socket
forwards sends from any thread to its IO thread, so this is thread-safe.
"""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["CellChannel"]


class CellChannel:
    """IOPub messages parented to the cell being executed when this object was created."""

    def __init__(self, kernel: Any) -> None:
        self._session = kernel.session
        self._socket = kernel.iopub_socket
        self._parent = kernel.get_parent("shell")
        self.display_id = uuid.uuid4().hex
        self._displayed = False

    def show_text(self, text: str) -> None:
        """Show ``text`` in the cell's output, replacing what an earlier call showed."""
        msg_type = "update_display_data" if self._displayed else "display_data"
        content = {"data": {"text/plain": text}, "metadata": {}, "transient": {"display_id": self.display_id}}
        self._session.send(self._socket, msg_type, content, parent=self._parent, ident=b"display_data")
        self._displayed = True

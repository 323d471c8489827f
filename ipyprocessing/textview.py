"""How a ``%%process`` cell shows its child without a widget front end (terminal IPython).

The same information as the widget, as text lines: ``[name] started``, the
child's output as it comes, ``[name] exited with code N``. The streams are the
ones current when the cell ran, so output goes where the cell's output went.
"""

from __future__ import annotations

import codecs
import sys
import threading
from typing import TextIO

import processing

from .handle import CellProcess

__all__ = ["TextView"]


class TextView:
    """Writes a process's lifecycle and output to text streams."""

    def __init__(
        self, process: CellProcess, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.process = process
        self._streams = {"stdout": stdout or sys.stdout, "stderr": stderr or sys.stderr}
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in self._streams}
        self._lock = threading.Lock()
        self._pending: list[tuple[str, bytes]] | None = []

    def show(self) -> None:
        """Print the start line, then what the child wrote before it; call after ``start()``."""
        process = self.process
        with self._lock:
            self._line(f"started, pid {process.pid} ({process.method})")
            pending, self._pending = self._pending or [], None
            for stream, data in pending:
                self._write(stream, data)

    def output(self, stream: str, data: bytes) -> None:
        with self._lock:
            if self._pending is not None:
                self._pending.append((stream, data))
            else:
                self._write(stream, data)

    def exited(self, exitcode: int, note: str) -> None:
        with self._lock:
            word = processing.status_word(exitcode)
            self._line(f"exited with code {exitcode} ({word})" + (f": {note}" if note else ""))

    def _write(self, stream: str, data: bytes) -> None:
        self._emit(stream, self._decoders[stream].decode(data))

    def _line(self, text: str) -> None:
        self._emit("stdout", f"[{self.process.name}] {text}\n")

    def _emit(self, stream: str, text: str) -> None:
        target = self._streams[stream]
        try:
            target.write(text)
            target.flush()
        except (OSError, ValueError):
            pass  # the stream the cell wrote to is gone (closed capture, detached terminal)

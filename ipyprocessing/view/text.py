"""How a ``%%process`` cell shows its child without a widget front end (terminal IPython).

The same information as the widget, as text lines: ``[name] started``, the
child's output as it comes, ``[name] exited with code N``; for a remote cell
also ``[name] running, pid N on tcp://...`` once a worker runs it, and
``[name] lost: ...`` if its worker dies. What the child displays prints in its
text form (a figure as ``<Figure size 640x480 with 1 Axes>``, a DataFrame as
its table), the last expression's value as ``Out[N]: ...``, and a traceback
as IPython writes it. The streams are the ones current when the cell ran, so
output goes where the cell's output went.
"""

from __future__ import annotations

import codecs
import sys
import threading
from typing import Any, TextIO

import processing

from ..cell.handle import CellHandle
from ..cell.messages import Display, Error, Result
from ..words import pid_text, sent_text, state_word

__all__ = ["TextView"]


class TextView:
    """Writes a process's lifecycle and output to text streams."""

    def __init__(
        self, process: CellHandle, stdout: TextIO | None = None, stderr: TextIO | None = None
    ) -> None:
        self.process = process
        self._streams = {"stdout": stdout or sys.stdout, "stderr": stderr or sys.stderr}
        self._decoders = {name: codecs.getincrementaldecoder("utf-8")("replace") for name in self._streams}
        self._lock = threading.Lock()
        # What the child wrote (or its exit) before the start line was printed, kept to print after it.
        self._pending: list[tuple[str, str]] | None = []

    def show(self) -> None:
        """Print the start line, then what happened before it; call after ``start()``."""
        process = self.process
        with self._lock:
            method = process.method or "the worker's default method"
            sent = sent_text(getattr(process, "sent", None))
            self._emit("stdout", self._line(f"started, pid {pid_text(process)} ({method})"
                                            + (f"; {sent}" if sent else "")))
            pending, self._pending = self._pending or [], None
            for stream, text in pending:
                self._emit(stream, text)

    def output(self, stream: str, data: bytes) -> None:
        with self._lock:
            self._print(stream, self._decoders[stream].decode(data))

    def received(self, message: tuple[Any, ...]) -> None:
        """What the child's shell shows, in text (a widget's own messages mean nothing here)."""
        if isinstance(message, Display) and not message.update:
            text = message.data.get("text/plain")
            if text is not None:
                with self._lock:
                    self._print("stdout", f"{text}\n")
        elif isinstance(message, Result):
            shown = message.data.get("text/plain", "")
            with self._lock:
                self._print("stdout", f"Out[{self.process.execution_count}]: {shown}\n")
        elif isinstance(message, Error):
            text = "\n".join(message.traceback) if self._colours() else message.plain()
            with self._lock:
                self._print("stderr", text + "\n")

    def _colours(self) -> bool:
        isatty = getattr(self._streams["stderr"], "isatty", None)
        try:
            return bool(isatty and isatty())
        except (OSError, ValueError):
            return False

    def running(self) -> None:
        """A remote cell now runs on a worker: say where (before ``show()``, its line will say it)."""
        with self._lock:
            if self._pending is None:
                self._emit("stdout", self._line(f"running, pid {pid_text(self.process)}"))

    def exited(self, exitcode: int | None, note: str) -> None:
        if exitcode is None:
            word = state_word(self.process, exitcode, True)
            line = self._line(f"{word}: {note}" if note else word)
        else:
            line = self._line(f"exited with code {exitcode} ({processing.status_word(exitcode)})"
                              + (f": {note}" if note else ""))
        with self._lock:
            self._print("stdout", line)

    def wait_shown(self, timeout: float) -> bool:
        """The end is printed by :meth:`exited` itself, before the core's event returns."""
        return True

    def release(self) -> None:
        """Nothing is held: what was printed stays printed."""

    def _line(self, text: str) -> str:
        return f"[{self.process.name}] {text}\n"

    def _print(self, stream: str, text: str) -> None:
        if self._pending is not None:
            self._pending.append((stream, text))
        else:
            self._emit(stream, text)

    def _emit(self, stream: str, text: str) -> None:
        target = self._streams[stream]
        try:
            target.write(text)
            target.flush()
        except (OSError, ValueError):
            pass  # the stream the cell wrote to is gone (closed capture, detached terminal)

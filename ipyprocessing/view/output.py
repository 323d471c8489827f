"""A child's output: every byte kept in order, and a bounded terminal-like tail for display.

The log keeps the whole output so nothing is lost however much a child prints,
in memory while it is small and in an anonymous temporary file beyond that, so
a cell that prints gigabytes (or is re-run with a flood each time) does not
grow the kernel. The display must stay small whatever the child does (a million lines, 100 MB,
a progress bar redrawn ten thousand times), so ``Tail`` keeps only the last
lines of a terminal-like screen: ``\\r`` returns to the start of the line and
overwrites it, as a terminal does, so a progress bar stays one line. During a
flood only the last ``WINDOW`` bytes of a batch are decoded at all; the rest
is counted, not rendered.
"""

from __future__ import annotations

import codecs
import threading
from collections import deque

TYPE_CHECKING = False  # no typing at run time: spawned children import this module
if TYPE_CHECKING:
    import io

__all__ = ["MAX_LINES", "MAX_LINE_CHARS", "SPILL", "WINDOW", "OutputLog", "Tail"]

#: Lines the display keeps by default (``ProcessSettings.tail_lines``); older lines are counted as hidden.
MAX_LINES = 200
#: A longer line is cut, so one giant line cannot flood the display.
MAX_LINE_CHARS = 2000
#: Bytes of one batch that are decoded and rendered; earlier bytes of the batch are only counted.
WINDOW = 256 * 1024
#: Bytes of output kept in memory by default (``ProcessSettings.spill_bytes``); past this the log moves to a
#: temporary file.
SPILL = 1 << 20


class OutputLog:
    """Every byte a child wrote, in delivery order, and which stream wrote which range.

    In memory up to ``spill`` bytes, then in an anonymous temporary file. If
    that file cannot be written (the disk is full, a file-size limit), what it
    held is read back and the log goes on in memory: no byte is lost, and
    :attr:`problem` says why the output now takes the kernel's memory (the
    cell's row says so when the child ends). The monitor thread appends while
    any thread may read, hence the lock.
    """

    def __init__(self, spill: int = SPILL) -> None:
        self._spill = spill
        self._memory = bytearray()
        # An unbuffered temporary file once past spill (then _memory is empty).
        self._file: io.FileIO | None = None
        self._file_size = 0
        self._ranges: list[tuple[str, int, int]] = []  # (stream, start, end), a stream's neighbours merged
        self._size = 0
        self._lock = threading.Lock()
        #: Why the output is kept in memory past ``spill`` (None while all is well).
        self.problem: str | None = None

    def append(self, stream: str, data: bytes) -> None:
        with self._lock:
            self._store(data)
            end = self._size + len(data)
            if self._ranges and self._ranges[-1][0] == stream:
                self._ranges[-1] = (stream, self._ranges[-1][1], end)
            else:
                self._ranges.append((stream, self._size, end))
            self._size = end

    def join(self, stream: str | None = None) -> bytes:
        """All bytes written so far, of one stream or (None) of both, in order."""
        with self._lock:
            data = self._read_file() if self._file is not None else bytes(self._memory)
            ranges = [(start, end) for name, start, end in self._ranges if stream in (None, name)]
        if stream is None:
            return data
        return b"".join(data[start:end] for start, end in ranges)

    def _store(self, data: bytes) -> None:
        if self._file is not None:
            self._write_file(data)
            return
        self._memory += data
        if len(self._memory) > self._spill and self.problem is None:
            self._spill_to_file()

    def _spill_to_file(self) -> None:
        import tempfile  # here, not at the top: spawned children import this module and never log

        try:
            self._file = tempfile.TemporaryFile(buffering=0)  # noqa: SIM115 - lives as long as the log
        except OSError as error:
            self._keep_in_memory(error)
            return
        self._file_size = 0
        data, self._memory = bytes(self._memory), bytearray()
        self._write_file(data)

    def _write_file(self, data: bytes) -> None:
        view = memoryview(data)
        try:
            while view:
                written = self._file.write(view)
                self._file_size += written
                view = view[written:]
        except OSError as error:
            self._memory = bytearray(self._read_file())  # what the file holds comes back
            self._file.close()
            self._file = None
            self._keep_in_memory(error)
            self._memory += view

    def _read_file(self) -> bytes:
        self._file.seek(0)
        data = self._file.read(self._file_size) or b""
        self._file.seek(self._file_size)
        return data

    def _keep_in_memory(self, error: OSError) -> None:
        self.problem = (f"its output is kept in the kernel's memory: the temporary file for it could not be "
                        f"written ({error.strerror or error})")


class Tail:
    """The last ``max_lines`` lines of a terminal screen (one stream, or both writing to it)."""

    def __init__(self, max_lines: int = MAX_LINES) -> None:
        self._lines: deque[str] = deque(maxlen=max_lines)
        self._line = ""
        self._column = 0
        self.hidden = 0
        self._decoders = {name: _decoder() for name in ("stdout", "stderr")}

    def feed(self, chunks: list[tuple[str, bytes]]) -> None:
        """Add a batch of chunks; beyond ``WINDOW`` bytes, only the batch's end is rendered."""
        excess = sum(len(data) for _, data in chunks) - WINDOW
        for stream, data in chunks:
            if excess >= len(data):
                excess -= len(data)
                self._skip(data)
                continue
            if excess > 0:
                self._skip(data[:excess])
                data = data[excess:]
                excess = 0
            self._write(self._decoders[stream].decode(data))

    @property
    def line_count(self) -> int:
        """Lines shown now, the one being written included."""
        return len(self._lines) + (1 if self._line else 0)

    def drop_oldest(self) -> bool:
        """Forget the oldest complete line (counted as hidden); False if there is none."""
        if not self._lines:
            return False
        self._lines.popleft()
        self.hidden += 1
        return True

    def render(self, hint: str = "") -> str:
        """The visible text; a first line says how many lines are hidden (and ``hint``)."""
        visible = self.visible()
        if self.hidden:
            return f"[{self.hidden:,} earlier lines not shown{hint}]" + (f"\n{visible}" if visible else "")
        return visible

    def visible(self) -> str:
        """The lines shown now, the one being written last."""
        lines = list(self._lines)
        if self._line:
            lines.append(self._line)
        return "\n".join(lines)

    def _skip(self, data: bytes) -> None:
        """Count the lines in bytes that will never be shown; the line being written is lost."""
        newlines = data.count(b"\n")
        if newlines:
            self.hidden += newlines
            self._line, self._column = "", 0
            self._decoders = {name: _decoder() for name in self._decoders}

    def _write(self, text: str) -> None:
        first, *rest = text.split("\n")
        self._put(first)
        for part in rest:
            self._end_line()
            self._put(part)

    def _put(self, text: str) -> None:
        """Write text without newlines at the cursor; ``\\r`` moves the cursor back to column 0."""
        for index, segment in enumerate(text.split("\r")):
            if index:
                self._column = 0
            if not segment:
                continue
            if self._column == len(self._line):
                self._line += segment
            else:
                self._line = self._line[: self._column] + segment + self._line[self._column + len(segment):]
            self._column += len(segment)
        if len(self._line) > MAX_LINE_CHARS:
            # Keep the end: for a progress bar drawn on one ever-growing line, that is the news.
            self._line = self._line[-MAX_LINE_CHARS:]
            self._column = min(self._column, MAX_LINE_CHARS)

    def _end_line(self) -> None:
        if len(self._lines) == self._lines.maxlen:
            self.hidden += 1
        self._lines.append(self._line)
        self._line, self._column = "", 0


def _decoder() -> codecs.IncrementalDecoder:
    return codecs.getincrementaldecoder("utf-8")("replace")

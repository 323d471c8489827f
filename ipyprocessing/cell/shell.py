"""The IPython shell a ``%%process`` cell runs in, inside the child: the child is a real notebook cell.

``run()`` runs the cell with ``InteractiveShell.run_cell``, not ``exec``, so the
cell gets what a notebook cell gets: input transformations (``!cmd``,
``%line`` and ``%%cell`` magics, ``?``, top-level ``await``), the displayhook
(the last expression's value as the cell's result), the ``post_execute``
event (which matplotlib's inline backend needs to show figures), and
IPython's traceback formatting. Where a kernel's shell would send messages on
ZeroMQ, this one sends them to the notebook over the child's authenticated
channel (:mod:`.messages`): what Python code prints, every display,
``clear_output`` and result, each traceback, and the comm messages of the
child's widgets, which the notebook relays to the front end and back. All of
it goes one way in one order, so a ``print`` before a ``display`` shows above
it. Prints are buffered as ipykernel's are: sent before any other message,
when 64 KiB have gathered, and otherwise within 50 ms (so a flood costs few
messages, and a line without its newline still shows).

``input()`` and ``getpass()`` ask the notebook (a ``--wait`` cell: the
kernel's stdin channel answers) or fail at once, saying why.

Importing this module imports IPython; :func:`warm` builds the one shell of
the child. The fork server preloads :mod:`.warm`, which does both once, so
that a forkserver child finds them ready and only points the shell at its
namespace.
"""

from __future__ import annotations

import builtins
import getpass
import io
import linecache
import queue
import sys
import threading
import time
import warnings
from contextlib import contextmanager
from typing import Any

import comm
from comm.base_comm import BaseComm, CommManager
from IPython.core.displayhook import DisplayHook
from IPython.core.displaypub import DisplayPublisher
from IPython.core.error import StdinNotImplementedError
from IPython.core.interactiveshell import InteractiveShell
from traitlets import Type
from traitlets.config import Config

import processing
from processing import logs

from .messages import (
    Clear,
    CommClose,
    CommMsg,
    CommOpen,
    Display,
    Error,
    InputReply,
    InputRequest,
    Result,
    Stream,
)

__all__ = ["CellShell", "run", "warm"]

#: What IPython says when a cell calls sys.exit(); a child's sys.exit() ends the child, as it should.
_EXIT_HINT = "To exit: use 'exit', 'quit', or Ctrl-D."
NO_STDIN = (
    "input() in a %%process cell needs --wait: without it the cell returns at once and nobody "
    "is there to answer; add --wait to the %%process line, or pass the value in from the notebook"
)


def send(message: tuple[Any, ...]) -> None:
    """Send ``message`` to the notebook, after what the cell printed so far (sent first)."""
    _printed.flush()
    processing.sendToParent(message)


class _Printed:
    """What the cell prints to ``sys.stdout`` and ``sys.stderr``, on its way to the notebook, in order."""

    #: Characters gathered before they are sent at once.
    LIMIT = 1 << 16
    #: Seconds after which what was printed is sent anyway.
    DELAY = 0.05

    def __init__(self) -> None:
        self._lock = threading.RLock()  # a flush may print (a broken pipe's warning): re-entered
        self._parts: list[list[str]] = []  # [stream name, text], a name's neighbours merged
        self._size = 0
        self._due = threading.Condition(self._lock)
        self._thread: threading.Thread | None = None

    def write(self, name: str, text: str) -> None:
        with self._lock:
            was_empty = not self._parts
            if self._parts and self._parts[-1][0] == name:
                self._parts[-1][1] += text
            else:
                self._parts.append([name, text])
            self._size += len(text)
            if self._size >= self.LIMIT:
                self.flush()
            elif was_empty:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._send_soon, name="ipyprocessing-prints",
                                                    daemon=True)
                    self._thread.start()
                self._due.notify()

    def flush(self) -> None:
        with self._lock:
            parts, self._parts, self._size = self._parts, [], 0
            if parts:
                processing.sendToParent(Stream(tuple((name, text) for name, text in parts)))

    def _send_soon(self) -> None:
        """Send what was printed at most ``DELAY`` seconds after the first of it (woken when it comes)."""
        with self._lock:
            while True:
                while not self._parts:
                    self._due.wait()
                deadline = time.monotonic() + self.DELAY
                while self._parts and (left := deadline - time.monotonic()) > 0:
                    self._due.wait(left)
                try:
                    self.flush()
                except Exception:
                    return  # the notebook has gone: nothing more can be sent


_printed = _Printed()


class _ChannelStream(io.TextIOBase):
    """``sys.stdout`` or ``sys.stderr`` of the cell: text goes to the notebook (see :class:`_Printed`)."""

    def __init__(self, name: str, fd: int) -> None:
        super().__init__()
        self._name = name
        self._fd = fd

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return "utf-8"

    @property
    def name(self) -> str:
        return f"<{self._name}>"

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        _printed.write(self._name, text)
        return len(text)

    def flush(self) -> None:
        _printed.flush()

    def fileno(self) -> int:
        """The real descriptor, for code that writes to it directly (its output takes the capture pipe)."""
        return self._fd

    def isatty(self) -> bool:
        return False


class ChannelDisplayPublisher(DisplayPublisher):
    """Every ``display()``, ``update_display`` and ``clear_output`` goes to the notebook."""

    def publish(self, data: dict[str, Any], metadata: dict[str, Any] | None = None, source: Any = None, *,
                transient: dict[str, Any] | None = None, update: bool = False, **kwargs: Any) -> None:
        self._validate_data(data, metadata)
        send(Display(data, metadata or {}, transient or {}, update))

    def clear_output(self, wait: bool = False) -> None:
        send(Clear(wait))


class ChannelDisplayHook(DisplayHook):
    """The last expression's value, formatted as the notebook's ``Out[N]``, goes to the notebook."""

    def write_output_prompt(self) -> None:
        pass  # the notebook shows the prompt

    def write_format_data(self, format_dict: dict[str, Any], md_dict: dict[str, Any] | None = None) -> None:
        send(Result(format_dict, md_dict or {}))


class CellShell(InteractiveShell):
    """An IPython shell whose displays, results and tracebacks go to the notebook over the child's channel."""

    display_pub_class = Type(ChannelDisplayPublisher)
    displayhook_class = Type(ChannelDisplayHook)

    def _showtraceback(self, etype: type[BaseException], evalue: BaseException, stb: list[str]) -> None:
        send(Error(etype.__name__, str(evalue), stb))

    def showtraceback(self, exc_tuple: Any = None, *args: Any, **kwargs: Any) -> None:
        etype = (exc_tuple or sys.exc_info())[0]
        if etype is not None and issubclass(etype, SystemExit):
            return  # sys.exit() ends the child with its code (see run), as it ends any Process
        super().showtraceback(exc_tuple, *args, **kwargs)

    @contextmanager
    def _tee(self, channel: str) -> Any:
        """No copy of the output in the shell's history: the notebook keeps it (a flood would fill memory)."""
        yield

    def init_virtualenv(self) -> None:
        pass  # the child runs in the notebook's interpreter, whatever IPython would warn about


class _ChildComm(BaseComm):
    """A comm of the child's (a widget's model): its messages go to the notebook, which relays them."""

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
        buffers = [bytes(buffer) for buffer in buffers or ()]
        data, metadata = data or {}, metadata or {}
        if msg_type == "comm_open":
            send(CommOpen(self.comm_id, keys.get("target_name", self.target_name),
                          keys.get("target_module"), data, metadata, buffers))
        elif msg_type == "comm_msg":
            send(CommMsg(self.comm_id, data, metadata, buffers))
        elif msg_type == "comm_close":
            send(CommClose(self.comm_id, data, metadata, buffers))


_comms = CommManager()
_replies: queue.Queue[InputReply] = queue.Queue()


def _receive() -> None:
    """The child's reader of the notebook's messages: comm messages for its widgets, answers to input()."""
    while True:
        try:
            message = processing.receiveFromParent()
        except (EOFError, OSError, processing.AuthenticationError):
            _replies.put(InputReply(None, "the notebook went away"))
            return
        if isinstance(message, InputReply):
            _replies.put(message)
        elif isinstance(message, (CommMsg, CommClose)):
            _deliver_comm(message)


def _deliver_comm(message: CommMsg | CommClose) -> None:
    msg = {"content": {"comm_id": message.comm_id, "data": message.data}, "metadata": message.metadata,
           "buffers": message.buffers, "header": {}, "parent_header": {}}
    target = _comms.comms.get(message.comm_id)
    if target is None:
        return
    try:
        if isinstance(message, CommClose):
            _comms.comms.pop(message.comm_id, None)
            target._closed = True
            target.handle_close(msg)
        else:
            target.handle_msg(msg)
    except Exception:
        logs.report_exception("error in a widget's handler in the child")


class _Stdin:
    """``input()`` and ``getpass()`` in the child: asked of the notebook, or refused with the reason."""

    allowed = False

    def input(self, prompt: object = "") -> str:
        return self._ask(str(prompt), password=False)

    def getpass(self, prompt: str = "Password: ", stream: Any = None) -> str:
        return self._ask(prompt, password=True)

    def _ask(self, prompt: str, *, password: bool) -> str:
        if not self.allowed:
            raise StdinNotImplementedError(NO_STDIN)
        send(InputRequest(prompt, password))
        reply = _replies.get()
        if reply.error is not None:
            if reply.error == "interrupted":
                raise KeyboardInterrupt
            raise StdinNotImplementedError(reply.error)
        return reply.value


_stdin = _Stdin()


def _base_config() -> Config:
    config = Config()
    config.HistoryManager.enabled = False  # no SQLite file per child
    config.IPKernelApp = Config()  # what tqdm.auto and friends look for to draw widgets
    return config


_shell: CellShell | None = None
_setup_lock = threading.Lock()


def warm() -> CellShell:
    """Build this process's one shell now, if it has none (the fork server does it once for its children).

    Only in a child, or a fork server: the shell becomes the process's
    ``get_ipython()``, in place of any other (a forked kernel's own).
    """
    global _shell
    with _setup_lock:
        if _shell is None or InteractiveShell._instance is not _shell:
            InteractiveShell.clear_instance()  # a forked kernel's own shell must not answer get_ipython()
            _shell = CellShell.instance(config=_base_config())
            _shell.run_cell("pass", store_history=False, silent=True)  # its first cell imports what any needs
            # What libraries look for to tell a notebook from a terminal (tqdm.auto, for one).
            import ipykernel.zmqshell  # noqa: F401
        return _shell


def run(source: str, namespace: dict[str, Any], *, execution_count: int, config: dict[str, Any] | None,
        colors: str | None, sources: dict[str, tuple[list[str], int]], stdin: bool) -> None:
    """Run ``source`` as the notebook's cell number ``execution_count``, in ``namespace``; then return.

    ``sources`` are the notebook's earlier cells the cell's functions come
    from (file name: lines and cell number), so their tracebacks show
    ``Cell In[N]`` and the source line. An exception is shown as IPython shows
    it and ends the child with exit code 1; ``sys.exit(n)`` ends it with ``n``.
    """
    shell = _prepare(namespace, execution_count, config, colors, sources, stdin)
    result = shell.run_cell(source, store_history=False)
    error = result.error_before_exec or result.error_in_exec
    if isinstance(error, SystemExit):
        raise SystemExit(error.code)
    if error is not None:
        raise SystemExit(1)


def _prepare(namespace: dict[str, Any], execution_count: int, config: dict[str, Any] | None,
             colors: str | None, sources: dict[str, tuple[list[str], int]], stdin: bool) -> CellShell:
    shell = warm()
    if config:
        shell.update_config(Config(config))
    if colors:
        shell.colors = colors
    shell.init_create_namespaces(user_ns=namespace)
    shell.init_user_ns()
    shell.execution_count = execution_count
    for filename, (lines, number) in sources.items():
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
        shell.compile._filename_map[filename] = number
    sys.stdout, sys.stderr = _ChannelStream("stdout", 1), _ChannelStream("stderr", 2)
    comm.create_comm = _ChildComm
    comm.get_comm_manager = lambda: _comms
    _stdin.allowed = stdin
    builtins.input = _stdin.input
    getpass.getpass = _stdin.getpass
    warnings.filterwarnings("ignore", message=_EXIT_HINT)
    _inline_figures(shell)
    threading.Thread(target=_receive, name="ipyprocessing-from-notebook", daemon=True).start()
    return shell


def _inline_figures(shell: CellShell) -> None:
    """Figures in the cell: the notebook's inline backend, hooked to this shell.

    A forked child may find matplotlib's inline backend already imported, and
    hooked to the kernel's shell it was copied from; a fresh one hooks itself
    to this shell when the cell imports pyplot.
    """
    backend_inline = sys.modules.get("matplotlib_inline.backend_inline")
    if backend_inline is None:
        return
    import matplotlib

    backend = matplotlib.get_backend()
    if "inline" in backend:
        backend_inline.configure_inline_support(shell, backend)


"""``--wait``: block the cell until the child exits, keep its widgets alive, and answer its ``input()``.

A cell that simply blocks also blocks the kernel's handling of shell messages,
so a click on the Terminate button would wait until the cell ends: the
long-standing "dead widgets while a cell runs" problem. Like jupyter-ui-poll,
the wait reads the main shell's queue itself. In ipykernel 7, the shell
channel thread forwards the main shell's messages through an inproc socket
pair to the main thread; while waiting, this module polls that socket together
with the child's sentinel, handles comm messages (the widgets' traffic) at
once with the kernel's own handlers, and keeps every other request (the next
cell's execute_request ...) to hand back, in order, to the kernel's handler
when the wait ends; the kernel's lock makes them run after this cell.
Where that socket is not reachable (older ipykernel, a subshell), the wait
only watches the child.

The child's ``input()`` asks here: the request wakes the wait, which asks the
kernel's stdin channel (the notebook's input box) on the cell's own thread, as
a plain cell's ``input()`` would, and sends the answer down to the child; in
terminal IPython it asks the terminal.
"""

from __future__ import annotations

import asyncio
import contextvars
import getpass
import select
import threading
import time
from typing import TYPE_CHECKING, Any

import zmq
from IPython.core.error import StdinNotImplementedError

from .handle import CellProcess, timeout_reason
from .messages import InputReply

if TYPE_CHECKING:
    from .remote import RemoteCellProcess

__all__ = ["wait_ended", "wait_for"]

_COMM_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close"})
_handed_back: set[asyncio.Future[Any]] = set()


def wait_for(process: CellProcess | RemoteCellProcess, kernel: Any, timeout: float | None) -> None:
    """Return once ``process`` has exited and its exit was handled; stop it after ``timeout`` seconds.

    ``process`` is a local or a remote cell's handle: both have the ``sentinel``
    descriptor and ``join`` this needs (a remote one's sentinel becomes readable
    when its exit, or its loss, has been reported). ``kernel`` is the ipykernel
    kernel, or None outside one.

    Raises:
        KeyboardInterrupt: the kernel was interrupted (the caller stops the child).
    """
    if not wait_ended(process, kernel, timeout):
        assert timeout is not None
        process.stop(timeout_reason(timeout))
    process.join()


def wait_ended(process: CellProcess | RemoteCellProcess, kernel: Any, limit: float | None) -> bool:
    """Serve the widgets and the child's ``input()`` until ``process`` has exited (True) or ``limit``
    seconds have passed (False); the child is left alone either way.

    Raises:
        KeyboardInterrupt: the kernel was interrupted.
    """
    pump = _ShellPump.of(kernel)
    deadline = None if limit is None else time.monotonic() + limit
    watched = [process.sentinel, process.input_requests.fd]
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return False
            if pump is not None:
                ready = pump.serve_until_readable(watched, remaining)
            else:
                ready = select.select(watched, [], [], remaining)[0]
            if process.input_requests.fd in ready:
                _answer(process, kernel)
            if process.sentinel in ready:
                return True
    finally:
        process.input_requests.close()
        if pump is not None:
            pump.hand_back()


def _answer(process: CellProcess | RemoteCellProcess, kernel: Any) -> None:
    """Ask what the child's input() asks, here on the cell's thread, and send the answers down."""
    for request in process.input_requests.take():
        try:
            if kernel is not None:
                value = (kernel.getpass if request.password else kernel.raw_input)(request.prompt)
            else:
                value = (getpass.getpass if request.password else input)(request.prompt)
            reply = InputReply(value, None)
        except StdinNotImplementedError as error:
            reply = InputReply(None, str(error))
        except EOFError:
            reply = InputReply(None, "the notebook's input was closed")
        except KeyboardInterrupt:
            _send(process, InputReply(None, "interrupted"))
            raise
        _send(process, reply)


def _send(process: CellProcess | RemoteCellProcess, reply: InputReply) -> None:
    try:
        process.sendToChild(reply)
    except Exception:
        pass  # it has just ended: nobody waits for the answer


class _ShellPump:
    """Serves the main shell's comm messages while the main thread is busy waiting."""

    def __init__(self, kernel: Any, socket: zmq.Socket[Any], reply_socket: zmq.Socket[Any]) -> None:
        self._kernel = kernel
        self._socket = socket
        self._reply_socket = reply_socket
        self._deferred: list[list[zmq.Frame]] = []

    @classmethod
    def of(cls, kernel: Any) -> _ShellPump | None:
        thread = getattr(kernel, "shell_channel_thread", None)
        if thread is None or threading.current_thread() is not thread.parent_thread:
            return None
        manager = thread.manager
        pair = manager.get_shell_channel_to_subshell_pair(None)
        return cls(kernel, pair.to_socket, manager.get_subshell_to_shell_channel_socket(None))

    def serve_until_readable(self, fds: list[int], timeout: float | None) -> list[int]:
        """Handle shell messages until some of ``fds`` are readable (they are returned) or ``timeout``
        seconds pass (an empty list)."""
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        for fd in fds:
            poller.register(fd, zmq.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = dict(poller.poll(None if remaining is None else remaining * 1000))
            if self._socket in events:
                self._drain()
            ready = [fd for fd in fds if fd in events]
            if ready:
                return ready
            if remaining is not None and not events:
                return []

    def hand_back(self) -> None:
        """Give the requests that arrived during the wait to the kernel, in their order."""
        deferred, self._deferred = self._deferred, []
        for frames in deferred:
            task = asyncio.ensure_future(self._kernel.shell_main(None, frames))
            _handed_back.add(task)  # the loop keeps only a weak reference to a task
            task.add_done_callback(_handed_back.discard)

    def _drain(self) -> None:
        session = self._kernel.session
        while True:
            try:
                frames = self._socket.recv_multipart(zmq.NOBLOCK, copy=False)
            except zmq.Again:
                return
            idents, parts = session.feed_identities(frames, copy=False)
            header = session.deserialize(parts, content=False, copy=False)["header"]
            handler = self._kernel.shell_handlers.get(header["msg_type"])
            if header["msg_type"] not in _COMM_MESSAGES or handler is None:
                self._deferred.append(frames)
                continue
            message = session.deserialize(parts, content=True, copy=False)
            # A copied context keeps the handler's side effects off the waiting cell's context.
            contextvars.copy_context().run(handler, self._reply_socket, idents, message)

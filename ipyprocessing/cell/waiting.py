"""``--wait``: block the cell until the child exits, and keep its widgets alive meanwhile.

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
Where that socket is not reachable (older ipykernel, a subshell), the wait is
a plain join.
"""

from __future__ import annotations

import asyncio
import contextvars
import threading
import time
from typing import TYPE_CHECKING, Any

import zmq

from .handle import CellProcess, timeout_reason

if TYPE_CHECKING:
    from .remote import RemoteCellProcess

__all__ = ["wait_for"]

_COMM_MESSAGES = frozenset({"comm_open", "comm_msg", "comm_close"})
_handed_back: set[asyncio.Future[Any]] = set()


def wait_for(process: CellProcess | RemoteCellProcess, kernel: Any, timeout: float | None) -> None:
    """Return once ``process`` has exited and its exit was handled; stop it after ``timeout`` seconds.

    ``process`` is a local or a remote cell's handle: both have the ``sentinel``
    descriptor and ``join`` this needs (a remote one's sentinel becomes readable
    when its exit, or its loss, has been reported). ``kernel`` is the ipykernel
    kernel, or None outside one (then this is a join).
    """
    pump = _ShellPump.of(kernel)
    deadline = None if timeout is None else time.monotonic() + timeout
    try:
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                process.stop(timeout_reason(timeout))
                break
            if pump is not None:
                if pump.serve_until_readable(process.sentinel, remaining):
                    break
            else:
                process.join(remaining)
                if not process.is_alive():
                    break
    finally:
        if pump is not None:
            pump.hand_back()
    process.join()


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

    def serve_until_readable(self, fd: int, timeout: float | None) -> bool:
        """Handle shell messages until ``fd`` is readable (True) or ``timeout`` seconds pass (False)."""
        poller = zmq.Poller()
        poller.register(self._socket, zmq.POLLIN)
        poller.register(fd, zmq.POLLIN)
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
            events = dict(poller.poll(None if remaining is None else remaining * 1000))
            if self._socket in events:
                self._drain()
            if fd in events:
                return True
            if remaining is not None and not events:
                return False

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

"""Sending messages to the cell that started a process, from any thread, at any time.

A front end puts an output where its ``parent_header`` says: the request that
caused it. A background thread's messages would otherwise carry whichever
request the kernel handles at the moment, so the child's output would land in
another cell. ``CellChannel`` remembers the originating request when it is
created (in the cell) and stamps it on every message: the display of the cell's
status, the outputs it keeps once the child has ended, and the comm messages
of the child's widgets. ipykernel's IOPub socket forwards sends from any
thread to its IO thread, so this is thread-safe.
"""

from __future__ import annotations

import contextvars
import uuid
from collections.abc import Callable
from typing import Any

from ..cell.clock import clock

__all__ = ["CellChannel"]


class CellChannel:
    """IOPub messages parented to the cell being executed when this object was created."""

    def __init__(self, kernel: Any) -> None:
        self._kernel = kernel
        self._session = kernel.session
        self._socket = kernel.iopub_socket
        self._parent = kernel.get_parent("shell")
        # ipykernel keeps the parent of what is published in a context variable (7.x): messages sent
        # through the kernel's own machinery (a widget's update) take it from there.
        self._parent_variable = getattr(kernel, "_shell_parent", None)
        #: The cell's own display (its status, then its final record), replaced in place by this id.
        self.display_id = uuid.uuid4().hex

    @property
    def comm_manager(self) -> Any:
        """The kernel's comm manager, where the child's widgets' comms are registered."""
        from comm import get_comm_manager

        return get_comm_manager()

    def as_cell(self, action: Callable[[], Any]) -> Any:
        """Run ``action`` with the originating cell as the parent of what the kernel publishes meanwhile
        (a widget's update from a background thread), where ipykernel says which parent that is."""
        variable = self._parent_variable
        if not isinstance(variable, contextvars.ContextVar):
            return action()

        def run() -> Any:
            variable.set(self._parent)
            return action()

        return contextvars.copy_context().run(run)

    def publish(self, msg_type: str, content: dict[str, Any], *, metadata: dict[str, Any] | None = None,
                buffers: list[bytes] | None = None, ident: bytes | None = None) -> None:
        """Send one IOPub message as the originating cell's."""
        self._session.send(self._socket, msg_type, content, parent=self._parent, metadata=metadata,
                           buffers=buffers, ident=ident or msg_type.encode())

    def update_display(self, data: dict[str, Any], metadata: dict[str, Any] | None = None) -> None:
        """Replace the cell's own display (shown with :attr:`display_id`) with ``data``."""
        self.publish("update_display_data", {"data": data, "metadata": metadata or {},
                                             "transient": {"display_id": self.display_id}})

    def show_final(self, record: dict[str, Any], for_runner: dict[str, Any],
                   outputs: list[dict[str, Any]]) -> None:
        """Replace the cell's display with ``record`` for good and add ``outputs`` as the cell's own,
        in every kind of front end.

        A client that listens only to the cell it is executing (nbclient, so
        ``jupyter nbconvert --execute`` and CI) ignores messages parented to a cell
        it has finished, but applies a display-id update from the running cell to
        every output with that id: it gets ``for_runner`` (the record with what the
        cell's own outputs would have shown) from the running cell, if that is
        another, and then the cell's own ``record``, so that a front end that
        applies both (JupyterLab) ends with the cell's own. If no cell runs (the
        child ended as its cell did, or between cells), all of it goes out in the
        next cell or after the last cell's ``idle``, and then the records again
        as the next cell starts: such a client shows the tail once, never beside
        the outputs.
        """
        def send() -> None:
            self._show_final(record, for_runner)
            for output in outputs:
                self.publish_output(output)

        if clock.within_cell(send):
            return
        loop = getattr(self._kernel, "io_loop", None)
        if loop is None:  # not ipykernel's: no front end hears one cell only
            send()
            return
        # Between cells, or between a cell's post_execute and its idle, which ipykernel sends without
        # yielding to its event loop: sent as the next cell starts, or by the loop once it is free (the
        # idle is out), whichever comes first. Both run on the kernel's main thread.
        sent = False

        def send_once() -> None:
            nonlocal sent
            if not sent:
                sent = True
                send()

        def once_free() -> None:
            if not sent and not clock.within_cell(send_once):
                send_once()
                clock.at_next_start(lambda: self._show_final(record, for_runner))

        clock.at_next_start(send_once)
        try:
            loop.add_callback(once_free)
        except RuntimeError:  # the loop has closed: the kernel is going, only this send is left
            send_once()

    def _show_final(self, record: dict[str, Any], for_runner: dict[str, Any]) -> None:
        running = self._kernel.get_parent("shell")
        running_id = (running or {}).get("header", {}).get("msg_id")
        if running_id and running_id != self._parent.get("header", {}).get("msg_id"):
            self._session.send(self._socket, "update_display_data",
                               {"data": for_runner, "metadata": {},
                                "transient": {"display_id": self.display_id}},
                               parent=running, ident=b"update_display_data")
        self.update_display(record)

    def publish_output(self, output: dict[str, Any]) -> None:
        """Send an nbformat output dict (stream, display, result, error) as the cell's own output."""
        kind = output["output_type"]
        if kind == "stream":
            content = {"name": output["name"], "text": output["text"]}
        elif kind == "error":
            content = {key: output[key] for key in ("ename", "evalue", "traceback")}
        else:
            content = {"data": output["data"], "metadata": output.get("metadata", {})}
            if kind == "execute_result":
                content["execution_count"] = output["execution_count"]
        self.publish(kind, content)

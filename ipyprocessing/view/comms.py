"""The child's widgets in the front end: their comm messages relayed both ways through the kernel.

As ipyparallel does for its engines: what the child's widgets say (open,
update, close) goes out on IOPub as the originating cell's; each of their comms
is registered with the kernel's comm manager as a proxy, so that what the front
end says to a widget (a slider moved, a button clicked) goes down to the child
(``sendToChild``). When the child ends, its comms are closed in the front end.

State updates are coalesced as the child's output is (a loop that sets a
progress bar's value a million times sends a few updates a second, each with
the latest state); other messages go at once, after the pending update of
their widget. The relay remembers each model's last state, so that the cell's
final record can say in text what a widget showed last (a progress bar's last
figures).
"""

from __future__ import annotations

import html
import re
import threading
from typing import Any

from comm.base_comm import BaseComm

from ..cell.messages import CommClose, CommMsg, CommOpen

__all__ = ["CommRelay"]

_TAGS = re.compile(r"<[^>]*>")
_BOXES = {"HBoxModel", "VBoxModel", "BoxModel", "GridBoxModel"}


class CommRelay:
    """The comms one child opened, as the front end and the kernel's comm manager know them."""

    def __init__(self, process: Any, channel: Any, throttle: Any) -> None:
        self._process = process
        self._channel = channel
        self._throttle = throttle
        self._lock = threading.Lock()
        self._proxies: dict[str, _Proxy] = {}
        self._states: dict[str, dict[str, Any]] = {}
        self._updates: dict[str, dict[str, Any]] = {}  # comm id: the state to send at the next flush

    # -- from the child (on the monitor thread) ----------------------------------------------------

    def opened(self, message: CommOpen) -> None:
        proxy = _Proxy(self, message.comm_id, message.target_name)
        with self._lock:
            self._proxies[message.comm_id] = proxy
            self._remember(message.comm_id, message.data)
        self._channel.comm_manager.register_comm(proxy)
        self._publish("comm_open", message.comm_id, message.data, message.metadata, message.buffers,
                      target_name=message.target_name, target_module=message.target_module)

    def sent(self, message: CommMsg) -> None:
        data = message.data
        plain_update = (isinstance(data, dict) and data.get("method") == "update" and not message.buffers
                        and set(data) <= {"method", "state", "buffer_paths"} and not data.get("buffer_paths"))
        with self._lock:
            self._remember(message.comm_id, data)
            if plain_update:
                self._updates.setdefault(message.comm_id, {}).update(data.get("state", {}))
        if plain_update:
            self._throttle.mark(self)
            return
        self._flush_one(message.comm_id)
        self._publish("comm_msg", message.comm_id, data, message.metadata, message.buffers)

    def closed(self, message: CommClose) -> None:
        self._flush_one(message.comm_id)
        with self._lock:
            proxy = self._proxies.pop(message.comm_id, None)
        if proxy is not None:
            self._forget(proxy)
            self._publish("comm_close", message.comm_id, message.data, message.metadata, message.buffers)

    def flush(self) -> None:
        """Send the coalesced state updates (the throttle calls it)."""
        with self._lock:
            updates, self._updates = self._updates, {}
        for comm_id, state in updates.items():
            self._send_update(comm_id, state)

    def _flush_one(self, comm_id: str) -> None:
        with self._lock:
            state = self._updates.pop(comm_id, None)
        if state is not None:
            self._send_update(comm_id, state)

    def _send_update(self, comm_id: str, state: dict[str, Any]) -> None:
        self._publish("comm_msg", comm_id, {"method": "update", "state": state, "buffer_paths": []}, {}, [])

    def close_all(self) -> None:
        """The child has ended: its widgets close in the front end, and the kernel forgets them."""
        self.flush()
        with self._lock:
            proxies, self._proxies = list(self._proxies.values()), {}
        for proxy in proxies:
            self._forget(proxy)
            self._publish("comm_close", proxy.comm_id, {}, {}, [])

    # -- what the widgets showed ---------------------------------------------------------------------

    def widget_text(self, model_id: str) -> str | None:
        """What widget ``model_id`` showed last, as text (None: no such widget of this child)."""
        with self._lock:
            return self._text(model_id, depth=0)

    def _text(self, model_id: str, depth: int) -> str | None:
        state = self._states.get(model_id)
        if state is None or depth > 20:
            return None
        name = state.get("_model_name", "")
        if name in _BOXES:
            children = [child.removeprefix("IPY_MODEL_") for child in state.get("children", ())]
            parts = [self._text(child, depth + 1) for child in children]
            return " ".join(part for part in parts if part)
        if "Progress" in name:
            low, high, value = state.get("min", 0), state.get("max", 100), state.get("value", 0)
            done = 0 if high == low else min(10, max(0, round(10 * (value - low) / (high - low))))
            return f"{state.get('description', '')}|{'█' * done}{' ' * (10 - done)}|".strip()
        value = state.get("value")
        text = html.unescape(_TAGS.sub("", value)) if isinstance(value, str) else (
            "" if value is None else str(value))
        description = state.get("description") or ""
        return f"{description} {text}".strip()

    def _remember(self, comm_id: str, data: dict[str, Any]) -> None:
        state = data.get("state") if isinstance(data, dict) else None
        if isinstance(state, dict):
            self._states.setdefault(comm_id, {}).update(state)

    # -- both ways -----------------------------------------------------------------------------------------

    def to_child(self, message: CommMsg | CommClose) -> None:
        """What the front end says to one of the child's widgets (on the kernel's shell thread)."""
        if isinstance(message, CommMsg):
            with self._lock:
                self._remember(message.comm_id, message.data)
        try:
            self._process.sendToChild(message)
        except Exception:
            pass  # the child has just ended: its widgets are closing

    def _forget(self, proxy: _Proxy) -> None:
        proxy._closed = True
        try:
            self._channel.comm_manager.unregister_comm(proxy)
        except KeyError:
            pass  # the front end closed it first

    def _publish(
        self, msg_type: str, comm_id: str, data: Any, metadata: Any, buffers: Any, **keys: Any
    ) -> None:
        content = {"comm_id": comm_id, "data": data or {}, **keys}
        self._channel.publish(msg_type, content, metadata=metadata or {}, buffers=list(buffers or ()),
                              ident=f"comm-{comm_id}".encode())


class _Proxy(BaseComm):
    """A child's comm as the kernel's comm manager sees it: what the front end sends it goes to the child."""

    def __init__(self, relay: CommRelay, comm_id: str, target_name: str) -> None:
        self._relay = relay
        super().__init__(comm_id=comm_id, primary=False, target_name=target_name)

    def publish_msg(self, msg_type: str, data: Any = None, metadata: Any = None, buffers: Any = None,
                    **keys: Any) -> None:
        self._relay._publish(msg_type, self.comm_id, data, metadata, buffers, **keys)

    def handle_msg(self, msg: dict[str, Any]) -> None:
        self._relay.to_child(CommMsg(self.comm_id, msg["content"].get("data", {}), msg.get("metadata", {}),
                                     [bytes(buffer) for buffer in msg.get("buffers") or ()]))

    def handle_close(self, msg: dict[str, Any]) -> None:
        with self._relay._lock:
            self._relay._proxies.pop(self.comm_id, None)
        self._relay.to_child(CommClose(self.comm_id, msg["content"].get("data", {}), msg.get("metadata", {}),
                                       [bytes(buffer) for buffer in msg.get("buffers") or ()]))

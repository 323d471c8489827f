"""A real Jupyter kernel driven through jupyter_client, as a front end drives it, for the ipy tests.

Every IOPub message is kept (a thread reads the IOPub socket and nothing
else), so a test can ask what arrived, for which request, and in what order.
Shell replies are read on the calling thread, buffered by request id.
"""

from __future__ import annotations

import ast
import json
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from jupyter_client import KernelManager
from support import os_children, wait_until

Message = dict[str, Any]

DISPLAY_TYPES = ("display_data", "update_display_data")


class Kernel:
    """One kernel with ``%load_ext ipyprocessing`` done."""

    def __init__(self, tmp_dir: str) -> None:
        self.manager = KernelManager(kernel_name="python3", transport="ipc", ip=f"{tmp_dir}/kernel")
        self.manager.start_kernel(cwd=tmp_dir)
        self.client = self.manager.client()
        self.client.start_channels()
        self.client.wait_for_ready(timeout=60)
        self._condition = threading.Condition()
        self._iopub: list[Message] = []
        self._replies: dict[str, Message] = {}
        #: The execution count (In[N]) of the cells a test noted by request id.
        self.numbers: dict[str, int] = {}
        self._stop = threading.Event()
        self._reader = threading.Thread(target=self._read_iopub, name="test-iopub", daemon=True)
        self._reader.start()
        self.closed = False
        self.run("%load_ext ipyprocessing")

    def close(self, *, graceful: bool = False) -> None:
        """Stop the kernel: at once, or (``graceful``) by a shutdown request, as a front end does."""
        if self.closed:
            return
        self.closed = True
        self._stop.set()
        self._reader.join()
        self.client.stop_channels()
        self.manager.shutdown_kernel(now=not graceful)

    # -- requests -----------------------------------------------------------

    def execute(self, code: str, *, fails: bool = False, cell_id: str | None = None) -> str:
        """Send an execute_request and return its msg_id at once.

        ``fails``: the cell is expected to end in an error (or an interrupt), so
        the kernel must not abort the requests queued after it. ``cell_id``: the
        notebook cell it comes from, sent as JupyterLab sends it (``cellId`` metadata).
        """
        if cell_id is None:
            return self.client.execute(code, stop_on_error=not fails)
        content = {"code": code, "silent": False, "store_history": True, "user_expressions": {},
                   "allow_stdin": False, "stop_on_error": not fails}
        message = self.client.session.msg("execute_request", content, metadata={"cellId": cell_id})
        self.client.shell_channel.send(message)
        return message["header"]["msg_id"]

    def reply(self, msg_id: str, timeout: float = 60) -> Message:
        """The shell reply to ``msg_id`` (its content)."""
        deadline = time.monotonic() + timeout
        while msg_id not in self._replies:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError(f"no reply to {msg_id} within {timeout} s")
            try:
                message = self.client.get_shell_msg(timeout=remaining)
            except queue.Empty:
                continue
            self._replies[message["parent_header"].get("msg_id")] = message
        return self._replies.pop(msg_id)["content"]

    def run(self, code: str, timeout: float = 60, cell_id: str | None = None) -> str:
        """Execute ``code``, require status ok, return the request's msg_id."""
        msg_id = self.execute(code, cell_id=cell_id)
        content = self.reply(msg_id, timeout)
        assert content["status"] == "ok", f"{code!r} failed: {content.get('ename')}: {content.get('evalue')}"
        return msg_id

    def eval(self, expression: str) -> Any:
        """The value of a JSON-able expression in the kernel."""
        code = f"__import__('json').dumps({expression})"
        msg_id = self.client.execute("", silent=True, user_expressions={"v": code})
        content = self.reply(msg_id)
        result = content["user_expressions"]["v"]
        assert result["status"] == "ok", f"{expression!r}: {result.get('ename')}: {result.get('evalue')}"
        return json.loads(ast.literal_eval(result["data"]["text/plain"]))  # the repr of a str

    def stdout_of(self, code: str) -> str:
        """Run ``code`` and return what it printed."""
        msg_id = self.run(code)
        self.wait_for(lambda m: is_reply_idle(m, msg_id))
        return "".join(m["content"]["text"] for m in self.messages(msg_id, "stream"))

    def click(self, comm_id: str) -> None:
        """Click a Button exactly as a front end does: a comm_msg on the shell channel."""
        content = {"comm_id": comm_id, "data": {"method": "custom", "content": {"event": "click"}}}
        self.client.shell_channel.send(self.client.session.msg("comm_msg", content))

    # -- IOPub --------------------------------------------------------------

    def messages(self, parent: str | None = None, *types: str) -> list[Message]:
        with self._condition:
            return [m for m in self._iopub if (parent is None or parent_of(m) == parent)
                    and (not types or m["msg_type"] in types)]

    def wait_for(self, predicate: Callable[[Message], bool], timeout: float = 60,
                 after: Message | None = None) -> Message:
        """The first IOPub message (received or to come, after ``after``) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._condition:
            start = 0 if after is None else self._iopub.index(after) + 1
            while True:
                for message in self._iopub[start:]:
                    if predicate(message):
                        return message
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError("no such IOPub message arrived")
                self._condition.wait(remaining)

    def widget(self, msg_id: str, model: str, css_class: str, **expected: Any) -> str:
        """The comm id of the widget cell ``msg_id`` made, by model, CSS class and ``expected`` state."""
        def match(m: Message) -> bool:
            state = m["content"]["data"]["state"] if m["msg_type"] == "comm_open" else {}
            return (parent_of(m) == msg_id and state.get("_model_name") == model
                    and css_class in state.get("_dom_classes", ())
                    and all(state.get(key) == value for key, value in expected.items()))
        return self.wait_for(match)["content"]["comm_id"]

    def status_widgets(self, msg_id: str) -> tuple[str, str, str]:
        """The comm ids of the state label, the Terminate button and the note that cell ``msg_id`` made."""
        return (self.widget(msg_id, "HTMLModel", "ipyprocessing-state"),
                self.widget(msg_id, "ButtonModel", "ipyprocessing-terminate", description="Terminate"),
                self.widget(msg_id, "HTMLModel", "ipyprocessing-note"))

    def note(self, note_id: str, containing: str) -> str:
        """Wait until the note widget ``note_id`` says something containing ``containing``; return it."""
        return self.wait_value(note_id, containing)["content"]["data"]["state"]["value"]

    def wait_value(self, comm_id: str, containing: str, timeout: float = 60) -> Message:
        """The first message (a comm_open or an update) giving widget ``comm_id`` a value containing
        ``containing``."""
        return self.wait_for(lambda m: containing in widget_state(m, comm_id).get("value", ""), timeout)

    def latest(self, comm_id: str, key: str) -> Any:
        """The last value of ``key`` sent so far for widget ``comm_id`` (KeyError if none was)."""
        sent = [state[key] for m in self.messages() if key in (state := widget_state(m, comm_id))]
        if not sent:
            raise KeyError(f"widget {comm_id} was never sent {key!r}")
        return sent[-1]

    def wait_state(self, comm_id: str, key: str, value: Any, timeout: float = 60) -> Message:
        """Wait until widget ``comm_id`` is sent ``key = value`` (in a comm_open or an update)."""
        return self.wait_for(lambda m: widget_state(m, comm_id).get(key, object()) == value, timeout)

    def display_texts(self, msg_id: str) -> list[str]:
        """What the child's outputs in cell ``msg_id`` showed as text, message by message, in order."""
        return [shown(m) for m in self.messages(msg_id) if is_output_of(m, msg_id)]

    def outputs_of(self, msg_id: str) -> list[dict[str, Any]]:
        """The child's outputs in cell ``msg_id`` as they stand now (nbformat dicts): those of its Output
        widget's last state while it runs, then the cell's own outputs once it has ended."""
        final = [output_dict(m) for m in self.messages(msg_id, *_OUTPUT_TYPES) if not _is_status(m)]
        if final:
            return final
        states = [m["content"]["data"]["state"]["outputs"] for m in self.messages(msg_id)
                  if m["msg_type"] in ("comm_open", "comm_msg")
                  and "outputs" in m["content"].get("data", {}).get("state", {})]
        return list(states[-1]) if states else []

    def _read_iopub(self) -> None:
        while not self._stop.is_set():
            try:
                message = self.client.get_iopub_msg(timeout=0.2)
            except queue.Empty:
                continue
            with self._condition:
                self._iopub.append(message)
                self._condition.notify_all()


def widget_state(message: Message, comm_id: str) -> dict[str, Any]:
    """The state ``message`` (a comm_open or an update) sends to widget ``comm_id``; {} for any other."""
    content = message["content"]
    if content.get("comm_id") != comm_id:
        return {}
    return content.get("data", {}).get("state", {})


def parent_of(message: Message) -> str | None:
    return message["parent_header"].get("msg_id")


def is_reply_idle(message: Message, msg_id: str) -> bool:
    return (message["msg_type"] == "status" and parent_of(message) == msg_id
            and message["content"]["execution_state"] == "idle")


_OUTPUT_TYPES = ("stream", "display_data", "execute_result", "error")
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _is_status(message: Message) -> bool:
    """The cell's own status display (and its final record), which carry the cell's display id."""
    return "display_id" in message["content"].get("transient", {})


def is_output_of(message: Message, msg_id: str) -> bool:
    """A message carrying the child's outputs in cell ``msg_id``: an update of the Output widget that holds
    them while it runs, or one of the outputs the cell keeps once it has ended."""
    if parent_of(message) != msg_id:
        return False
    if message["msg_type"] in ("comm_open", "comm_msg"):
        return bool(message["content"].get("data", {}).get("state", {}).get("outputs"))
    return message["msg_type"] in _OUTPUT_TYPES and not _is_status(message)


def output_dict(message: Message) -> dict[str, Any]:
    """An output message as the nbformat output dict a notebook saves."""
    return {"output_type": message["msg_type"], **message["content"]}


def output_text(output: dict[str, Any]) -> str:
    """What one nbformat output shows as text."""
    kind = output["output_type"]
    if kind == "stream":
        return output["text"]
    if kind == "error":
        return _ANSI.sub("", "\n".join(output["traceback"])) + "\n"
    return str(output.get("data", {}).get("text/plain", "")) + "\n"


_STRAYS = """[c.pid for c in __import__('psutil').Process().children()
 if 'processing.forkserver' not in ' '.join(c.cmdline())]"""

_RUNNING_CELLS = "[p.name for p in __import__('ipyprocessing').processes() if p.is_alive()]"
_SESSION = "__import__('ipyprocessing.session').session.current()"
#: The names of the session's live processes in the kernel: %%process cells and plain processing.Process.
LIVE_IN_KERNEL = f"[e.name for e in {_SESSION}.live()]"


def children_left(kernel: Kernel, expected: Iterable[int] = ()) -> list[str]:
    """What a test left behind: ``%%process`` children still running or unreaped in the kernel
    (they are then terminated), children of the test process other than the kernel and the
    ``expected`` pids (a module's long-lived helper, such as a LocalCluster's)."""
    allowed = set(expected)
    if kernel.closed:
        return [f"child pid {child.pid} of the test process left" for child in os_children()
                if child.pid not in allowed]
    problems = []
    running = kernel.eval(_RUNNING_CELLS)
    if running:
        problems.append(f"still running in the kernel: {running}")
        kernel.run("%process_terminate --all")
    strays: list[int] = []

    def no_strays() -> bool:
        strays[:] = kernel.eval(_STRAYS)
        return not strays

    if not wait_until(no_strays, limit=10):
        problems.append(f"children of the kernel left: {strays}")
    kernel_pid = kernel.manager.provisioner.pid
    others = [child.pid for child in os_children() if child.pid != kernel_pid and child.pid not in allowed]
    if others:
        problems.append(f"children of the test process left: {others}")
    return problems


def tidy(kernel: Kernel) -> list[str]:
    """After a test in the shared kernel: what it left running (see :func:`children_left`; plain
    ``processing.Process`` children too, which are then killed), and the kernel made to forget the
    test: the session's stopped processes, every widget (a panel's board and its thread go with the
    last panel), the user's variables."""
    problems = []
    running = kernel.eval(_RUNNING_CELLS)
    if running:
        problems.append(f"still running in the kernel: {running}")
        kernel.run("%process_terminate --all")
    live = kernel.eval(LIVE_IN_KERNEL)
    if live:
        problems.append(f"still running in the kernel's session: {live}")
        kernel.run(f"[e.process.kill() for e in {_SESSION}.live()]")
    if not wait_until(lambda: not kernel.eval(LIVE_IN_KERNEL), limit=10):
        problems.append(f"still running in the kernel's session after a kill: {kernel.eval(LIVE_IN_KERNEL)}")
    problems += children_left(kernel)
    kernel.run(f"{_SESSION}.clear_stopped()\n__import__('ipywidgets').Widget.close_all()")
    kernel.run("%reset -f")
    return problems


def shown(message: Message) -> str:
    """The text an output message shows: all the outputs of an Output widget's update, or one output."""
    state = message["content"].get("data", {}).get("state", {})
    if message["msg_type"] in ("comm_open", "comm_msg") and "outputs" in state:
        return "".join(output_text(output) for output in state["outputs"]).rstrip("\n")
    return output_text(output_dict(message)).rstrip("\n")

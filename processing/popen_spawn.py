"""The spawn start method: a fresh interpreter that receives the process object by value.

Unlike the standard library, the child does not re-run the parent's
``__main__``: objects defined there travel by value (see ``serialization``).
"""

from __future__ import annotations

import os
import sys

from . import _fd
from .channel import send_payload
from .popen import PACKAGE_ROOT, Popen, child_options

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["SpawnPopen", "interpreter_command", "spawn_interpreter", "start_payload"]


def spawn_interpreter(
    call: str, keep_fds: list[int], *, new_group: bool = False, detached: bool = False
) -> int:
    """Start a fresh interpreter running ``call``, with ``keep_fds`` open in it; return its pid.

    ``posix_spawn`` (vfork-fast, whatever the caller's heap) puts it in its own
    group or session before it runs a single instruction. A ``dup2`` of a
    descriptor onto itself clears its close-on-exec flag in the child only.
    """
    placement: dict[str, Any] = {}
    if detached:
        placement["setsid"] = True
    elif new_group:
        placement["setpgroup"] = 0
    return os.posix_spawn(
        sys.executable,
        interpreter_command(call),
        os.environ,
        file_actions=[(os.POSIX_SPAWN_DUP2, fd, fd) for fd in keep_fds],
        **placement,
    )


def interpreter_command(call: str) -> list[str]:
    """The argv of a fresh interpreter that imports this copy of processing and runs ``call``."""
    from multiprocessing import util

    code = f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); {call}"
    return [sys.executable, *util._args_from_interpreter_flags(), "-c", code]


def start_payload(process: Any, method: str, options: dict[str, Any]) -> bytes:
    """The bytes the child reads first: the process object, its options, the parent's path and cwd.

    Raises:
        TargetPicklingError: the process cannot be sent; names the part that fails.
    """
    from . import serialization

    try:
        pickled = serialization.dumps(process)
    except Exception as error:
        raise serialization.describe_unpicklable(process, method, error) from error
    return serialization.dumps(
        {"process": pickled, "options": options, "sys_path": sys.path, "cwd": os.getcwd()}
    )


class SpawnPopen(Popen):
    method = "spawn"

    def _launch(self, process: Any) -> None:
        options = child_options(process, self.channel, guard_parent=True)
        payload = start_payload(process, self.method, options)
        out_w, err_w = self._output_pipes(process)
        pipe_sentinel = None if hasattr(os, "pidfd_open") else os.pipe()
        keep = [fd for fd in (self._child_sock.fileno(), out_w, err_w, options["alive_fd"]) if fd is not None]
        if pipe_sentinel is not None:
            keep.append(pipe_sentinel[1])
        call = (
            "from processing.bootstrap import spawn_main; "
            f"spawn_main({self._child_sock.fileno()}, {out_w}, {err_w})"
        )
        try:
            self._pid = spawn_interpreter(
                call, keep, new_group=process._new_process_group, detached=process._detached
            )
        finally:
            self._child_sock.close()
            _fd.close_all(out_w, err_w, pipe_sentinel and pipe_sentinel[1])
        if pipe_sentinel is not None:
            self.sentinel = pipe_sentinel[0]
        else:
            self.sentinel = _fd.process_sentinel(self._pid)
        try:
            send_payload(self.channel.sock, payload)
        except OSError:
            pass  # the child died before reading it; its exit code tells why

"""The spawn start method: a fresh interpreter that receives the process object by value.

Unlike the standard library, the child does not re-run the parent's
``__main__``: objects defined there travel by value (see ``serialization``).
"""

from __future__ import annotations

import os

from .. import _fd
from ..channel import send_payload
from . import interpreter
from .popen import Popen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .spec import LaunchSpec

__all__ = ["SpawnPopen"]


class SpawnPopen(Popen):
    method = "spawn"

    def _launch(self, spec: LaunchSpec) -> None:
        options = self._child_options(spec)
        payload = interpreter.start_payload(spec, self.method, options)
        out_w, err_w = self._output_pipes(spec)
        pipe_sentinel = None if hasattr(os, "pidfd_open") else os.pipe()
        keep = [fd for fd in (self._child_sock.fileno(), out_w, err_w, options.alive_fd) if fd is not None]
        if pipe_sentinel is not None:
            keep.append(pipe_sentinel[1])
        call = (
            "from processing.launch.bootstrap import spawn_main; "
            f"spawn_main({self._child_sock.fileno()}, {out_w}, {err_w})"
        )
        try:
            self._pid = interpreter.start(
                call, keep, new_group=spec.new_process_group, detached=spec.detached
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

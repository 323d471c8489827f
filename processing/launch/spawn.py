"""The spawn start method: a fresh interpreter that receives the process object by value.

Unlike the standard library, the child does not re-run the parent's
``__main__``: objects defined there travel by value (see ``serialization``).
Descriptors that the stdlib's primitives hand over (``duplicate_for_child``)
keep their numbers in the child (see :mod:`.stdlib`).
"""

from __future__ import annotations

import os

from .. import _fd
from ..channel import send_payload
from . import interpreter
from .popen import Popen, check_sigchld
from .stdlib import SpawnDupFd

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .spec import LaunchSpec

__all__ = ["SpawnPopen"]


class SpawnPopen(Popen):
    method = "spawn"
    DupFd = SpawnDupFd

    def duplicate_for_child(self, fd: int) -> int:
        if fd not in self._inherited:
            self._inherited.append(fd)
        return fd

    def _launch(self, spec: LaunchSpec) -> None:
        check_sigchld()
        options = self._child_options(spec)
        with interpreter.start_payload(self, spec, options) as payload:
            self._start_child(spec, payload)

    def _start_child(self, spec: LaunchSpec, payload: bytes) -> None:
        out_w, err_w = self._output_pipes(spec)
        pidfd = hasattr(os, "pidfd_open")
        pipe_sentinel = None if pidfd else self._pipe_for_child()
        reserved = _fd.hand_over(os.dup(self._child_sock.fileno())) if pidfd else -1
        keep = [fd for fd in (self._child_sock.fileno(), out_w, err_w) if fd is not None]
        keep += [fd for fd in self._inherited if fd not in keep]
        if pipe_sentinel is not None:
            keep.append(pipe_sentinel[1])
        call = (
            "from processing.launch.bootstrap import spawn_main; "
            f"spawn_main({self._child_sock.fileno()}, {out_w}, {err_w}, spawned=True)"
        )
        try:
            self._pid = interpreter.start(
                call, keep, new_group=spec.new_process_group, detached=spec.detached
            )
        except BaseException:
            _fd.close_all(reserved)
            raise
        finally:
            self._close_child_sock()
            _fd.close_all(*self._child_ends)
        if pipe_sentinel is not None:
            self.sentinel = pipe_sentinel[0]
        else:
            self.sentinel = self._sentinel_of_started_child(reserved)
        try:
            send_payload(self.channel.sock, payload)
        except OSError:
            pass  # the child died before reading it; its exit code tells why

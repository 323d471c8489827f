"""The fork start method: the child is a copy of the parent, so nothing is pickled.

Like the standard library, the parent flushes its standard streams first, so
that the child does not inherit (and write again) what they buffered.
"""

from __future__ import annotations

import os
import sys

from .. import _fd
from . import bootstrap, guard  # here, not at the first start: at the descriptor limit an import fails
from .popen import Popen, check_sigchld

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .spec import LaunchSpec

__all__ = ["ForkPopen"]


class ForkPopen(Popen):
    method = "fork"

    def _launch(self, spec: LaunchSpec) -> None:
        check_sigchld()
        out_w, err_w = self._output_pipes(spec)
        options = self._child_options(spec)
        guard.prepare(options.guard)
        pidfd = hasattr(os, "pidfd_open")
        pipe_sentinel = None if pidfd else self._pipe_for_child()
        reserved = _fd.hand_over(os.dup(self._child_sock.fileno())) if pidfd else -1
        self._child_ends.append(reserved)
        _flush_std_streams()
        pid = os.fork()
        if pid == 0:
            exitcode = 1
            try:
                bootstrap.enter_group(detached=spec.detached, new_group=spec.new_process_group)
                _fd._in_flight.clear()  # its own ends are its own now; the rest went after the fork
                self.release_in_child()
                _fd.close_all(reserved, pipe_sentinel and pipe_sentinel[0])
                exitcode = bootstrap.run_forked(spec.process, self._child_sock, out_w, err_w, options)
            finally:
                os._exit(exitcode)
        self._pid = pid
        self._child_ends.remove(reserved)
        if spec.new_process_group and not spec.detached:
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass  # the child did it first
        self._close_child_sock()
        _fd.close_all(*self._child_ends)
        if pipe_sentinel is not None:
            self.sentinel = pipe_sentinel[0]
        else:
            self.sentinel = self._sentinel_of_started_child(reserved)


def _flush_std_streams() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            if stream is not None:
                stream.flush()
        except (OSError, ValueError):
            pass

"""The fork start method: the child is a copy of the parent, so nothing is pickled."""

from __future__ import annotations

import os

from .. import _fd
from . import guard
from .popen import Popen

TYPE_CHECKING = False
if TYPE_CHECKING:
    from .spec import LaunchSpec

__all__ = ["ForkPopen"]


class ForkPopen(Popen):
    method = "fork"

    def _launch(self, spec: LaunchSpec) -> None:
        from . import bootstrap

        out_w, err_w = self._output_pipes(spec)
        options = self._child_options(spec)
        guard.prepare(options.guard)
        pipe_sentinel = None if hasattr(os, "pidfd_open") else os.pipe()
        pid = os.fork()
        if pid == 0:
            exitcode = 1
            try:
                bootstrap.enter_group(detached=spec.detached, new_group=spec.new_process_group)
                self.release_in_child()
                if pipe_sentinel is not None:
                    os.close(pipe_sentinel[0])
                exitcode = bootstrap.run_forked(spec.process, self._child_sock, out_w, err_w, options)
            finally:
                os._exit(exitcode)
        self._pid = pid
        if spec.new_process_group and not spec.detached:
            try:
                os.setpgid(pid, pid)
            except OSError:
                pass  # the child did it first
        self._child_sock.close()
        _fd.close_all(out_w, err_w)
        if pipe_sentinel is not None:
            os.close(pipe_sentinel[1])
            self.sentinel = pipe_sentinel[0]
        else:
            self.sentinel = _fd.process_sentinel(pid)

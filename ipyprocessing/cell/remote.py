"""``RemoteCellProcess``: a ``%%process --cluster`` cell, run by a child on a Dask worker.

The same cell handle as :class:`~ipyprocessing.cell.handle.CellProcess` (output
log, views, ``--pull``, stop reasons, all from :class:`CellHandle`) over a
:class:`processing.remote.RemoteProcess` instead of a local Process. The
target is the same :class:`~ipyprocessing.cell.target.CellTarget`, with the
notebook's names sent by value as under spawn. This module imports
``processing.remote``, which imports Dask only when a process starts; the
magic imports this module only for ``--cluster`` and ``--cluster-client``.
"""

from __future__ import annotations

import time
from typing import Any

from processing.remote import RemoteProcess

from .handle import CellHandle
from .target import CellTarget

__all__ = ["RemoteCellProcess"]


class RemoteCellProcess(CellHandle, RemoteProcess):
    """A notebook cell running in a child process on a Dask worker; ``host`` is the worker's address."""

    def __init__(
        self,
        target: CellTarget,
        *,
        user_ns: dict[str, Any],
        cluster: Any,
        name: str | None = None,
        method: str | None = None,
    ) -> None:
        self._init_cell(target, user_ns)
        super().__init__(
            target=target,
            name=name,
            cluster=cluster,
            method=method,
            output=self._deliver,
            # A worker's later cells find the cell's machinery and its IPython shell ready.
            preload=[type(target).__module__, "ipyprocessing.cell.warm"],
        )

    def finish(self, exitcode: int | None) -> None:
        """As for a local cell; a lost process (no exit code) says why instead."""
        if exitcode is not None:
            super().finish(exitcode)
            return
        self.ended_at = time.monotonic()
        if self._timer is not None:
            self._timer.cancel()
        note = f"lost: {self.failure}"
        if self.pull_names:
            note += f"; nothing pulled ({', '.join(self.pull_names)}): the cell did not finish"
        self._view.exited(None, note)

    def _on_running(self) -> None:
        """A worker runs the cell now: its status line learns the pid and the worker's host."""
        self._view.running()

"""ipyprocessing: run a notebook cell in a child process, live, in its own cell.

``%load_ext ipyprocessing`` registers ``%%process``, ``%processes`` and
``%process_terminate``, and the session panel's ``%process_panel`` and
``%authkey`` (``c.InteractiveShellApp.extensions = ["ipyprocessing"]`` works
too). It is built on :mod:`processing` and knows nothing of how a child is
started: it subscribes to the core's events and output.

The package map:

- :mod:`.magics`, :mod:`.panel_magics`: the magics;
- :mod:`.cell`: a cell's child (its target, the names sent to it), the notebook's handle on it, ``--wait``,
  pulled names (assigned between cells; a cell that reads one waits for it);
- :mod:`.view`: how a cell shows its child (the status row, text lines, the output's tail);
- :mod:`.session`: every process of the session in one table, and the one sampler of their figures;
- :mod:`.panel`, :mod:`.authkey_ui`: the session panel and its auth-key controls;
- :mod:`.settings`: the configurable settings (``c.ProcessSettings...``);
- :mod:`.shutdown`: the kernel's end, which turns every live row and panel into its final record;
- :mod:`.words`: how states, exits, pids and figures are written.

Importing this package stays cheap (no IPython, no widgets, not even the
cell handle): spawn and forkserver children, and a ``--cluster`` cell's child
on a Dask worker, whose fork server has preloaded none of it, import it to
load the cell they run; ``ipyprocessing.cell.target`` is all the latter needs.
"""

from __future__ import annotations

import atexit

TYPE_CHECKING = False  # no typing at run time: spawned children import this package
if TYPE_CHECKING:
    from typing import Any

    from .cell.handle import CellProcess

__all__ = ["CellProcess", "ProcessPanel", "ProcessSettings", "load_ipython_extension", "processes"]

_stop_at_exit_registered = False


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with ``ipython`` (called by ``%load_ext ipyprocessing``)."""
    global _stop_at_exit_registered
    from processing.forkserver.client import preload_also

    from . import session, settings, shutdown
    from .cell import pulls
    from .magics import CHILD_PRELOAD, ProcessMagics
    from .panel_magics import register_panel_magics

    settings.load(ipython)
    preload_also([CHILD_PRELOAD])  # forkserver children find IPython and their shell ready
    current = session.current()
    if not _stop_at_exit_registered:
        _stop_at_exit_registered = True
        atexit.register(current.stop_all, "terminated: the kernel shut down")
    pulls.install(ipython, current)
    kernel = getattr(ipython, "kernel", None)
    if kernel is not None:
        shutdown.install(kernel, current)
    ipython.register_magics(ProcessMagics(ipython, current))
    register_panel_magics(ipython)


def processes() -> list[CellProcess]:
    """The processes this session started with ``%%process``, oldest first."""
    from .session import current

    return [entry.process for entry in current().entries(cells=True)]  # type: ignore[misc]


_LAZY = {
    "CellProcess": ("cell.handle", "CellProcess"),
    "ProcessPanel": ("panel", "ProcessPanel"),
    "ProcessSettings": ("settings", "ProcessSettings"),
}


def __getattr__(name: str) -> Any:
    """``ProcessPanel``, ``CellProcess`` and ``ProcessSettings`` are imported on first use: children must not
    pay for them (ipywidgets, traitlets; the handle's output log and threading); ``__version__`` too."""
    if name == "__version__":
        from processing import __version__

        return __version__
    if name not in _LAZY:
        raise AttributeError(f"module 'ipyprocessing' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    return getattr(importlib.import_module(f"{__name__}.{module_name}"), attribute)

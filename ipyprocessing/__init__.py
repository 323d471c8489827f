"""ipyprocessing: run a notebook cell in a child process, live, in its own cell.

``%load_ext ipyprocessing`` registers ``%%process``, ``%processes`` and
``%process_terminate``, and the session panel's ``%process_panel`` and
``%authkey`` (``c.InteractiveShellApp.extensions = ["ipyprocessing"]`` works
too). It is built on :mod:`processing` and knows nothing of how a child is
started: it subscribes to the core's events and output.

Importing this package stays cheap (no IPython, no widgets, not even the
cell handle): spawn and forkserver children, and a ``--cluster`` cell's child
on a Dask worker, whose fork server has preloaded none of it, import it to
load the cell they run; ``ipyprocessing.child`` is all the latter needs.
"""

from __future__ import annotations

import atexit

TYPE_CHECKING = False  # no typing at run time: spawned children import this package
if TYPE_CHECKING:
    from typing import Any

    from .handle import CellProcess
    from .registry import Registry

__all__ = ["CellProcess", "ProcessPanel", "load_ipython_extension", "processes"]

_registry: Registry | None = None


def load_ipython_extension(ipython: Any) -> None:
    """Register the magics with ``ipython`` (called by ``%load_ext ipyprocessing``)."""
    global _registry
    from .magics import ProcessMagics
    from .panel_magics import register_panel_magics
    from .registry import Registry

    if _registry is None:
        _registry = Registry()
        atexit.register(_registry.stop_all, "terminated: the kernel shut down")
    ipython.register_magics(ProcessMagics(ipython, _registry))
    register_panel_magics(ipython)


def processes() -> list[CellProcess]:
    """The processes this session started with ``%%process``, oldest first."""
    return [] if _registry is None else _registry.all()


def __getattr__(name: str) -> Any:
    """``ProcessPanel`` and ``CellProcess`` are imported on first use: children must not pay for them
    (ipywidgets; the handle's output log and threading)."""
    if name == "ProcessPanel":
        from .panel import ProcessPanel

        return ProcessPanel
    if name == "CellProcess":
        from .handle import CellProcess

        return CellProcess
    raise AttributeError(f"module 'ipyprocessing' has no attribute {name!r}")

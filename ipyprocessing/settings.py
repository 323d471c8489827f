"""The extension's settings, as configurable traitlets, the way IPython's own magics keep theirs.

Set them in ``ipython_config.py`` (``c.ProcessSettings.refresh_period = 2.0``)
or in a running kernel with ``%config ProcessSettings.refresh_period = 2.0``.
The parts that use a setting read it when they need it, so a change made with
``%config`` applies from then on (the tail length and the spill size to cells
started after the change).
"""

from __future__ import annotations

import threading
from typing import Any

from traitlets import Bool, Float, Int, TraitError, validate
from traitlets.config import Configurable

from .view.output import MAX_LINES, SPILL

__all__ = ["ProcessSettings", "current", "load"]


class ProcessSettings(Configurable):
    """How ``%%process`` cells and the process panel show what runs."""

    refresh_period = Float(
        1.0, help="Seconds between two refreshes of the elapsed time, CPU and memory of running processes"
    ).tag(config=True)
    tail_lines = Int(
        MAX_LINES, help="Lines of a child's output its cell shows (all of it stays in the handle's .output)."
    ).tag(config=True)
    spill_bytes = Int(
        SPILL, help="Bytes of a child's output kept in memory; past that, the rest goes to a temporary file."
    ).tag(config=True)
    max_stopped = Int(
        1000, help="Stopped processes the session keeps (the oldest go first; running ones always stay)."
    ).tag(config=True)
    warn_send_bytes = Int(
        256 << 20, help="Under spawn and forkserver, a cell whose names take more bytes than this to send "
                        "warns before it starts, naming the biggest (0: never warn)."
    ).tag(config=True)
    preload_imports = Bool(
        True, help="The fork server imports, once, the modules the notebook's cells sent by name (numpy, "
                   "pandas ...) after a child imported them cleanly, so later children find them loaded."
    ).tag(config=True)

    @validate("refresh_period")
    def _positive_period(self, proposal: dict[str, Any]) -> float:
        if proposal["value"] <= 0:
            raise TraitError(f"refresh_period must be a positive number of seconds, not {proposal['value']}")
        return proposal["value"]

    @validate("tail_lines", "spill_bytes", "max_stopped", "warn_send_bytes")
    def _not_negative(self, proposal: dict[str, Any]) -> int:
        if proposal["value"] < 0:
            raise TraitError(f"{proposal['trait'].name} must be 0 or more, not {proposal['value']}")
        return proposal["value"]


_settings: ProcessSettings | None = None
_lock = threading.Lock()


def load(shell: Any) -> ProcessSettings:
    """The settings, configured from ``shell``'s config, and known to ``%config``; called at ``%load_ext``."""
    global _settings
    with _lock:
        if _settings is None or _settings.parent is not shell:
            _settings = ProcessSettings(parent=shell)
            configurables = getattr(shell, "configurables", None)
            if configurables is not None:
                configurables.append(_settings)
        return _settings


def current() -> ProcessSettings:
    """The settings in force: those loaded from the shell's config, or the defaults before any was."""
    global _settings
    with _lock:
        if _settings is None:
            _settings = ProcessSettings()
        return _settings

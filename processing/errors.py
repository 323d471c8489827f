"""Exceptions raised by :mod:`processing`.

``ProcessError`` and ``AuthenticationError`` are the standard library's own
classes, so code that already catches ``multiprocessing.ProcessError`` keeps
working when it moves to :mod:`processing`.
"""

from __future__ import annotations

import pickle
from multiprocessing import AuthenticationError, ProcessError

__all__ = ["AuthenticationError", "ProcessError", "ProcessStateError", "TargetPicklingError"]


class ProcessStateError(ProcessError, RuntimeError):
    """A method was called in a state where it cannot work (start twice, join before start...).

    It is a ``RuntimeError`` too, as ``threading.Thread`` raises for the same mistakes.
    """


class TargetPicklingError(ProcessError, pickle.PicklingError):
    """Something a child needs cannot be sent to it; nothing was started."""

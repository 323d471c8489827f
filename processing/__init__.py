"""processing: Process objects that run code in child processes, safe and fast from a notebook.

A faithful, modern implementation of the ``processing`` package's Process
objects (the ancestor of ``multiprocessing``), with PEP 8 aliases, three start
methods that all accept targets defined interactively, captured output and
lifecycle events. It never imports IPython; importing it is cheap.
"""

from __future__ import annotations

from .errors import AuthenticationError, ProcessError, ProcessStateError, TargetPicklingError
from .events import Subscription, subscribe
from .handle import ProcessHandle
from .launch import get_start_method, getStartMethod, set_start_method, setStartMethod
from .messaging import receive_from_parent, receiveFromParent, send_to_parent, sendToParent
from .process import (
    Process,
    active_children,
    activeChildren,
    cpu_count,
    cpuCount,
    current_process,
    currentProcess,
    status_word,
)

__all__ = [
    "Array",
    "AuthenticationError",
    "Barrier",
    "BoundedSemaphore",
    "Client",
    "Condition",
    "Event",
    "JoinableQueue",
    "Listener",
    "Lock",
    "Manager",
    "Pipe",
    "Process",
    "ProcessError",
    "ProcessHandle",
    "ProcessStateError",
    "Queue",
    "RLock",
    "RemoteProcess",
    "SchedulerUnreachableError",
    "Semaphore",
    "SimpleQueue",
    "Subscription",
    "TargetPicklingError",
    "Value",
    "activeChildren",
    "active_children",
    "connection",
    "cpuCount",
    "cpu_count",
    "currentProcess",
    "current_process",
    "receiveFromParent",
    "receive_from_parent",
    "getStartMethod",
    "get_start_method",
    "remote",
    "sendToParent",
    "send_to_parent",
    "setForkserverPreload",
    "setStartMethod",
    "set_forkserver_preload",
    "set_start_method",
    "status_word",
    "subscribe",
]

__version__ = "0.1.0"

#: Public names imported on first use: the connection machinery, the primitives, the fork server's
#: client and the remote handle cost imports that most programs never need.
_LAZY = {
    **{name: ("primitives", name) for name in (
        "Array", "Barrier", "BoundedSemaphore", "Condition", "Event", "JoinableQueue", "Lock", "Manager",
        "Queue", "RLock", "Semaphore", "SimpleQueue", "Value")},
    "connection": ("connection", None),
    "Client": ("connection", "Client"),
    "Listener": ("connection", "Listener"),
    "Pipe": ("connection", "Pipe"),
    "RemoteProcess": ("remote", "RemoteProcess"),
    "SchedulerUnreachableError": ("remote", "SchedulerUnreachableError"),
    "remote": ("remote", None),
    "setForkserverPreload": ("forkserver.client", "setForkserverPreload"),
    "set_forkserver_preload": ("forkserver.client", "set_forkserver_preload"),
}


def __getattr__(name: str) -> object:
    """Import the lazily exported names (see ``_LAZY``) on first use."""
    if name not in _LAZY:
        raise AttributeError(f"module 'processing' has no attribute {name!r}")
    import importlib

    module_name, attribute = _LAZY[name]
    module = importlib.import_module(f"{__name__}.{module_name}")
    return module if attribute is None else getattr(module, attribute)

"""The original package's primitives: ``processing.Queue``, ``Lock``, ``Manager`` ... for every start method.

They are the standard library's own classes, made by a multiprocessing
context of this package (:data:`context`): its semaphores are named, not
unlinked at once as the 'fork' context's are, so one object reaches children
of every start method (the stdlib's spawning protocol carries it, see
:mod:`processing.launch.stdlib`); and a ``Manager()`` runs its server in a
``processing.Process``, so it starts as fast as any of our children and
never re-runs ``__main__``.

Imported on first use (``processing.Queue`` ...): ``import processing`` does
not pay for ``multiprocessing.synchronize`` and friends.
"""

from __future__ import annotations

from multiprocessing.context import BaseContext

from .process import Process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "Array",
    "Barrier",
    "BoundedSemaphore",
    "Condition",
    "Event",
    "JoinableQueue",
    "Lock",
    "Manager",
    "Pipe",
    "Queue",
    "RLock",
    "Semaphore",
    "SimpleQueue",
    "Value",
    "context",
]


class ProcessingContext(BaseContext):
    """A multiprocessing context whose Process is ours and whose primitives suit every start method."""

    _name = "processing"
    Process = Process  # type: ignore[assignment]

    def get_start_method(self, allow_none: bool = False) -> str:
        # Not 'fork': SemLock would unlink its semaphore at once, and only forked children could use it.
        return self._name


context = ProcessingContext()


def Queue(maxsize: int = 0) -> Any:
    """A ``multiprocessing.Queue`` that children of every start method can use."""
    return context.Queue(maxsize)


def JoinableQueue(maxsize: int = 0) -> Any:
    return context.JoinableQueue(maxsize)


def SimpleQueue() -> Any:
    return context.SimpleQueue()


def Lock() -> Any:
    return context.Lock()


def RLock() -> Any:
    return context.RLock()


def Semaphore(value: int = 1) -> Any:
    return context.Semaphore(value)


def BoundedSemaphore(value: int = 1) -> Any:
    return context.BoundedSemaphore(value)


def Condition(lock: Any = None) -> Any:
    return context.Condition(lock)


def Event() -> Any:
    return context.Event()


def Barrier(parties: int, action: Any = None, timeout: float | None = None) -> Any:
    return context.Barrier(parties, action, timeout)


def Value(typecode_or_type: Any, *args: Any, lock: Any = True) -> Any:
    return context.Value(typecode_or_type, *args, lock=lock)


def Array(typecode_or_type: Any, size_or_initializer: Any, *, lock: Any = True) -> Any:
    return context.Array(typecode_or_type, size_or_initializer, lock=lock)


def Manager() -> Any:
    """A started ``multiprocessing.managers.SyncManager`` whose server is a child of ours."""
    return context.Manager()


def Pipe(duplex: bool = True) -> Any:
    """A pair of ``multiprocessing.connection.Connection`` objects (no authentication: use Listener)."""
    return context.Pipe(duplex)

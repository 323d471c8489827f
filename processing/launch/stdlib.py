"""The standard library's spawning protocol and child state, so its primitives work with our children.

``multiprocessing``'s Queue, Lock, Connection, Manager proxy ... pickle only
while ``multiprocessing.context.get_spawning_popen()`` names the popen of the
child being started, and hand their descriptors to that popen's
``duplicate_for_child``; in the child, the ``DupFd`` object they pickled
gives the descriptor back. We speak that protocol rather than copy the
primitives, so that every stdlib object that can reach a stdlib child can
reach ours:

- parent side: :func:`spawning` (the thread-local popen, while pickling a
  process), :class:`SpawnDupFd` (a spawned interpreter keeps the descriptor's
  number) and :class:`ForkserverDupFd` (the fork server hands the child a
  list of descriptors: the index finds it, as in CPython's forkserver);
- child side: :func:`adopt` sets multiprocessing's own view of the process
  (auth key, name, start method, parent, no children, after-fork hooks, the
  resource tracker) the way ``BaseProcess._bootstrap`` does, and
  :func:`exit_function` runs multiprocessing's finalizers as a stdlib child
  does when ``run()`` returns, so that a Queue's feeder thread flushes.

Only ``multiprocessing.context`` and ``.process`` are imported here (``import
processing`` already has them); ``multiprocessing.util`` is touched only when
a program imported it, since without it nothing registered a hook or a finalizer.
"""

from __future__ import annotations

import itertools
import sys
from multiprocessing import context as _context
from multiprocessing import process as _mp_process

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = [
    "ForkserverDupFd",
    "SpawnDupFd",
    "adopt",
    "exit_function",
    "fork_context_error",
    "inherited_fds",
    "inheriting",
    "spawning",
    "tracker_fd",
]

#: In a fork server's child: the descriptors its request carried for the objects it unpickles.
inherited_fds: list[int] = []


class SpawnDupFd:
    """A descriptor handed to a spawned interpreter, which keeps its number."""

    __slots__ = ("fd",)

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def __reduce__(self) -> tuple[Any, ...]:
        return SpawnDupFd, (self.fd,)

    def detach(self) -> int:
        return self.fd


class ForkserverDupFd:
    """A descriptor handed to a fork server's child, found by its place in the request's list."""

    __slots__ = ("index",)

    def __init__(self, index: int) -> None:
        self.index = index

    def __reduce__(self) -> tuple[Any, ...]:
        return ForkserverDupFd, (self.index,)

    def detach(self) -> int:
        return inherited_fds[self.index]


class spawning:
    """While pickling for ``popen``'s child: stdlib primitives see it as the spawning popen (thread-local)."""

    __slots__ = ("_popen", "_previous")

    def __init__(self, popen: Any) -> None:
        self._popen = popen

    def __enter__(self) -> None:
        self._previous = _context.get_spawning_popen()
        _context.set_spawning_popen(self._popen)

    def __exit__(self, *exc_info: object) -> None:
        _context.set_spawning_popen(self._previous)


def fork_context_error(error: BaseException) -> bool:
    """Whether ``error`` is the stdlib's refusal of a 'fork' context semaphore to a fresh child."""
    return isinstance(error, RuntimeError) and "fork context" in str(error)


def tracker_fd() -> int | None:
    """The descriptor of this process's running resource tracker (None if it has none): children share it."""
    tracker = sys.modules.get("multiprocessing.resource_tracker")
    if tracker is None:
        return None
    return getattr(tracker._resource_tracker, "_fd", None)


def adopt(
    *,
    name: str,
    identity: tuple[int, ...],
    method: str,
    parent_name: str,
    parent_pid: int,
    parent_sentinel: int | None,
    authkey: bytes | None,
    tracker: int | None,
) -> None:
    """In a new child: make multiprocessing's state that of a stdlib child of the same method.

    ``authkey`` is the parent's multiprocessing key (None under fork, which
    inherits it): Manager proxies and the resource sharer authenticate with it.
    """
    me = _mp_process.current_process()
    if authkey is not None:
        me.authkey = authkey
    me._name = name
    me._identity = identity
    _mp_process._children = set()
    _mp_process._process_counter = itertools.count(1)
    _mp_process._parent_process = _mp_process._ParentProcess(parent_name, parent_pid, parent_sentinel)
    _context._default_context._actual_context = _context._default_context.get_context(method)
    if tracker is not None:
        from multiprocessing import resource_tracker

        resource_tracker._resource_tracker._fd = tracker
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        # What BaseProcess._after_fork does: the parent's finalizers are not ours to run (its
        # Manager, its Queues' feeders), and after-fork hooks reset what must not be shared.
        util._finalizer_registry.clear()
        util._run_after_forkers()


def exit_function() -> None:
    """As a stdlib child does after ``run()``: multiprocessing's finalizers, and its children stopped."""
    util = sys.modules.get("multiprocessing.util")
    if util is not None:
        util._exit_function()


class inheriting:
    """While a fresh child unpickles its process object: what the stdlib's child sets (proxies then
    take no new reference of their own; the parent's keeps the object alive)."""

    def __enter__(self) -> None:
        _mp_process.current_process()._inheriting = True

    def __exit__(self, *exc_info: object) -> None:
        try:
            del _mp_process.current_process()._inheriting
        except AttributeError:
            pass

"""Turning targets, arguments and process objects into bytes a fresh interpreter can load.

Plain pickle stores a function or class by reference (module plus name). That
breaks for anything a new interpreter cannot import again: objects defined in
``__main__`` (a notebook cell, ``python -c``), lambdas and closures. Those are
sent by value with cloudpickle. Plain pickle stays the fast path; cloudpickle is
imported only when an object needs it, because importing it costs ~20 ms.

A function sent by value keeps the name of the file it was defined in
(cloudpickle would write ``<dynamic-code>``), so that a traceback in the child
says where it came from (a notebook's cell, whose source the notebook may send
along).
"""

from __future__ import annotations

import copyreg
import io
import pickle
import sys
import types
from multiprocessing.context import get_spawning_popen
from multiprocessing.reduction import ForkingPickler

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterable
    from typing import Any

__all__ = ["call_parts", "dumps", "loads", "short_repr", "split", "unpicklable"]

PROTOCOL = pickle.HIGHEST_PROTOCOL


#: In a forked child: the ids of the classes its parent's ``__main__`` held at
#: fork time. The parent finds those by name, so they travel by reference, and
#: an object sent back is an instance of the parent's own class, not of a copy.
shared_main_classes: frozenset[int] = frozenset()


def share_main_classes() -> None:
    """In a forked child: note the classes of ``__main__`` that the parent has too."""
    global shared_main_classes
    main = sys.modules.get("__main__")
    shared_main_classes = frozenset(
        id(value)
        for value in vars(main).values()
        if isinstance(value, type) and value.__module__ == "__main__"
    )


class _NeedsValue(Exception):
    """Raised inside the fast pickler when an object must be sent by value."""


def _by_reference_is_unsafe(obj: object) -> bool:
    if id(obj) in shared_main_classes:
        return False
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", "")
    return module in ("__main__", "__mp_main__", None) or "<" in qualname


def _stdlib_reducers() -> dict[type, Any]:
    """copyreg's reducers and those multiprocessing registers (Connection, socket, method, partial).

    Built afresh for each pickler, as ``ForkingPickler`` does, so that a reducer
    registered later (importing ``multiprocessing.connection``) is seen. With
    them, a Connection or a socket hands its descriptor to the child being
    started (see :mod:`processing.launch.stdlib`) instead of travelling as a
    bare number that means nothing, or something else, in the child.
    """
    table = copyreg.dispatch_table.copy()
    table.update(ForkingPickler._extra_reducers)  # type: ignore[attr-defined]
    return table


def check_not_unlinked(obj: object) -> None:
    """Refuse a 'fork' context semaphore to a fresh child, as Python 3.11+ does itself.

    Such a semaphore is unlinked at once: it has no name, and a fresh child
    would rebuild it from a handle that means nothing there (Python 3.10 sends
    it anyway). The message is the stdlib's, so that one diagnosis serves both.

    Raises:
        RuntimeError: ``obj`` is such a semaphore and a child is being started.
    """
    synchronize = sys.modules.get("multiprocessing.synchronize")
    if (
        synchronize is not None
        and isinstance(obj, synchronize.SemLock)
        and getattr(obj, "_semlock", None) is not None
        and obj._semlock.name is None
        and get_spawning_popen() is not None
    ):
        raise RuntimeError(
            "A SemLock created in a fork context is being shared with a process in a spawn context. "
            "This is not supported."
        )


class _FastPickler(pickle.Pickler):
    def __init__(self, file: Any, protocol: int, buffer_callback: Any = None) -> None:
        self.dispatch_table = _stdlib_reducers()  # before __init__, which reads it
        super().__init__(file, protocol, buffer_callback=buffer_callback)

    def reducer_override(self, obj: Any) -> Any:
        check_not_unlinked(obj)
        if isinstance(obj, (types.FunctionType, type)) and _by_reference_is_unsafe(obj):
            raise _NeedsValue
        return NotImplemented


def dumps(obj: object) -> bytes:
    """Serialise ``obj`` so that a fresh interpreter can load it.

    Raises whatever pickling raises when even cloudpickle cannot serialise it.
    """
    return _dumps(obj, None)


def split(obj: object, threshold: int) -> tuple[bytes, list[pickle.PickleBuffer]]:
    """Like :func:`dumps`, with every out-of-band buffer of ``threshold`` bytes or more left out of
    the pickle (returned beside it, in order, referring to the objects' own memory: no copy).

    Load with ``loads(data, buffers=...)``; see :mod:`processing.buffers`.
    """
    big: list[pickle.PickleBuffer] = []

    def keep_out(buffer: pickle.PickleBuffer) -> bool:
        with buffer.raw() as view:
            if view.nbytes < threshold:
                return True  # in the pickle
        big.append(buffer)
        return False

    data = _dumps(obj, keep_out, restart=big.clear)
    return data, big


def _dumps(obj: object, buffer_callback: Any, restart: Any = None) -> bytes:
    buffer = io.BytesIO()
    try:
        _FastPickler(buffer, PROTOCOL, buffer_callback).dump(obj)
        return buffer.getvalue()
    except (_NeedsValue, pickle.PicklingError, AttributeError, TypeError):
        if restart is not None:
            restart()  # what the fast pickler set aside before it gave up
        buffer = io.BytesIO()
        _by_value_pickler()(buffer, protocol=PROTOCOL, buffer_callback=buffer_callback).dump(obj)
        return buffer.getvalue()


_ByValue: type | None = None


def _by_value_pickler() -> type:
    """cloudpickle's Pickler, keeping code objects' file names and the parent's own classes by reference."""
    global _ByValue
    if _ByValue is None:
        import collections

        import cloudpickle

        reduce_code = cloudpickle.Pickler.dispatch_table[types.CodeType]
        own = {types.CodeType: lambda code: _code_reduce(reduce_code, code)}

        class ByValuePickler(cloudpickle.Pickler):
            def __init__(self, file: Any, protocol: int, buffer_callback: Any = None) -> None:
                self.dispatch_table = collections.ChainMap(  # before __init__, which reads it
                    own, ForkingPickler._extra_reducers, cloudpickle.Pickler.dispatch_table
                )
                super().__init__(file, protocol=protocol, buffer_callback=buffer_callback)

            def reducer_override(self, obj: Any) -> Any:
                check_not_unlinked(obj)
                if isinstance(obj, type) and id(obj) in shared_main_classes:
                    return NotImplemented  # by reference: the parent has this very class
                return super().reducer_override(obj)

        _ByValue = ByValuePickler
    return _ByValue


def _code_reduce(reduce_by_value: Any, code: types.CodeType) -> tuple[Any, ...]:
    constructor, args = reduce_by_value(code)
    return _code_in_file, (constructor, args, code.co_filename)


def _code_in_file(constructor: Any, args: tuple[Any, ...], filename: str) -> types.CodeType:
    """A code object rebuilt by cloudpickle, given back the name of the file it came from."""
    return constructor(*args).replace(co_filename=filename)


loads = pickle.loads


def call_parts(target: object, args: tuple[Any, ...], kwargs: dict[str, Any]) -> list[tuple[str, object]]:
    """A call's parts, labelled as an error message names them: ``target``, ``args[0]``, ``kwargs['k']``."""
    parts: list[tuple[str, object]] = [("target", target)]
    parts += [(f"args[{i}]", arg) for i, arg in enumerate(args)]
    parts += [(f"kwargs[{key!r}]", value) for key, value in kwargs.items()]
    return parts


def unpicklable(parts: Iterable[tuple[str, object]]) -> list[tuple[str, object, Exception]]:
    """Which of the labelled ``parts`` cannot be sent, and why: ``(label, value, error)`` for each.

    The one diagnosis behind every "cannot send" error (a start, a cell's
    names, a pulled value, a remote target): pickling everything at once says
    only that something failed; this says what.
    """
    failures = []
    for label, value in parts:
        try:
            dumps(value)
        except Exception as error:  # whatever pickling raises is the reason
            failures.append((label, value, error))
    return failures


def short_repr(value: object, limit: int = 80) -> str:
    """``repr(value)``, cut to ``limit`` characters for an error message."""
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."

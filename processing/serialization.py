"""Turning targets, arguments and process objects into bytes a fresh interpreter can load.

Plain pickle stores a function or class by reference (module plus name). That
breaks for anything a new interpreter cannot import again: objects defined in
``__main__`` (a notebook cell, ``python -c``), lambdas and closures. Those are
sent by value with cloudpickle. Plain pickle stays the fast path; cloudpickle is
imported only when an object needs it, because importing it costs ~20 ms.
"""

from __future__ import annotations

import io
import pickle
import sys
import types

from .errors import TargetPicklingError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

__all__ = ["dumps", "loads", "describe_unpicklable"]

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


class _FastPickler(pickle.Pickler):
    def reducer_override(self, obj: Any) -> Any:
        if isinstance(obj, (types.FunctionType, type)) and _by_reference_is_unsafe(obj):
            raise _NeedsValue
        return NotImplemented


def dumps(obj: object) -> bytes:
    """Serialise ``obj`` so that a fresh interpreter can load it.

    Raises whatever pickling raises when even cloudpickle cannot serialise it.
    """
    buffer = io.BytesIO()
    try:
        _FastPickler(buffer, PROTOCOL).dump(obj)
        return buffer.getvalue()
    except (_NeedsValue, pickle.PicklingError, AttributeError, TypeError):
        return _dumps_by_value(obj)


def _dumps_by_value(obj: object) -> bytes:
    import cloudpickle

    if not shared_main_classes:
        return cloudpickle.dumps(obj, protocol=PROTOCOL)

    class SharingPickler(cloudpickle.Pickler):
        def reducer_override(self, obj: Any) -> Any:
            if isinstance(obj, type) and id(obj) in shared_main_classes:
                return NotImplemented  # by reference: the parent has this very class
            return super().reducer_override(obj)

    buffer = io.BytesIO()
    SharingPickler(buffer, protocol=PROTOCOL).dump(obj)
    return buffer.getvalue()


loads = pickle.loads


def _parts(process: Any) -> list[tuple[str, object]]:
    parts: list[tuple[str, object]] = [("target", process._target)]
    parts += [(f"args[{i}]", arg) for i, arg in enumerate(process._args)]
    parts += [(f"kwargs[{key!r}]", value) for key, value in process._kwargs.items()]
    own = {k: v for k, v in vars(process).items() if not k.startswith("_")}
    parts += [(f"attribute {name!r}", value) for name, value in own.items()]
    return parts


def describe_unpicklable(process: Any, method: str, error: BaseException) -> TargetPicklingError:
    """Build the error for a process whose state cannot be sent, naming the offending part."""
    for label, value in _parts(process):
        try:
            dumps(value)
        except Exception as part_error:
            culprit = f"its {label}, {_short_repr(value)},"
            error = part_error
            break
    else:
        culprit = f"the {type(process).__name__} object itself"
    return TargetPicklingError(
        f"cannot start {process._name} with the {method!r} start method: {culprit} cannot be "
        f"sent to the child ({type(error).__name__}: {error}). Pass something picklable "
        "(create such objects inside the target instead), or use method='fork', which sends nothing."
    )


def _short_repr(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."

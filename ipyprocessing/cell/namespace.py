"""Which notebook names a cell needs in a fresh interpreter, and packing them to send.

Under spawn and forkserver the child starts empty, so the cell's globals must
travel. Sending the whole notebook would be slow and would fail on the first
unpicklable object of an unrelated cell, so only the names the cell actually
reads are sent: the compiled code's global loads (``LOAD_NAME``,
``LOAD_GLOBAL`` ...), in the cell and in every function, class body and
comprehension nested in it. Reading instructions rather than ``co_names``
leaves out attribute names (``x.data`` does not send a global ``data``).
Modules travel by name and are imported again; everything else is pickled
once, together, so objects shared between names stay shared. A name that
cannot be sent is reported before anything starts.
"""

from __future__ import annotations

import dis
import types
from collections.abc import Iterable, Mapping
from typing import Any

from processing import serialization

from .target import Shipment

__all__ = ["NamespaceError", "globals_used", "ship"]

_GLOBAL_READS = frozenset(
    {"LOAD_NAME", "LOAD_GLOBAL", "LOAD_FROM_DICT_OR_GLOBALS", "DELETE_NAME", "DELETE_GLOBAL"}
)


class NamespaceError(Exception):
    """Notebook names cannot be sent to the child; the message names them and says what to do."""


def globals_used(code: types.CodeType) -> set[str]:
    """The global names ``code`` reads, in itself and in every code object nested in it."""
    names: set[str] = set()
    pending = [code]
    while pending:
        current = pending.pop()
        names.update(ins.argval for ins in dis.get_instructions(current) if ins.opname in _GLOBAL_READS)
        pending.extend(const for const in current.co_consts if isinstance(const, types.CodeType))
    return names


def ship(
    user_ns: Mapping[str, Any],
    used: Iterable[str],
    push: Iterable[str],
    *,
    hidden: Mapping[str, Any],
    method: str,
) -> Shipment:
    """Pack the names a cell uses (and the pushed ones) for a child started with ``method``.

    Names the notebook does not define are skipped: they are builtins, or the
    cell defines them. IPython's own names (``In``, ``exit``, ``get_ipython`` ...)
    are skipped unless pushed.

    Raises:
        NamespaceError: a pushed name is undefined, or some names cannot be sent.
    """
    push = list(push)
    undefined = [name for name in push if name not in user_ns]
    if undefined:
        raise NamespaceError(
            f"--push {_quoted(undefined)}: not defined in the notebook; define it in a cell first"
        )
    modules: dict[str, str] = {}
    values: dict[str, Any] = {}
    for name in sorted({*used, *push}):
        if name not in user_ns or (name.startswith("__") and name.endswith("__")):
            continue
        value = user_ns[name]
        if name not in push and name in hidden and hidden[name] is value:
            continue
        if isinstance(value, types.ModuleType):
            modules[name] = value.__name__
        else:
            values[name] = value
    _check_modules(modules, user_ns, method)
    try:
        pickled = serialization.dumps(values)
    except Exception as error:  # any failure is diagnosed name by name
        raise _unsendable(values, method, error) from error
    return Shipment(modules, pickled)


def _check_modules(modules: dict[str, str], user_ns: Mapping[str, Any], method: str) -> None:
    unimportable = [name for name in modules if getattr(user_ns[name], "__spec__", None) is None]
    if unimportable:
        raise NamespaceError(
            f"cannot send {_quoted(unimportable)} to the child (--method {method}): a module that was "
            "not imported from a file or package cannot be imported again there. Import it inside "
            "the cell, or run with --method fork, which sends nothing"
        )


def _unsendable(values: dict[str, Any], method: str, error: BaseException) -> NamespaceError:
    reasons = [f"{name!r} ({type(value).__name__}: {type(part_error).__name__}: {part_error})"
               for name, value, part_error in serialization.unpicklable(values.items())]
    if not reasons:
        reasons.append(f"the names together ({type(error).__name__}: {error})")
    return NamespaceError(
        f"cannot send {', '.join(reasons)} to the child (--method {method}); nothing was started. "
        "Create such objects inside the cell, or run with --method fork, which sends nothing"
    )


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)

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

IPython syntax hides names in strings: ``%time f(x)`` becomes
``run_line_magic('time', 'f(x)')`` and ``!ls {folder}`` a ``system`` call
whose braces IPython expands in the child. :func:`names_in_magics` finds such
names; they are sent when they can be, and skipped (not reported) when they
cannot, since the string may not be Python at all (``%env A=1``). Each
function sent brings the file name of its cell, so that the child can show its
source lines in a traceback (:func:`cell_sources`).
"""

from __future__ import annotations

import ast
import dis
import linecache
import re
import sys
import types
from collections.abc import Iterable, Mapping
from typing import Any

from processing import serialization
from processing.buffers import THRESHOLD

from .target import Shipment

__all__ = ["NamespaceError", "biggest", "cell_sources", "globals_used", "names_in_magics", "ship"]

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


_MAGIC_CALLS = frozenset({"run_line_magic", "run_cell_magic", "system", "getoutput"})
_EXPANDED = re.compile(r"\{([^{}]+)\}|\$(\w+)")


def names_in_magics(source: str) -> set[str]:
    """The global names read by the Python inside a transformed cell's magic and shell-command strings."""
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return set()
    names: set[str] = set()
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                and node.func.attr in _MAGIC_CALLS):
            continue
        for argument in node.args[1:] if node.func.attr.startswith("run_") else node.args:
            if isinstance(argument, ast.Constant) and isinstance(argument.value, str):
                text = argument.value
                for piece in [text, *(braced or dollar for braced, dollar in _EXPANDED.findall(text))]:
                    names |= _names_read(piece)
    return names


def _names_read(text: str) -> set[str]:
    try:
        tree = ast.parse(text.strip())
    except (SyntaxError, ValueError):
        return set()
    return {node.id for node in ast.walk(tree)
            if isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load)}


def cell_sources(shell: Any, files: Iterable[str] | None) -> dict[str, tuple[list[str], int]]:
    """The notebook's cells that ``files`` name (all of them for None), as a child shows them in a
    traceback: ``{file name: (lines, cell number)}``."""
    numbers: dict[str, int] = dict(getattr(shell.compile, "_filename_map", {}))
    wanted = numbers if files is None else [name for name in files if name in numbers]
    sources = {}
    for filename in wanted:
        entry = linecache.cache.get(filename)
        if entry is not None:
            sources[filename] = (list(entry[2]), numbers[filename])
    return sources


def ship(
    user_ns: Mapping[str, Any],
    used: Iterable[str],
    push: Iterable[str],
    *,
    hidden: Mapping[str, Any],
    method: str,
    optional: Iterable[str] = (),
) -> tuple[Shipment, set[str]]:
    """Pack the names a cell uses (and the pushed ones) for a child started with ``method``.

    Names the notebook does not define are skipped: they are builtins, or the
    cell defines them. IPython's own names (``In``, ``exit``, ``get_ipython`` ...)
    are skipped unless pushed, and so are ``optional`` names that cannot be
    sent. Returns the shipment and the files the functions sent were defined in.

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
    optional = set(optional) - set(used) - set(push)
    for name in sorted({*used, *push, *optional}):
        if name not in user_ns or (name.startswith("__") and name.endswith("__")):
            continue
        value = user_ns[name]
        if name not in push and name in hidden and hidden[name] is value:
            continue
        if isinstance(value, types.ModuleType):
            if name not in optional or getattr(value, "__spec__", None) is not None:
                modules[name] = value.__name__
        elif name not in optional or not serialization.unpicklable([(name, value)]):
            values[name] = value
    _check_modules(modules, user_ns, method)
    try:
        pickled, buffers = serialization.split(values, THRESHOLD)  # big buffers: not copied here
    except Exception as error:  # any failure is diagnosed name by name
        raise _unsendable(values, method, error) from error
    return Shipment(modules, pickled, buffers), _code_files(values.values())


def biggest(user_ns: Mapping[str, Any], names: Iterable[str], count: int = 3) -> list[tuple[str, int]]:
    """The ``count`` biggest of ``names`` in ``user_ns``, with their approximate sizes in bytes.

    Approximate, from what the objects say of themselves (an array's or a
    DataFrame's buffers, a bytes' length): pickling each name again to weigh it
    would double the cost of exactly the shipments that are too big.
    """
    sizes = []
    for name in set(names):
        value = user_ns.get(name)
        if value is None or isinstance(value, types.ModuleType):
            continue
        sizes.append((name, _approximate_size(value)))
    return sorted(sizes, key=lambda item: -item[1])[:count]


def _approximate_size(value: Any) -> int:
    usage = getattr(value, "memory_usage", None)
    if callable(usage):  # a pandas DataFrame or Series
        try:
            total = usage(deep=True)
            return int(getattr(total, "sum", lambda: total)())
        except Exception:
            pass
    nbytes = getattr(value, "nbytes", None)
    if isinstance(nbytes, int):
        return nbytes
    try:
        return sys.getsizeof(value)
    except Exception:
        return 0


def _code_files(values: Iterable[Any]) -> set[str]:
    """The files the functions among ``values`` (and the methods of the classes) were defined in."""
    files = set()
    for value in values:
        members = vars(value).values() if isinstance(value, type) else (value,)
        for member in members:
            code = getattr(member, "__code__", None)
            if isinstance(code, types.CodeType):
                files.add(code.co_filename)
    return files


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

"""What a ``%%process`` child runs: the compiled cell, in the namespace the parent chose.

This module is imported in every spawn and forkserver child (the target is
pickled by reference), so it imports nothing heavy: no IPython, no widgets.
The cell's traceback is printed from the cell's own frames (not this
module's), and ``--pull`` values go back to the parent over the core's
authenticated channel as ``(PULL_TAG, {name: value})``.
"""

from __future__ import annotations

import builtins
import importlib
import linecache
import marshal
import sys

import processing
from processing import serialization

TYPE_CHECKING = False  # typing costs a spawned child ~10 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["PULL_TAG", "CellTarget", "Shipment"]

#: Marks the message that carries pulled values among the objects a child sends.
PULL_TAG = "ipyprocessing.pull"


class Shipment:
    """Notebook names sent by value to a spawn or forkserver child.

    ``modules`` maps a name to the module to import for it (modules are never
    pickled); ``values`` is the pickle of a dict of everything else, made once
    in the parent so shared objects stay shared.
    """

    __slots__ = ("modules", "values")

    def __init__(self, modules: dict[str, str], values: bytes) -> None:
        self.modules = modules
        self.values = values


class CellTarget:
    """Run a cell's code in a child, then send the ``--pull`` names back.

    ``namespace`` is the notebook's own namespace dict under fork (the child
    has a copy of it); ``shipment`` is what the parent sent under spawn and
    forkserver. Exactly one of them is given.
    """

    def __init__(
        self,
        code: bytes,
        source: str,
        filename: str,
        pull: tuple[str, ...] = (),
        *,
        namespace: dict[str, Any] | None = None,
        shipment: Shipment | None = None,
    ) -> None:
        self.code = code
        self.source = source
        self.filename = filename
        self.pull = pull
        self.namespace = namespace
        self.shipment = shipment

    def __call__(self) -> None:
        namespace = self.namespace if self.namespace is not None else self._unpack()
        linecache.cache[self.filename] = (len(self.source), None, self.source.splitlines(True), self.filename)
        try:
            exec(marshal.loads(self.code), namespace)
        except Exception as error:
            import traceback  # only on failure: a child whose interpreter lacks it need not pay 1.5 ms

            sys.stdout.flush()
            traceback.print_exception(type(error), error, error.__traceback__.tb_next)
            raise SystemExit(1) from None
        if self.pull:
            _send_pulled(namespace, self.pull)

    def _unpack(self) -> dict[str, Any]:
        assert self.shipment is not None
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        for name, module in self.shipment.modules.items():
            try:
                namespace[name] = importlib.import_module(module)
            except Exception as error:  # any import failure ends the child the same way
                _fail(f"cannot import module {module!r} (the notebook's {name!r}) in the child: "
                      f"{type(error).__name__}: {error}. Install it where the child's interpreter "
                      "finds it, or run with --method fork")
        try:
            namespace.update(serialization.loads(self.shipment.values))
        except Exception as error:
            _fail(f"cannot rebuild the notebook's names in the child: {type(error).__name__}: {error}. "
                  "Push fewer names, or run with --method fork")
        return namespace


def _send_pulled(namespace: dict[str, Any], names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in namespace]
    if missing:
        pronoun = "it" if len(missing) == 1 else "them"
        _fail(f"cannot pull {_quoted(missing)}: the cell did not define {pronoun}")
    values = {name: namespace[name] for name in names}
    try:
        processing.sendToParent((PULL_TAG, values))
    except Exception as error:  # name the values that cannot travel
        culprits = [name for name, _, _ in serialization.unpicklable(values.items())] or list(names)
        _fail(f"cannot pull {_quoted(culprits)}: it cannot be sent to the notebook "
              f"({type(error).__name__}: {error}); pull something picklable instead")


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _fail(message: str) -> NoReturn:
    sys.stdout.flush()
    print(f"ipyprocessing: {message}", file=sys.stderr)
    raise SystemExit(1)

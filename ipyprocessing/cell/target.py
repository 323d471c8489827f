"""What a ``%%process`` child runs: the cell, in an IPython shell of its own, in the namespace it was given.

This module is imported in every spawn and forkserver child (the target is
pickled by reference), so it imports nothing heavy itself; the cell's shell
(:mod:`.shell`, IPython) is imported when the cell runs, or earlier by the
fork server, which keeps it preloaded. The ``--pull`` values go back to the
parent over the core's authenticated channel as a :class:`~.messages.Pulled`.
"""

from __future__ import annotations

import builtins
import importlib
import sys
from collections import namedtuple

import processing
from processing import serialization

from .messages import Failed, Imported, Pulled

TYPE_CHECKING = False  # typing costs a spawned child ~10 ms to import; annotations need it only for checkers
if TYPE_CHECKING:
    from typing import Any, NoReturn

__all__ = ["CellTarget", "ShellSettings", "Shipment"]


class ShellSettings(namedtuple("ShellSettings", "execution_count config colors sources stdin")):
    """How the child's shell presents the cell as the notebook's own.

    - ``execution_count``: the cell's number in the notebook (``Cell In[N]``, ``Out[N]``);
    - ``config``: the notebook shell's configuration (its ``InlineBackend`` settings among them);
    - ``colors``: its traceback colours;
    - ``sources``: earlier cells the cell's functions come from, ``{file name: (lines, cell number)}``;
    - ``stdin``: whether ``input()`` may ask the notebook (``--wait``).
    """

    __slots__ = ()


class Shipment:
    """Notebook names sent by value to a spawn or forkserver child.

    ``modules`` maps a name to the module to import for it (modules are never
    pickled); ``values`` is the pickle of a dict of everything else, made once
    in the parent so shared objects stay shared; ``buffers``, the big buffers
    of those values (an array's, a DataFrame's blocks), left out of that pickle
    and referring to the notebook's own memory. Starting the child sends them
    through shared memory (see :mod:`processing.buffers`), where the child's
    arrays stay mapped; to a Dask worker they travel in the wire's pickle.
    """

    __slots__ = ("buffers", "modules", "values")

    def __init__(self, modules: dict[str, str], values: bytes, buffers: list[Any] | None = None) -> None:
        self.modules = modules
        self.values = values
        self.buffers = buffers or []

    @property
    def size(self) -> int:
        """Bytes sent: the pickle and its buffers."""
        total = len(self.values)
        for buffer in self.buffers:
            with memoryview(buffer) as view:
                total += view.nbytes
        return total


class CellTarget:
    """Run a cell in a child, then send the ``--pull`` names back.

    ``namespace`` is the notebook's own namespace dict under fork (the child
    has a copy of it); ``shipment`` is what the parent sent under spawn and
    forkserver. Exactly one of them is given.
    """

    def __init__(
        self,
        source: str,
        settings: ShellSettings,
        pull: tuple[str, ...] = (),
        *,
        namespace: dict[str, Any] | None = None,
        shipment: Shipment | None = None,
    ) -> None:
        self.source = source
        self.settings = settings
        self.pull = pull
        self.namespace = namespace
        self.shipment = shipment

    def __call__(self) -> None:
        from . import shell

        namespace = self.namespace if self.namespace is not None else self._unpack()
        settings = self.settings
        shell.run(self.source, namespace, execution_count=settings.execution_count, config=settings.config,
                  colors=settings.colors, sources=settings.sources, stdin=settings.stdin)
        if self.pull:
            _send_pulled(namespace, self.pull)

    def _unpack(self) -> dict[str, Any]:
        assert self.shipment is not None
        before = set(sys.modules)
        namespace: dict[str, Any] = {"__name__": "__main__", "__builtins__": builtins}
        for name, module in self.shipment.modules.items():
            try:
                namespace[name] = importlib.import_module(module)
            except Exception as error:  # any import failure ends the child the same way
                _fail(f"cannot import module {module!r} (the notebook's {name!r}) in the child: "
                      f"{type(error).__name__}: {error}. Install it where the child's interpreter "
                      "finds it, or run with --method fork")
        try:
            namespace.update(serialization.loads(self.shipment.values, buffers=self.shipment.buffers))
        except Exception as error:
            _fail(f"cannot rebuild the notebook's names in the child: {type(error).__name__}: {error}. "
                  "Push fewer names, or run with --method fork")
        new = set(sys.modules) - before
        imported = sorted({name.partition(".")[0] for name in new if not name.startswith("_")})
        if imported:
            processing.sendToParent(Imported(tuple(imported)))
        return namespace


def _send_pulled(namespace: dict[str, Any], names: tuple[str, ...]) -> None:
    missing = [name for name in names if name not in namespace]
    if missing:
        pronoun = "it" if len(missing) == 1 else "them"
        _fail(f"cannot pull {_quoted(missing)}: the cell did not define {pronoun}")
    values = {name: namespace[name] for name in names}
    try:
        processing.sendToParent(Pulled(values))
    except Exception as error:  # name the values that cannot travel
        culprits = [name for name, _, _ in serialization.unpicklable(values.items())] or list(names)
        _fail(f"cannot pull {_quoted(culprits)}: it cannot be sent to the notebook "
              f"({type(error).__name__}: {error}); pull something picklable instead")


def _quoted(names: list[str]) -> str:
    return ", ".join(repr(name) for name in names)


def _fail(message: str) -> NoReturn:
    sys.stdout.flush()
    print(f"ipyprocessing: {message}", file=sys.stderr)
    try:
        processing.sendToParent(Failed(message))  # so that the row says this, not "the cell raised"
    except Exception:
        pass  # the channel is gone: the message above is still in the output
    raise SystemExit(1)

"""How children are created: choosing a start method, and the machinery each one uses.

- :mod:`.spec`: what a start method receives from a process object, and what a child receives;
- :mod:`.popen`: what every start method shares (pid, exit status, sentinel, channel, pipes);
- :mod:`.fork`, :mod:`.spawn`, :mod:`.forkserver`: one small class per start method;
- :mod:`.interpreter`: fresh interpreters (spawn's children, the fork server);
- :mod:`.guard`: the parent-death guard;
- :mod:`.stdlib`: the standard library's spawning protocol, and its state in a child;
- :mod:`.streams`: a captured child's ``sys.stdout`` and ``sys.stderr``;
- :mod:`.bootstrap`: the child's side.

The default is ``forkserver`` on every platform: it is the fastest start that
does not fork the caller (safe from a multi-threaded Jupyter kernel, flat in
cost however much memory the notebook holds), and, unlike the standard
library's, it never re-runs ``__main__``. ``spawn`` is the slow, fully fresh
interpreter; ``fork`` copies the caller and sends nothing.
"""

from __future__ import annotations

import importlib

__all__ = [
    "METHODS",
    "check",
    "getStartMethod",
    "get_start_method",
    "popen_class",
    "setStartMethod",
    "set_start_method",
]

METHODS = ("fork", "spawn", "forkserver")
_CLASSES = {
    "fork": ("fork", "ForkPopen"),
    "spawn": ("spawn", "SpawnPopen"),
    "forkserver": ("forkserver", "ForkserverPopen"),
}
_default = "forkserver"


def check(method: object) -> str:
    """Return ``method`` if it names a start method.

    Raises:
        ValueError: it does not.
    """
    if method not in METHODS:
        raise ValueError(f"unknown start method {method!r}; choose one of 'fork', 'spawn', 'forkserver'")
    return method  # type: ignore[return-value]


def getStartMethod() -> str:
    """The start method used when a Process is not given ``method=``."""
    return _default


def setStartMethod(method: str) -> None:
    """Set the default start method for Processes created without ``method=``.

    Raises:
        ValueError: unknown method.
    """
    global _default
    _default = check(method)


def popen_class(method: str) -> type:
    """The class that starts children with ``method`` (imported on first use)."""
    module_name, class_name = _CLASSES[method]
    module = importlib.import_module(f"{__package__}.{module_name}")
    return getattr(module, class_name)


get_start_method = getStartMethod
set_start_method = setStartMethod

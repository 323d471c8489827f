"""Past one machine: a real child process on a Dask worker, behind a Process-like handle.

- :mod:`.handle`: :class:`RemoteProcess`, the notebook's handle;
- :mod:`.lifecycle`: its state, exit and waiters, behind one lock;
- :mod:`.relay`: the notebook's side of the connection to the worker;
- :mod:`.wire`: that connection (signed messages, the one-round-trip handshake) and its keys;
- :mod:`.protocol`: the messages on it;
- :mod:`.worker`: the Dask task on the worker;
- :mod:`.cluster`: finding the cluster (one ``distributed.Client`` per scheduler address);
- :mod:`.child`: what the remote child runs first.

Importing this package imports none of them: a remote child imports only
:mod:`.child`, and Dask is imported only when a remote process starts.
"""

from __future__ import annotations

__all__ = ["RemoteProcess", "SchedulerUnreachableError", "get_client"]

_LAZY = {
    "RemoteProcess": "handle",
    "SchedulerUnreachableError": "cluster",
    "get_client": "cluster",
}


def __getattr__(name: str) -> object:
    """Import the handle (and what it needs) on first use: a remote child needs none of it."""
    if name not in _LAZY:
        raise AttributeError(f"module 'processing.remote' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{_LAZY[name]}"), name)

"""What a remote child runs first: open the notebook's payload and call its target.

Kept apart from :mod:`~processing.remote.worker` because every remote child
needs it: the worker's fork server preloads this module (importing it in each
child cost about 0.6 ms of its start), and it needs only ``serialization``,
where the worker's module would also load the wire, the monitor and the rest
of the parent's side into the fork server and every child.
"""

from __future__ import annotations

from .. import serialization

__all__ = ["run_target"]


def run_target(payload: bytes) -> None:
    """Load ``(target, args, kwargs)`` and call the target; a payload that cannot load fails like a target."""
    target, args, kwargs = serialization.loads(payload)
    if target is not None:
        target(*args, **kwargs)

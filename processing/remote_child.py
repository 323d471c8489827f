"""What a remote child runs first: open the notebook's payload and call its target.

Kept apart from ``remote_worker`` because every remote child imports it, on
top of what the fork server preloads: this module needs only ``serialization``,
where ``remote_worker`` would also pull in ``multiprocessing.connection``
(about 9 ms per child).
"""

from __future__ import annotations

from . import serialization

__all__ = ["run_target"]


def run_target(payload: bytes) -> None:
    """Load ``(target, args, kwargs)`` and call the target; a payload that cannot load fails like a target."""
    target, args, kwargs = serialization.loads(payload)
    if target is not None:
        target(*args, **kwargs)

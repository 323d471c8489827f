"""Fresh interpreters: starting one that imports this copy of processing, and the payload it reads first.

Shared by the spawn start method (one interpreter per child) and the fork
server's client (one interpreter per server).
"""

from __future__ import annotations

import contextlib
import os
import sys

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Iterator
    from typing import Any

    from .spec import ChildOptions, LaunchSpec

__all__ = ["PACKAGE_ROOT", "command", "start", "start_payload"]

#: The directory holding this copy of ``processing``: first on a fresh interpreter's path.
PACKAGE_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start(call: str, keep_fds: list[int], *, new_group: bool = False, detached: bool = False) -> int:
    """Start a fresh interpreter running ``call``, with ``keep_fds`` open in it; return its pid.

    ``posix_spawn`` (vfork-fast, whatever the caller's heap) puts it in its own
    group or session before it runs a single instruction. A ``dup2`` of a
    descriptor onto itself clears its close-on-exec flag in the child only.
    """
    placement: dict[str, Any] = {}
    if detached:
        placement["setsid"] = True
    elif new_group:
        placement["setpgroup"] = 0
    return os.posix_spawn(
        sys.executable,
        command(call),
        os.environ,
        file_actions=[(os.POSIX_SPAWN_DUP2, fd, fd) for fd in keep_fds],
        **placement,
    )


def command(call: str) -> list[str]:
    """The argv of a fresh interpreter that imports this copy of processing and runs ``call``."""
    from multiprocessing import util

    code = f"import sys; sys.path.insert(0, {PACKAGE_ROOT!r}); {call}"
    return [sys.executable, *util._args_from_interpreter_flags(), "-c", code]


@contextlib.contextmanager
def start_payload(
    popen: Any, spec: LaunchSpec, options: ChildOptions, environ: dict[str, str] | None = None,
    umask: int | None = None,
) -> Iterator[bytes]:
    """The bytes the child reads first (the process object, its options, the parent's path and cwd),
    for the block that starts the child; the shared memory holding the big buffers is let go of
    when the block ends (the child has its own descriptor of it by then).

    Pickled with ``popen`` as the stdlib's spawning popen, so that the
    standard library's primitives among the target's arguments hand their
    descriptors to the child (see :mod:`.stdlib`), and so does the shared
    memory of the big buffers (see :mod:`processing.buffers`).

    Raises:
        TargetPicklingError: the process cannot be sent; names the part that fails (and the fix,
            for a primitive of the stdlib's 'fork' context).
    """
    from .. import buffers, serialization
    from ..process import cannot_send
    from . import stdlib
    from .spec import Payload

    shared = None
    try:
        with stdlib.spawning(popen):
            try:
                pickled, shared = buffers.pack(spec.process)
            except Exception as error:
                raise cannot_send(spec.process, popen.method, error) from error
            payload = serialization.dumps(Payload(pickled, options, sys.path, os.getcwd(), environ, umask,
                                                  shared))
        yield payload
    finally:
        if shared is not None:
            shared.close()

"""What a fork server and its client say to each other, over a private socketpair.

A request is a fixed-size header. A start request carries five descriptors
with it (SCM_RIGHTS): the status pipe's and the pid pipe's write ends, the
child's control channel, and its fds 1 and 2. A preload request is followed
by the newline-separated names of the modules to import. For each child the
server writes its pid (:data:`PID`) to the pid pipe and, once it has reaped
it, its exit code (:data:`EXIT`) to the status pipe, whose read end is the
child's sentinel in the client.
"""

from __future__ import annotations

import enum
import struct

__all__ = ["EXIT", "FDS_PER_START", "PID", "REQUEST", "Kind", "preload_request", "start_request"]


class Kind(enum.IntEnum):
    START = 0
    PRELOAD = 1


#: kind; then for START: detached, a new process group, the client's process group;
#: for PRELOAD: two unused flags and the length of the module names that follow.
REQUEST = struct.Struct("<B??q")
PID = struct.Struct("<q")
EXIT = struct.Struct("<i")
#: status pipe, pid pipe, control channel, fd 1, fd 2.
FDS_PER_START = 5


def start_request(*, detached: bool, new_group: bool, client_group: int) -> bytes:
    """The header of a start request; children join ``client_group`` unless detached or in a new group."""
    return REQUEST.pack(Kind.START, detached, new_group, client_group)


def preload_request(module_names: list[str]) -> bytes:
    """A whole preload request: the header and the names."""
    names = "\n".join(module_names).encode()
    return REQUEST.pack(Kind.PRELOAD, False, False, len(names)) + names

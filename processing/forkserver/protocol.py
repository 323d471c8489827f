"""What a fork server and its client say to each other, over a private socketpair.

A request is a fixed-size header. A start request carries five descriptors
with it (SCM_RIGHTS): the status pipe's and the pid pipe's write ends, the
child's control channel, and its fds 1 and 2; then the descriptors that the
objects it will unpickle need (the standard library's primitives hand them
over, see ``processing.launch.stdlib``), as many as the header says. A preload request is followed
by the newline-separated names of the modules to import. For each child the
server writes its pid (:data:`PID`) to the pid pipe and, once it has reaped
it, its exit code (:data:`EXIT`) to the status pipe, whose read end is the
child's sentinel in the client.
"""

from __future__ import annotations

import enum
import struct

__all__ = [
    "EXIT",
    "FDS_PER_START",
    "MAX_FDS",
    "MAX_INHERITED",
    "PID",
    "READY",
    "REQUEST",
    "Kind",
    "preload_request",
    "start_request",
]


class Kind(enum.IntEnum):
    START = 0
    PRELOAD = 1


#: kind; then for START: detached, a new process group, the client's process group, the number of
#: descriptors for the child's objects; for PRELOAD: two unused flags, the length of the module names
#: that follow, and 0.
REQUEST = struct.Struct("<B??qH")
PID = struct.Struct("<q")
EXIT = struct.Struct("<i")
#: What the server sends its client once it has imported what it preloads at start: a server that
#: dies before (a preloaded module crashed it) is reported, not taken for a lost child.
READY = b"R"
#: status pipe, pid pipe, control channel, fd 1, fd 2.
FDS_PER_START = 5
MAX_INHERITED = 250
MAX_FDS = FDS_PER_START + MAX_INHERITED


def start_request(*, detached: bool, new_group: bool, client_group: int, inherited: int = 0) -> bytes:
    """The header of a start request; children join ``client_group`` unless detached or in a new group."""
    return REQUEST.pack(Kind.START, detached, new_group, client_group, inherited)


def preload_request(module_names: list[str]) -> bytes:
    """A whole preload request: the header and the names."""
    names = "\n".join(module_names).encode()
    return REQUEST.pack(Kind.PRELOAD, False, False, len(names), 0) + names

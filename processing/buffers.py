"""Big buffers travel to a fresh child through shared memory, not through the pickle stream.

A 200 MiB array among a child's arguments would otherwise be copied into the
pickle (a second copy in the parent's memory), written through the control
channel and copied again out of it. With pickle protocol 5, objects that
support out-of-band data (numpy arrays, pandas' blocks, ``bytearray``,
``pickle.PickleBuffer``, Arrow buffers) hand their memory to a callback instead:
:func:`processing.serialization.split` keeps the big ones out of the pickle,
and :class:`SharedBuffers` writes them once into an anonymous shared-memory
file (``memfd_create``) whose descriptor the child receives as the stdlib's
primitives receive theirs. The child maps it copy-on-write, so its arrays are
backed by that mapping, and one that writes to its copy changes nothing in the
parent. The file has no name: nothing is ever left in ``/dev/shm``, whatever
way the parent or the child ends; its memory goes with the last descriptor or
mapping. Where ``memfd_create`` does not exist (macOS), buffers stay in the
pickle, as before.

The same file carries big buffers the other way, up a child's control channel
(:func:`processing.sendToParent`, and so a cell's ``--pull``): the child writes
them into a file of its own and sends its descriptor beside the frame of an
:class:`Attached` message; the parent maps it as the child would, so a pulled
array is never pickled, read into a bytes object and copied again.
"""

from __future__ import annotations

import mmap
import os
import sys
from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    import pickle
    from typing import Any

__all__ = ["THRESHOLD", "Attached", "SharedBuffers", "available", "map_views", "pack"]

#: A buffer at least this big goes through shared memory; smaller ones stay in the pickle.
THRESHOLD = 1 << 20


#: Before 3.13 a mapping keeps a duplicate of its file's descriptor for as long as it lives.
_UNTRACKED = {"trackfd": False} if sys.version_info >= (3, 13) else {}


def available() -> bool:
    """Whether this system has anonymous shared-memory files (Linux)."""
    return hasattr(os, "memfd_create")


def pack(obj: object) -> tuple[bytes, SharedBuffers | None]:
    """``obj`` pickled, with its big buffers left out and written into shared memory, if it has any.

    The shared memory is None if there were none, if this system has no
    anonymous memory files, or if none could be made (the descriptor limit, no
    memory): then the pickle holds everything, as a plain one would. Load with
    ``loads(pickled, buffers=...)`` given the views the receiver maps.

    Raises:
        Exception: whatever pickling ``obj`` raises (see :func:`processing.serialization.dumps`).
    """
    from . import serialization

    if available():
        pickled, big = serialization.split(obj, THRESHOLD)
        if not big:
            return pickled, None
        try:
            return pickled, SharedBuffers(big)
        except OSError:
            pass
    return serialization.dumps(obj), None


class SharedBuffers:
    """The out-of-band buffers of one pickle, written into one anonymous shared-memory file.

    Pickled while a child is being started (under the stdlib's spawning popen),
    it hands the child the file's descriptor; the child gets the buffers back as
    memoryviews of a private mapping, in order, for ``pickle.loads(...,
    buffers=...)``. The parent closes its descriptor with :meth:`close` once the
    child has its own.
    """

    def __init__(self, buffers: list[pickle.PickleBuffer]) -> None:
        self.layout: list[tuple[int, int]] = []  # (offset, length) of each buffer, in order
        self._fd: int | None = os.memfd_create("processing-buffers", os.MFD_CLOEXEC)
        try:
            offset = 0
            for buffer in buffers:
                with buffer.raw() as view:
                    self.layout.append((offset, view.nbytes))
                    _write_all(self._fd, view)
                    offset += view.nbytes
            self.size = offset
        except BaseException:
            self.close()
            raise

    def fileno(self) -> int:
        """The file's descriptor, for a socket to pass (see :class:`Attached`)."""
        if self._fd is None:
            raise ValueError("these shared buffers were closed")
        return self._fd

    def __reduce__(self) -> tuple[Any, ...]:
        from multiprocessing.reduction import DupFd

        if self._fd is None:
            raise ValueError("these shared buffers were closed: start the child again")
        return _attach, (DupFd(self._fd), self.layout, self.size)

    def close(self) -> None:
        """Let go of the parent's descriptor (a child that has its own keeps the memory alive)."""
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)


def _write_all(fd: int, view: memoryview) -> None:
    view = view.cast("B")
    while view:
        view = view[os.write(fd, view):]


class Attached(namedtuple("Attached", "pickled layout size")):
    """A message whose big buffers came beside its frame, as one shared-memory file's descriptor.

    ``pickled`` loads with the views :func:`map_views` makes of that file from
    ``layout`` and ``size`` (the :class:`SharedBuffers` the sender wrote).
    """

    __slots__ = ()


def _attach(dup_fd: Any, layout: list[tuple[int, int]], size: int) -> list[memoryview]:
    """In the child: the buffers' views of the file the parent wrote."""
    return map_views(dup_fd.detach(), layout, size)


def map_views(fd: int, layout: list[tuple[int, int]], size: int) -> list[memoryview]:
    """Map the file ``fd`` privately (copy-on-write, so a write stays in this process) and return the
    buffers' views, in order; ``fd`` is closed either way (the mapping keeps the memory alive).

    Raises:
        OSError: the file could not be mapped (it is closed all the same).
    """
    try:
        if not size:
            return [memoryview(b"") for _ in layout]
        mapping = mmap.mmap(fd, size, flags=mmap.MAP_PRIVATE, prot=mmap.PROT_READ | mmap.PROT_WRITE,
                            **_UNTRACKED)
    finally:
        os.close(fd)
    whole = memoryview(mapping)
    return [whole[offset:offset + length] for offset, length in layout]

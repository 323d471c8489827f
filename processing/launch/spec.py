"""What crosses the line between a process object and the machinery that starts it.

A start method reads nothing of a :class:`~processing.Process` but its
:class:`LaunchSpec`; the child's bootstrap reads nothing of its creator but
the process object and its :class:`ChildOptions`. (Plain named tuples:
``typing`` would cost every spawned child its import.)
"""

from __future__ import annotations

from collections import namedtuple

__all__ = ["ChildOptions", "LaunchSpec", "Payload"]


class LaunchSpec(namedtuple("LaunchSpec", "process name authkey capture new_process_group detached")):
    """What a start method needs to start a child for a process object.

    - ``process``: the object the child runs (``run()``), sent by value under spawn and forkserver;
    - ``name``: its name, for error messages;
    - ``authkey``: the key that signs the child's messages on its control channel;
    - ``capture``: whether the child's fds 1 and 2 are pipes that the creator reads;
    - ``new_process_group``: a process group of the child's own (a signal to the creator's group
      does not reach it);
    - ``detached``: a session of its own and no parent-death guard: it may outlive its creator.
    """

    __slots__ = ()


class ChildOptions(
    namedtuple(
        "ChildOptions",
        "challenge capture new_process_group detached guard alive_fd parent_pid "
        "method parent_name mp_authkey tracker_fd",
    )
):
    """What the child's bootstrap needs besides the process object; sent with it.

    - ``challenge``: the creator's fresh challenge, which every message the child sends is signed over;
    - ``capture``, ``new_process_group``, ``detached``: as in :class:`LaunchSpec`;
    - ``guard``: how the child learns that its creator died (a :class:`~processing.launch.guard.Guard`,
      or None: it does not, or someone else watches);
    - ``alive_fd``: the read end of the creator's alive pipe (its EOF means the creator is gone): the
      ``Guard.EOF`` guard watches it, and it is ``multiprocessing.parent_process()``'s sentinel; a
      number under fork, a ``DupFd`` of :mod:`~processing.launch.stdlib` otherwise;
    - ``parent_pid``, ``parent_name``: the creator's, for the guard and ``multiprocessing.parent_process()``;
    - ``method``: the start method; the child's default for its own children, as in the stdlib;
    - ``mp_authkey``: the creator's ``multiprocessing`` key (None under fork, which inherits it);
    - ``tracker_fd``: a ``DupFd`` of the creator's resource tracker, if it runs one (None otherwise).
    """

    __slots__ = ()


class Payload(namedtuple("Payload", "process options sys_path cwd environ umask buffers")):
    """What a fresh child (spawned, or forked by the fork server) reads first from its control channel.

    - ``process``: the pickled process object (pickled on its own, so that loading it can fail
      after the rest was read, and be reported);
    - ``options``: its :class:`ChildOptions`;
    - ``sys_path``, ``cwd``: the creator's, at ``start()``;
    - ``environ``, ``umask``: the creator's at ``start()``, for a fork server's child, which would
      otherwise have the server's (None: the same as the server's, or a spawned child, which gets
      them from ``posix_spawn``);
    - ``buffers``: the process object's big buffers, left out of its pickle: a
      :class:`~processing.buffers.SharedBuffers` that the child receives as the list of their views
      (None: all is in the pickle).
    """

    __slots__ = ()

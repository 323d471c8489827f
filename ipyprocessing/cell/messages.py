"""What a ``%%process`` child and its notebook say to each other besides the child's stdout and stderr.

They travel over the core's authenticated channel (``sendToParent`` up,
``sendToChild`` down), and through a Dask worker for a ``--cluster`` cell.
Up: what the child's IPython shell shows (what Python code prints, displays,
the last expression's result, tracebacks, ``clear_output``), its widgets' comm
messages, ``input()`` requests, and the ``--pull`` values at the end. (What is
written to the descriptors 1 and 2 directly, by C code or a subprocess that
inherited them, comes up the capture pipes.) Down: the front end's comm
messages for the child's widgets, and the answers to ``input()``. Plain named
tuples: this module is imported in every child, where ``typing`` would cost
its import.
"""

from __future__ import annotations

import re
from collections import namedtuple

__all__ = [
    "SHELL_MESSAGES",
    "plain_traceback",
    "Clear",
    "Stream",
    "CommClose",
    "CommMsg",
    "CommOpen",
    "Display",
    "Error",
    "Failed",
    "Imported",
    "InputReply",
    "InputRequest",
    "Pulled",
    "Result",
]


class Stream(namedtuple("Stream", "parts")):
    """What the cell printed since the last message: ``(stream name, text)`` pairs, in the order written."""

    __slots__ = ()


class Display(namedtuple("Display", "data metadata transient update")):
    """``display()`` / ``publish_display_data`` in the child; ``update`` for ``update_display``."""

    __slots__ = ()


class Result(namedtuple("Result", "data metadata")):
    """The last expression's value, formatted (``Out[N]``)."""

    __slots__ = ()


class Clear(namedtuple("Clear", "wait")):
    """``clear_output(wait=...)``."""

    __slots__ = ()


class Error(namedtuple("Error", "ename evalue traceback")):
    """An exception the cell raised, as IPython formats it (``traceback``: its lines, with colours)."""

    __slots__ = ()

    def plain(self) -> str:
        """The traceback as plain text, without its colours."""
        return plain_traceback(self.traceback)


_COLOURS = re.compile(r"\x1b\[[0-9;]*m")


def plain_traceback(lines: list[str]) -> str:
    """Traceback lines as IPython formats them, joined, without their terminal colours."""
    return _COLOURS.sub("", "\n".join(lines))


class CommOpen(namedtuple("CommOpen", "comm_id target_name target_module data metadata buffers")):
    """A comm (a widget's model) opened in the child."""

    __slots__ = ()


class CommMsg(namedtuple("CommMsg", "comm_id data metadata buffers")):
    """A comm message: from the child's widget up, or from the front end down."""

    __slots__ = ()


class CommClose(namedtuple("CommClose", "comm_id data metadata buffers")):
    """A comm closed, on either side."""

    __slots__ = ()


class InputRequest(namedtuple("InputRequest", "prompt password")):
    """``input()`` (or ``getpass()`` with ``password``) in the child: answer with an :class:`InputReply`."""

    __slots__ = ()


class InputReply(namedtuple("InputReply", "value error")):
    """The notebook's answer to an :class:`InputRequest`: the value typed, or why there is none."""

    __slots__ = ()


class Failed(namedtuple("Failed", "reason")):
    """Why the child's harness ended the cell with exit code 1 (``cannot pull 'x': ...``), for the row."""

    __slots__ = ()


class Imported(namedtuple("Imported", "modules")):
    """The top-level packages the child imported to rebuild the notebook's names (numpy, pandas ...),
    cleanly: the fork server may preload them."""

    __slots__ = ()


class Pulled(namedtuple("Pulled", "values")):
    """The ``--pull`` values, sent as the cell ends (a dict of name to value)."""

    __slots__ = ()


#: What the child's shell sends for the cell's view to show or relay.
SHELL_MESSAGES = (Display, Result, Clear, Error, CommOpen, CommMsg, CommClose, InputRequest)

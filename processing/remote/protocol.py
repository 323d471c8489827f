"""The messages a notebook and a worker exchange about one remote child, once the wire is up.

Notebook to worker: :class:`Start` (first, once), then :class:`ToChild` and
:class:`Stop` when asked.
Worker to notebook: :class:`Running` first, then :class:`Output` and
:class:`Message` as they come, and last :class:`Exit` (or :class:`Failed` if
the child could not be started). Each travels pickled in one signed frame
(:class:`~processing.remote.wire.Wire`).
"""

from __future__ import annotations

from collections import namedtuple

__all__ = ["ChildSettings", "Exit", "Failed", "Message", "Output", "Running", "Start", "Stop", "ToChild"]


class ChildSettings(namedtuple("ChildSettings", "name method capture preload")):
    """How the worker starts the child: its name, start method (None: the worker's default), whether its
    output is captured and streamed, and the modules its fork server should keep imported."""

    __slots__ = ()


class Start(namedtuple("Start", "payload settings")):
    """The pickled ``(target, args, kwargs)`` and the :class:`ChildSettings`."""

    __slots__ = ()


class Stop(namedtuple("Stop", "kill tree")):
    """Signal the child: SIGTERM, or SIGKILL if ``kill``; its whole process group too if ``tree``."""

    __slots__ = ()


class ToChild(namedtuple("ToChild", "data")):
    """An object for the child (``sendToChild``), pickled: the worker relays it without loading it."""

    __slots__ = ()


class Running(namedtuple("Running", "pid host")):
    """The child runs, with this pid, on the worker at ``host``."""

    __slots__ = ()


class Output(namedtuple("Output", "stream data")):
    """A chunk the child wrote to ``stream`` (``"stdout"`` or ``"stderr"``)."""

    __slots__ = ()


class Message(namedtuple("Message", "data")):
    """An object the child sent with ``sendToParent``, pickled (so that the worker never loads it)."""

    __slots__ = ()


class Exit(namedtuple("Exit", "exitcode")):
    """The child exited (the last message)."""

    __slots__ = ()


class Failed(namedtuple("Failed", "host traceback")):
    """The worker at ``host`` could not start the child; ``traceback`` says why (the last message)."""

    __slots__ = ()

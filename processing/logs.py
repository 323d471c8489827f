"""Errors that no caller can catch, reported through one logger: ``logging.getLogger("processing")``.

Background threads (the monitor, a remote handle's relay, the notebook's
display threads) must survive a subscriber's or a view's exception, and must
not hide it either. They report it here. With logging left unconfigured,
Python's last-resort handler prints it to stderr, as before; an application
can route, filter or silence it like any other library's log.

``logging`` is imported on the first report, not at ``import processing``:
most processes never report anything.
"""

from __future__ import annotations

__all__ = ["LOGGER_NAME", "report", "report_exception"]

LOGGER_NAME = "processing"


def report(message: str, *args: object) -> None:
    """Log ``message % args`` as an error, without a traceback."""
    import logging

    logging.getLogger(LOGGER_NAME).error(message, *args)


def report_exception(message: str, *args: object) -> None:
    """Log ``message % args`` as an error with the traceback of the exception being handled."""
    import logging

    logging.getLogger(LOGGER_NAME).error(message, *args, exc_info=True)

"""
The gateway's own log lines handed to Twisted's log publisher directly: a speed shortcut.

What it buys: `twisted.logger.Logger.emit` checks, for every event, that its
level is one of `LogLevel`'s constants by listing and sorting them
(``LogLevel.iterconstants()``), then fills in the same six keys this module
fills in.  The reference module logs every relayed message at Major, shown at
the default level, so that check ran once per message: about a third of what
a relay line cost (``bench/bench_user.py --cprofile``).  `emit` builds the
same event (``log_logger``, ``log_level``, ``log_namespace``, ``log_source``,
``log_format``, ``log_time``) for a level the caller gives as a `LogLevel`
constant, and calls the logger's observer (the global publisher, or a test's
``capturedLogs``) as `Logger.emit` does; every observer sees the event it
would have seen.
"""

from __future__ import annotations

from time import time
from typing import Any

from twisted.logger import Logger, LogLevel

__all__ = ["emit"]


def emit(logger: Logger, level: LogLevel, fmt: str, event: dict[str, Any]) -> None:
    """Publish ``event`` (the line's fields, with ``fmt`` its format) through ``logger``
    at ``level``, as ``logger.emit(level, fmt, **event)`` does."""
    event["log_logger"] = logger
    event["log_level"] = level
    event["log_namespace"] = logger.namespace
    event["log_source"] = logger.source
    event["log_format"] = fmt
    event["log_time"] = time()
    logger.observer(event)

"""
Logging at the reference module's levels.

``log_level`` is one of none, major (relay reports), problems (plus errors),
low-level (plus protocol events) and all (plus every PDU as a readable trace).
Every line is marked ``SMPP`` and names the server it concerns.
"""

from __future__ import annotations

from typing import Any
from weakref import WeakSet

from twisted.logger import Logger, LogLevel

from smppgw.smpp.logevent import emit

LOG_LEVELS = ("none", "major", "problems", "low-level", "all")

_RANK = {name: rank for rank, name in enumerate(LOG_LEVELS)}

_logger = Logger(namespace="smppgw")

#: Every SmppLog of the process, for a live change of the log level.
_every: WeakSet[SmppLog] = WeakSet()


def set_level(level: str) -> None:
    """Set the level of every SmppLog at once: ``[module] log_level`` changed live."""
    for log in list(_every):
        log.set_level(level)


class SmppLog:
    """A logger for one server (or the module, with server ``"*"``) filtered by ``log_level``."""

    def __init__(self, server: str, level: str = "problems") -> None:
        if level not in _RANK:
            raise ValueError(f"unknown log level {level!r}")
        # The empty-named server is written as "" so that log lines stay readable.
        self.server = server or '""'
        self.set_level(level)
        _every.add(self)

    def set_level(self, level: str) -> None:
        if level not in _RANK:
            raise ValueError(f"unknown log level {level!r}")
        self.level = level
        self._rank = _RANK[level]
        #: Whether relay reports and protocol events are shown: a caller on a
        #: per-message path checks these before building a line's values.
        self.shows_major = self._rank >= 1
        self.shows_low = self._rank >= 3

    def enabled(self, level: str) -> bool:
        return self._rank >= _RANK[level]

    def _emit(self, level: LogLevel, fmt: str, kw: dict[str, Any]) -> None:
        kw.setdefault("server", self.server)
        fmt = "SMPP [{server}] " + fmt
        try:
            # str.format is several times faster than twisted.logger's own
            # formatting; smppgw.logfile writes this text as it is.
            text: str | None = fmt.format(**kw)
        except (KeyError, IndexError, ValueError, AttributeError):
            text = None  # left to twisted.logger, which says what is wrong with it
        kw["tag"] = "SMPP"
        kw["smpp_text"] = text
        emit(_logger, level, fmt, kw)

    def major(self, fmt: str, **kw: Any) -> None:
        """A relay report: a message sent, received or rejected; a link bound or lost."""
        if self._rank >= 1:
            self._emit(LogLevel.info, fmt, kw)

    def problem(self, fmt: str, **kw: Any) -> None:
        """A non-fatal error."""
        if self._rank >= 2:
            self._emit(LogLevel.warn, fmt, kw)

    def low(self, fmt: str, **kw: Any) -> None:
        """A protocol event: a bind, an enquire_link, a timeout."""
        if self._rank >= 3:
            self._emit(LogLevel.info, fmt, kw)

    def trace(self, direction: str, pdu: Any) -> None:
        """Every PDU in and out, only at ``all``."""
        if self._rank >= 4:
            self._emit(LogLevel.debug, "{direction} {pdu!r}", {"direction": direction, "pdu": pdu})

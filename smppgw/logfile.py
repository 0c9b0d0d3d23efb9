"""
The gateway's log file: every line kept, written in batches at most 10 ms apart.

twistd's own observer formats each event with ``string.Formatter`` and
writes and flushes it at once: about 60 µs per relay line, a fifth of what
the gateway spends on a message, since the reference module logs every relay
(``major``, shown at the default level ``problems``).  This observer keeps
twistd's line format (``{time} [{system}] {text}``) but

- takes the text of the gateway's own ``SMPP`` lines as `SmppLog` already
  formatted it with ``str.format`` (the event still carries its format and
  fields, for any other observer);
- formats the time stamp once per second, not once per line;
- collects the lines and writes them in one ``write`` and one ``flush`` at
  most `FLUSH_DELAY` (10 ms) after the first of them; an error or critical
  event, the reactor's shutdown and the interpreter's exit flush at once, and
  while the reactor is not running every line is written at once.  Not at
  the end of the very turn: a call scheduled for "now" makes the reactor's
  next poll return at once, and under load those extra turns cut every
  burst of reads short (at the default log level, that cost about a fifth
  of the throughput against node-smpp: bench/bench_user.py).

No line is ever dropped: what waits is at most 10 ms worth of lines.
SIGUSR1 rotates the file, as under twistd's own observer (`rotate_on_usr1`);
SIGHUP reopens it (`reopen_log_files`, for logrotate).
Together that is about 10 µs per relay line.  The one exception is
Twisted's own chatter about listening ports ("... starting on ...",
"(UNIX Port ... Closed)"), written whatever the log level: the gateway says
what it listens on in an SMPP line of its own.

`install` puts it in place of twistd's default observer (see `smppgw.tap`),
with twistd's own choice of file: standard output under ``--nodaemon``
without ``--logfile``, else the ``--logfile`` (default ``twistd.log``).  Where
twistd was told ``--logger`` or ``--syslog``, twistd's choice stands.
"""

from __future__ import annotations

import atexit
import re
import signal
import sys
import threading
from typing import IO, Any

from twisted.logger import ILogObserver, LogLevel, formatEventAsClassicLogText, formatTime
from twisted.python import logfile
from zope.interface import implementer

_URGENT = (LogLevel.error, LogLevel.critical)
#: Seconds a line may wait before the lines collected are written together.
FLUSH_DELAY = 0.01
#: Twisted's listening ports log these through the legacy log, unconditionally.
_PORT_CHATTER = re.compile(r"\S+ starting on .*|\((UNIX|TCP|TCP6|SSL) Port \S+ Closed\)")


class _SecondStamps:
    """twistd's time stamp of a time, formatted once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._text = "-"

    def __call__(self, when: float | None) -> str:
        if when is None:
            return "-"
        second = int(when)
        if second != self._second:
            self._second = second
            self._text = formatTime(second)
        return self._text


@implementer(ILogObserver)
class TurnBufferedLogObserver:
    """Writes events as twistd's text lines to `out`, together, at most FLUSH_DELAY after the first."""

    def __init__(self, out: IO[str], clock: Any, errors: IO[str] | None = None) -> None:
        self._out = out
        self._errors = errors
        self._clock = clock
        self._lines: list[str] = []
        self._flush_call: Any = None
        self._stamp = _SecondStamps()
        # twistd's "[namespace#level]" of the gateway's lines, made once per pair.
        self._systems: dict[tuple[str, Any], str] = {}

    def __call__(self, event: dict[str, Any]) -> None:
        text = event.get("smpp_text")
        if text is not None:
            system = event.get("log_system")
            if system is None:
                level = event.get("log_level")
                key = (event.get("log_namespace", "-"), level)
                system = self._systems.get(key)
                if system is None:
                    system = self._systems[key] = f"{key[0]}#{level.name if level else '-'}"
            line: str | None = f"{self._stamp(event.get('log_time'))} [{system}] {text}\n"
        elif (event.get("log_namespace") == "log_legacy"
              and _PORT_CHATTER.fullmatch(event.get("log_text", ""))):
            return
        else:
            line = formatEventAsClassicLogText(event, formatTime=self._stamp)
        if not line:
            return
        self._lines.append(line)
        if (event.get("log_level") in _URGENT or event.get("log_failure") is not None
                or not getattr(self._clock, "running", True)):
            # Before the reactor runs and after it stopped (twistd's last
            # lines, then perhaps a kill by the signal that stopped it) no
            # turn will end: write at once.
            self.flush()
        elif self._flush_call is None:
            self._flush_call = self._clock.callLater(FLUSH_DELAY, self.flush)

    def flush(self) -> None:
        """Write what waits, in order, and flush the file."""
        if self._flush_call is not None:
            if self._flush_call.active():
                self._flush_call.cancel()
            self._flush_call = None
        if not self._lines:
            return
        lines, self._lines = self._lines, []
        try:
            self._out.write("".join(lines))
            self._out.flush()
        except (OSError, ValueError) as error:
            # A full disk or a closed file must not take the gateway down;
            # say so where an operator may still see it.
            print(f"smppgw: cannot write the log: {error}", file=self._errors or sys.__stderr__)

    def reopen(self) -> str | None:
        """Reopen the log file (after logrotate moved it) and return its path; None when the log is not a file."""
        self.flush()
        if isinstance(self._out, logfile.BaseLogFile):
            self._out.reopen()
            return str(self._out.path)
        return None


    def rotate(self) -> str | None:
        """Rotate the log file as twistd does on SIGUSR1 (FILE becomes FILE.1, the older ones
        move up one); its path, or None when the log is not a file."""
        self.flush()
        rotate = getattr(self._out, "rotate", None)
        if isinstance(self._out, logfile.BaseLogFile) and rotate is not None:
            rotate()
            return str(self._out.path)
        return None


def observer_for(twistd_options: Any, clock: Any) -> TurnBufferedLogObserver | None:
    """The observer for twistd's logging options, or None where twistd's own choice must stand."""
    if twistd_options is None:
        return None
    get = getattr(twistd_options, "get", None)
    if get is None:
        return None
    if get("logger") or get("syslog"):
        return None
    name = get("logfile") or ""
    nodaemon = bool(get("nodaemon"))
    out: IO[str]
    if name == "-" or (nodaemon and not name):
        if not nodaemon:
            return None  # twistd refuses a daemon logging to stdout, with its own message
        # Captured now: twistd replaces sys.stdout with a logging file once logging begins.
        out = sys.stdout
    else:
        # Private, as the store is: at log_level "all" it holds message texts.
        out = logfile.LogFile.fromFullPath(name or "twistd.log", defaultMode=0o600)
    return TurnBufferedLogObserver(out, clock)


#: The observers `install` gave twistd, for `reopen_log_files`.
_installed: list[TurnBufferedLogObserver] = []


def install(application: Any, observer: TurnBufferedLogObserver, reactor: Any) -> None:
    """Make `observer` the log observer twistd starts `application` with, flushed on the way out."""
    if application.getComponent(ILogObserver, None) is not None:
        return  # the application chose its own
    application.setComponent(ILogObserver, observer)
    _installed.append(observer)
    reactor.addSystemEventTrigger("after", "shutdown", observer.flush)
    atexit.register(observer.flush)
    rotate_on_usr1(observer, reactor)


def rotate_on_usr1(observer: TurnBufferedLogObserver, reactor: Any) -> None:
    """Have SIGUSR1 rotate `observer`'s file, on the reactor's thread.

    twistd sets that handler only for the observer it makes itself; without
    one, SIGUSR1 (which a twistd user may well send) would kill the gateway
    on the spot.  A handler already set (not the default) is left alone, and
    only the main thread may set one.
    """
    number = getattr(signal, "SIGUSR1", None)
    if number is None or threading.current_thread() is not threading.main_thread():
        return
    if signal.getsignal(number) not in (signal.SIG_DFL, None):
        return
    signal.signal(number, lambda signum, frame: reactor.callFromThread(observer.rotate))


def reopen_log_files() -> list[str]:
    """Reopen the log files of the observers given to twistd (SIGHUP); their paths."""
    return [path for path in (observer.reopen() for observer in _installed) if path is not None]

"""Tests for the gateway's log file: twistd's line format, written once per reactor turn, nothing dropped."""

from __future__ import annotations

import io
import os
import signal
import stat
from typing import Any

from twisted.application.service import Application
from twisted.internet.task import Clock
from twisted.logger import (
    ILogObserver,
    Logger,
    LogLevel,
    LogPublisher,
    formatEvent,
    textFileLogObserver,
)
from twisted.python import logfile
from twisted.trial.unittest import SynchronousTestCase

from smppgw.logfile import FLUSH_DELAY, TurnBufferedLogObserver, observer_for, rotate_on_usr1
from smppgw.smpp import log as smpplog
from smppgw.smpp.log import SmppLog
from smppgw.tap import Options, makeService


class CountingFile(io.StringIO):
    """A text file that counts its writes and flushes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0
        self.flushes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)

    def flush(self) -> None:
        self.flushes += 1


class RunningClock(Clock):
    running = True


def events_of(log_calls: Any) -> list[dict[str, Any]]:
    """The events that `log_calls(smpp_log)` emits through an SmppLog at level ``all``."""
    events: list[dict[str, Any]] = []
    original = smpplog._logger
    smpplog._logger = Logger(namespace="smppgw", observer=LogPublisher(events.append))
    try:
        log_calls(SmppLog("smsc1", "all"))
    finally:
        smpplog._logger = original
    return events


def sample(log: SmppLog) -> None:
    log.major("{request_id} relayed in {parts} part(s)", request_id="r1", parts=2)
    log.problem("cannot store {what!r}", what="x")
    log.trace("out", {"command": "submit_sm"})


class ObserverTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.out = CountingFile()
        self.clock = RunningClock()
        self.observer = TurnBufferedLogObserver(self.out, self.clock)

    def test_lines_match_twistd_format(self) -> None:
        """Every line, the gateway's and Twisted's own, reads exactly as twistd's observer writes it."""
        events = events_of(sample)
        events.append({"log_format": "Main loop {what}.", "what": "terminated", "log_time": 1e9,
                       "log_namespace": "twisted.internet.base", "log_level": LogLevel.info})
        events.append({"log_format": "two\nlines", "log_time": 1e9 + 0.5, "log_system": "-"})
        twistd = io.StringIO()
        reference = textFileLogObserver(twistd)
        for event in events:
            reference(event)
            self.observer(event)
        self.clock.advance(FLUSH_DELAY)
        self.assertEqual(self.out.getvalue(), twistd.getvalue())
        self.assertIn("SMPP [smsc1] r1 relayed in 2 part(s)", self.out.getvalue())

    def test_one_write_per_flush_delay(self) -> None:
        """The lines of the turns within FLUSH_DELAY reach the file in one write and one flush,
        FLUSH_DELAY after the first: never a call for "now", which would make the reactor
        poll again at once."""
        events = events_of(lambda log: [log.major("m{n}", n=n) for n in range(50)])
        for event in events[:30]:
            self.observer(event)
        self.assertEqual([call.getTime() for call in self.clock.getDelayedCalls()], [FLUSH_DELAY])
        self.clock.advance(0)
        self.clock.advance(FLUSH_DELAY / 2)
        for event in events[30:]:
            self.observer(event)
        self.assertEqual((self.out.writes, self.out.getvalue()), (0, ""))
        self.clock.advance(FLUSH_DELAY / 2)
        self.assertEqual((self.out.writes, self.out.flushes), (1, 1))
        lines = self.out.getvalue().splitlines()
        self.assertEqual([line.split("] ", 1)[1] for line in lines],
                         [f"SMPP [smsc1] m{n}" for n in range(50)])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_error_flushes_at_once(self) -> None:
        """An error event is written at once, after the lines that came before it."""
        self.observer(events_of(lambda log: log.major("before"))[0])
        self.observer({"log_format": "it broke", "log_level": LogLevel.error, "log_time": 0.0})
        self.assertEqual(self.out.writes, 1)
        self.assertEqual([line.split("] ", 1)[1] for line in self.out.getvalue().splitlines()],
                         ["SMPP [smsc1] before", "it broke"])
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_port_chatter_left_out(self) -> None:
        """Twisted's unconditional lines about listening ports are left out; other legacy lines are kept."""
        def legacy(text: str) -> dict[str, Any]:
            return {"log_format": "{log_text}", "log_text": text, "log_namespace": "log_legacy",
                    "log_system": "-", "log_time": 0.0, "log_level": LogLevel.info}

        for text in ("GatewayAMPFactory starting on '/var/amp.sock'", "(UNIX Port /var/amp.sock Closed)",
                     "SMSCSimulator starting on 2775", "(TCP Port 2775 Closed)", "a library's own line"):
            self.observer(legacy(text))
        self.clock.advance(FLUSH_DELAY)
        self.assertEqual([line.split("] ", 1)[1] for line in self.out.getvalue().splitlines()],
                         ["a library's own line"])

    def test_written_at_once_when_reactor_is_not_running(self) -> None:
        """After the reactor stopped (twistd's last lines) each line is written at once."""
        self.clock.running = False
        self.observer({"log_format": "Server Shut Down.", "log_time": 0.0})
        self.assertIn("Server Shut Down.", self.out.getvalue())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_explicit_flush(self) -> None:
        """flush() writes what waits and cancels the end-of-turn call."""
        self.observer(events_of(lambda log: log.major("waiting"))[0])
        self.observer.flush()
        self.assertIn("SMPP [smsc1] waiting", self.out.getvalue())
        self.assertEqual(self.clock.getDelayedCalls(), [])

    def test_unwritable_file_does_not_raise(self) -> None:
        """A log file that cannot be written does not take the gateway down."""
        errors = io.StringIO()
        observer = TurnBufferedLogObserver(self.out, self.clock, errors)
        self.out.close()
        observer(events_of(lambda log: log.major("lost"))[0])
        self.clock.advance(FLUSH_DELAY)  # must not raise
        self.assertIn("cannot write the log", errors.getvalue())

    def test_reopen_after_rotation(self) -> None:
        """After logrotate moves the file, reopen() sends new lines to a new file at the same path."""
        path = os.path.abspath(self.mktemp())
        out = logfile.LogFile.fromFullPath(path)
        self.addCleanup(out.close)
        observer = TurnBufferedLogObserver(out, self.clock)
        observer(events_of(lambda log: log.major("old"))[0])
        observer.flush()
        os.rename(path, path + ".1")
        observer(events_of(lambda log: log.major("new"))[0])
        self.assertEqual(observer.reopen(), path)
        observer(events_of(lambda log: log.major("newer"))[0])
        observer.flush()
        with open(path + ".1") as f:
            self.assertEqual([line.split("] ", 1)[1] for line in f.read().splitlines()],
                             ["SMPP [smsc1] old", "SMPP [smsc1] new"])
        with open(path) as f:
            self.assertEqual([line.split("] ", 1)[1] for line in f.read().splitlines()],
                             ["SMPP [smsc1] newer"])
        self.assertIsNone(self.observer.reopen())  # standard output cannot be reopened


    def test_usr1_rotates(self) -> None:
        """SIGUSR1 rotates the log file as twistd's own observer does, rather than kill the gateway."""
        path = os.path.abspath(self.mktemp())
        out = logfile.LogFile.fromFullPath(path)
        self.addCleanup(out.close)
        observer = TurnBufferedLogObserver(out, self.clock)
        previous = signal.signal(signal.SIGUSR1, signal.SIG_DFL)
        self.addCleanup(signal.signal, signal.SIGUSR1, previous)
        turns: list[Any] = []

        class Reactor:
            def callFromThread(self, f: Any, *args: Any) -> None:
                turns.append(f)

        rotate_on_usr1(observer, Reactor())
        observer(events_of(lambda log: log.major("before"))[0])
        os.kill(os.getpid(), signal.SIGUSR1)
        [rotate] = turns
        self.assertEqual(rotate(), path)
        observer(events_of(lambda log: log.major("after"))[0])
        observer.flush()
        with open(path + ".1") as f:
            self.assertIn("SMPP [smsc1] before", f.read())
        with open(path) as f:
            self.assertEqual([line.split("] ", 1)[1] for line in f.read().splitlines()],
                             ["SMPP [smsc1] after"])

    def test_usr1_handler_kept(self) -> None:
        """A SIGUSR1 handler set before is left in place."""
        def mine(signum: int, frame: Any) -> None:
            pass

        previous = signal.signal(signal.SIGUSR1, mine)
        self.addCleanup(signal.signal, signal.SIGUSR1, previous)
        rotate_on_usr1(self.observer, None)
        self.assertIs(signal.getsignal(signal.SIGUSR1), mine)


class SmppTextTests(SynchronousTestCase):
    def test_text_is_twisted_formatting(self) -> None:
        """The text SmppLog formats itself is what twisted.logger would make of the same event."""
        for event in events_of(sample):
            self.assertEqual(event["smpp_text"], formatEvent(event))

    def test_bad_format_left_to_twisted(self) -> None:
        """A line whose fields do not fit its format carries no text of its own."""
        events = events_of(lambda log: log.major("{missing} field"))
        self.assertIsNone(events[0]["smpp_text"])
        self.assertIn("Unable to format event", formatEvent(events[0]))


class TwistdOptionsTests(SynchronousTestCase):
    def test_choice_of_file(self) -> None:
        """The observer writes where twistd would (stdout under --nodaemon, else the --logfile, mode 0600)."""
        clock = RunningClock()
        self.assertIsNone(observer_for(None, clock))
        self.assertIsNone(observer_for({"syslog": True, "nodaemon": True}, clock))
        self.assertIsNone(observer_for({"logger": "my.observer", "nodaemon": True}, clock))
        self.assertIsNone(observer_for({"logfile": "-", "nodaemon": False}, clock))
        self.assertIsNotNone(observer_for({"logfile": "", "nodaemon": True}, clock))
        path = os.path.abspath(self.mktemp())
        old = os.umask(0o022)
        try:
            observer = observer_for({"logfile": path, "nodaemon": False}, clock)
        finally:
            os.umask(old)
        assert observer is not None
        observer({"log_format": "hello", "log_time": 0.0})
        observer.flush()
        self.addCleanup(observer._out.close)
        self.assertEqual(stat.S_IMODE(os.stat(path).st_mode), 0o600)
        with open(path) as f:
            self.assertIn("hello", f.read())

    def test_make_service_offers_the_observer_to_twistd(self) -> None:
        """makeService's service gives twistd's application the gateway's log observer."""
        config = os.path.abspath(self.mktemp())
        state = os.path.dirname(config)
        with open(config, "w") as f:
            f.write(f'[store]\npath = "{state}/s.sqlite"\n[amp]\nlisten = "unix:{state}/a.sock"\n'
                    '[[server]]\nname = ""\naddress = "127.0.0.1:9"\nsystem_id = "x"\npassword = "y"\n')
        options = Options()
        options.parseOptions(["--config", config])
        log_path = os.path.join(state, "gw.log")
        options.parent = {"logfile": log_path, "nodaemon": True}
        application = Application("smppgw")
        # Installing the observer sets a SIGUSR1 handler: this process's is put back after.
        self.addCleanup(signal.signal, signal.SIGUSR1, signal.getsignal(signal.SIGUSR1))
        makeService(options).setServiceParent(application)
        observer = application.getComponent(ILogObserver)
        self.assertIsInstance(observer, TurnBufferedLogObserver)
        observer({"log_format": "through twistd", "log_time": 0.0})
        observer.flush()
        self.addCleanup(observer._out.close)
        with open(log_path) as f:
            self.assertIn("through twistd", f.read())

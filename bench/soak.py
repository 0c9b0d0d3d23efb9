"""The chaos soak: N messages through AMP while the SMSC and the gateway misbehave.

A host in this process sends `--messages` SendSignal requests (at most
`--outstanding` in flight) to a gateway running under twistd in a child
process, which relays them to an SMSC simulator in this process.  Meanwhile:

- the simulator closes the SMPP connection every `--drop-every` PDUs,
  alternating a clean close (FIN) and a reset (RST);
- from 15% of the run it answers every 7th submit ESME_RTHROTTLED for
  `--throttle-for` seconds;
- at 50% it stops answering submits for longer than the gateway's
  response_timeout (once);
- at 1/3 and 2/3 the gateway is SIGKILLed and started again; the host
  reconnects and sends every request_id without a final outcome again.

With ``--failing-store`` (2,000 messages, as ``--short``) the gateway's store
commits also fail, as on a full disk, for `--store-fail-for` seconds twice:
at 20%, healing while the gateway runs, and just before the kill at 1/3,
which then comes while they fail.  The gateway must pause its link, within
the same duplicate bound, and resume once the store writes again.

Then every request_id is sent once more, to check the gateway answers each
with the outcome it gave before and sends nothing new.  It prints the checks:
one final outcome per request_id, every accepted message at the SMSC,
duplicates at the SMSC within the bound, the gateway's RSS, and the rate.
The exit status is 0 only when every check holds; the last line is
``SOAK OK ...`` or ``SOAK FAILED: <reasons>``.

Run: ``.venv/bin/python bench/soak.py`` (100,000 messages), or
``.venv/bin/python bench/soak.py --short`` (2,000, as CI runs it), or
``.venv/bin/python bench/soak.py --failing-store``.
"""

from __future__ import annotations

import argparse
import bisect
import os
import platform
import shutil
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, replace
from importlib import metadata
from typing import Any

from _soak_gateway import GatewayProcess, GatewayRun, config_text
from _soak_host import HostConnection, Message, SendPass
from _soak_store import CHECK_EVERY
from twisted.internet.defer import Deferred, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.protocol import connectionDone
from twisted.internet.task import LoopingCall, deferLater

from smppgw.errors import BY_CODE
from smppgw.testing.simulator import SMSCSimulator

#: The memory check: RSS at the end may exceed the baseline by this fraction.
RSS_GROWTH_LIMIT = 0.20
#: Where in the run (fraction of final outcomes) each fault starts.
THROTTLE_AT = 0.15
BLACK_HOLE_AT = 0.50
KILLS_AT = (1 / 3, 2 / 3)
#: With --failing-store: where the stretch of failing commits that heals by itself starts.
STORE_FAIL_AT = 0.20
#: What the gateway logs when it pauses a link for the store, and when it resumes.
PAUSED_MARK = "paused: the store cannot record"
RESUMED_MARK = "the store records again"
#: RSS baseline: after this fraction of the messages.
RSS_BASELINE_AFTER = 0.10
#: Give up when no request got its outcome for this long.  The longest quiet
#: spell the faults cause is a reconnect (up to 2 s) plus the black hole and
#: the response_timeout after it (3.5 + 2 s).
STALL_LIMIT = 30.0

_FILLER = (
    "the quick brown fox jumps over the lazy dog while the soak keeps the gateway busy "
    "and the simulator drops the link now and then so nothing may be lost on the way "
)


@dataclass(frozen=True)
class SoakSettings:
    """How big the soak is and how hard its faults hit."""

    messages: int = 100_000
    outstanding: int = 500
    window: int = 10
    response_timeout: float = 2.0
    drop_every: int = 3000
    throttle_every: int = 7
    throttle_for: float = 10.0
    black_hole_for: float = 3.5
    recipients: int = 5000
    timeout: float = 1800.0
    keep: bool = False
    short: bool = False
    failing_store: bool = False
    store_fail_for: float = 2.0


SHORT = SoakSettings(messages=2000, drop_every=300, throttle_for=3.0, timeout=110.0, short=True)
FAILING_STORE = replace(SHORT, failing_store=True, timeout=150.0)


def parse_args(argv: list[str]) -> SoakSettings:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--short", action="store_true",
                        help="CI mode: 2,000 messages, a drop every 300 PDUs, 110 s timeout")
    parser.add_argument("--messages", type=int, help="messages to send (default 100,000)")
    parser.add_argument("--outstanding", type=int, help="most requests in flight at the host (500)")
    parser.add_argument("--window", type=int, help="the gateway's SMPP window (10)")
    parser.add_argument("--drop-every", type=int, help="PDUs per SMPP connection before a drop")
    parser.add_argument("--throttle-for", type=float, help="seconds of ESME_RTHROTTLED every 7th")
    parser.add_argument("--timeout", type=float, help="give up after this many seconds")
    parser.add_argument("--failing-store", action="store_true",
                        help="as --short, and the store's commits fail twice for a stretch")
    parser.add_argument("--store-fail-for", type=float,
                        help="seconds each stretch of failing commits lasts (2)")
    parser.add_argument("--keep", action="store_true", help="keep the state directory and logs")
    args = parser.parse_args(argv)
    settings = FAILING_STORE if args.failing_store else SHORT if args.short else SoakSettings()
    changes = {name: getattr(args, name) for name in
               ("messages", "outstanding", "window", "drop_every", "throttle_for", "timeout",
                "store_fail_for")
               if getattr(args, name) is not None}
    if "messages" in changes and "timeout" not in changes and not settings.short:
        # About 100 messages/s at worst, plus the faults' own pauses.
        changes["timeout"] = max(300.0, changes["messages"] / 100 + 120)
    settings = replace(settings, keep=args.keep, **changes)
    if settings.messages < 10:
        parser.error("--messages must be at least 10")
    return settings


def build_messages(settings: SoakSettings, tag: str) -> list[Message]:
    """Numbered, unique texts of 20 to 150 GSM characters to `recipients` distinct numbers."""
    messages = []
    for i in range(settings.messages):
        head = f"soak {i:07d} "
        body = head + _FILLER[: 7 + (i * 37) % 124]
        messages.append(Message(f"soak-{tag}-{i:07d}", f"+{number(i, settings)}@smpp", body))
    return messages


class _EndWatchingSimulator(SMSCSimulator):
    """The simulator, noting how many submits it had accepted whenever a connection ended,
    whoever ended it (the gateway closes a link on its own, too)."""

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.ends: list[int] = []

    def buildProtocol(self, addr: Any) -> Any:
        protocol = super().buildProtocol(addr)
        lost = protocol.connectionLost

        def watched(reason: Any = connectionDone) -> None:
            self.ends.append(self.accepted_count)
            lost(reason)

        protocol.connectionLost = watched  # type: ignore[method-assign]
        return protocol


def number(i: int, settings: SoakSettings) -> str:
    return f"1555{i % settings.recipients:07d}"


def smsc_key(message: Message) -> tuple[bytes, bytes]:
    """What the simulator sees of a message: destination_addr and short_message (ASCII is GSM here)."""
    return message.recipient[1:].split("@")[0].encode("ascii"), message.body.encode("ascii")


class Soak:
    """One soak run: the simulator, the gateway, the host, the faults and what they saw."""

    def __init__(self, reactor: Any, settings: SoakSettings, state: str) -> None:
        self.reactor = reactor
        self.settings = settings
        self.state = state
        self.simulator = _EndWatchingSimulator({"soak": "soakpw"}, reactor)
        self.config_path = os.path.join(state, "smppgw.toml")
        #: While this file exists, the gateway's store commits fail (--failing-store).
        self.store_marker = os.path.join(state, "store-full") if settings.failing_store else ""
        self.store_failures = 0
        self.gateway = GatewayProcess(reactor, state, self.config_path,
                                      store_marker=self.store_marker)
        self.host = HostConnection(reactor, os.path.join(state, "amp.sock"))
        self.messages = build_messages(settings, tag=f"{int(time.time())}")
        self.events: list[str] = []
        self.failures: list[str] = []
        self.kills = 0
        #: The simulator's accepted_count when each killed gateway's SMPP connection had closed.
        self.kill_boundaries: list[int] = []
        self.started_at = time.monotonic()
        #: message_id -> (destination_addr, short_message) of every accepted submit.
        self.accepted_ids: dict[str, tuple[bytes, bytes]] = {}
        #: How often each (destination_addr, short_message) was accepted.
        self.accepted_keys: Counter[tuple[bytes, bytes]] = Counter()
        self.main: SendPass | None = None
        self.verify: SendPass | None = None
        self.accepted_before_verify = 0
        self.rss_baseline: tuple[int, int] | None = None  # (run number, KiB)
        self.rss_end: tuple[int, int] | None = None
        self._triggers: list[tuple[int, str, Any]] = []
        self._waiters: list[Deferred[bool]] = []
        self._last_progress = time.monotonic()

    # -- running -------------------------------------------------------------------

    def log(self, text: str) -> None:
        line = f"[{time.monotonic() - self.started_at:7.1f}s] {text}"
        self.events.append(line)
        print(line, flush=True)

    def abort(self, reason: str) -> None:
        """Give up: record why and wake whatever the run waits on."""
        if reason not in self.failures:
            self.failures.append(reason)
            self.log(f"ABORT: {reason}")
        for waiter in self._waiters:
            if not waiter.called:
                waiter.callback(False)

    def until(self, d: Deferred[Any]) -> Deferred[bool]:
        """Fires True when `d` fires, or False as soon as the run is aborted."""
        waiter: Deferred[bool] = Deferred()
        if self.failures:
            waiter.callback(False)
            return waiter
        self._waiters.append(waiter)

        def fired(result: Any) -> Any:
            if not waiter.called:
                waiter.callback(True)
            return result

        d.addBoth(fired)
        return waiter

    @inlineCallbacks
    def run(self) -> Any:
        s = self.settings
        listening = yield serverFromString(self.reactor, "tcp:0:interface=127.0.0.1").listen(
            self.simulator)
        self.listening = listening
        port = listening.getHost().port
        with open(self.config_path, "w") as f:
            f.write(config_text(self.state, port, s.window, s.response_timeout))
        self.simulator.faults.drop_after = s.drop_every
        self.simulator.faults.alternate_drops = True
        self.gateway.on_unexpected_exit(
            lambda run: self.abort(f"gateway {run.number} exited by itself: {run.exit_status}"))
        harvester = LoopingCall(self.harvest)
        harvester.start(0.5, now=False)
        stall_watch = LoopingCall(self._watch_stall)
        stall_watch.start(1.0, now=False)
        try:
            run = yield self.gateway.start()
            self.log(f"gateway 1 (pid {run.pid}) listening after {run.ready_at - run.spawned_at:.1f}s")
            self._plan()
            self.host.start()
            self.main = SendPass(self.reactor, self.host, self.messages, s.outstanding)
            self.main.on_progress(self._progress)
            self._last_progress = time.monotonic()
            finished = yield self.until(self.main.start())
            if not finished:
                return
            self.log(f"all {s.messages} requests have a final outcome")
            self.rss_end = (self.gateway.current.number, self.gateway.sample_rss("end"))
            self.simulator.faults.drop_after = 0
            # Let answers still on the wire land before the count the verify pass must keep.
            yield deferLater(self.reactor, 0.5, lambda: None)
            self.harvest()
            self.accepted_before_verify = sum(self.accepted_keys.values())
            self.verify = SendPass(self.reactor, self.host, self.messages, s.outstanding)
            self.verify.on_progress(self._verify_progress)
            self._last_progress = time.monotonic()
            self.log("verify: every request_id sent once more")
            finished = yield self.until(self.verify.start())
            if not finished:
                return
            yield deferLater(self.reactor, 0.5, lambda: None)
            self.harvest()
            self.log("verify done")
        finally:
            harvester.stop()
            stall_watch.stop()
            self.host.stop()
            yield self.gateway.stop()
            yield listening.stopListening()
            for connection in list(self.simulator.connections):
                connection.close(reset=True)
            self.harvest()

    def _plan(self) -> None:
        n = self.settings.messages
        failing = self.settings.failing_store
        self._triggers = sorted([
            (max(1, round(n * RSS_BASELINE_AFTER)), "rss first", self._rss_first),
            (round(n * THROTTLE_AT), "throttle", self._throttle_on),
            (round(n * KILLS_AT[0]), "kill", self._fail_then_kill if failing else self._kill),
            (round(n * BLACK_HOLE_AT), "black hole", self._black_hole_on),
            (round(n * KILLS_AT[1]), "kill", self._kill),
        ] + ([(round(n * STORE_FAIL_AT), "store fails", self._store_fails)] if failing else []),
            key=lambda t: t[0])

    def _store_fails(self, outcomes: int, heal: bool = True) -> None:
        with open(self.store_marker, "w"):
            pass
        self.store_failures += 1
        self.log(f"store: commits fail for {self.settings.store_fail_for:g}s after {outcomes} "
                 f"outcomes" + ("" if heal else ", then SIGKILL"))
        if heal:
            self.reactor.callLater(self.settings.store_fail_for, self._store_heals)

    def _store_heals(self) -> None:
        if os.path.exists(self.store_marker):
            os.remove(self.store_marker)
            self.log("store: commits succeed again")

    def _fail_then_kill(self, outcomes: int) -> None:
        self._store_fails(outcomes, heal=False)
        # Past the gateway's look at the marker, so that the kill finds commits failing.
        self.reactor.callLater(self.settings.store_fail_for + CHECK_EVERY, self._kill, outcomes)

    def _watch_stall(self) -> None:
        current = self.verify or self.main
        if current is None or current.done.called or self.failures:
            return
        quiet = time.monotonic() - self._last_progress
        if quiet > STALL_LIMIT:
            name = "verify pass" if current is self.verify else "run"
            self.abort(f"{name} stalled: no request got its outcome for {quiet:.0f}s "
                       f"({len(current.outcomes)} of {self.settings.messages} done, "
                       f"{current.in_flight} in flight)")

    def _verify_progress(self, outcomes: int) -> None:
        self._last_progress = time.monotonic()

    def _progress(self, outcomes: int) -> None:
        self._last_progress = time.monotonic()
        while self._triggers and outcomes >= self._triggers[0][0]:
            _, _, action = self._triggers.pop(0)
            action(outcomes)

    def _add_trigger(self, at: int, name: str, action: Any) -> None:
        self._triggers.append((at, name, action))
        self._triggers.sort(key=lambda t: t[0])

    def _rss_first(self, outcomes: int) -> None:
        rss = self.gateway.sample_rss(f"after {outcomes} outcomes")
        self.log(f"gateway {self.gateway.current.number} RSS {rss / 1024:.1f} MiB after {outcomes} outcomes")

    def _rss_baseline(self, outcomes: int) -> None:
        rss = self.gateway.sample_rss(f"baseline after {outcomes} outcomes")
        self.rss_baseline = (self.gateway.current.number, rss)
        self.log(f"gateway {self.gateway.current.number} RSS baseline {rss / 1024:.1f} MiB "
                 f"after {outcomes} outcomes")

    def _throttle_on(self, outcomes: int) -> None:
        self.simulator.faults.throttle_every = self.settings.throttle_every
        self.log(f"throttle: every {self.settings.throttle_every}th submit ESME_RTHROTTLED "
                 f"for {self.settings.throttle_for:g}s")
        self.reactor.callLater(self.settings.throttle_for, self._throttle_off)

    def _throttle_off(self) -> None:
        self.simulator.faults.throttle_every = 0
        self.log(f"throttle off ({self.simulator.throttled} submits throttled)")

    def _black_hole_on(self, outcomes: int) -> None:
        self.simulator.faults.black_hole = True
        self.log(f"black hole: no submit answered for {self.settings.black_hole_for:g}s "
                 f"(response_timeout {self.settings.response_timeout:g}s)")
        self.reactor.callLater(self.settings.black_hole_for, self._black_hole_off)

    def _black_hole_off(self) -> None:
        self.simulator.faults.black_hole = False
        self.log("black hole off")

    def _kill(self, outcomes: int) -> None:
        self.kills += 1
        number = self.kills
        self._restart(number, outcomes).addErrback(
            lambda f: self.abort(f"restart {number} failed: {f.getErrorMessage()}"))

    @inlineCallbacks
    def _restart(self, number: int, outcomes: int) -> Any:
        old = self.gateway.current
        rss = self.gateway.sample_rss("before SIGKILL")
        self.log(f"SIGKILL gateway {old.number} (pid {old.pid}, RSS {rss / 1024:.1f} MiB) "
                 f"after {outcomes} outcomes, {self.main.in_flight if self.main else 0} requests in flight")
        connections = list(self.simulator.connections)
        yield self.gateway.kill()
        if self.store_marker:
            self._store_heals()  # the operator makes room before the restart
        # Submits the dead gateway wrote may still be read: the boundary is
        # where the simulator has seen its connection close.
        for _ in range(500):
            if not any(c in self.simulator.connections for c in connections):
                break
            yield deferLater(self.reactor, 0.01, lambda: None)
        self.kill_boundaries.append(self.simulator.accepted_count)
        run: GatewayRun = yield self.gateway.start()
        self.log(f"gateway {run.number} (pid {run.pid}) listening after "
                 f"{run.ready_at - run.spawned_at:.1f}s; {run.restored} queued message(s) restored")
        if number == len(KILLS_AT):
            at = outcomes + max(1, round(self.settings.messages * RSS_BASELINE_AFTER))
            self._add_trigger(at, "rss baseline", self._rss_baseline)

    def harvest(self) -> None:
        """Move what the simulator accepted into compact tables, so that it holds no PDUs for long."""
        simulator = self.simulator
        for message_id, pdu in simulator.message_ids.items():
            destination, body = pdu.get("destination_addr"), pdu.get("short_message")
            key = (bytes(destination) if isinstance(destination, bytes) else b"",
                   bytes(body) if isinstance(body, bytes) else b"")
            self.accepted_ids[message_id] = key
            self.accepted_keys[key] += 1
        simulator.message_ids.clear()
        simulator.accepted_by.clear()
        simulator.accepted.clear()
        simulator.received.clear()

    # -- judging -----------------------------------------------------------------------

    def duplicates_per_end(self) -> tuple[list[tuple[str, int]], int]:
        """
        Each extra acceptance of a message, charged to the connection end that
        came between the acceptance before it and itself: a message is sent
        again only because a connection ended before its answer was read.
        Returns (kind, duplicates) per end in order, and the duplicates after no end.
        """
        known = sorted([(d.accepted, "RST" if d.reset else "FIN") for d in self.simulator.drops]
                       + [(b, "SIGKILL") for b in self.kill_boundaries])
        # Connections the gateway ended on its own (after a response timeout,
        # or to keep unsent submits that the store could not answer for).
        taken = Counter(b for b, _ in known)
        others = []
        for b in self.simulator.ends:
            if taken[b]:
                taken[b] -= 1
            else:
                others.append((b, "gateway"))
        ends = sorted(known + others)
        boundaries = [b for b, _ in ends]
        counts = [0] * len(ends)
        after_last = 0
        times: dict[tuple[bytes, bytes], list[int]] = {}
        for message_id, key in self.accepted_ids.items():
            if self.accepted_keys[key] > 1:
                times.setdefault(key, []).append(int(message_id, 16))
        for ids in times.values():
            ids.sort()
            for earlier in ids[:-1]:
                # The first end at which `earlier` was already accepted.
                at = bisect.bisect_left(boundaries, earlier)
                if at < len(counts):
                    counts[at] += 1
                else:
                    after_last += 1
        return [(kind, count) for (_, kind), count in zip(ends, counts, strict=True)], after_last

    def report_store(self, check: Any) -> None:
        """The --failing-store checks: the link paused once per stretch, and resumed."""
        print()
        print("== failing store")
        lines = self.gateway.log_lines()
        paused = [(n, line) for n, line in lines if PAUSED_MARK in line]
        resumed = [(n, line) for n, line in lines if RESUMED_MARK in line]
        failed_commits = [(n, line) for n, line in lines if "store commit failed" in line]
        for n, line in lines:
            if PAUSED_MARK in line or RESUMED_MARK in line:
                print(f"  gateway-{n}.log: {line}")
        check(1 <= len(paused) <= self.store_failures,
              f"the link paused, once per stretch ({len(paused)} pauses logged for "
              f"{self.store_failures} stretches of failing commits)",
              f"{len(paused)} pauses logged for {self.store_failures} stretches")
        check(len(resumed) >= 1 and len(failed_commits) <= self.store_failures,
              f"the link resumed once the store wrote again ({len(resumed)} times); failed "
              f"commits logged once per stretch ({len(failed_commits)} lines)",
              f"resumed {len(resumed)} times, {len(failed_commits)} failed-commit log lines")

    def report(self) -> int:
        s = self.settings
        checks: list[tuple[bool, str]] = []
        reasons = list(self.failures)

        def check(ok: bool, text: str, reason: str) -> None:
            checks.append((ok, text))
            if not ok:
                reasons.append(reason)

        print()
        print("== conditions")
        print(f"python {platform.python_version()}, twisted {metadata.version('twisted')}, "
              f"smpp.pdu3 {metadata.version('smpp.pdu3')}, {os.cpu_count()} cpus, {platform.platform()}")
        print(f"messages {s.messages}, host outstanding {s.outstanding}, window {s.window}, "
              f"response_timeout {s.response_timeout:g}s, drop every {s.drop_every} PDUs (FIN/RST "
              f"alternating), throttle every {s.throttle_every}th for {s.throttle_for:g}s at "
              f"{THROTTLE_AT:.0%}, black hole {s.black_hole_for:g}s at {BLACK_HOLE_AT:.0%}, "
              f"SIGKILL at {KILLS_AT[0]:.0%} and {KILLS_AT[1]:.0%}, {s.recipients} recipients"
              + (f"; store commits failing for {s.store_fail_for:g}s at {STORE_FAIL_AT:.0%} "
                 f"and before the first SIGKILL" if s.failing_store else ""))

        main = self.main
        outcomes = main.outcomes if main else {}
        codes = Counter(o.code for o in outcomes.values())
        print()
        print("== outcomes at the host")
        print(f"final outcomes {len(outcomes)} of {s.messages}: "
              + ", ".join(f"{code} {count}" for code, count in sorted(codes.items())))
        if main:
            print(f"SendSignal calls {main.sends} (re-sent after a lost connection or TRY_LATER: "
                  f"{main.resends}; TRY_LATER answers {main.try_later}); host connections "
                  f"{self.host.connections}, lost {self.host.losses}")
        errors = [(i, o) for i, o in sorted(outcomes.items()) if not o.ok]
        for i, o in errors[:5]:
            print(f"  error: {self.messages[i].request_id}: {o.code} {o.reason}")
        missing = [self.messages[i].request_id for i in range(s.messages) if i not in outcomes]
        extra = main.extra if main else []
        check(not missing and not extra,
              f"every request_id has exactly one final outcome ({len(missing)} without, "
              f"{len(extra)} answered twice)",
              f"{len(missing)} request_ids without a final outcome, {len(extra)} with two"
              + (f" (first missing: {', '.join(missing[:5])})" if missing else ""))
        outside = {code: n for code, n in codes.items() if code != "OK" and code not in BY_CODE}
        check(not outside, f"every error is a contract error code ({outside or 'none outside'})",
              f"errors outside the AMP contract: {outside}")

        verify = self.verify
        if verify is not None and verify.done.called:
            changed = [self.messages[i].request_id for i, o in verify.outcomes.items()
                       if outcomes.get(i) != o]
            accepted_after = sum(self.accepted_keys.values())
            check(not changed and not verify.extra,
                  f"sent again, every request_id got the same outcome ({len(changed)} changed)",
                  f"{len(changed)} request_ids answered differently when sent again"
                  + (f" (first: {', '.join(changed[:5])})" if changed else ""))
            check(accepted_after == self.accepted_before_verify,
                  f"sending them again reached the SMSC 0 times "
                  f"({accepted_after - self.accepted_before_verify} new submits accepted)",
                  f"sending request_ids again put {accepted_after - self.accepted_before_verify} "
                  f"new messages on the SMSC")
        else:
            check(False, "verify pass (every request_id sent again) did not complete",
                  "verify pass did not complete")

        print()
        print("== at the SMSC")
        not_arrived = []
        wrong_id = []
        for i, o in outcomes.items():
            if not o.ok:
                continue
            key = smsc_key(self.messages[i])
            if self.accepted_keys.get(key, 0) == 0:
                not_arrived.append(self.messages[i].request_id)
            elif any(self.accepted_ids.get(mid) != key for mid in o.message_ids):
                wrong_id.append(self.messages[i].request_id)
        ok_count = codes.get("OK", 0)
        check(not not_arrived and not wrong_id,
              f"every accepted message reached the SMSC ({ok_count - len(not_arrived)} of {ok_count}; "
              f"{len(wrong_id)} with a message_id the SMSC gave another message)",
              f"{len(not_arrived)} accepted messages never reached the SMSC"
              + (f" (first: {', '.join(not_arrived[:5])})" if not_arrived else "")
              + (f"; {len(wrong_id)} message_ids point at another message" if wrong_id else ""))
        ours = {smsc_key(m) for m in self.messages}
        strangers = sum(n for key, n in self.accepted_keys.items() if key not in ours)
        duplicates = sum(n - 1 for key, n in self.accepted_keys.items() if n > 1 and key in ours)
        duplicated = sum(1 for key, n in self.accepted_keys.items() if n > 1 and key in ours)
        drops = self.simulator.drops
        fin = sum(1 for d in drops if not d.reset)
        rst = len(drops) - fin
        binds = self.simulator.received_count("bind_transmitter")
        # Every bind after the first follows the end of a connection: a drop,
        # a kill, or anything else the gateway did on its own.
        ends = max(0, binds - 1)
        others = max(0, ends - len(drops) - self.kills)
        bound = s.window * (len(drops) + self.kills + others)
        print(f"submits received {self.simulator.received_count('submit_sm')}, accepted "
              f"{sum(self.accepted_keys.values())} ({len(self.accepted_keys)} distinct), "
              f"throttled {self.simulator.throttled}, binds {binds}")
        print(f"connection ends: {len(drops)} drops ({fin} FIN, {rst} RST), {self.kills} gateway "
              f"SIGKILLs, {others} other")
        check(strangers == 0, f"nothing at the SMSC that the host did not send ({strangers})",
              f"{strangers} messages at the SMSC that no request carried")
        check(duplicates <= bound,
              f"duplicates at the SMSC {duplicates} ({duplicated} messages) <= bound {bound} "
              f"(window {s.window} x {len(drops) + self.kills + others} connection ends)",
              f"{duplicates} duplicates at the SMSC exceed the bound {bound}")
        per_end, after_last = self.duplicates_per_end()
        print("duplicates by connection end: " + ", ".join(
            f"{kind} {count}" for kind, count in per_end) + (f", after the last {after_last}"
                                                             if after_last else ""))
        worst = max((count for _, count in per_end), default=0)
        check(worst <= s.window and after_last == 0,
              f"duplicates per connection end <= window {s.window} (most {worst})",
              f"{worst} duplicates after one connection end (window {s.window})"
              + (f", {after_last} after no end at all" if after_last else ""))
        if s.failing_store:
            self.report_store(check)

        print()
        print("== faults exercised")
        lines = self.gateway.log_lines()
        timeouts = sum(1 for _, line in lines if "no response to submit_sm" in line)
        crashes = [(n, line) for n, line in lines
                   if "Traceback" in line or "Unhandled" in line or "#critical]" in line]
        restored = [run.restored for run in self.gateway.runs[1:]]
        print(f"submit_sm response timeouts logged {timeouts}; restored after restarts {restored}")
        check(fin >= 1 and rst >= 1, f"FIN and RST drops happened ({fin}, {rst})",
              f"drops not exercised ({fin} FIN, {rst} RST)")
        check(self.simulator.throttled >= 1,
              f"ESME_RTHROTTLED answered ({self.simulator.throttled})", "no submit was throttled")
        check(timeouts >= 1, f"response_timeout hit during the black hole ({timeouts} submits)",
              "the black hole caused no response timeout")
        check(self.kills == len(KILLS_AT) and len(self.gateway.runs) == len(KILLS_AT) + 1,
              f"gateway SIGKILLed and restarted {self.kills} times",
              f"gateway SIGKILLed {self.kills} times, started {len(self.gateway.runs)} times")
        unexpected = self.gateway.unexpected_exits
        check(not unexpected and not crashes,
              f"no gateway crash ({len(unexpected)} unexpected exits, {len(crashes)} "
              f"traceback/unhandled log lines)",
              f"gateway crashed: {len(unexpected)} unexpected exits, {len(crashes)} "
              f"traceback/unhandled log lines")
        if crashes:
            # The first report whole: its header lines and the indented traceback after them.
            first = lines.index(crashes[0])
            shown = [lines[first]]
            for entry in lines[first + 1:first + 80]:
                if not entry[1].startswith(("\t", " ")) and len(shown) > 2:
                    break
                shown.append(entry)
            for n, line in shown:
                print(f"  gateway-{n}.log: {line}")
        if reasons:
            print("last gateway log lines (relay reports left out):")
            quiet = [(n, line) for n, line in lines if " relayed " not in line]
            for n, line in quiet[-15:]:
                print(f"  gateway-{n}.log: {line}")

        print()
        print("== memory (gateway VmRSS)")
        for run in self.gateway.runs:
            samples = ", ".join(f"{label} {kib / 1024:.1f} MiB" for label, kib in run.rss_samples)
            print(f"gateway {run.number} (pid {run.pid}): {samples or 'no samples'}")
        print("Compared within the last gateway process only: a restarted process starts small, so "
              "its RSS cannot be compared with the killed one's.  The baseline is taken once the "
              f"last process has given {RSS_BASELINE_AFTER:.0%} of the messages their outcomes.")
        if self.rss_baseline and self.rss_end and self.rss_baseline[0] == self.rss_end[0]:
            base, end = self.rss_baseline[1], self.rss_end[1]
            growth = end / base - 1
            check(growth <= RSS_GROWTH_LIMIT,
                  f"RSS at the end {end / 1024:.1f} MiB vs baseline {base / 1024:.1f} MiB: "
                  f"{growth:+.1%} (limit +{RSS_GROWTH_LIMIT:.0%})",
                  f"RSS grew {growth:+.1%} ({base / 1024:.1f} -> {end / 1024:.1f} MiB)")
        else:
            check(False, "RSS baseline and end not both taken in the last gateway process",
                  "RSS not measured")

        print()
        print("== time")
        if main is not None and main.finished_at:
            elapsed = main.finished_at - main.started_at
            print(f"elapsed {elapsed:.1f}s for {s.messages} messages: {s.messages / elapsed:.0f} messages/s "
                  f"(faults included); whole run {time.monotonic() - self.started_at:.1f}s")
        else:
            elapsed = time.monotonic() - self.started_at
            print(f"did not finish; {elapsed:.1f}s so far")

        print()
        print("== checks")
        for ok, text in checks:
            print(f"{'PASS' if ok else 'FAIL'}  {text}")
        if reasons:
            print(f"SOAK FAILED: {'; '.join(reasons)}")
            return 1
        print(f"SOAK OK messages={s.messages} elapsed={elapsed:.1f}s rate={s.messages / elapsed:.0f}/s "
              f"duplicates={duplicates}/{bound} rss={self.rss_end[1] / 1024 if self.rss_end else 0:.1f}MiB")
        return 0


def main(argv: list[str] | None = None) -> int:
    settings = parse_args(sys.argv[1:] if argv is None else argv)
    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    # Unix socket paths must stay short (108 bytes): a fresh folder under /tmp.
    state = tempfile.mkdtemp(prefix="smppgw-soak-")
    soak = Soak(reactor, settings, state)
    print(f"soak: {settings.messages} messages, state in {state}", flush=True)
    status = 1
    try:
        deadline = reactor.callLater(
            settings.timeout, soak.abort, f"timed out after {settings.timeout:g}s")

        def go() -> None:
            d = soak.run()
            d.addErrback(lambda f: soak.abort(f"soak crashed: {f.getTraceback()}"))
            d.addBoth(lambda _: reactor.stop())

        reactor.callWhenRunning(go)
        reactor.run()
        if deadline.active():
            deadline.cancel()
        status = soak.report()
    finally:
        soak.gateway.kill_now()
        if settings.keep or status != 0:
            print(f"state and gateway logs kept in {state}")
        else:
            shutil.rmtree(state, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())

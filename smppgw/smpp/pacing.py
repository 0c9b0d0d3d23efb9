"""
Pacing: how fast a link submits, learned from the SMSC's throttling.

A link sends as fast as its window allows until the SMSC answers
ESME_RTHROTTLED or ESME_RMSGQFUL; then the whole link pauses.  An SMSC that
limits by spacing (one submit per 1/N s, as Jasmin's per-user throughput
does) throttles all but the first of any burst, however short, so resending
the window at once after the pause gets it throttled again: such a link
needs its submits spaced, not counted.  A `Pacer` tells the two kinds of
throttling apart and, for a limit by spacing, spaces the submits evenly at a
rate it learns.

- One episode per pause.  The window's other submits were in flight when the
  first throttled answer came and are throttled too: every throttled answer
  that arrives during the pause belongs to the episode that began it.
- Pace or not.  If the SMSC accepted `SPACED` submits sent back to back
  since the last episode, it does not limit by spacing (a count per second,
  a full queue, a fault): the pause is all the link does, as before.
  Otherwise pacing starts at three quarters of the rate the SMSC accepted so
  far (measured over a ``period`` at least), or at ``floor``.
- Slow start.  While nothing throttled is known above, the rate doubles each
  time its spacing held for `HOLD_SENDS` answered submits.
- Bisection.  Once throttled, the pacer keeps the fastest rate that held (a
  whole ``period`` without a throttle) and the slowest that was throttled,
  and tries halfway between them, until they are within ``step`` (or
  `RESOLUTION` of the rate); it then stays at the one that held.  An SMSC's
  limit is a number in its configuration, not a share of a path that others
  compete for, so unlike TCP's AIMD it is not probed again and again: each
  throttle costs a pause of the whole link.  Only after `SETTLE_PERIODS`
  quiet periods does the pacer try faster (by ``step``, then by increments
  that double while they hold), and it waits twice as long after each probe
  throttled at once.
- Down.  A throttle at once at a rate that had held (the limit fell, or the
  network bunched two submits) lowers the rate by a quarter and searches up
  again from there; a throttle after several submits at the rate were
  accepted keeps it (a limit by count, which the pause lets recover).
- Off.  When the link sends at under half the rate it may (its window or its
  hosts set the pace now), pacing stops until the next throttle.
- ``ceiling`` (the server's ``throughput``) is a hard limit over all of it.

Time comes from the injected ``clock``; nothing here schedules anything.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

#: Clean periods at a settled rate before the pacer first tries a faster one;
#: each probe that is throttled at once doubles the wait, up to `MAX_SETTLE_PERIODS`.
SETTLE_PERIODS = 10
MAX_SETTLE_PERIODS = 640
#: How much slower the rate becomes when nothing faster is known to hold.
DECREASE = 0.75
#: The finest change of rate, as a fraction of the rate, when that is more
#: than ``step``.
RESOLUTION = 0.02
#: Answered submits at a rate before it can count as holding.
HOLD_SENDS = 2
#: Submits accepted one after the other, at a spacing, that show an SMSC
#: does not limit by that spacing: it throttled the next for another reason.
SPACED = 2


class Pacer:
    """The pause and the spacing of one link's submits.

    The link's queue sends nothing before `next_send` (a time on the clock);
    while `paced` it calls `sent` after each submit, and it calls `throttled`
    for each throttled answer.  `rate` is the learned rate in submits per
    second, None while the link is not paced by what it learned.
    ``ceiling`` (the server's ``throughput``; 0 for none) is a hard upper
    limit whatever is learned; ``accepted`` counts the link's accepted
    submits, to start from the rate the SMSC took before it throttled.
    """

    def __init__(self, clock: Any, pause: float = 1.0, floor: float = 1.0,
                 step: float = 0.5, period: float = 1.0, ceiling: float = 0.0,
                 accepted: Callable[[], int] = lambda: 0) -> None:
        self.clock = clock
        self.pause = pause
        self.floor = floor
        self.step = step
        self.period = period
        self.ceiling = ceiling
        self.accepted = accepted
        #: The earliest time the next submit may leave.
        self.next_send = 0.0
        #: Whether `sent` must be told of each submit.
        self.paced = ceiling > 0
        #: The learned rate (submits/s), None while the link is not paced by it.
        self.rate: float | None = None
        #: Throttle episodes (pauses) so far.
        self.episodes = 0
        self._interval = 1.0 / ceiling if ceiling > 0 else 0.0
        self._pause_end = -math.inf
        self._forget()
        self._since = 0.0         # when the current rate began
        self._sends = 0           # submits sent at it
        self._quiet_since = 0.0   # the last throttle episode
        self._unpaced = (clock.seconds(), accepted())  # when the rate was dropped, and `accepted` then
        self._mark = self._unpaced[1]  # `accepted` when the last episode began

    def configure(self, pause: float, floor: float, step: float, period: float,
                  ceiling: float) -> None:
        """New settings for a running link (a reload): what was learned is kept,
        within the new ceiling."""
        self.pause, self.floor, self.step, self.period = pause, floor, step, period
        self.ceiling = ceiling
        self._set(self.rate, self._since)

    def _forget(self) -> None:
        self._good = 0.0          # the fastest rate that held
        self._bad = math.inf      # the slowest rate throttled (inf: none since the last probe)
        self._increase = 0.0      # the next raise past a settled rate; 0 doubles (slow start)
        self._settle = SETTLE_PERIODS
        self._probes = -1         # while probing: the raises that held; -1 when not probing

    def throttled(self, in_flight: int = 0) -> bool:
        """A submit was throttled; True when that began a new episode (a pause).

        ``in_flight`` is how many other submits wait for an answer.
        """
        now = self.clock.seconds()
        if now < self._pause_end:
            return False
        self.episodes += 1
        self._quiet_since = now
        self._pause_end = now + self.pause
        self.next_send = max(self.next_send, self._pause_end)
        accepted = self.accepted()
        since_last, self._mark = accepted - self._mark, accepted
        rate = self.rate
        if rate is None:
            if since_last >= SPACED:
                # The SMSC took several submits sent back to back before
                # this one: it does not limit by spacing, and pacing would
                # only slow the link down.  The pause is enough.
                return True
            # Start below the rate the SMSC accepted while the link was not
            # paced (over a period at least: a burst says nothing), and
            # double while it holds.
            since, count = self._unpaced
            estimate = (accepted - count) / max(now - since, self.period)
            self._set(max(self.floor, estimate * DECREASE), self._pause_end)
            return True
        if self._sends - in_flight - 1 >= SPACED:
            # Submits at this spacing were accepted before this one: not the
            # spacing but a count over time or a full queue, which the pause
            # lets drain (as it does for a link not paced).
            self._set(rate, self._pause_end)
            return True
        if self._probes == 0:
            # Throttled at the first raise past a settled rate: the limit has
            # not moved; wait longer before the next probe.
            self._settle = min(self._settle * 2, MAX_SETTLE_PERIODS)
        elif self._probes > 0:
            self._settle = SETTLE_PERIODS
        self._probes = -1
        self._increase = self.step
        bad = min(self._bad, rate)
        if rate <= self._good:
            # A rate that had held was throttled at once: the SMSC's limit
            # fell, or the network bunched two submits.  Search again below.
            bad, self._good = rate, 0.0
            new = rate * DECREASE
        elif self._good:
            # Too fast: halfway back to the fastest rate that held (that one
            # when they are close).
            good = self._good
            new = (good + bad) / 2 if bad - good > self._resolution(good) else good
        else:
            new = rate * DECREASE
        self._bad = bad
        self._set(max(self.floor, new), self._pause_end)
        return True

    def sent(self, now: float, in_flight: int = 0) -> None:
        """A submit left at ``now``, with ``in_flight`` others unanswered: space the next one."""
        if self.rate is not None:
            self._sends += 1
            # The submits answered at this rate: those before this one, less
            # the ones still in flight.
            if self._sends - 1 - in_flight >= HOLD_SENDS and (
                    now - self._since >= self.period or self._increase == 0):
                # Slow start goes on as soon as the spacing held twice: that
                # is all a limit by spacing needs, and a limit by count shows
                # soon enough.
                self._held(now)
        self.next_send = max(self.next_send, now) + self._interval

    def _held(self, now: float) -> None:
        rate = self.rate
        assert rate is not None
        bad = self._bad
        if bad == math.inf and self._sends < (now - self._since) * rate / 2:
            # The link sends far more slowly than the rate allows: the window
            # or the hosts set its pace now, not the SMSC.
            self._forget()
            self._unpaced = (now, self.accepted())
            self._set(None, now)
            return
        self._good = max(self._good, rate)
        if self._probes >= 0:
            self._probes += 1
        if bad < math.inf and bad - rate > self._resolution(rate):
            new = (rate + bad) / 2
        elif bad < math.inf and now - self._quiet_since < self._settle * self.period:
            new = rate
        elif self._increase == 0:
            new = rate * 2
        else:
            if self._probes < 0:
                self._probes = 0
            self._bad = math.inf
            new = rate + self._increase
            self._increase *= 2
        self._set(new, now)

    def _resolution(self, rate: float) -> float:
        return max(self.step, rate * RESOLUTION)

    def _set(self, rate: float | None, since: float) -> None:
        if rate is not None and self.ceiling > 0:
            rate = min(rate, self.ceiling)
        self.rate = rate
        self._since = since
        self._sends = 0
        if rate is None:
            self.paced = self.ceiling > 0
            self._interval = 1.0 / self.ceiling if self.paced else 0.0
        else:
            self.paced = True
            self._interval = 1.0 / rate

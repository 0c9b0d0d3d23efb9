"""
The gateway's counters in one place: one `GatewayStats` per gateway, one `ServerStats` per server name.

The components feed it as things happen: a `Link` its state changes, binds,
connection attempts and errors; a `LinkQueue` the parts the SMSC accepted, the
errors it answered and its throttling; `Outbound` each request's final
outcome and how long it took; `Inbound` what it received.  It is made once per
gateway and kept by server name, so that a link replaced by a new one (a
re-bind, a reload) adds to the same counters.

Live figures (the queue's depth, the window in use, the inbox) are not copied
here: whoever shows them (`Outbound.status`, ``/metrics``) reads them from
their components when asked.  Time comes from the injected clock (the
reactor), so "messages per second over the last minute" is testable with
`twisted.internet.task.Clock`.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from zope.interface import Attribute, Interface, implementer

from smppgw.smpp.constants import STATUS_NAMES, THROTTLE_STATUSES

__all__ = ["REQUEST_BUCKETS", "GatewayStats", "IStats", "RATE_WINDOW", "ServerStats",
           "status_label"]

#: Seconds over which the rate of accepted parts is averaged.
RATE_WINDOW = 60
#: Upper bounds (seconds) of the request-duration histogram's buckets; +Inf follows.
REQUEST_BUCKETS: tuple[float, ...] = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                                      30.0, 60.0, 300.0, 900.0)
#: The kinds of what an SMSC sends that `Inbound` counts.
RECEIVED_KINDS = ("message", "part", "receipt")
_THROTTLE_NAMES = frozenset(STATUS_NAMES.get(s, "") for s in THROTTLE_STATUSES)


def status_label(status: int) -> str:
    """A command_status by its SMPP name (ESME_RTHROTTLED), or in hex when it has none."""
    return STATUS_NAMES.get(status) or f"0x{status:08X}"


class IStats(Interface):
    """The gateway's counters, per server and gateway-wide."""

    servers = Attribute("The ServerStats of every server name seen, by name.")
    requests = Attribute("Finished SendSignal requests by outcome: 'ok' or the AMP error code.")

    def server(name: str) -> ServerStats:
        """The counters of server C{name}, made on first use."""

    def request_finished(outcome: str, seconds: float | None) -> None:
        """A request ended with C{outcome}, C{seconds} after it was accepted (None: not timed)."""

    def received(server: str, kind: str) -> None:
        """C{server}'s SMSC sent a C{kind} (message, part, receipt) that was accepted."""


class ServerStats:
    """The counters of one server name, over every link and connection it had."""

    def __init__(self, name: str, clock: Any) -> None:
        self.name = name
        self.clock = clock
        #: The link's state, as it last said, and since when (None: never changed).
        self.state = "disconnected"
        self.since: float | None = None
        #: When the current bind was made; None while not bound.
        self.bound_since: float | None = None
        #: Parts the SMSC accepted (submit_sm_resp ESME_ROK).
        self.sent = 0
        #: deliver_sm / data_sm the link received (whatever became of them).
        self.received = 0
        #: Accepted deliveries by kind (message, part, receipt).
        self.received_kinds: Counter[str] = Counter()
        #: submit_sm answered with an error, by the status's SMPP name.
        self.failed: Counter[str] = Counter()
        #: Answers that asked to slow down (ESME_RTHROTTLED, ESME_RMSGQFUL).
        self.throttled = 0
        #: Successful binds, and connection attempts after the first.
        self.binds = 0
        self.reconnects = 0
        self._attempts = 0
        #: What went wrong last ("" when the link is fine), and when.
        self.last_error = ""
        self.last_error_at: float | None = None
        # Accepted parts per whole second, the last RATE_WINDOW seconds: [second, count].
        self._seconds: list[list[int]] = [[-1, 0] for _ in range(RATE_WINDOW)]
        # The link whose state, bind and error these show (None: whichever reports).
        self._link: object = None

    # -- fed by the link ----------------------------------------------------------

    def attach(self, link: Any) -> None:
        """Make C{link} the one these counters follow (C{link.stats} is set to them).

        A link replaced by a newer one may still report while it unbinds: its
        counts still count, but its state, bind time and errors no longer show.
        """
        self._link = link
        link.stats = self
        if link.state != self.state:
            self.state_changed(link.state, link)

    def _follows(self, link: object) -> bool:
        return self._link is None or link is None or link is self._link

    def state_changed(self, state: str, link: object = None) -> None:
        if not self._follows(link):
            return
        self.state = state
        self.since = self.clock.seconds()
        if state != "bound":
            self.bound_since = None

    def connecting(self) -> None:
        """A connection attempt starts: every one after the first is a reconnect."""
        if self._attempts:
            self.reconnects += 1
        self._attempts += 1

    def bound(self, link: object = None) -> None:
        self.binds += 1
        if self._follows(link):
            self.bound_since = self.clock.seconds()

    def error(self, text: str, link: object = None) -> None:
        """The link's last error is now C{text} ("" when a bind cleared it)."""
        if text != self.last_error and self._follows(link):
            self.last_error = text
            self.last_error_at = self.clock.seconds() if text else None

    def delivered(self) -> None:
        """The link received a deliver_sm or data_sm."""
        self.received += 1

    # -- fed by the queue ---------------------------------------------------------

    def accepted(self) -> None:
        """The SMSC accepted one part."""
        self.sent += 1
        second = int(self.clock.seconds())
        slot = self._seconds[second % RATE_WINDOW]
        if slot[0] == second:
            slot[1] += 1
        else:
            slot[0], slot[1] = second, 1

    def refused(self, status: int) -> None:
        """The SMSC answered a submit with error C{status}."""
        self.failed[status_label(status)] += 1
        if status in THROTTLE_STATUSES:
            self.throttled += 1

    # -- read ---------------------------------------------------------------------

    @property
    def failed_total(self) -> int:
        """Submits refused for another reason than throttling."""
        return sum(n for name, n in self.failed.items() if name not in _THROTTLE_NAMES)

    def rate(self) -> float:
        """Parts accepted per second over the last RATE_WINDOW seconds (this one included)."""
        now = int(self.clock.seconds())
        oldest = now - RATE_WINDOW
        return sum(n for second, n in self._seconds if oldest < second <= now) / RATE_WINDOW


class _Histogram:
    """Observations counted per bucket, with their sum: what a Prometheus histogram shows."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * (len(bounds) + 1)  # the last: above every bound
        self.sum = 0.0

    def observe(self, value: float) -> None:
        self.sum += value
        for index, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[index] += 1
                return
        self.counts[-1] += 1

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """(upper bound, observations at most that), ending with ("+Inf", all)."""
        total, rows = 0, []
        for bound, n in zip((*(repr(float(b)) for b in self.bounds), "+Inf"), self.counts,
                            strict=True):
            total += n
            rows.append((bound, total))
        return rows


@implementer(IStats)
class GatewayStats:
    """The counters of one gateway: its servers', and its requests'."""

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self.started = clock.seconds()
        self.servers: dict[str, ServerStats] = {}
        self.requests: Counter[str] = Counter()
        self.request_seconds = _Histogram(REQUEST_BUCKETS)

    def server(self, name: str) -> ServerStats:
        stats = self.servers.get(name)
        if stats is None:
            stats = self.servers[name] = ServerStats(name, self.clock)
        return stats

    def request_finished(self, outcome: str, seconds: float | None) -> None:
        self.requests[outcome] += 1
        if seconds is not None:
            self.request_seconds.observe(max(0.0, seconds))

    def received(self, server: str, kind: str) -> None:
        self.server(server).received_kinds[kind] += 1

"""
C{GET /metrics}: the gateway's figures in the Prometheus text format.

The names are a contract (operators' dashboards and alerts use them); each is
documented on its family below.  Counters come from the gateway's
L{smppgw.stats.GatewayStats}; the gauges (queue depth, window in use, link up,
inbox, dialog bindings) are read from their components at the scrape, through
C{Outbound.status()} like ServerStatus and the Status page, so that the three
never disagree.

Collection runs on the reactor's thread, synchronously, while the request is
rendered: the components are not thread-safe, so prometheus-client's own
Twisted resource, which collects on a thread pool, is not used.  No login is
asked (the listener is on loopback by default); with C{[admin] metrics_token}
set, a scrape must send C{Authorization: Bearer TOKEN}.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from twisted.web.resource import Resource
from twisted.web.server import Request

from smppgw import __version__
from smppgw.errors import OUTCOMES, Unauthorized
from smppgw.stats import RECEIVED_KINDS, GatewayStats

__all__ = ["GatewayCollector", "Metrics"]

#: The classic text format (0.0.4), which every Prometheus reads: the metrics'
#: names are plain, so generate_latest writes the same text in it.
CONTENT_TYPE = b"text/plain; version=0.0.4; charset=utf-8"
#: Every outcome a SendSignal can finish with, shown at 0 before it first happens.
_OUTCOMES = ("ok", *(cls.code for cls in OUTCOMES if cls is not Unauthorized))


class GatewayCollector:
    """A prometheus-client collector over one gateway (anything with C{stats}, C{outbound},
    C{inbound} and C{dialogs}, as L{smppgw.service.Gateway} has them)."""

    def __init__(self, gateway: Any) -> None:
        self.gateway = gateway

    def collect(self) -> Iterator[Metric]:
        gateway = self.gateway
        stats: GatewayStats = gateway.stats
        outbound = gateway.outbound
        rows = outbound.status() if outbound is not None else []
        # Counters of servers no longer configured stay: a counter must not go back.
        names = list(dict.fromkeys([*(row["name"] for row in rows), *stats.servers]))

        submitted = CounterMetricFamily(
            "smppgw_submitted_parts", "Parts the SMSC accepted (submit_sm_resp ESME_ROK).",
            labels=["server"])
        errors = CounterMetricFamily(
            "smppgw_submit_errors", "Submits the SMSC answered with an error, by its SMPP name.",
            labels=["server", "status"])
        received = CounterMetricFamily(
            "smppgw_received", "What the SMSC sent that the gateway accepted: a whole message,"
            " a part of a long one, or a delivery receipt.", labels=["server", "kind"])
        binds = CounterMetricFamily("smppgw_binds", "Successful binds.", labels=["server"])
        throttled = CounterMetricFamily(
            "smppgw_throttled", "Answers that asked to slow down (ESME_RTHROTTLED,"
            " ESME_RMSGQFUL).", labels=["server"])
        for name in names:
            server = stats.server(name)
            submitted.add_metric([name], server.sent)
            for status, count in sorted(server.failed.items()):
                errors.add_metric([name, status], count)
            for kind in RECEIVED_KINDS:
                received.add_metric([name, kind], server.received_kinds[kind])
            binds.add_metric([name], server.binds)
            throttled.add_metric([name], server.throttled)
        yield from (submitted, errors, received, binds, throttled)

        queued = GaugeMetricFamily("smppgw_queued", "Requests waiting for the SMSC.",
                                   labels=["server"])
        in_flight = GaugeMetricFamily("smppgw_in_flight", "Submits sent and not answered yet.",
                                      labels=["server"])
        link_up = GaugeMetricFamily("smppgw_link_up", "1 while the link is bound, else 0.",
                                    labels=["server"])
        for row in rows:
            queued.add_metric([row["name"]], row["queued"])
            in_flight.add_metric([row["name"]], row.get("in_flight", 0))
            link_up.add_metric([row["name"]], 1 if row["state"] == "bound" else 0)
        yield from (queued, in_flight, link_up)

        requests = CounterMetricFamily(
            "smppgw_requests", "SendSignal requests by final outcome: ok or the AMP error code.",
            labels=["outcome"])
        for outcome in dict.fromkeys([*_OUTCOMES, *sorted(stats.requests)]):
            requests.add_metric([outcome], stats.requests[outcome])
        yield requests
        histogram = stats.request_seconds
        yield HistogramMetricFamily(
            "smppgw_request_seconds", "Seconds from a SendSignal accepted to its final outcome.",
            buckets=histogram.cumulative(), sum_value=histogram.sum)

        inbound = gateway.inbound
        yield GaugeMetricFamily("smppgw_inbox", "Messages and receipts stored for a host.",
                                value=inbound.inbox_size if inbound is not None else 0)
        dialogs = gateway.dialogs
        yield GaugeMetricFamily("smppgw_dialog_bindings", "SMS Dialog bindings held.",
                                value=dialogs.size if dialogs is not None else 0)
        build = GaugeMetricFamily("smppgw_build_info", "The running version; always 1.",
                                  labels=["version"])
        build.add_metric([__version__], 1)
        yield build


class Metrics(Resource):
    """C{/metrics}, rendered on the reactor's thread from a private registry."""

    isLeaf = True

    def __init__(self, gateway: Any) -> None:
        super().__init__()
        self.gateway = gateway
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(GatewayCollector(gateway))

    def render_GET(self, request: Request) -> bytes:
        request.setHeader(b"cache-control", b"no-store")
        token = self.gateway.config.admin.metrics_token
        if token and not _bearer_matches(request.getHeader(b"authorization"), token):
            request.setResponseCode(401)
            request.setHeader(b"www-authenticate", b'Bearer realm="smppgw metrics"')
            request.setHeader(b"content-type", b"text/plain; charset=utf-8")
            return b"401 Unauthorized: this gateway's /metrics needs its metrics_token" \
                   b" as Authorization: Bearer TOKEN\n"
        request.setHeader(b"content-type", CONTENT_TYPE)
        return generate_latest(self.registry)


def _bearer_matches(header: str | bytes | None, token: str) -> bool:
    """Whether an Authorization header carries C{token} as a bearer token (in constant time)."""
    if header is None:
        return False
    if isinstance(header, str):
        header = header.encode("latin-1", "replace")
    scheme, _, given = header.strip().partition(b" ")
    if scheme.lower() != b"bearer":
        return False
    return hmac.compare_digest(given.strip(), token.encode("utf-8"))

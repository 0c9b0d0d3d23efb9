"""
Demo mode's SMSC: the built-in simulator listening on every enabled plain-TCP
server's loopback address, with every server's credentials, playing the
phones too (`smppgw.testing.demo`).  `smppgw.service.build_gateway` adds it to
the gateway when asked for a demo.
"""

from __future__ import annotations

from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService, Service
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint, UNIXServerEndpoint

from smppgw.config import Config
from smppgw.config.endpoints import is_loopback
from smppgw.testing.demo import RECEIPT_DELAY, DemoPhones, DemoPhonesFactory, socket_path
from smppgw.testing.simulator import SMSCSimulator


def demo_simulator(config: Config, reactor: Any, parent: MultiService) -> tuple[Any, Any]:
    """An SMSC simulator accepting every enabled server's credentials, listening on their
    loopback addresses, and its phones (`smppgw.testing.demo.DemoPhones`).

    It plays the phones too: it logs each SMS it gets, sends a receipt for
    each one that asks, and takes `DemoReply` on the demo socket (`smppgw.testing.demo`).
    """
    enabled = [s for s in config.servers if s.enabled]
    simulator = SMSCSimulator(
        {s.system_id: s.password for s in enabled}, reactor, log_messages=True,
        receipt_delay=RECEIPT_DELAY,
        # Reversed: where servers share a system_id, the first one's alphabet wins.
        alphabets={s.system_id: s.default_alphabet for s in reversed(enabled)})
    phones = DemoPhones(config, simulator)
    listener = _ListenAtStart(
        UNIXServerEndpoint(reactor, socket_path(config), mode=0o600, wantPID=True),
        DemoPhonesFactory(phones))
    listener.setName("demo-phones")
    # Like the AMP endpoint's: a demo whose phones cannot listen says so and stops.
    listener._raiseSynchronously = True
    listener.setServiceParent(parent)
    parent.addService(_ReceiptsCancelled(simulator))
    seen: set[tuple[str, int]] = set()
    for server in config.servers:
        if not server.enabled or server.tls or not is_loopback(server.host):
            continue
        key = (server.host, server.port)
        if key in seen:
            continue
        seen.add(key)
        host = "127.0.0.1" if server.host == "localhost" else server.host
        endpoint: Any
        if ":" in host:
            endpoint = TCP6ServerEndpoint(reactor, server.port, interface=host)
        else:
            endpoint = TCP4ServerEndpoint(reactor, server.port, interface=host)
        smsc = StreamServerEndpointService(endpoint, simulator)
        smsc.setName(f"simulator:{host}:{server.port}")
        smsc.setServiceParent(parent)
    return simulator, phones


class _ListenAtStart(StreamServerEndpointService):
    """Listens when started, not in twistd's privileged start before it: the socket's
    folder (the state folder) is made by the gateway's startService."""

    def privilegedStartService(self) -> None:
        if self.running:  # called again by startService, once running
            super().privilegedStartService()


class _ReceiptsCancelled(Service):
    """Cancels the demo simulator's pending receipts when the gateway stops."""

    def __init__(self, simulator: Any) -> None:
        self.simulator = simulator

    def stopService(self) -> None:
        super().stopService()
        self.simulator.cancel_receipts()

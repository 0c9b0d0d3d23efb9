"""
Wiring: the gateway's MultiService.

One `Link` per enabled server (named ``smsc:<name>``), the store, the
outbound queue and the AMP endpoint; with ``demo``, an SMSC simulator listening
where the configured plain-TCP loopback servers connect, started first so the
links find it.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from twisted.application.internet import StreamServerEndpointService
from twisted.application.service import MultiService
from twisted.internet.endpoints import TCP4ServerEndpoint, TCP6ServerEndpoint

from .config import Config
from .link import Link, build_endpoint
from .smpplog import SmppLog


class Gateway(MultiService):
    """The running gateway: its links by server name, and the services around them."""

    def __init__(self, config: Config, reactor: Any) -> None:
        super().__init__()
        self.config = config
        self.reactor = reactor
        self.log = SmppLog("*", config.module.log_level)
        self.links: dict[str, Link] = {}
        self.simulator: Any = None

    def add_link(self, link: Link) -> None:
        self.links[link.server.name] = link
        link.setServiceParent(self)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def demo_simulator(config: Config, reactor: Any, parent: MultiService) -> Any:
    """An SMSC simulator accepting every enabled server's credentials, listening on their loopback addresses."""
    from .simulator import SMSCSimulator

    accounts = {s.system_id: s.password for s in config.servers if s.enabled}
    simulator = SMSCSimulator(accounts, reactor)
    seen: set[tuple[str, int]] = set()
    for server in config.servers:
        if not server.enabled or server.tls or not _is_loopback(server.host):
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
        listener = StreamServerEndpointService(endpoint, simulator)
        listener.setName(f"simulator:{host}:{server.port}")
        listener.setServiceParent(parent)
    return simulator


def build_gateway(config: Config, reactor: Any, *, demo: bool = False) -> Gateway:
    """The gateway for `config`, on `reactor`."""
    gateway = Gateway(config, reactor)
    if demo:
        gateway.simulator = demo_simulator(config, reactor, gateway)
    for server in config.servers:
        if not server.enabled:
            continue
        log = SmppLog(server.name, config.module.log_level)
        endpoint = build_endpoint(reactor, server, config.module.source_address, log)
        gateway.add_link(Link(server, endpoint, reactor, config.module.log_level))
    return gateway

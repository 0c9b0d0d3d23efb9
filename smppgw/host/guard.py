"""
What stands between the AMP endpoint and a peer that has not logged in.

`peer_of` says who a connection comes from: for TCP its address (an IPv6
peer by its /64, the block one machine usually holds); for a unix socket the
peer process's uid from the kernel (``SO_PEERCRED``), since a unix client has
no address of its own.  The endpoint's socket is mode 0600, so every local
peer is the gateway's own user (or root): on a unix socket "per peer" is in
practice one bucket for all local clients.

`LoginThrottle` counts wrong secrets per peer as a token bucket: `BURST` in a
row are checked, then one every `REFILL` seconds; meanwhile a Login from that
peer is refused without its secret being looked at.  It logs at most two
lines per burst of failures, the first wrong secret and the start of the
refusals, never one per guess.
"""

from __future__ import annotations

import ipaddress
import socket
import struct
from dataclasses import dataclass
from typing import Any

from twisted.internet.address import IPv4Address, IPv6Address, UNIXAddress

from smppgw.smpp.log import SmppLog

#: Wrong secrets a peer may give in a row before its Logins are refused.
BURST = 5
#: Seconds after which a refused peer may try once more (one token back).
REFILL = 10.0
#: Peers remembered at most; past this, the longest-known ones are forgotten.
MAX_PEERS = 10_000


@dataclass(frozen=True)
class Peer:
    """Who a connection comes from: ``key`` for counting, ``shown`` for log lines."""

    key: str
    shown: str


def peer_of(transport: Any) -> Peer:
    """The peer of a connection's ``transport``."""
    address = transport.getPeer()
    if isinstance(address, (IPv4Address, IPv6Address)):
        host = f"[{address.host}]" if ":" in address.host else address.host
        ip = ipaddress.ip_address(address.host.split("%", 1)[0])
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        key = str(ipaddress.ip_network(f"{ip}/64", strict=False)) if ip.version == 6 else str(ip)
        return Peer(key, f"{host}:{address.port}")
    if isinstance(address, UNIXAddress):
        credentials = _unix_credentials(transport)
        if credentials is None:
            return Peer("unix", "a unix socket peer")
        pid, uid = credentials
        return Peer(f"uid {uid}", f"pid {pid} uid {uid}")
    return Peer(str(address), str(address))


def _unix_credentials(transport: Any) -> tuple[int, int] | None:
    """The (pid, uid) of a unix socket's peer, where the system tells (Linux)."""
    option = getattr(socket, "SO_PEERCRED", None)
    handle = getattr(transport, "getHandle", None)
    if option is None or handle is None:
        return None
    try:
        pid, uid, _gid = struct.unpack("3i", handle().getsockopt(
            socket.SOL_SOCKET, option, struct.calcsize("3i")))
    except (OSError, AttributeError, struct.error):
        return None
    return pid, uid


class _Bucket:
    __slots__ = ("tokens", "updated", "failures", "started", "refusing")

    def __init__(self, now: float) -> None:
        self.tokens = float(BURST)
        self.updated = now
        self.failures = 0
        self.started = now
        self.refusing = False


class LoginThrottle:
    """Wrong secrets per peer, and whether a peer's next Login is looked at."""

    def __init__(self, clock: Any, log: SmppLog, burst: int = BURST, refill: float = REFILL,
                 max_peers: int = MAX_PEERS) -> None:
        self.clock = clock
        self.log = log
        self.burst = burst
        self.refill = refill
        self.max_peers = max_peers
        self._buckets: dict[str, _Bucket] = {}

    def _bucket(self, peer: Peer) -> _Bucket | None:
        """The peer's bucket brought up to date; None (and forgotten) once it is full again."""
        bucket = self._buckets.get(peer.key)
        if bucket is None:
            return None
        now = self.clock.seconds()
        bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) / self.refill)
        bucket.updated = now
        if bucket.tokens >= self.burst:
            del self._buckets[peer.key]
            return None
        return bucket

    def retry_in(self, peer: Peer) -> float:
        """Seconds until a Login from ``peer`` is looked at again; 0 when it is now."""
        bucket = self._bucket(peer)
        if bucket is None or bucket.tokens >= 1:
            return 0.0
        return (1 - bucket.tokens) * self.refill

    def failed(self, peer: Peer) -> None:
        """``peer`` gave a wrong secret."""
        bucket = self._bucket(peer)
        now = self.clock.seconds()
        if bucket is None:
            if len(self._buckets) >= self.max_peers:
                del self._buckets[next(iter(self._buckets))]
            bucket = self._buckets[peer.key] = _Bucket(now)
            self.log.problem("AMP host {peer} gave a wrong secret: closing", peer=peer.shown)
        bucket.tokens -= 1
        bucket.failures += 1
        if bucket.tokens < 1 and not bucket.refusing:
            bucket.refusing = True
            self.log.problem(
                "AMP host {peer}: {failures} wrong secrets in {elapsed:.0f} s; its Logins are"
                " refused, one let through every {refill:g} s, until it stops",
                peer=peer.shown, failures=bucket.failures, elapsed=now - bucket.started,
                refill=self.refill)

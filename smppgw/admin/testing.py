"""
Fakes for testing the admin without a network or a running gateway: a gateway with
the admin's API that records what it is asked, and a browser that speaks HTTP to an
L{AdminSite} over an in-memory transport (cookies kept, forms posted).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from html import unescape
from typing import Any
from urllib.parse import urlencode

from twisted.internet.address import IPv4Address
from twisted.internet.defer import Deferred, maybeDeferred
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.task import Clock
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from smppgw.config import Config, diff
from smppgw.stats import GatewayStats

__all__ = ["FakeGateway", "Response", "TestBrowser", "synchronous"]


def synchronous(f: Any, *args: Any) -> Deferred[Any]:
    """A runner that calls C{f} at once, on the caller's thread (for tests)."""
    return maybeDeferred(f, *args)


class FakeOutbound:
    """Status rows as the outbound queue gives them."""

    def __init__(self, gateway: FakeGateway) -> None:
        self.gateway = gateway

    def status(self) -> list[dict[str, Any]]:
        return [{"name": s.name, "mode": s.mode, "address": s.address,
                 "state": "bound" if s.enabled else "disconnected", "queued": 0, "sent": 0,
                 "received": 0, "last_error": "", "rate": None, "in_flight": 0,
                 "window": s.window, "paused": ""}
                for s in self.gateway.config.servers]


@dataclass
class FakeGateway:
    """The gateway's admin API; C{applied} and C{actions} record what it was asked."""

    config: Config
    config_path: str | None = None
    applied: list[Config] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)
    #: What /metrics and /healthz read: the counters, the store (None: not started).
    stats: GatewayStats = field(default_factory=lambda: GatewayStats(Clock()))
    store: Any = None
    inbound: Any = None
    dialogs: Any = None
    #: In demo mode, the simulator's phones (the Phone page shows them); None otherwise.
    phones: Any = None

    def __post_init__(self) -> None:
        self.outbound = FakeOutbound(self)

    def apply_config(self, new: Config) -> list[str]:
        change = diff(self.config, new)
        self.applied.append(new)
        self.config = new
        lines = [f"server {c.name!r} {c.kind}" for c in change.servers]
        return lines + [f"module.{name} changed" for name in change.module]

    def disconnect(self, name: str) -> None:
        self.actions.append(("disconnect", name))

    def rebind(self, name: str) -> None:
        self.actions.append(("rebind", name))


@implementer(ISSLTransport)
class _TLSTransport(StringTransport):  # type: ignore[misc]  # a TLS transport for isSecure()
    def getPeerCertificate(self) -> None:
        return None

    def setTcpNoDelay(self, enabled: bool) -> None:
        pass


@dataclass
class Response:
    code: int
    headers: dict[str, list[str]]
    body: str

    @property
    def text(self) -> str:
        """The body with its HTML entities read, to look for a message in."""
        return unescape(self.body)

    def header(self, name: str) -> str:
        return self.headers.get(name.lower(), [""])[0]

    def value(self, name: str) -> str:
        """The value of the input or button called C{name} in the page."""
        match = re.search(r'<input[^>]*\bname="' + re.escape(name) + r'"[^>]*>', self.body)
        if match is None:
            raise KeyError(name)
        value = re.search(r'\bvalue="([^"]*)"', match[0])
        return unescape(value[1]) if value else ""

    def error(self, name: str) -> str:
        """The error shown beside input C{name}; "" when none."""
        match = re.search(r'id="error-' + re.escape(name) + r'">([^<]*)<', self.body)
        return unescape(match[1]) if match else ""


class TestBrowser:
    """Requests to C{site} from one client address, its cookies kept as a browser keeps them."""

    def __init__(self, site: Any, client: str = "127.0.0.1", tls: bool = False) -> None:
        self.site = site
        self.client = client
        self.tls = tls
        self.cookies: dict[str, str] = {}
        self.set_cookies: list[str] = []
        self.pending: list[StringTransport] = []

    def request(self, method: str, path: str, form: dict[str, str] | None = None,
                headers: dict[str, str] | None = None) -> Response:
        peer = IPv4Address("TCP", self.client, 40000)
        transport = (_TLSTransport if self.tls else StringTransport)(
            peerAddress=peer, hostAddress=IPv4Address("TCP", "127.0.0.1", 8780))
        protocol = self.site.buildProtocol(peer)
        protocol.makeConnection(transport)
        body = urlencode(form).encode() if form is not None else b""
        lines = [f"{method} {path} HTTP/1.0", "Host: localhost",
                 *(f"{name}: {value}" for name, value in (headers or {}).items())]
        if self.cookies:
            lines.append("Cookie: " + "; ".join(f"{k}={v}" for k, v in self.cookies.items()))
        if form is not None:
            lines += ["Content-Type: application/x-www-form-urlencoded",
                      f"Content-Length: {len(body)}"]
        protocol.dataReceived(("\r\n".join(lines) + "\r\n\r\n").encode() + body)
        response = self.response(transport)
        if response.code == 0:
            self.pending.append(transport)
        return response

    def response(self, transport: StringTransport) -> Response:
        raw = transport.value()
        if b"\r\n\r\n" not in raw:
            return Response(0, {}, "")
        head, body = raw.split(b"\r\n\r\n", 1)
        status, *header_lines = head.decode("latin-1").split("\r\n")
        headers: dict[str, list[str]] = {}
        for line in header_lines:
            name, _, value = line.partition(": ")
            headers.setdefault(name.lower(), []).append(value)
        for cookie in headers.get("set-cookie", []):
            self.set_cookies.append(cookie)
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if "max-age=0" in cookie.lower():
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return Response(int(status.split()[1]), headers, body.decode("utf-8"))

    def finish(self) -> Response:
        """The response to the oldest request still being answered when it was made."""
        return self.response(self.pending.pop(0))

    def get(self, path: str, headers: dict[str, str] | None = None) -> Response:
        return self.request("GET", path, headers=headers)

    def post(self, path: str, form: dict[str, str]) -> Response:
        return self.request("POST", path, form)

    def submit(self, page: Response, path: str, changes: dict[str, str | bool]) -> Response:
        """Post the form of C{page} as a browser would, with C{changes} made to its fields."""
        form = _fields(page.body)
        for name, value in changes.items():
            if value is True:
                form[name] = "on"
            elif value is False:
                form.pop(name, None)
            else:
                form[name] = str(value)
        return self.post(path, form)

    def log_in(self, password: str) -> Response:
        page = self.get("/login")
        return self.post("/login", {"csrf": page.value("csrf"), "password": password})


def _fields(body: str) -> dict[str, str]:
    """What a browser would submit of the first form in C{body}: inputs, selections, ticks."""
    form_match = re.search(r"<form[^>]*>(.*?)</form>", body, re.S)
    if form_match is not None and 'action="/logout"' in form_match[0]:
        form_match = re.search(r'<form method="post" action="/(?!logout)[^"]*">(.*?)</form>',
                               body, re.S)
    text = form_match[1] if form_match else body
    form: dict[str, str] = {}
    for tag in re.findall(r"<input[^>]*>", text):
        name = re.search(r'\bname="([^"]*)"', tag)
        if name is None:
            continue
        value = re.search(r'\bvalue="([^"]*)"', tag)
        if 'type="checkbox"' in tag:
            if re.search(r"\schecked\b", tag):
                form[unescape(name[1])] = "on"
            continue
        form[unescape(name[1])] = unescape(value[1]) if value else ""
    for name, options in re.findall(r'<select[^>]*\bname="([^"]*)"[^>]*>(.*?)</select>', text,
                                    re.S):
        option = (re.search(r'<option value="([^"]*)" selected>', options)
                  or re.search(r'<option value="([^"]*)"', options))
        form[unescape(name)] = unescape(option[1]) if option is not None else ""
    return form

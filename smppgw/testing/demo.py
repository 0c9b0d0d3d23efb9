"""
Demo mode's phones: an SMS from a phone to the gateway, asked for from the command line or the web admin.

With ``twistd smppgw --demo`` (``bin/demo``) the built-in SMSC simulator logs
each SMS it gets and sends a delivery receipt for each one that asked (see
`smppgw.testing.simulator`).  `DemoPhones` lets a phone answer: ``smppgw demo-reply
+15551234 "@b: hi"`` asks it, with the AMP command `DemoReply`, to have the
simulator send that text from +15551234 to the gateway as a deliver_sm.

`DemoReply` is answered on a unix socket of its own, ``demo.sock`` in the
gateway's state folder (mode 0600, like the default AMP socket), that exists
only while a demo runs, rather than on the gateway's AMP endpoint: the hosts'
contract (`smppgw.host.commands`) carries no command that only a demo answers, a gateway
run for real has no demo code on its endpoint to refuse or to secure, and the
socket's absence is itself the answer "not in demo mode".

The web admin's Phone page (`smppgw.admin.phone`) offers the same: it shows what
the phones got (`seen`), checks a reply as `reply` does (`check`) and sends it with
`reply`.  A reply needs a number and some text, no more parts than the server's
``max_parts``, and a server that receives.

Whom a phone answers: the address that last sent it an SMS over the server (as
a phone's reply goes to the number it came from), else the server's fixed
``sender``.  Which server: the one named, else the one that last sent to the
phone, else the first enabled one that receives.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar, NamedTuple

from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory
from twisted.protocols import amp
from twisted.python.failure import Failure

from smppgw.config import Config, ServerConfig
from smppgw.errors import (
    BadAddressError,
    BadRequest,
    SignalError,
    TooLongError,
    UnknownServerError,
    amp_errors,
)
from smppgw.smpp.codec import PDU
from smppgw.smpp.constants import STATUS_NAMES
from smppgw.sms.address import BadAddress, SmppAddress, compose_sender, parse_number
from smppgw.sms.textcodec import TooLong, encode_message
from smppgw.testing.phonebook import LAST_MESSAGES, Phone, phones_seen, shown_address
from smppgw.testing.simulator import NotBound, SMSCSimulator

#: The demo socket's file name, in the state folder (that of the store).
SOCKET_NAME = "demo.sock"
#: Seconds between the simulator accepting a submit that asked for a receipt and sending it.
RECEIPT_DELAY = 1.0


class NotBoundError(SignalError):
    """The server the phone would answer through has no receiver bound to the simulator."""

    code = "NOT_BOUND"


class SmsRefused(SignalError):
    """The gateway answered the phone's deliver_sm with an error status."""

    code = "SMS_REFUSED"


class DemoReply(amp.Command):
    """Have the simulator send ``body`` from ``phone`` to the gateway (through ``server``, if given).

    Answers once the gateway has answered every deliver_sm of it: ``server``
    it went through, ``source`` (the phone) and ``destination`` (whom it answered).
    """

    arguments = [
        (b"phone", amp.Unicode()),
        (b"body", amp.Unicode()),
        (b"server", amp.Unicode(optional=True)),
    ]
    response = [
        (b"server", amp.Unicode()),
        (b"source", amp.Unicode()),
        (b"destination", amp.Unicode()),
    ]
    errors: ClassVar[dict[type[Exception], bytes]] = amp_errors(
        BadAddressError, BadRequest, TooLongError, UnknownServerError, NotBoundError, SmsRefused)


def socket_path(config: Config) -> str:
    """Where a demo with ``config`` listens for `DemoReply`: ``demo.sock`` beside the store."""
    return os.path.join(config.store.state_dir or ".", SOCKET_NAME)


class _Route(NamedTuple):
    """Where a reply goes: from `number`, through `server`, to (address, TON, NPI)."""

    number: SmppAddress
    server: ServerConfig
    destination: tuple[str, int, int]


class DemoPhones:
    """The phones of a demo: `reply` sends an SMS from one of them through `simulator`,
    `seen` tells what they got."""

    def __init__(self, config: Config, simulator: SMSCSimulator) -> None:
        self.config = config
        self.simulator = simulator
        self._references = 0

    def seen(self, last: int = LAST_MESSAGES) -> list[Phone]:
        """The phones that got an SMS, the one that got one last first (see `phones_seen`)."""
        return phones_seen(self.simulator, self.config, last)

    def check(self, phone: str, body: str, server: str | None = None) -> dict[str, SignalError]:
        """What stops `reply` sending ``body`` from ``phone``, by what it is about
        ("phone", "text" or "server"); empty when nothing does."""
        return self._route(phone, body, server)[1]

    def reply(self, phone: str, body: str, server: str | None = None) -> Deferred[dict[str, str]]:
        """Send ``body`` from ``phone``; fires once the gateway has answered it (see `DemoReply`).

        @raise SignalError: the first of `check`'s problems; nothing was sent.
        """
        route, problems = self._route(phone, body, server)
        if route is None:
            raise next(iter(problems.values()))
        number, chosen, (destination, dest_ton, dest_npi) = route
        self._references = (self._references + 1) % 256
        d = self.simulator.deliver_text(
            number.addr, destination, body, source_ton=number.ton, source_npi=number.npi,
            dest_ton=dest_ton, dest_npi=dest_npi, system_id=chosen.system_id,
            reference=self._references)

        def answered(responses: list[PDU]) -> dict[str, str]:
            refused = [r.command_status for r in responses if r.command_status]
            if refused:
                names = ", ".join(STATUS_NAMES.get(s, f"0x{s:08X}") for s in refused)
                raise SmsRefused(f"the gateway answered the deliver_sm with {names}:"
                                 " its log says why")
            return {"server": chosen.name, "source": shown_address(number.addr, number.ton),
                    "destination": shown_address(destination, dest_ton)}

        def not_bound(failure: Failure) -> dict[str, str]:
            failure.trap(NotBound)
            raise NotBoundError(f"server {chosen.name!r} (system_id {chosen.system_id!r}) has"
                                " no receiver bound to the simulator now")

        return d.addCallbacks(answered, not_bound)

    def _route(self, phone: str, body: str, server: str | None
               ) -> tuple[_Route | None, dict[str, SignalError]]:
        """The number, server and destination of a reply, or None and what is wrong with it."""
        problems: dict[str, SignalError] = {}
        number: SmppAddress | None = None
        if not phone.strip():
            problems["phone"] = BadAddressError("no phone number: pick one or type one, such"
                                                " as +15551234")
        else:
            try:
                number = parse_number(phone.strip())
            except BadAddress as error:
                problems["phone"] = BadAddressError(f"phone {phone!r}: {error}")
        chosen: ServerConfig | None = None
        last: tuple[str, str, int, int] | None = None
        try:
            chosen = self._server(server) if server is not None else None
            last = self._last_submit(number.addr, chosen) if number is not None else None
            if chosen is None:
                chosen = self._default_server(last)
                if number is not None and last is not None and last[0] != chosen.system_id:
                    last = self._last_submit(number.addr, chosen)
        except UnknownServerError as error:
            problems["server"] = error
        if not body.strip():
            problems["text"] = BadRequest("the text is empty: a phone sends at least one"
                                          " character")
        elif chosen is not None:
            try:
                encode_message(body, "gsm", "udh", max_parts=chosen.max_parts,
                               default_alphabet=self.simulator.alphabets.get(
                                   chosen.system_id, "gsm"))
            except TooLong as error:
                problems["text"] = TooLongError(
                    f"the text needs {error.parts_needed} SMS parts, more than the"
                    f" {error.max_parts} that server {chosen.name!r} takes (its max_parts)")
        if problems or number is None or chosen is None:
            return None, problems
        destination = last[1:] if last else self._fixed_sender(chosen)
        return _Route(number, chosen, destination), problems

    def _server(self, name: str) -> ServerConfig:
        try:
            server = self.config.server(name)
        except KeyError:
            names = ", ".join(repr(s.name) for s in self.config.servers)
            raise UnknownServerError(f"no server is named {name!r} (configured: {names})"
                                     ) from None
        if not server.enabled or not server.can_receive:
            raise UnknownServerError(f"server {name!r} is {server.mode!r}: it receives no SMS")
        return server

    def _default_server(self, last: tuple[str, str, int, int] | None) -> ServerConfig:
        receiving = [s for s in self.config.servers if s.enabled and s.can_receive]
        if last is not None:
            for server in receiving:
                if server.system_id == last[0]:
                    return server
        if not receiving:
            raise UnknownServerError("no enabled server receives SMS (mode send-and-receive"
                                     " or receive-only)")
        return receiving[0]

    def _last_submit(self, phone: str,
                     server: ServerConfig | None) -> tuple[str, str, int, int] | None:
        """(system_id, source_addr, its TON, its NPI) of the last submit to ``phone`` (over ``server``)."""
        for received in reversed(self.simulator.received):
            pdu = received.pdu
            if pdu.command not in ("submit_sm", "data_sm"):
                continue
            if server is not None and received.system_id != server.system_id:
                continue
            if _latin1(pdu.get("destination_addr")).lstrip("+") == phone:
                return (received.system_id or "", _latin1(pdu.get("source_addr")),
                        _number(pdu.get("source_addr_ton")), _number(pdu.get("source_addr_npi")))
        return None

    def _fixed_sender(self, server: ServerConfig) -> tuple[str, int, int]:
        """The server's ``sender`` when it names one address (no "*"), else an empty one."""
        if "*" in server.sender or not server.sender:
            return "", 0, 1
        try:
            sender = compose_sender(server.sender, "", server.source_ton, server.source_npi)
        except BadAddress:
            return "", 0, 1
        return sender.addr, sender.ton, sender.npi


def _latin1(value: object) -> str:
    return value.decode("latin-1") if isinstance(value, bytes) else ""


def _number(value: object) -> int:
    return value if isinstance(value, int) else 0


class DemoPhonesProtocol(amp.AMP):
    """One command-line connection to the demo socket."""

    def __init__(self, phones: DemoPhones) -> None:
        super().__init__()
        self.phones = phones

    @DemoReply.responder
    def demo_reply(self, phone: str, body: str, server: str | None = None
                   ) -> Deferred[dict[str, str]]:
        return self.phones.reply(phone, body, server)


class DemoPhonesFactory(Factory):
    """Builds a `DemoPhonesProtocol` per connection to the demo socket."""

    noisy = False

    def __init__(self, phones: DemoPhones) -> None:
        self.phones = phones

    def buildProtocol(self, addr: Any) -> DemoPhonesProtocol:
        return DemoPhonesProtocol(self.phones)

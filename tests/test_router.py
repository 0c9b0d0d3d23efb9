"""Tests for smppgw.relay.router: which server a recipient address picks."""

from __future__ import annotations

from dataclasses import dataclass

from twisted.trial.unittest import SynchronousTestCase

from smppgw.errors import ServerDisabledError, UnknownServerError
from smppgw.relay.router import route
from smppgw.sms.address import BadAddress, Recipient


@dataclass(frozen=True)
class FakeServer:
    """The three facts routing reads from a configured server."""

    name: str
    mode: str = "send-and-receive"

    @property
    def can_send(self) -> bool:
        return self.mode in ("send-only", "send-and-receive")


PROVIDER1 = FakeServer("provider1")
MASSLIST = FakeServer("masslist", "send-only")
INBOX = FakeServer("inbox", "receive-only")
SPARE = FakeServer("spare", "off")
UNNAMED = FakeServer("")


class SmppDomainTests(SynchronousTestCase):
    """+E164@smpp picks the empty-named server, else the first that can send."""

    def test_first_sending_server(self) -> None:
        """Without an empty-named server, the first sending server in config order is used."""
        server, recipient = route("+74992713152@smpp", [INBOX, SPARE, PROVIDER1, MASSLIST])
        self.assertEqual((server, recipient), (PROVIDER1, Recipient("74992713152", "smpp")))

    def test_empty_named_server_wins(self) -> None:
        """An enabled empty-named server is preferred wherever it is in the list."""
        server, _ = route("+1@smpp", [PROVIDER1, MASSLIST, UNNAMED])
        self.assertIs(server, UNNAMED)

    def test_disabled_empty_named_server_is_skipped(self) -> None:
        """An empty-named server that cannot send is passed over."""
        server, _ = route("+1@smpp", [FakeServer("", "receive-only"), MASSLIST])
        self.assertIs(server, MASSLIST)

    def test_no_sending_server(self) -> None:
        """With no server able to send, the signal is refused as ServerDisabledError."""
        error = self.assertRaises(ServerDisabledError, route, "+1@smpp", [INBOX, SPARE])
        self.assertIn("no server", str(error))

    def test_no_servers(self) -> None:
        """An empty configuration refuses with ServerDisabledError."""
        self.assertRaises(ServerDisabledError, route, "+1@smpp", [])


class NamedDomainTests(SynchronousTestCase):
    """+E164@name._smpp picks that server."""

    def test_named(self) -> None:
        """The named server is used."""
        server, recipient = route("+74992713152@masslist._smpp", [PROVIDER1, MASSLIST])
        self.assertIs(server, MASSLIST)
        self.assertEqual(recipient, Recipient("74992713152", "named", "masslist"))

    def test_named_case_insensitive(self) -> None:
        """A name differing only in case still finds the server."""
        server, _ = route("+1@MassList._smpp", [PROVIDER1, MASSLIST])
        self.assertIs(server, MASSLIST)

    def test_exact_case_beats_folded(self) -> None:
        """When two servers differ only in case, the exact match wins."""
        lower, upper = FakeServer("eu"), FakeServer("EU")
        self.assertIs(route("+1@EU._smpp", [lower, upper])[0], upper)
        self.assertIs(route("+1@eu._smpp", [lower, upper])[0], lower)

    def test_ambiguous_folded_name(self) -> None:
        """A name matching several servers only case-insensitively is refused."""
        servers = [FakeServer("eu"), FakeServer("EU")]
        error = self.assertRaises(UnknownServerError, route, "+1@Eu._smpp", servers)
        self.assertIn("several", str(error))

    def test_empty_name(self) -> None:
        """+E164@._smpp names the empty-named server."""
        self.assertIs(route("+1@._smpp", [PROVIDER1, UNNAMED])[0], UNNAMED)

    def test_unknown(self) -> None:
        """An unconfigured name is UnknownServerError naming it."""
        error = self.assertRaises(UnknownServerError, route, "+1@nowhere._smpp", [PROVIDER1])
        self.assertIn("'nowhere'", str(error))

    def test_off(self) -> None:
        """A server that is off is ServerDisabledError naming it and its mode."""
        error = self.assertRaises(ServerDisabledError, route, "+1@spare._smpp", [PROVIDER1, SPARE])
        self.assertIn("'spare'", str(error))
        self.assertIn("off", str(error))

    def test_receive_only(self) -> None:
        """A receive-only server is ServerDisabledError naming it and its mode."""
        error = self.assertRaises(ServerDisabledError, route, "+1@inbox._smpp", [INBOX, PROVIDER1])
        self.assertIn("'inbox'", str(error))
        self.assertIn("receive-only", str(error))


class TelnumDomainTests(SynchronousTestCase):
    """+E164@telnum goes to the host's gateway, else the default one, else as @smpp."""

    def test_gateway(self) -> None:
        """The per-message gateway wins over the default gateway."""
        server, recipient = route(
            "+1555@telnum", [PROVIDER1, MASSLIST], default_gateway="provider1", gateway="masslist"
        )
        self.assertIs(server, MASSLIST)
        self.assertEqual(recipient, Recipient("1555", "telnum"))

    def test_default_gateway(self) -> None:
        """Without a per-message gateway the default gateway is used."""
        server, _ = route("+1555@telnum", [PROVIDER1, MASSLIST], default_gateway="masslist")
        self.assertIs(server, MASSLIST)

    def test_empty_gateway_means_none(self) -> None:
        """An empty per-message gateway falls back to the default gateway."""
        server, _ = route("+1555@telnum", [PROVIDER1, MASSLIST], "masslist", gateway="")
        self.assertIs(server, MASSLIST)

    def test_no_gateway_routes_as_smpp(self) -> None:
        """Without any gateway, @telnum picks like @smpp."""
        self.assertIs(route("+1555@telnum", [INBOX, MASSLIST, UNNAMED])[0], UNNAMED)
        self.assertIs(route("+1555@telnum", [INBOX, MASSLIST])[0], MASSLIST)

    def test_unknown_gateway(self) -> None:
        """A gateway naming no server is UnknownServerError."""
        self.assertRaises(UnknownServerError, route, "+1@telnum", [PROVIDER1], gateway="other")
        self.assertRaises(UnknownServerError, route, "+1@telnum", [PROVIDER1], default_gateway="other")

    def test_disabled_gateway(self) -> None:
        """A gateway that cannot send is ServerDisabledError, with no fallback to another server."""
        error = self.assertRaises(
            ServerDisabledError, route, "+1@telnum", [PROVIDER1, SPARE], default_gateway="spare"
        )
        self.assertIn("'spare'", str(error))

    def test_gateway_case_insensitive(self) -> None:
        """Gateway names match servers case-insensitively too."""
        self.assertIs(route("+1@telnum", [PROVIDER1, MASSLIST], gateway="MASSLIST")[0], MASSLIST)


class BadAddressTests(SynchronousTestCase):
    """Addresses the router cannot use are BadAddress."""

    def test_other_domain(self) -> None:
        """Any other domain is BadAddress."""
        self.assertRaises(BadAddress, route, "+1@example.com", [PROVIDER1])

    def test_bad_number(self) -> None:
        """A bad number is BadAddress even when a server could send."""
        self.assertRaises(BadAddress, route, "12a45@smpp", [PROVIDER1])

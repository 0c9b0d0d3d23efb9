"""The operator's queries and actions: what waits, rejecting one message, lookups, dialog bindings."""

from __future__ import annotations

from typing import Any

from twisted.internet.defer import Deferred
from twisted.internet.task import Clock
from twisted.trial.unittest import SynchronousTestCase

from smppgw.config import parse_config
from smppgw.errors import BadRequest, NotFound, NotRelayed
from smppgw.relay.dialogs import DialogTable
from smppgw.relay.operator import Operator, Part, phone_digits
from smppgw.relay.outbound import Outbound
from smppgw.store.sqlite import Store

from .test_queue import CONFIG, FakeLink


class OperatorTestCase(SynchronousTestCase):
    """An outbound queue on fake links and a store in memory, and its operator."""

    extra = 'sender = "*"\nregistered_delivery = true'

    def setUp(self) -> None:
        self.config = parse_config(CONFIG.format(extra=self.extra))
        self.clock = Clock()
        self.clock.advance(1000)
        self.store = Store(":memory:", self.clock)
        self.links = {s.name: FakeLink(s) for s in self.config.servers if s.enabled}
        self.dialogs = DialogTable(self.clock, 3600, self.store)
        self.outbound = Outbound(self.config, self.links, self.store, self.clock,  # type: ignore[arg-type]
                                 self.dialogs)
        self.addCleanup(self.outbound.stop)
        self.operator = Operator(self.outbound)

    def send(self, request_id: str, recipient: str = "+15551234@smpp", body: str = "hello",
             sender: str = "alice@example.com") -> Deferred[Any]:
        d = self.outbound.send_signal(request_id, "MESSAGE", sender, recipient, body)
        self.clock.advance(0)
        return d

    def bind(self, name: str = "") -> None:
        self.links[name].set_state("bound")
        self.clock.advance(0)


class QueueTests(OperatorTestCase):
    def test_oldest_first_with_age(self) -> None:
        """Each sending server's waiting messages, oldest first, with their age and parts."""
        self.send("r1")
        self.clock.advance(30)
        self.send("r2", "+15550001@bulk._smpp", "x" * 200)
        self.send("r3")
        self.clock.advance(5)
        queues = {q.server: q for q in self.operator.queues()}
        self.assertEqual(sorted(queues), ["", "bulk"])
        self.assertEqual([(w.request_id, w.age, w.parts, w.sent, w.host)
                          for w in queues[""].waiting],
                         [("r1", 35.0, 1, 0, "restored"), ("r3", 5.0, 1, 0, "restored")])
        self.assertEqual((queues["bulk"].total, queues["bulk"].waiting[0].parts), (1, 2))

    def test_one_server_and_a_limit(self) -> None:
        """Asked for one server and fewer rows, only those; the total still counts them all."""
        for i in range(3):
            self.send(f"r{i}")
        [queue] = self.operator.queues("", limit=2)
        self.assertEqual((queue.total, [w.request_id for w in queue.waiting]), (3, ["r0", "r1"]))

    def test_unknown_and_receive_only_servers(self) -> None:
        """A server that does not exist, or sends nothing, is NOT_FOUND naming why."""
        error = self.assertRaises(NotFound, self.operator.queues, "nowhere")
        self.assertEqual(str(error), "there is no server 'nowhere'")
        error = self.assertRaises(NotFound, self.operator.queues, "inbox")
        self.assertEqual(str(error), "server 'inbox' sends nothing (its mode, or it is off)")

    def test_in_flight_and_sent_parts(self) -> None:
        """A message whose first part the SMSC accepted shows it sent, the second in flight."""
        self.send("long", body="y" * 200)
        self.bind()
        self.links[""].answer(0, "M1")
        self.clock.advance(0)
        [queue] = self.operator.queues("")
        [waiting] = queue.waiting
        self.assertEqual((waiting.parts, waiting.sent, waiting.in_flight), (2, 1, 1))


class RejectTests(OperatorTestCase):
    def test_host_hears_not_relayed(self) -> None:
        """A rejected message's host gets NOT_RELAYED from the operator; it leaves the queue, unsent."""
        d = self.send("stuck", body="first")
        self.send("next", body="second")
        rejected = self.operator.reject("stuck")
        self.assertEqual((rejected.request_id, rejected.server), ("stuck", ""))
        self.clock.advance(0)
        failure = self.failureResultOf(d, NotRelayed)
        self.assertEqual(failure.value.reason, "rejected by the operator")
        [queue] = self.operator.queues("")
        self.assertEqual([w.request_id for w in queue.waiting], ["next"])
        self.bind()
        self.assertEqual([pdu.params["short_message"][-6:] for pdu, _ in self.links[""].submits],
                         [b"second"])
        row = self.store.outbound("stuck")
        assert row is not None
        self.assertEqual(row.outcome, {"ok": False, "code": "NOT_RELAYED",
                                       "reason": "rejected by the operator"})

    def test_asking_again_gets_the_rejection(self) -> None:
        """A host that sends the rejected request_id again gets the same outcome; nothing is sent."""
        self.send("stuck").addErrback(lambda failure: None)
        self.operator.reject("stuck")
        self.clock.advance(0)
        self.bind()
        failure = self.failureResultOf(self.send("stuck"), NotRelayed)
        self.assertEqual(failure.value.reason, "rejected by the operator")
        self.assertEqual(self.links[""].submits, [])

    def test_parts_sent_are_named(self) -> None:
        """Rejecting a message some parts of which were sent says how many."""
        d = self.send("long", body="y" * 200)
        self.bind()
        self.links[""].answer(0, "M1")
        self.clock.advance(0)
        self.operator.reject("long")
        self.clock.advance(0)
        self.assertEqual(self.failureResultOf(d, NotRelayed).value.reason,
                         "rejected by the operator (1 of 2 parts sent)")

    def test_not_queued(self) -> None:
        """An unknown request_id is NOT_FOUND; a finished one is refused with its outcome."""
        self.assertEqual(str(self.assertRaises(NotFound, self.operator.reject, "nope")),
                         "there is no request 'nope'")
        self.send("r1").addErrback(lambda failure: None)
        self.operator.reject("r1")
        self.clock.advance(0)
        error = self.assertRaises(BadRequest, self.operator.reject, "r1")
        self.assertEqual(str(error), "request 'r1' is no longer queued: NOT_RELAYED: rejected by"
                                     " the operator")


class LookupTests(OperatorTestCase):
    def relayed(self, request_id: str, recipient: str = "+15551234@smpp",
                message_id: str = "M1") -> None:
        self.send(request_id, recipient)
        self.bind()
        self.links[""].answer(0, message_id)
        self.clock.advance(0)

    def test_by_request_id(self) -> None:
        """A relayed message shows its server, addresses, time, message id and awaited receipt."""
        self.relayed("r1")
        [message] = self.operator.lookup("r1")
        self.assertEqual((message.request_id, message.server, message.destination, message.state,
                          message.outcome, message.created), ("r1", "", "15551234", "relayed", "",
                                                               1000.0))
        self.assertEqual(message.parts, (Part(1, "M1", "accepted", "awaited",
                                              1000.0 + 48 * 3600),))

    def test_queued_and_failed(self) -> None:
        """A queued message's part is waiting; a rejected one's is not sent, with the outcome."""
        self.send("q1").addErrback(lambda failure: None)
        [message] = self.operator.lookup("q1")
        self.assertEqual((message.state, message.parts[0].submit), ("queued", "waiting"))
        self.operator.reject("q1")
        self.clock.advance(0)
        [message] = self.operator.lookup("q1")
        self.assertEqual((message.state, message.outcome, message.parts[0].submit),
                         ("failed", "NOT_RELAYED: rejected by the operator", "not sent"))

    def test_report_waiting_for_a_host(self) -> None:
        """A delivery report still in the inbox shows as the part's receipt state."""
        self.relayed("r1")
        self.store.add_inbox("report", {"request_id": "r1", "part": 1, "parts": 1,
                                        "message_id": "M1", "state": "DELIVRD", "error": "000",
                                        "server": ""}, 1001.0)
        self.store.receipt_came("r1", 0)
        self.clock.advance(0)  # durable: the inbox lists it
        [message] = self.operator.lookup("r1")
        self.assertEqual(message.parts[0].receipt, "DELIVRD (error 000), waiting for a host")

    def test_by_phone_newest_first(self) -> None:
        """A phone number, written any usual way, finds the messages to it, newest first, and no others."""
        self.relayed("a", message_id="M1")
        self.relayed("b", "+15559999@smpp", message_id="M2")
        self.clock.advance(10)
        self.relayed("c", message_id="M3")
        for query in ("+15551234", "15551234", "+1 555-1234", "+15551234@smpp"):
            self.assertEqual([m.request_id for m in self.operator.lookup(query)], ["c", "a"], query)

    def test_sender_digits_do_not_match(self) -> None:
        """A number that is only some message's sender finds nothing."""
        self.send("r1", "+15550001@bulk._smpp")
        self.assertEqual(self.store.outbound("r1") is not None, True)
        error = self.assertRaises(NotFound, self.operator.lookup, "+15550100")
        self.assertEqual(str(error), "there is no request '+15550100', nor any message to"
                                     " 15550100 in the store")

    def test_not_found(self) -> None:
        """Neither a request_id nor a number: NOT_FOUND; nothing at all: BAD_REQUEST."""
        self.assertEqual(str(self.assertRaises(NotFound, self.operator.lookup, "nope")),
                         "there is no request 'nope'")
        self.assertRaises(BadRequest, self.operator.lookup, "  ")

    def test_phone_digits(self) -> None:
        """Phone numbers become the digits a submit_sm carries; other text is none."""
        self.assertEqual([phone_digits(t) for t in ("+31 (6) 1234-5678", "12", "abc", "+1@x")],
                         ["31612345678", None, None, None])


class DialogTests(OperatorTestCase):
    def test_bindings(self) -> None:
        """Each binding shows its phone, letter, IM address, last use and idle time."""
        self.send("r1", sender="alice@example.com")
        self.send("r2", sender="bob@example.com")
        self.clock.advance(60)
        shown = [(b.phone, b.letter, b.address, b.last_used, b.idle)
                 for b in self.operator.bindings()]
        self.assertEqual(shown, [("+15551234", "a", "alice@example.com", 1000.0, 60.0),
                                 ("+15551234", "b", "bob@example.com", 1000.0, 60.0)])

    def test_retire(self) -> None:
        """A retired binding is gone from the table and the store; a reply naming it finds none."""
        self.send("r1", sender="alice@example.com")
        retired = self.operator.retire("15551234", "A")
        self.assertEqual((retired.phone, retired.letter, retired.address),
                         ("+15551234", "a", "alice@example.com"))
        self.assertEqual((self.operator.bindings(), self.store.load_bindings()), ([], []))
        self.assertEqual(self.dialogs.resolve_incoming("+15551234", "@a hi").kind,
                         "unknown-letter")
        self.assertEqual(self.dialogs.outgoing_prefix("+15551234", "bob@example.com"),
                         "@a=bob@example.com ")

    def test_retire_unknown(self) -> None:
        """Retiring a binding that does not exist is NOT_FOUND; a bad phone is BAD_REQUEST."""
        error = self.assertRaises(NotFound, self.operator.retire, "+15551234", "c")
        self.assertEqual(str(error), "+15551234 has no dialog binding @c")
        self.assertRaises(BadRequest, self.operator.retire, "bad phone", "a")

    def test_dialogs_off(self) -> None:
        """With no dialog table there are no bindings, and retiring one says why."""
        self.outbound.dialogs = None
        self.assertEqual(self.operator.bindings(), [])
        self.assertIn("Dialogs are off", str(self.assertRaises(
            NotFound, self.operator.retire, "+15551234", "a")))

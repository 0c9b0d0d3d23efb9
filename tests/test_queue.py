"""Tests for the outbound queue: acceptance, order, window, rate, throttling, retries, expiry, restarts."""

from __future__ import annotations

import os
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, DeferredList, fail, gatherResults, inlineCallbacks
from twisted.internet.endpoints import serverFromString
from twisted.internet.task import Clock
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import SynchronousTestCase, TestCase
from zope.interface import implementer

from smppgw.config import parse_config
from smppgw.errors import (
    BadAddressError,
    BadRequest,
    NotRelayed,
    ServerDisabledError,
    SmscRejected,
    TooLongError,
    TryLater,
    UnknownServerError,
    UnsupportedMethod,
)
from smppgw.relay.dialogs import DialogTable
from smppgw.relay.outbound import Outbound
from smppgw.relay.recorder import PROBE_FIRST, REWRITE_PAUSE
from smppgw.smpp.codec import PDU, PreparedPDU
from smppgw.smpp.constants import STATUSES
from smppgw.smpp.interfaces import ILink
from smppgw.smpp.log import SmppLog
from smppgw.smpp.session import CommandStatusError, ConnectionLost, NotBound, ResponseTimeout
from smppgw.store.interfaces import StoreError
from smppgw.store.sqlite import Store
from smppgw.store.writes import Then, then_deferred

from .test_address import TON_CASES

CONFIG = """
[module]
reject_if_not_relayed_in = "10m"
[[server]]
name = ""
address = "127.0.0.1"
system_id = "a"
password = "pw"
dialogs = true
{extra}
[[server]]
name = "bulk"
mode = "send-only"
address = "127.0.0.1"
system_id = "b"
password = "pw"
sender = "+15550100"
[[server]]
name = "inbox"
mode = "receive-only"
address = "127.0.0.1"
system_id = "c"
password = "pw"
[[server]]
name = "spare"
mode = "off"
"""


@implementer(ILink)
class FakeLink:
    """Stands in for a Link: records submits and lets the test answer them."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.state = "disconnected"
        self.log = SmppLog(server.name, "none")
        self.sent = self.received = 0
        self.last_error = ""
        self.submits: list[tuple[PDU, Deferred[PDU]]] = []
        self.resets: list[str] = []
        self._observers: list[Any] = []

    def observe(self, observer: Any) -> None:
        self._observers.append(observer)

    @property
    def ready(self) -> bool:
        return self.state == "bound" and self.server.can_send

    def reset(self, reason: str) -> None:
        """The link drops its connection: what is in flight fails with ConnectionLost."""
        self.resets.append(reason)
        self.set_state("disconnected")
        pending, self.submits = self.submits, []
        for _, d in pending:
            d.errback(ConnectionLost(reason))

    def set_state(self, state: str) -> None:
        self.state = state
        for o in self._observers:
            o(state)

    def submit(self, pdu: PDU, answer: Any = None) -> Any:
        """As Link.submit: the outcome goes to `answer` (a Deferred when None), which is returned."""
        d: Deferred[PDU] = fail(NotBound("down")) if self.state != "bound" else Deferred()
        if self.state == "bound":
            self.submits.append((pdu, d))
        if answer is None:
            return d
        d.addCallbacks(answer.callback, answer.errback)
        return answer

    def answer(self, i: int = 0, message_id: str = "", status: int = 0) -> PDU:
        pdu, d = self.submits.pop(i)
        if status:
            d.errback(CommandStatusError(PDU("submit_sm_resp", pdu.sequence_number, status)))
        else:
            d.callback(PDU("submit_sm_resp", 0, 0, {"message_id": (message_id or f"id{id(pdu)}").encode()}))
        return pdu


def destination_octets(pdu: PDU) -> bytes:
    """dest_addr_ton, dest_addr_npi and destination_addr (with its NUL) as a submit_sm puts them on the wire."""
    assert isinstance(pdu, PreparedPDU)
    body = pdu.wire[16:]
    start = body.index(0) + 1  # after service_type
    start = body.index(0, start + 2) + 1  # after source_addr_ton, _npi and source_addr
    return body[start:body.index(0, start + 2) + 1]


class BufferedLink(FakeLink):
    """A FakeLink whose submits written while it reads a burst of answers leave only at
    `flush`, as an ESMEProtocol's do; `wire` is what the SMSC saw."""

    def __init__(self, server: Any) -> None:
        super().__init__(server)
        self.log = SmppLog(server.name, "problems")
        self.buffer: list[tuple[PDU, Deferred[PDU]]] = []
        self.wire: list[PDU] = []
        self.reading = False

    def submit(self, pdu: PDU, answer: Any = None) -> Any:
        if self.state != "bound" or not self.reading:
            if self.state == "bound":
                self.wire.append(pdu)
            return super().submit(pdu, answer)
        d: Deferred[PDU] = Deferred()
        self.buffer.append((pdu, d))
        d.addCallbacks(answer.callback, answer.errback)
        return answer

    def flush(self) -> None:
        self.wire.extend(pdu for pdu, _ in self.buffer)
        self.submits.extend(self.buffer)
        self.buffer = []

    def burst(self) -> None:
        """The SMSC accepts every submit on the wire; the answers are read in one burst."""
        self.reading = True
        while self.submits:
            self.answer(0)
        self.reading = False
        self.flush()


class QueueTests(SynchronousTestCase):
    def make(self, path: str = ":memory:", extra: str = "", clock: Clock | None = None,
             bound: bool = True, link_class: type[FakeLink] = FakeLink,
             ) -> tuple[Outbound, dict[str, Any], Clock, Store]:
        settings = {"sender": '"*"', "window": "3"}
        for line in extra.splitlines():
            key, _, value = line.partition("=")
            settings[key.strip()] = value.strip()
        config = parse_config(CONFIG.format(extra="\n".join(f"{k} = {v}" for k, v in settings.items())))
        clock = clock or Clock()
        store = Store(path, clock)
        links = {s.name: link_class(s) for s in config.servers if s.enabled}
        dialogs = DialogTable(clock, config.module.dialog_timeout, store)
        outbound = Outbound(config, links, store, clock, dialogs)  # type: ignore[arg-type]
        outbound.restore()
        if bound:
            for link in links.values():
                link.set_state("bound")
        clock.advance(0)
        self.addCleanup(outbound.stop)
        return outbound, links, clock, store

    def send(self, outbound: Outbound, clock: Clock, rid: str = "r1", recipient: str = "+15551234@smpp",
             body: str = "hello", sender: str = "alice@example.com", **kw: Any) -> Deferred[dict[str, Any]]:
        d = outbound.send_signal(rid, kw.pop("method", "MESSAGE"), sender, recipient, body, **kw)
        clock.advance(0)
        return d

    def test_send_and_answer(self) -> None:
        """A MESSAGE goes out as one submit_sm and the answer carries the server, parts and message id."""
        outbound, links, clock, store = self.make()
        d = self.send(outbound, clock)
        [(pdu, _)] = links[""].submits
        self.assertEqual(pdu.params["destination_addr"], b"15551234")
        self.assertEqual((pdu.params["dest_addr_ton"], pdu.params["dest_addr_npi"]), (1, 1))
        # GSM 03.38 writes "@" as 0x00.
        self.assertEqual(pdu.params["short_message"], b"\x00a=alice\x00example.com hello")
        links[""].answer(message_id="M1")
        clock.advance(0)
        self.assertEqual(self.successResultOf(d), {"server": "", "parts": 1, "message_ids": ["M1"]})

    def test_reply_keeps_the_number_type(self) -> None:
        """A reply to each TON's sender goes out with the TON, NPI and digits the IM form says; one to a name is BAD_ADDRESS."""
        outbound, links, clock, store = self.make()
        for i, (what, _, _, _, _, form, reply) in enumerate(TON_CASES):
            d = self.send(outbound, clock, rid=f"t{i}", recipient=f"{form}@smpp")
            if reply is None:
                self.failureResultOf(d, BadAddressError)
                continue
            ton, npi, digits = reply
            pdu = links[""].answer()
            self.assertEqual(destination_octets(pdu), bytes([ton, npi]) + digits.encode() + b"\0",
                             what)
        self.assertEqual(links[""].submits, [])

    def test_named_server_and_sender(self) -> None:
        """+E164@name._smpp goes to that server, with its configured international sender."""
        outbound, links, clock, store = self.make()
        self.send(outbound, clock, recipient="+15551234@bulk._smpp")
        [(pdu, _)] = links["bulk"].submits
        self.assertEqual((pdu.params["source_addr"], pdu.params["source_addr_ton"],
                          pdu.params["source_addr_npi"]), (b"15550100", 1, 1))
        self.assertEqual(pdu.params["short_message"], b"hello")

    def test_errors(self) -> None:
        """Each bad request gets its own error and sends nothing."""
        outbound, links, clock, store = self.make()
        cases = [
            (dict(method="CALL"), UnsupportedMethod),
            (dict(recipient="12a45@smpp"), BadAddressError),
            (dict(recipient="12345;ton=5@smpp"), BadAddressError),
            (dict(recipient="+1555@nowhere._smpp"), UnknownServerError),
            (dict(recipient="+1555@inbox._smpp"), ServerDisabledError),
            (dict(recipient="+1555@spare._smpp"), ServerDisabledError),
            (dict(body="x" * 2000), TooLongError),
            (dict(body="x" * 10_000_000), TooLongError),
            (dict(rid=""), BadRequest),
            (dict(rid="r" * 129), BadRequest),
        ]
        for i, (kw, error) in enumerate(cases):
            kw.setdefault("rid", f"e{i}")
            d = self.send(outbound, clock, **kw)
            if error is not None:
                self.failureResultOf(d, error)
        self.assertEqual(links[""].submits, [])

    def test_sender_too_long(self) -> None:
        """A sender over 20 characters is refused with BAD_ADDRESS naming the limit, never cut."""
        outbound, links, clock, store = self.make()
        d = self.send(outbound, clock, sender="averyveryverylongusername@null")
        self.assertIn("20", str(self.failureResultOf(d, BadAddressError).value))

    def test_long_message_parts(self) -> None:
        """A 200-character GSM text goes as two UDH parts and the answer lists both message ids."""
        outbound, links, clock, store = self.make()
        d = self.send(outbound, clock, recipient="+1555@bulk._smpp", body="x" * 200)
        parts = [p for p, _ in links["bulk"].submits]
        self.assertEqual(len(parts), 2)
        self.assertTrue(all(p.params["esm_class"] == 0x40 for p in parts))
        udh = [p.params["short_message"][:6] for p in parts]
        self.assertEqual([u[4:] for u in udh], [b"\x02\x01", b"\x02\x02"])
        links["bulk"].answer(message_id="A")
        links["bulk"].answer(message_id="B")
        clock.advance(0)
        self.assertEqual(self.successResultOf(d)["message_ids"], ["A", "B"])

    def test_window_and_fifo(self) -> None:
        """At most `window` submits are in flight, and they go in the order accepted."""
        outbound, links, clock, store = self.make()
        for i in range(5):
            self.send(outbound, clock, rid=f"r{i}", recipient=f"+155500{i}@smpp", body="x")
        link = links[""]
        self.assertEqual([p.params["destination_addr"] for p, _ in link.submits],
                         [b"1555000", b"1555001", b"1555002"])
        link.answer(0)
        clock.advance(0)  # r0's acceptance is durable: its slot is free
        self.assertEqual(link.submits[-1][0].params["destination_addr"], b"1555003")

    def test_queued_while_down(self) -> None:
        """Messages wait while the link is down and go out when it binds."""
        outbound, links, clock, store = self.make(bound=False)
        d = self.send(outbound, clock)
        self.assertEqual(links[""].submits, [])
        self.assertEqual(outbound.status()[0]["queued"], 1)
        links[""].set_state("bound")
        clock.advance(0)
        self.assertEqual(len(links[""].submits), 1)
        links[""].answer(message_id="X")
        clock.advance(0)
        self.successResultOf(d)

    def test_not_relayed(self) -> None:
        """A message still unsent after reject_if_not_relayed_in ends with NOT_RELAYED."""
        outbound, links, clock, store = self.make(bound=False)
        d = self.send(outbound, clock)
        clock.advance(599)
        self.assertNoResult(d)
        clock.advance(1)
        self.failureResultOf(d, NotRelayed)
        links[""].set_state("bound")
        clock.advance(0)
        self.assertEqual(links[""].submits, [])

    def test_permanent_rejection(self) -> None:
        """A permanent status ends the request with SMSC_REJECTED naming the status."""
        outbound, links, clock, store = self.make()
        d = self.send(outbound, clock)
        links[""].answer(status=STATUSES["ESME_RINVDSTADR"])
        clock.advance(0)
        error = self.failureResultOf(d, SmscRejected).value
        self.assertEqual(str(error), "0x0000000B ESME_RINVDSTADR")

    def test_throttle_pauses_and_keeps_order(self) -> None:
        """ESME_RTHROTTLED pauses the link, then the throttled parts go again first, in order, spaced."""
        outbound, links, clock, store = self.make(extra='min_rate = 4\nthrottle_pause = "2s"')
        link = links[""]
        for i in range(5):
            self.send(outbound, clock, rid=f"r{i}", recipient=f"+155500{i}@smpp", body="x")
        throttled = STATUSES["ESME_RTHROTTLED"]
        link.answer(1, status=throttled)   # r1
        link.answer(1, status=throttled)   # r2
        link.answer(0, message_id="A")     # r0 accepted
        self.assertEqual(link.submits, [])  # paused
        clock.advance(1.9)
        self.assertEqual(link.submits, [])
        counts = []
        for step in (0.1, 0.2, 0.05, 0.2, 0.05):  # to 2.0, 2.2, 2.25, 2.45, 2.5 s
            clock.advance(step)
            counts.append(len(link.submits))
        self.assertEqual(counts, [1, 1, 2, 2, 3])  # 4 per second, the floor
        self.assertEqual([p.params["destination_addr"] for p, _ in link.submits],
                         [b"1555001", b"1555002", b"1555003"])
        self.assertEqual(outbound.status()[0]["rate"], 4.0)

    def test_unthrottled_link_sends_the_window_at_once(self) -> None:
        """A link the SMSC never throttled sends its whole window at once, unpaced."""
        outbound, links, clock, store = self.make(extra="window = 10")
        for i in range(12):
            self.send(outbound, clock, rid=f"u{i}", recipient=f"+155500{i}@smpp", body="x")
        self.assertEqual(len(links[""].submits), 10)
        self.assertIsNone(outbound.status()[0]["rate"])

    def test_temporary_retry(self) -> None:
        """A temporary status is retried on the link; the message goes out once accepted."""
        outbound, links, clock, store = self.make()
        d = self.send(outbound, clock)
        link = links[""]
        link.answer(status=STATUSES["ESME_RSYSERR"])
        clock.advance(0)
        link.answer(message_id="OK")
        clock.advance(0)
        self.assertEqual(self.successResultOf(d)["message_ids"], ["OK"])

    def test_link_drop_resends(self) -> None:
        """Parts in flight when the link drops are sent again after it binds (at least once)."""
        outbound, links, clock, store = self.make()
        d = self.send(outbound, clock)
        link = links[""]
        pdu, pending = link.submits.pop()
        link.state = "disconnected"
        pending.errback(ConnectionLost("gone"))
        link.set_state("bound")
        clock.advance(0)
        [(again, _)] = link.submits
        self.assertEqual(again.params["short_message"], pdu.params["short_message"])
        link.answer(message_id="Z")
        clock.advance(0)
        self.successResultOf(d)

    def test_same_request_id_sends_once(self) -> None:
        """A retried request_id, pending or finished, gets the same outcome and sends nothing more."""
        outbound, links, clock, store = self.make()
        d1 = self.send(outbound, clock)
        d2 = self.send(outbound, clock)
        self.assertEqual(len(links[""].submits), 1)
        links[""].answer(message_id="M")
        clock.advance(0)
        self.assertEqual(self.successResultOf(d1), self.successResultOf(d2))
        d3 = self.send(outbound, clock)
        self.assertEqual(self.successResultOf(d3)["message_ids"], ["M"])
        self.assertEqual(links[""].submits, [])

    def test_final_error_repeats(self) -> None:
        """A request_id that ended in an SMSC rejection gets that error again."""
        outbound, links, clock, store = self.make()
        d = self.send(outbound, clock)
        links[""].answer(status=STATUSES["ESME_RINVDSTADR"])
        clock.advance(0)
        self.failureResultOf(d, SmscRejected)
        again = self.send(outbound, clock)
        self.assertIn("ESME_RINVDSTADR", str(self.failureResultOf(again, SmscRejected).value))

    def test_restart_sends_unfinished_once(self) -> None:
        """After a restart, unfinished messages are sent and parts already accepted are not sent again."""
        path = self.mktemp()
        clock = Clock()
        outbound, links, clock, store = self.make(path, clock=clock)
        self.send(outbound, clock, rid="long", recipient="+1555@bulk._smpp", body="y" * 200)
        self.send(outbound, clock, rid="later", recipient="+1666@bulk._smpp", body="z")
        links["bulk"].answer(0, message_id="P1")
        clock.advance(0)
        store.close()
        outbound.stop()
        outbound2, links2, clock, store2 = self.make(path, clock=clock)
        sent = [p for p, _ in links2["bulk"].submits]
        self.assertEqual(len(sent), 2)  # part 2 of "long", then "later"
        self.assertEqual(sent[0].params["short_message"][4:6], b"\x02\x02")
        self.assertEqual(sent[1].params["destination_addr"], b"1666")
        links2["bulk"].answer(0, message_id="P2")
        clock.advance(0)
        again = self.send(outbound2, clock, rid="long")
        self.assertEqual(self.successResultOf(again)["message_ids"], ["P1", "P2"])

    def test_throughput_limit(self) -> None:
        """With throughput set, parts go out no faster than that many per second."""
        outbound, links, clock, store = self.make(extra="throughput = 2\nwindow = 100")
        for i in range(6):
            self.send(outbound, clock, rid=f"t{i}", body="x")
        link = links[""]
        self.assertEqual(len(link.submits), 1)
        clock.advance(0.5)
        self.assertEqual(len(link.submits), 2)
        clock.advance(0.5)
        clock.advance(0.5)
        self.assertEqual(len(link.submits), 4)
        clock.advance(0.4)
        self.assertEqual(len(link.submits), 4)

    def test_status(self) -> None:
        """ServerStatus lists every server in config order with state, queue depth and counters."""
        outbound, links, clock, store = self.make(bound=False)
        self.send(outbound, clock)
        rows = outbound.status()
        self.assertEqual([r["name"] for r in rows], ["", "bulk", "inbox", "spare"])
        self.assertEqual(rows[0]["queued"], 1)
        self.assertEqual(rows[0]["state"], "disconnected")
        self.assertEqual(rows[3]["mode"], "off")

    def test_dialog_prefix_short_after_first(self) -> None:
        """On a dialogs server the first message carries @a=sender and later ones @a."""
        outbound, links, clock, store = self.make()
        self.send(outbound, clock, rid="1")
        self.send(outbound, clock, rid="2")
        texts = [p.params["short_message"] for p, _ in links[""].submits]
        self.assertEqual(texts, [b"\x00a=alice\x00example.com hello", b"\x00a hello"])

    def test_submit_sm_golden_bytes(self) -> None:
        """The submit_sm for a short GSM text goes out byte for byte as SMPP 3.4 lays it out."""
        from smppgw.smpp.codec import encode

        outbound, links, clock, store = self.make()
        self.send(outbound, clock, recipient="+15551234@bulk._smpp")
        [(pdu, _)] = links["bulk"].submits
        pdu.sequence_number = 1
        self.assertEqual(
            encode(pdu).hex(),
            "00000036" "00000004" "00000000" "00000001"
            "00"                                  # service_type
            "0101" "313535353031303000"           # source TON 1, NPI 1, "15550100"
            "0101" "313535353132333400"           # destination TON 1, NPI 1, "15551234"
            "00" "00" "00" "00" "00"              # esm_class, protocol_id, priority, schedule, validity
            "00" "00" "00" "00"                   # registered_delivery, replace, data_coding, default id
            "05" "68656c6c6f",                    # sm_length, "hello"
        )

    def test_payload_is_the_encoded_submit_sm(self) -> None:
        """What the store keeps of a request is its submit_sm as it goes out, but the sequence number."""
        from smppgw.smpp.codec import encode

        outbound, links, clock, store = self.make()
        self.send(outbound, clock, rid="two", recipient="+15551234@bulk._smpp", body="y" * 200)
        stored = store.outbound("two").payload  # type: ignore[union-attr]
        sent = []
        for index, (pdu, _) in enumerate(links["bulk"].submits):
            pdu.sequence_number = 40 + index
            sent.append(encode(pdu))
        self.assertEqual(len(sent), 2)
        self.assertEqual(stored, b"".join(w[:12] + bytes(4) + w[16:] for w in sent))

    def test_success_stored_small_and_answered_whole(self) -> None:
        """A relayed request's row says only ok (the parts hold the ids); asking again, after a
        restart too, gives the whole answer. An outcome stored whole (as after a failed commit)
        answers too."""
        path = self.mktemp()
        outbound, links, clock, store = self.make(path)
        first = self.send(outbound, clock, rid="r", recipient="+15551234@bulk._smpp", body="y" * 200)
        links["bulk"].answer(0, message_id="M1")
        links["bulk"].answer(0, message_id="M2")
        clock.advance(0)
        whole = {"server": "bulk", "parts": 2, "message_ids": ["M1", "M2"]}
        self.assertEqual(self.successResultOf(first), whole)
        self.assertEqual(store.outbound("r").outcome, {"ok": True})  # type: ignore[union-attr]
        store.add_outbound("old", "bulk", {}, 1, 0.0)
        store.finish("old", {"ok": True, "server": "bulk", "parts": 1, "message_ids": ["OLD"]})
        store.close()
        outbound.stop()
        outbound2, links2, clock2, _ = self.make(path)
        self.assertEqual(self.successResultOf(self.send(outbound2, clock2, rid="r")), whole)
        self.assertEqual(self.successResultOf(self.send(outbound2, clock2, rid="old")),
                         {"server": "bulk", "parts": 1, "message_ids": ["OLD"]})
        self.assertEqual(links2["bulk"].submits, [])

    def test_acceptance_lost_to_a_failed_commit_is_written_again(self) -> None:
        """When a commit failed after a part was accepted, the request's end writes every part's
        message id again and keeps the whole answer: receipts and a host asking again see them all."""
        from smppgw.sms.receipts import submit_key

        from .test_store import FailingCommit

        path = self.mktemp()
        outbound, links, clock, store = self.make(path)
        first = self.send(outbound, clock, rid="long", recipient="+1555@bulk._smpp", body="y" * 200)
        links["bulk"].answer(0, message_id="P1")
        real = store._db
        store._db = FailingCommit(real)  # type: ignore[assignment]
        clock.advance(0)  # the commit holding P1's record fails and is rolled back
        store._db = real
        self.assertEqual(store.failed_commits, 1)
        self.assertEqual(store.outbound("long").message_ids, (None, None))  # type: ignore[union-attr]
        links["bulk"].answer(0, message_id="P2")
        clock.advance(0)
        whole = {"server": "bulk", "parts": 2, "message_ids": ["P1", "P2"]}
        self.assertEqual(self.successResultOf(first), whole)
        store.close()
        outbound.stop()
        outbound2, links2, clock2, store2 = self.make(path)
        self.assertEqual(self.successResultOf(self.send(outbound2, clock2, rid="long")), whole)
        self.assertEqual(store2.lookup_message("bulk", submit_key("P1")), ("long", 0))
        self.assertEqual(links2["bulk"].submits, [])

    def test_asking_again_before_the_outcome_is_committed_waits_for_it(self) -> None:
        """A repeated request that arrives between a request's end and the commit of its outcome
        is answered with that outcome once it is committed, not before."""
        outbound, links, clock, store = self.make()
        first = self.send(outbound, clock, rid="r")
        links[""].answer(message_id="M")
        again = outbound.send_signal("r", "MESSAGE", "alice@example.com", "+15551234@smpp", "hello")
        self.assertNoResult(first)
        self.assertNoResult(again)
        clock.advance(0)
        self.assertEqual(self.successResultOf(again), self.successResultOf(first))
        self.assertEqual(len(links[""].submits), 0)

    def test_outcome_whose_commit_failed_is_written_again(self) -> None:
        """If the commit holding a request's outcome fails, its host is told TRY_LATER, the outcome
        is written again shortly, and asking again meanwhile waits for it: no "being restored"
        until a restart, and the message is not sent again."""
        from .test_store import FailingCommit

        path = self.mktemp()
        outbound, links, clock, store = self.make(path)
        first = self.send(outbound, clock, rid="r")
        links[""].answer(message_id="M")
        real = store._db
        store._db = FailingCommit(real)  # type: ignore[assignment]
        clock.advance(0)
        self.failureResultOf(first, TryLater)
        again = self.send(outbound, clock, rid="r")
        self.assertNoResult(again)
        clock.advance(REWRITE_PAUSE)  # still failing: told again, and kept
        self.failureResultOf(again, TryLater)
        store._db = real
        third = self.send(outbound, clock, rid="r")
        clock.advance(REWRITE_PAUSE)
        whole = {"server": "", "parts": 1, "message_ids": ["M"]}
        self.assertEqual(self.successResultOf(third), whole)
        self.assertEqual(outbound.queues[""].unrecorded, {})
        store.close()
        outbound.stop()
        outbound2, links2, clock2, _ = self.make(path)
        self.assertEqual(self.successResultOf(self.send(outbound2, clock2, rid="r")), whole)
        self.assertEqual(links[""].submits + links2[""].submits, [])

    def test_outcome_whose_write_failed_is_written_again(self) -> None:
        """A store that refuses the outcome's write itself: TRY_LATER now, the outcome stored later."""
        outbound, links, clock, store = self.make()
        first = self.send(outbound, clock, rid="r")
        real_finish = store.finish

        def refusing(request_id: str, outcome: dict[str, Any],
                     then: Then | None = None) -> Deferred[None] | None:
            store.finish = real_finish  # type: ignore[method-assign]
            return then_deferred(fail(StoreError("the store is closed")), then)

        store.finish = refusing  # type: ignore[method-assign]
        links[""].answer(message_id="M")
        self.failureResultOf(first, TryLater)
        clock.advance(REWRITE_PAUSE)
        self.assertEqual(store.outbound("r").outcome, {"ok": True})  # type: ignore[union-attr]
        self.assertEqual(self.successResultOf(self.send(outbound, clock, rid="r"))["message_ids"], ["M"])

    def test_unreadable_stored_payload_ends_that_request_only(self) -> None:
        """A stored payload that is not whole PDUs ends its request with TRY_LATER; the next one goes."""
        path = self.mktemp()
        old = Store(path, Clock())
        old.add_outbound("broken", "bulk", b"\x00\x00\x00\x40 not a PDU", 1, 0.0)
        old.add_outbound("legacy-broken", "bulk", {"parts": []}, 1, 0.0)
        old.close()
        outbound, links, clock, store = self.make(path)
        self.send(outbound, clock, rid="fine", recipient="+15551234@bulk._smpp")
        [(pdu, _)] = links["bulk"].submits
        self.assertEqual(pdu.params["destination_addr"], b"15551234")
        for rid in ("broken", "legacy-broken"):
            self.assertEqual(store.outbound(rid).outcome,  # type: ignore[union-attr]
                             {"ok": False, "code": "TRY_LATER", "reason": "payload unreadable"})

    def test_deep_backlog_reloads_payloads(self) -> None:
        """Jobs beyond the in-memory head keep no payload and reload it from the store to send."""
        import smppgw.relay.linkqueue

        self.patch(smppgw.relay.linkqueue, "HOT_JOBS", 2)
        outbound, links, clock, store = self.make(bound=False)
        for i in range(5):
            self.send(outbound, clock, rid=f"b{i}", recipient=f"+155500{i}@bulk._smpp", body=f"m{i}")
        queue = outbound.queues["bulk"]
        self.assertEqual([j.payload is None for j in queue.jobs.values()],
                         [False, False, True, True, True])
        link = links["bulk"]
        link.set_state("bound")
        clock.advance(0)
        texts = []
        while link.submits:
            texts.append(link.answer(0).params["short_message"])
            clock.advance(0)
        self.assertEqual(texts, [f"m{i}".encode() for i in range(5)])
        self.assertEqual(queue.jobs, {})
        self.assertEqual(sorted(store.outbound(f"b{i}").outcome["ok"] for i in range(5)), [True] * 5)

    def test_retry_does_not_touch_dialog(self) -> None:
        """Asking again for a finished request does not refresh or create a dialog binding."""
        outbound, links, clock, store = self.make()
        self.send(outbound, clock, rid="d1")
        links[""].answer(message_id="M")
        clock.advance(0)
        [binding] = outbound.dialogs.bindings("+15551234")
        clock.advance(100)
        self.successResultOf(self.send(outbound, clock, rid="d1"))
        self.assertEqual(outbound.dialogs.bindings("+15551234"), [binding])

    def test_acceptance_durable_before_its_slot_is_used_again(self) -> None:
        """When the submit_sm that takes a freed slot leaves, the acceptance that held the
        slot is already in the store for any other reader (a restart) to see."""
        path = os.path.join(self.mktemp(), "s.sqlite")
        outbound, links, clock, store = self.make(path)
        link = links[""]
        for i in range(4):
            self.send(outbound, clock, rid=f"r{i}")
        other = Store(path, Clock())
        self.addCleanup(other.close)
        seen: list[tuple[str | None, ...]] = []
        submit = link.submit

        def watching(pdu: PDU, answer: Any = None) -> Any:
            seen.append(other.outbound("r0").message_ids)  # type: ignore[union-attr]
            return submit(pdu, answer)

        link.submit = watching  # type: ignore[method-assign]
        link.answer(message_id="A")  # r0 accepted: r3 waits for its record
        self.assertEqual(seen, [])
        clock.advance(0)
        self.assertEqual(seen, [("A",)])

    def test_answer_objects(self) -> None:
        """send_signal(answer=...) tells any object with callback/errback, on every path."""

        class Recorder:
            def __init__(self) -> None:
                self.heard: list[Any] = []

            def callback(self, result: Any) -> None:
                self.heard.append(result)

            def errback(self, fail: Any = None) -> None:
                self.heard.append(fail)

        outbound, links, clock, store = self.make()
        bad = Recorder()
        self.assertIs(outbound.send_signal("", "MESSAGE", "a@x", "+15551234@smpp", "hi", answer=bad), bad)
        [error] = bad.heard
        self.assertIsInstance(error.value, BadRequest)
        first, again = Recorder(), Recorder()
        outbound.send_signal("r1", "MESSAGE", "a@x", "+15551234@smpp", "hi", answer=first)
        clock.advance(0)
        outbound.send_signal("r1", "MESSAGE", "a@x", "+15551234@smpp", "hi", answer=again)
        links[""].answer(message_id="M1")
        clock.advance(0)
        self.assertEqual([r["message_ids"] for r in first.heard + again.heard], [["M1"], ["M1"]])
        done = Recorder()
        outbound.send_signal("r1", "MESSAGE", "a@x", "+15551234@smpp", "hi", answer=done)
        self.assertEqual(done.heard[0]["message_ids"], ["M1"])

    def test_too_many_waiters_told_at_once(self) -> None:
        """The answer past MAX_WAITERS for one pending request gets TRY_LATER at once."""
        from smppgw.relay.jobs import MAX_WAITERS, Job

        job = Job("r", "", None, [None], 1, 0.0)
        waiters = [job.wait() for _ in range(MAX_WAITERS)]
        heard: list[Any] = []

        class Recorder:
            def callback(self, result: Any) -> None:
                heard.append(result)

            def errback(self, fail: Any = None) -> None:
                heard.append(fail)

        job.wait(Recorder())
        self.assertIsInstance(heard[0], TryLater)
        self.assertEqual(len(job.take_waiters()), MAX_WAITERS)
        for d in waiters:
            self.assertNoResult(d)

    def test_error_handling_an_answer_stays_in_the_queue(self) -> None:
        """A failure while handling an SMSC answer is logged; it never reaches the connection
        (where it would drop the link), and later answers are handled."""
        from twisted.logger import capturedLogs, formatEvent

        outbound, links, clock, store = self.make()
        link = links[""]
        first = self.send(outbound, clock, rid="r1")
        second = self.send(outbound, clock, rid="r2")
        real = store.set_message_id
        calls: list[str] = []

        def broken(request_id: str, *args: Any, **kw: Any) -> Deferred[None] | None:
            calls.append(request_id)
            if request_id == "r1":
                raise RuntimeError("bookkeeping bug")
            return real(request_id, *args, **kw)

        store.set_message_id = broken  # type: ignore[method-assign]
        waiting = [self.send(outbound, clock, rid=rid) for rid in ("r3", "r4")]
        self.assertEqual(len(link.submits), 3)  # the window: r4 waits
        with capturedLogs() as events:
            link.answer(message_id="A")  # would raise here if the error escaped
        self.assertIn("handling the answer to part 1 of r1 failed", formatEvent(events[0]))
        # r1's slot is free: r4 goes out now, not after some later answer.
        self.assertEqual(len(link.submits), 3)
        for d in waiting:
            self.assertNoResult(d)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)
        link.answer(message_id="B")
        clock.advance(0)
        self.assertEqual(calls, ["r1", "r2"])
        self.assertEqual(self.successResultOf(second)["message_ids"], ["B"])
        self.assertNoResult(first)

    def test_timeout_resets_link_and_resends_after_rebind(self) -> None:
        """A response timeout drops the connection (the SMSC may have accepted) and the part goes again after the rebind."""
        outbound, links, clock, store = self.make()
        d = self.send(outbound, clock)
        link = links[""]
        _, pending = link.submits.pop(0)
        pending.errback(ResponseTimeout("slow"))
        self.assertEqual(len(link.resets), 1)
        self.assertEqual(link.submits, [])
        link.set_state("bound")
        clock.advance(0)
        link.answer(message_id="OK")
        clock.advance(0)
        self.assertEqual(self.successResultOf(d)["message_ids"], ["OK"])

    def test_many_timeouts_never_reject(self) -> None:
        """However often the SMSC times out, the message is not rejected: it waits for a link that answers."""
        outbound, links, clock, store = self.make()
        d = self.send(outbound, clock)
        link = links[""]
        for _ in range(10):
            _, pending = link.submits.pop(0)
            pending.errback(ResponseTimeout("slow"))
            link.set_state("bound")
            clock.advance(0)
        self.assertNoResult(d)

    def test_receive_only_restored_job_waits(self) -> None:
        """An unfinished request whose server became receive-only waits at start-up: it is
        neither sent nor failed early, new requests to that server are refused, and it ends
        NOT_RELAYED after reject_if_not_relayed_in, counted from its acceptance."""
        path = self.mktemp()
        clock = Clock()
        outbound, links, clock, store = self.make(path, clock=clock, bound=False)
        self.send(outbound, clock, rid="x", recipient="+1555@bulk._smpp")
        store.close()
        outbound.stop()
        clock.advance(60)
        config = parse_config(CONFIG.format(extra='sender = "*"\nwindow = 3').replace(
            'name = "bulk"\nmode = "send-only"', 'name = "bulk"\nmode = "receive-only"'))
        store2 = Store(path, clock)
        links2 = {s.name: FakeLink(s) for s in config.servers if s.enabled}
        outbound2 = Outbound(config, links2, store2, clock, None)  # type: ignore[arg-type]
        self.assertEqual(outbound2.restore(), 1)
        for link in links2.values():
            link.set_state("bound")
        clock.advance(0)
        self.assertIsNone(store2.outbound("x").outcome)
        self.assertEqual(links2["bulk"].submits, [])
        again = self.send(outbound2, clock, rid="x", recipient="+1555@bulk._smpp")
        self.assertNoResult(again)
        self.failureResultOf(self.send(outbound2, clock, rid="y", recipient="+1555@bulk._smpp"),
                             ServerDisabledError)
        clock.advance(600 - 60 - 1)
        self.assertNoResult(again)
        clock.advance(1)
        store2.commit()
        clock.advance(0)
        self.assertEqual(self.failureResultOf(again, NotRelayed).value.code, "NOT_RELAYED")
        self.assertEqual(store2.outbound("x").outcome["code"], "NOT_RELAYED")

    def test_unencodable_submit_rejects_and_frees_window(self) -> None:
        """A submit the codec refuses ends that request with an error and does not block the window."""
        from smppgw.smpp.codec import encode
        from smppgw.smpp.protocol import ESMEProtocol  # noqa: F401 - the real shell raises EncodeError like this

        outbound, links, clock, store = self.make()
        link = links[""]
        real_submit = link.submit

        def refusing(pdu: PDU, answer: Any) -> Any:
            if pdu.params["destination_addr"] == b"1666":
                pdu.params["source_addr_npi"] = 2  # not an SMPP value
                try:
                    encode(pdu)
                except Exception as e:
                    answer.errback(e)
                    return answer
            return real_submit(pdu, answer)

        link.submit = refusing  # type: ignore[method-assign]
        bad = self.send(outbound, clock, rid="bad", recipient="+1666@smpp")
        good = self.send(outbound, clock, rid="good", recipient="+1777@smpp")
        self.failureResultOf(bad, BadRequest)
        link.answer(message_id="G")
        clock.advance(0)
        self.successResultOf(good)


class FailingStoreTests(SynchronousTestCase):
    """A store whose commits fail: the link pauses within the duplicate bound, and resumes."""

    make = QueueTests.make
    send = QueueTests.send

    def recorded(self, path: str) -> int:
        """Acceptances a restarted gateway would find in the store file."""
        other = Store(path, Clock())
        self.addCleanup(other.close)
        return sum(1 for row in other.unfinished() for m in row.message_ids if m is not None) + sum(
            1 for i in range(10) if (row := other.outbound(f"r{i}")) is not None and row.outcome)

    def test_sent_but_unrecorded_never_beyond_the_window(self) -> None:
        """While commits fail the SMSC gets no more than `window` submits beyond the recorded
        acceptances, those written in the failing burst included; once the store writes again
        the link resumes and every message reaches the SMSC exactly once."""
        from smppgw.relay.recorder import PROBE_MAX

        from .test_store import FailingCommit

        path = os.path.join(self.mktemp(), "s.sqlite")
        outbound, links, clock, store = self.make(path, link_class=BufferedLink)
        link = links[""]
        answers = [self.send(outbound, clock, rid=f"r{i}", body=f"m{i}") for i in range(10)]
        real = store._db
        store._db = FailingCommit(real)  # type: ignore[assignment]
        with capturedLogs() as events:
            link.burst()  # three accepted: their slots stay taken until they are recorded
            clock.advance(0)  # and that commit fails
            self.assertEqual(link.resets, [])
            self.assertEqual(len(link.wire), 3)
            for _ in range(5):
                clock.advance(PROBE_MAX)
            self.assertEqual(len(link.wire) - self.recorded(path), 3)
            [row] = [r for r in outbound.status() if r["name"] == ""]
            self.assertEqual(row["last_error"], "paused: store not writable (commit failed, the "
                             "writes are rolled back: database or disk is full)")
            store._db = real
            clock.advance(PROBE_MAX)
            while link.submits:
                link.burst()
                clock.advance(0)
        self.assertEqual([p.params["short_message"][-2:] for p in link.wire],
                         [f"m{i}".encode() for i in range(10)])
        for a in answers[:3]:  # their outcomes could not be stored at first
            self.failureResultOf(a, TryLater)
        self.assertEqual([self.successResultOf(a)["parts"] for a in answers[3:]], [1] * 7)
        clock.advance(REWRITE_PAUSE)
        self.assertEqual(self.recorded(path), 10)
        self.assertEqual(outbound.status()[0]["last_error"], "")
        paused = [formatEvent(e) for e in events if "paused: " in formatEvent(e)]
        self.assertEqual(len(paused), 1, paused)
        self.assertTrue(any("resuming" in formatEvent(e) for e in events))

    def test_write_refused_outright_pauses_too(self) -> None:
        """An acceptance whose write itself fails pauses the link like a failed commit."""
        outbound, links, clock, store = self.make(link_class=BufferedLink)
        link = links[""]
        answers = [self.send(outbound, clock, rid=f"r{i}", body=f"m{i}") for i in range(5)]
        real = store.set_message_id

        def refusing(*args: Any, then: Then | None = None, **kw: Any) -> Deferred[None] | None:
            return then_deferred(fail(StoreError("the store is closed")), then)

        store.set_message_id = refusing  # type: ignore[method-assign]
        link.reading = True
        link.answer(0)
        link.reading = False
        link.flush()
        self.assertEqual(len(link.wire), 3)
        self.assertIn("paused", outbound.status()[0]["last_error"])
        store.set_message_id = real  # type: ignore[method-assign]
        clock.advance(PROBE_FIRST)
        clock.advance(0)  # the probe's write is durable
        self.assertEqual(len(link.wire), 4)
        self.assertEqual(link.resets, [])  # the parts in flight and r0 fit in the window
        self.assertEqual(outbound.status()[0]["last_error"], "")
        # r0's outcome could not be stored whole while its part's record was refused.
        self.failureResultOf(answers[0], TryLater)

    def test_acceptance_holds_its_slot_until_committed(self) -> None:
        """A window slot is taken again only once the store says the acceptance it held is
        durable; then a temporary failure's resend goes before anything newer."""
        outbound, links, clock, store = self.make(link_class=BufferedLink)
        link = links[""]
        for i in range(4):
            self.send(outbound, clock, rid=f"r{i}", body=f"m{i}")
        link.answer(0)  # r0 accepted, its record not durable yet: r3 waits
        link.answer(0, status=STATUSES["ESME_RSYSERR"])  # r1 to be sent again: its slot is free
        self.assertEqual([p.params["short_message"][-2:] for p in link.wire],
                         [b"m0", b"m1", b"m2", b"m1"])
        clock.advance(0)
        self.assertEqual([p.params["short_message"][-2:] for p in link.wire],
                         [b"m0", b"m1", b"m2", b"m1", b"m3"])


class FairnessTests(SynchronousTestCase):
    """Hosts take turns on a link; each host's messages keep their order."""

    make = QueueTests.make

    def test_second_host_not_starved(self) -> None:
        """Host B's one message queued after host A's 1,000 goes out among the first submits,
        and A's go in A's order."""
        outbound, links, clock, store = self.make(bound=False)
        for i in range(1000):
            outbound.send_signal(f"a{i}", "MESSAGE", "a@example.com", f"+1555{i:07d}@smpp", "x",
                                 host="A")
        outbound.send_signal("b0", "MESSAGE", "b@example.com", "+15559999999@smpp", "y", host="B")
        clock.advance(0)
        link = links[""]
        link.set_state("bound")
        clock.advance(0)
        wire = []
        for _ in range(6):
            wire.append(link.answer(0).params["destination_addr"])
            clock.advance(0)
        self.assertEqual(wire, [b"15550000000", b"15559999999", b"15550000001", b"15550000002",
                                b"15550000003", b"15550000004"])

    def test_host_arriving_while_sending(self) -> None:
        """A host that queues while another's backlog is being sent gets the next free slot but one."""
        outbound, links, clock, store = self.make()
        for i in range(20):
            outbound.send_signal(f"a{i}", "MESSAGE", "a@example.com", f"+1555{i:07d}@smpp", "x",
                                 host="A")
        clock.advance(0)
        outbound.send_signal("b0", "MESSAGE", "b@example.com", "+15559999999@smpp", "y", host="B")
        clock.advance(0)
        link = links[""]
        wire = [pdu.params["destination_addr"] for pdu, _ in link.submits]
        for _ in range(3):
            link.answer(0)
            clock.advance(0)
        wire += [pdu.params["destination_addr"] for pdu, _ in link.submits]
        self.assertEqual(wire[:5], [b"15550000000", b"15550000001", b"15550000002",
                                    b"15550000003", b"15559999999"])

    def test_hosts_over_amp_take_turns(self) -> None:
        """Two AMP connections are two hosts: the second's message goes second on the wire."""
        from twisted.protocols import amp
        from twisted.test import iosim

        from smppgw.host.commands import SendSignal
        from smppgw.host.protocol import GatewayAMPFactory
        from smppgw.host.registry import HostRegistry

        outbound, links, clock, store = self.make(bound=False)
        factory = GatewayAMPFactory(outbound, HostRegistry(), clock, "")
        hosts = [iosim.connectedServerAndClient(lambda: factory.buildProtocol(None), amp.AMP,
                                                clock=clock) for _ in range(2)]
        for name, count, (client, _, pump) in zip("ab", (20, 1), hosts, strict=True):
            for i in range(count):
                client.callRemote(SendSignal, request_id=f"{name}{i}", method="MESSAGE",
                                  sender=f"{name}@example.com", recipient=f"+1555000{i:04d}@smpp",
                                  body=name)
            pump.flush()
            clock.advance(0)
        links[""].set_state("bound")
        clock.advance(0)
        self.assertEqual([pdu.params["short_message"][-1:] for pdu, _ in links[""].submits],
                         [b"a", b"b", b"a"])
        for _, _, pump in hosts:
            pump.flush()  # nothing answered: each host still waits


class LoopbackFailingStoreTests(TestCase):
    """The pause on a real link over 127.0.0.1, against the SMSC simulator."""

    timeout = 20

    @inlineCallbacks
    def test_slots_of_a_failed_burst_stay_taken(self) -> Any:
        """While the acceptances of a burst are not recorded (their commit failed), their
        slots stay taken: the SMSC gets nothing more; once the store writes again every
        message arrives, at most `window` twice."""
        import smppgw.relay.recorder
        from smppgw.smpp.link import Link, build_endpoint
        from smppgw.testing.simulator import SMSCSimulator

        from .test_store import FailingCommit

        self.patch(smppgw.relay.recorder, "PROBE_FIRST", 0.02)
        self.patch(smppgw.relay.recorder, "PROBE_MAX", 0.05)
        simulator = SMSCSimulator({"esme": "pw"}, reactor)
        port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(simulator)
        self.addCleanup(port.stopListening)
        config = parse_config(
            f'[[server]]\nname = ""\naddress = "127.0.0.1:{port.getHost().port}"\n'
            f'system_id = "esme"\npassword = "pw"\nwindow = 3\nsender = "*"\n')
        [server] = config.servers
        link = Link(server, build_endpoint(reactor, server), reactor, "none",
                    initial_delay=0.02, max_delay=0.05, jitter=lambda: 0.0)
        store = Store(os.path.join(self.mktemp(), "s.sqlite"), reactor)
        outbound = Outbound(config, {"": link}, store, reactor)
        self.addCleanup(store.close)
        self.addCleanup(link.stopService)
        self.addCleanup(outbound.stop)
        first = [outbound.send_signal(f"r{i}", "MESSAGE", "a@example.com", "+15551234@smpp",
                                      f"m{i}").addErrback(lambda f: f.trap(TryLater))
                 for i in range(10)]
        yield store.durable()
        real = store._db
        store._db = FailingCommit(real)  # type: ignore[assignment]
        link.startService()
        yield simulator.when_received(3)
        probes: Deferred[None] = Deferred()
        reactor.callLater(0.2, probes.callback, None)  # the commit fails; probes go on meanwhile
        yield DeferredList([probes, simulator.when_received(4)], fireOnOneCallback=True)
        self.assertEqual(simulator.received_count("submit_sm"), 3)
        self.assertIn("paused", outbound.status()[0]["last_error"])
        # Nothing was written into the slots of those acceptances: no connection dropped.
        self.assertEqual(simulator.received_count("bind_transceiver"), 1)
        store._db = real
        results = yield gatherResults([
            outbound.send_signal(f"r{i}", "MESSAGE", "a@example.com", "+15551234@smpp", f"m{i}")
            .addErrback(lambda f: f.trap(TryLater))
            for i in range(10)])
        bodies = [pdu.params["short_message"][-2:] for pdu in simulator.accepted]
        self.assertEqual(sorted(set(bodies)), [f"m{i}".encode() for i in range(10)])
        self.assertLessEqual(len(bodies) - 10, 3)
        self.assertEqual([r["parts"] for r in results], [1] * 10)
        yield gatherResults(first)

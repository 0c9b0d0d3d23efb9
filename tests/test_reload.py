"""Live reload: a gateway on loopback with the simulator, its configuration file changed
and read again (`Gateway.reload`, what SIGHUP calls), each kind of change checked on the
wire and over AMP."""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred, gatherResults, inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol, serverFromString
from twisted.logger import capturedLogs, formatEvent
from twisted.trial.unittest import TestCase

from smppgw.config import load_config
from smppgw.errors import ServerDisabledError
from smppgw.host.commands import SendSignal, ServerStatus
from smppgw.service import ReloadRefused, build_gateway
from smppgw.testing.simulator import SMSCSimulator

from .test_e2e import Host, turn


def server_table(name: str, port: int, **keys: Any) -> str:
    values = {"name": name, "address": f"127.0.0.1:{port}", "system_id": "gw", "password": "pw",
              "sender": "+15550100", "response_timeout": "5s", "window": 10, **keys}
    lines = ["[[server]]"]
    for key, value in values.items():
        lines.append(f"{key} = {value}" if isinstance(value, int) and not isinstance(value, bool)
                     else f'{key} = "{value}"')
    return "\n".join(lines) + "\n"


def when_stopped(link: Any) -> Deferred[None]:
    """Fires once `link`'s next stopService has ended (unbound, no reconnect pending)."""
    d: Deferred[None] = Deferred()
    stop = link.stopService
    link.stopService = lambda: stop().addBoth(lambda r: (d.called or d.callback(None), r)[1])
    return d


def when_state(link: Any, state: str) -> Deferred[None]:
    d: Deferred[None] = Deferred()
    link.observe(lambda now: now == state and not d.called and d.callback(None))
    return d


class ReloadTests(TestCase):
    timeout = 30

    def write(self, servers: str, module: str = "", amp: str = "", store: str = "",
              level: str = "none") -> None:
        text = (f'[module]\nlog_level = "{level}"\nreject_if_not_relayed_in = "10m"\n{module}'
                f'[amp]\nlisten = "unix:{self.state}/{amp or "amp.sock"}:mode=600"\n'
                f'[store]\npath = "{self.state}/{store or "smppgw.sqlite"}"\n'
                f'[admin]\nlisten = ""\n' + servers)
        with open(self.path, "w") as f:
            f.write(text)

    @inlineCallbacks
    def setUp(self) -> Any:
        self.state = tempfile.mkdtemp(prefix="smppgw-")
        self.addCleanup(shutil.rmtree, self.state, True)
        self.path = os.path.join(self.state, "smppgw.toml")
        self.simulator = SMSCSimulator({"gw": "pw", "gw2": "pw2"}, reactor)
        self.ports = []
        for _ in range(2):
            port = yield serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(self.simulator)
            self.addCleanup(port.stopListening)
            self.ports.append(port.getHost().port)

    @inlineCallbacks
    def start(self, servers: str | None = None, **kw: str) -> Any:
        self.write(servers if servers is not None else server_table("", self.ports[0]), **kw)
        self.gateway = build_gateway(load_config(self.path), reactor, config_path=self.path)
        self.gateway.startService()
        self.addCleanup(self._stop_gateway)
        for link in self.gateway.links.values():
            yield link.when_bound()
        host = yield self.host()
        return host

    @inlineCallbacks
    def host(self, socket: str = "amp.sock") -> Any:
        host = yield connectProtocol(UNIXClientEndpoint(reactor, f"{self.state}/{socket}"), Host())
        self.addCleanup(host.transport.loseConnection)
        return host

    @inlineCallbacks
    def _stop_gateway(self) -> Any:
        if self.gateway.running:
            yield self.gateway.stopService()
        for connection in list(self.simulator.connections):
            connection.close()
        yield turn()

    def reload(self, servers: str, **kw: str) -> list[str]:
        self.write(servers, **kw)
        return self.gateway.reload()

    def send(self, host: Host, rid: str, recipient: str = "+15551234@smpp") -> Deferred[Any]:
        return host.callRemote(SendSignal, request_id=rid, method="MESSAGE",
                               sender="alice@example.com", recipient=recipient, body="hello " + rid)

    def bound(self, system_id: str) -> list[Any]:
        return [c for c in self.simulator.connections
                if c.system_id == system_id and c.state == "bound"]

    @inlineCallbacks
    def test_new_server_binds(self) -> Any:
        """A [[server]] added to the file binds once reloaded, and takes messages; the
        server already there is not touched."""
        yield self.start()
        first = self.gateway.links[""]
        binds = self.simulator.received_count("bind_transceiver")
        lines = self.reload(server_table("", self.ports[0])
                            + server_table("second", self.ports[1], system_id="gw2", password="pw2"))
        self.assertEqual(lines, [f"server 'second' added: binding to 127.0.0.1:{self.ports[1]}"])
        yield self.gateway.links["second"].when_bound()
        self.assertEqual(self.simulator.received_count("bind_transceiver"), binds + 1)
        self.assertIs(self.gateway.links[""], first)
        host = yield self.host()
        answer = yield self.send(host, "r1", "+15551234@second._smpp")
        self.assertEqual(answer["server"], "second")
        self.assertEqual(self.simulator.accepted[-1].params["short_message"], b"hello r1")

    @inlineCallbacks
    def test_off_keeps_the_queue_until_the_server_returns(self) -> Any:
        """A server set to off unbinds; a message queued for it waits (not failed), new ones
        are refused, and the queued one goes out once the server is on again."""
        host = yield self.start(server_table("", self.ports[0], response_timeout="1s"))
        self.simulator.faults.black_hole = True
        pending = self.send(host, "q1")
        yield self.simulator.when_received(1)
        link = self.gateway.links[""]
        stopped = when_state(link, "disconnected")
        unbound = when_stopped(link)
        lines = self.reload(server_table("", self.ports[0], mode="off", response_timeout="1s"))
        self.assertEqual(lines[-1], "server '' off: unbinding; 1 queued message(s) wait for it until"
                                    " reject_if_not_relayed_in (600s from each one's acceptance)")
        yield stopped
        yield unbound
        self.assertFalse(link.running)
        self.assertNotIn("", self.gateway.links)
        self.assertNoResult(pending)
        yield self.assertFailure(self.send(host, "q2"), ServerDisabledError)
        status = yield host.callRemote(ServerStatus)
        self.assertEqual((status["servers"][0]["mode"], status["servers"][0]["queued"]), ("off", 1))
        self.simulator.faults.black_hole = False
        self.reload(server_table("", self.ports[0], response_timeout="1s"))
        answer = yield pending
        self.assertEqual(answer["server"], "")
        # Sent twice at most (it was in flight, unanswered, when the link went): at least once.
        self.assertIn(self.simulator.accepted[-1].params["short_message"], [b"hello q1"])

    @inlineCallbacks
    def test_removed_server_keeps_its_queue(self) -> Any:
        """A server removed from the file unbinds; what waits for it is listed, not failed,
        and goes out when a server of that name is added again."""
        host = yield self.start(server_table("", self.ports[0]) + server_table(
            "b", self.ports[1], system_id="gw2", password="pw2", response_timeout="1s"))
        self.simulator.faults.black_hole = True
        pending = self.send(host, "q1", "+1555@b._smpp")
        yield self.simulator.when_received(1)
        link = self.gateway.links["b"]
        stopped = when_state(link, "disconnected")
        unbound = when_stopped(link)
        lines = self.reload(server_table("", self.ports[0]))
        self.assertTrue(lines[-1].startswith("server 'b' removed: unbinding; 1 queued message(s)"))
        self.assertNotIn("b", self.gateway.links)
        yield stopped
        yield unbound  # its stop has ended: no reconnect left pending
        status = yield host.callRemote(ServerStatus)
        self.assertEqual([(s["name"], s["mode"], s["queued"]) for s in status["servers"]],
                         [("", "send-and-receive", 0), ("b", "removed", 1)])
        self.simulator.faults.black_hole = False
        self.reload(server_table("", self.ports[0]) + server_table(
            "b", self.ports[1], system_id="gw2", password="pw2", response_timeout="1s"))
        answer = yield pending
        self.assertEqual(answer["server"], "b")

    @inlineCallbacks
    def test_new_address_rebinds_that_server_only(self) -> Any:
        """A new address re-binds that server (unbind, then bind at the new address); the
        other server keeps its connection; messages queued meanwhile go out on the new link."""
        host = yield self.start(server_table("", self.ports[0])
                                + server_table("b", self.ports[0], system_id="gw2", password="pw2"))
        [other] = self.bound("gw2")
        lines = self.reload(server_table("", self.ports[1])
                            + server_table("b", self.ports[0], system_id="gw2", password="pw2"))
        self.assertEqual(lines, ["server '': address changed, re-binding"])
        answers = [self.send(host, f"r{i}") for i in range(5)]
        yield self.simulator.when_received(1, "unbind")
        results = yield gatherResults(answers)
        self.assertEqual({r["server"] for r in results}, {""})
        [connection] = self.bound("gw")
        self.assertEqual(connection.transport.getHost().port, self.ports[1])
        self.assertEqual(self.bound("gw2"), [other])
        self.assertEqual(sorted(p.params["short_message"] for p in self.simulator.accepted),
                         [f"hello r{i}".encode() for i in range(5)])

    @inlineCallbacks
    def test_window_applies_without_a_rebind(self) -> Any:
        """A new window and throughput apply to the bound link: no unbind, no new bind."""
        host = yield self.start()
        binds = self.simulator.received_count("bind_transceiver")
        lines = self.reload(server_table("", self.ports[0], window=2, throughput=500))
        self.assertEqual(lines, ["server '': window, throughput changed, applied without a re-bind"])
        link = self.gateway.links[""]
        self.assertEqual(link.protocol.session.settings.window, 2)
        self.assertEqual(self.gateway.outbound.queues[""].pacer.ceiling, 500)
        self.simulator.faults.black_hole = True
        answers = [self.send(host, f"r{i}") for i in range(4)]
        yield self.simulator.when_received(2)
        yield turn()
        self.assertEqual(self.simulator.received_count(), 2)  # the new window holds
        for answer in answers:
            answer.addErrback(lambda f: None)
        self.assertEqual(self.simulator.received_count("bind_transceiver"), binds)
        self.assertEqual(self.simulator.received_count("unbind"), 0)

    @inlineCallbacks
    def test_rebind_with_a_full_window_in_flight(self) -> Any:
        """Re-bound while its whole window waits for answers: the old link waits for them,
        unbinds, and the rest goes out on the new link; every request answered once."""
        host = yield self.start(server_table("", self.ports[0], window=3))
        self.simulator.faults.response_delay = 0.2
        answers = [self.send(host, f"r{i}") for i in range(8)]
        yield self.simulator.when_received(3)
        in_flight = self.gateway.outbound.queues[""].in_flight
        self.assertEqual(in_flight, 3)
        self.reload(server_table("", self.ports[1], window=3))
        results = yield gatherResults(answers)
        self.assertEqual(len({r["message_ids"][0] for r in results}), 8)
        texts = [p.params["short_message"] for p in self.simulator.accepted]
        self.assertEqual(sorted(texts), [f"hello r{i}".encode() for i in range(8)])
        # The first three were answered on the old connection, before its unbind.
        unbind = next(i for i, r in enumerate(self.simulator.received) if r.pdu.command == "unbind")
        before = [r.pdu for r in self.simulator.received[:unbind] if r.pdu.command == "submit_sm"]
        self.assertEqual(len(before), 3)

    @inlineCallbacks
    def test_rebind_with_unanswered_window_resends_it(self) -> Any:
        """Re-bound while the SMSC answers nothing: the old link gives up after the response
        timeout; those parts are in doubt and go again on the new link (at least once,
        never more than the window twice)."""
        host = yield self.start(server_table("", self.ports[0], window=3, response_timeout="1s"))
        self.simulator.faults.black_hole = True
        answers = [self.send(host, f"r{i}") for i in range(5)]
        yield self.simulator.when_received(3)
        self.reload(server_table("", self.ports[1], window=3, response_timeout="1s"))
        self.simulator.faults.black_hole = False
        results = yield gatherResults(answers)
        self.assertEqual([r["parts"] for r in results], [1] * 5)
        texts = [p.params["short_message"] for p in self.simulator.accepted]
        self.assertEqual(sorted(set(texts)), [f"hello r{i}".encode() for i in range(5)])
        self.assertLessEqual(self.simulator.received_count(), 5 + 3)

    @inlineCallbacks
    def test_reload_while_messages_flow(self) -> Any:
        """Reloads (a window change, then a re-bind) while 200 messages flow: each request
        answered once, every message at the SMSC, duplicates no more than the window."""
        host = yield self.start(server_table("", self.ports[0], window=5))
        answers = [self.send(host, f"f{i}", f"+1555{i:04d}@smpp") for i in range(200)]
        yield self.simulator.when_received(40)
        self.reload(server_table("", self.ports[0], window=8))
        yield self.simulator.when_received(100)
        self.reload(server_table("", self.ports[1], window=8))
        results = yield gatherResults(answers)
        self.assertEqual(len(results), 200)
        texts = [p.params["short_message"] for p in self.simulator.accepted]
        self.assertEqual(set(texts), {f"hello f{i}".encode() for i in range(200)})
        self.assertLessEqual(len(texts) - 200, 8)

    @inlineCallbacks
    def test_module_settings_at_once(self) -> Any:
        """[module] log_level, reject_if_not_relayed_in and default_gateway (for @telnum) apply at once."""
        yield self.start(server_table("", self.ports[0])
                         + server_table("b", self.ports[1], system_id="gw2", password="pw2"))
        lines = self.reload(server_table("", self.ports[0])
                            + server_table("b", self.ports[1], system_id="gw2", password="pw2"),
                            module='default_gateway = "b"\n')
        self.assertIn("[module] default_gateway is now 'b'", lines)
        host = yield self.host()
        answer = yield self.send(host, "r1", "+15551234@telnum")
        self.assertEqual(answer["server"], "b")
        self.write(server_table("", self.ports[0]), module="")
        with open(self.path) as f:
            text = f.read().replace('log_level = "none"', 'log_level = "major"').replace(
                '"10m"', '"2m"')
        with open(self.path, "w") as f:
            f.write(text)
        with capturedLogs() as events:
            lines = self.gateway.reload()
        self.assertIn("[module] log_level is now 'major'", lines)
        self.assertIn("[module] reject_if_not_relayed_in is now 120.0", lines)
        self.assertEqual(self.gateway.outbound.queues[""].reject_after, 120.0)
        self.assertEqual(self.gateway.links[""].log.level, "major")
        self.assertIn("SMPP [*] reload: [module] log_level is now 'major'",
                      [formatEvent(e) for e in events])

    @inlineCallbacks
    def test_invalid_file_changes_nothing(self) -> Any:
        """A reload of a file with a bad value is refused naming the key; the gateway runs
        on as before."""
        host = yield self.start(level="problems")
        config = self.gateway.config
        with open(self.path) as f:
            text = f.read()
        with open(self.path, "w") as f:
            f.write(text.replace("window = 10", 'window = "lots"'))
        with capturedLogs() as events:
            error = self.assertRaises(ReloadRefused, self.gateway.reload)
        self.assertIn("window", str(error))
        self.assertIs(self.gateway.config, config)
        self.assertTrue(any("reload refused, nothing changed" in formatEvent(e) and "window"
                            in formatEvent(e) for e in events))
        answer = yield self.send(host, "r1")
        self.assertEqual(answer["parts"], 1)

    @inlineCallbacks
    def test_store_path_needs_a_restart(self) -> Any:
        """A new [store] path is not applied: the store in use stays, and the line says so."""
        yield self.start()
        store = self.gateway.store
        lines = self.reload(server_table("", self.ports[0]), store="other.sqlite")
        self.assertEqual(lines, ["[store] changed: the store in use is kept; a restart applies"
                                 " the new one"])
        self.assertIs(self.gateway.store, store)
        self.assertEqual(self.gateway.config.store.path, f"{self.state}/smppgw.sqlite")
        self.assertFalse(os.path.exists(f"{self.state}/other.sqlite"))

    @inlineCallbacks
    def test_amp_listen_moves(self) -> Any:
        """A new [amp] listen opens the new socket; hosts connect there; the old one is closed."""
        host = yield self.start()
        # Accepted: a connection still in the old socket's backlog would be reset.
        yield self.send(host, "r0")
        lines = self.reload(server_table("", self.ports[0]), amp="amp2.sock")
        self.assertTrue(lines[-1].startswith(f"[amp] now listening on unix:{self.state}/amp2.sock"))
        moved = yield self.host("amp2.sock")
        answer = yield self.send(moved, "r1")
        self.assertEqual(answer["parts"], 1)
        yield turn()
        self.assertFalse(os.path.exists(f"{self.state}/amp.sock"))
        # A connection made before stays open.
        answer = yield self.send(host, "r2")
        self.assertEqual(answer["parts"], 1)

    @inlineCallbacks
    def test_operator_rebind_and_disconnect(self) -> Any:
        """Gateway.rebind unbinds and binds again; disconnect drops the connection, which
        comes back."""
        yield self.start()
        binds = self.simulator.received_count("bind_transceiver")
        self.gateway.rebind("")
        yield self.simulator.when_received(1, "unbind")
        yield self.gateway.links[""].when_bound()
        self.assertEqual(self.simulator.received_count("bind_transceiver"), binds + 1)
        self.gateway.disconnect("")
        yield self.simulator.when_received(binds + 2, "bind_transceiver")
        self.assertRaises(KeyError, self.gateway.rebind, "nosuch")

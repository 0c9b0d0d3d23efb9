"""The benchmark's IM host: an AMP load generator for a running gateway.

It connects to the gateway's AMP endpoint, waits until the gateway reports its
first server bound, then sends `--messages` SendSignal requests keeping up to
`--concurrency` outstanding, and prints one JSON object: the rate from the
first send to the last answer, the latency of each request from its send to
its answer, the errors by name, and the CPU seconds the processes named with
`--watch` used over exactly that interval.

The host shares the machine's CPUs with the gateway and the simulator, so
what it spends is taken from what it measures.  It therefore speaks raw AMP
boxes (the wire format of ``twisted.protocols.amp``) on a bare Protocol
instead of going through AMP's generic callRemote machinery: the constant
part of every SendSignal box is built once, the boxes of one read are cut out
of the stream in a single pass, and the requests that refill the window are
written together.  The outcomes read the same as through Twisted's AMP: an
error is named after the exception callRemote would raise for its code
(``TryLater``, ``NotRelayed``, ..., ``UnknownRemoteError``), and a command
the gateway sends (a SignalReport) gets the ``UNHANDLED`` answer AMP gives.

Run by ``bench/bench_e2e.py``; alone: ``python bench/_host.py --socket PATH``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from _cpustat import machine_busy_seconds, own_cpu_seconds, process_cpu_seconds, watched
from _messages import MIXES, body, number
from twisted.internet.defer import Deferred, fail, inlineCallbacks
from twisted.internet.endpoints import UNIXClientEndpoint, connectProtocol
from twisted.internet.error import ConnectError, ConnectionDone
from twisted.internet.protocol import Protocol
from twisted.internet.task import deferLater
from twisted.protocols import amp
from twisted.python.failure import Failure

from smppgw.host.commands import SendSignal, ServerStatus


def percentile(ordered: list[float], fraction: float) -> float:
    """The nearest-rank percentile of an ascending list."""
    if not ordered:
        return float("nan")
    rank = max(1, -(-len(ordered) * fraction // 1))
    return ordered[int(rank) - 1]


# -- AMP boxes on the wire ----------------------------------------------------------
#
# A box is a sequence of key / value pairs, each string preceded by its length
# as two big-endian bytes, ended by an empty key.  A request carries _command
# and _ask (a tag of the sender's choice); its answer carries _answer = that
# tag, or _error = that tag with _error_code and _error_description.

ASK = amp.ASK
ANSWER = amp.ANSWER
ERROR = amp.ERROR
ERROR_CODE = amp.ERROR_CODE
COMMAND = amp.COMMAND
END = b"\x00\x00"


def length(string: bytes) -> bytes:
    """The two-byte length prefix of a key or value."""
    if len(string) > amp.MAX_VALUE_LENGTH:
        raise ValueError(f"an AMP value holds at most {amp.MAX_VALUE_LENGTH} bytes, not {len(string)}")
    return len(string).to_bytes(2, "big")


def pair(key: bytes, value: bytes) -> bytes:
    return length(key) + key + length(value) + value


def error_names(command: type[amp.Command]) -> dict[bytes, str]:
    """For each AMP error code, the name of the exception callRemote(`command`) fails with.

    Twisted's AMP makes a protocol error code (``UNHANDLED``) its own
    exception, then maps the command's codes back to their classes; any other
    code becomes `UnknownRemoteError`.
    """
    reverse: dict[bytes, type[Exception]] = getattr(command, "reverseErrors", {})
    names = {code: error.__name__ for code, error in reverse.items()}
    names.update((code, error.__name__) for code, error in amp.PROTOCOL_ERRORS.items())
    return names


UNKNOWN_ERROR = amp.UnknownRemoteError.__name__
SIGNAL_ERRORS = error_names(SendSignal)
_CLOSED = Failure(ConnectionDone("connection closed"))


class RawAMP(Protocol):
    """An AMP peer that reads and writes the boxes itself.

    `callRemote` serves the occasional command (ServerStatus) with the
    command's own argument and response (de)serialisation; a `LoadRun`
    attached as `load` gets every box read while it runs, and hands back to
    `box_received` those that are not its answers.
    """

    def __init__(self) -> None:
        self._unparsed = b""
        self._last_tag = 0
        self._questions: dict[bytes, tuple[type[amp.Command], Deferred[Any]]] = {}
        self.load: LoadRun | None = None
        self.lost_reason: Failure | None = None

    def reserve_tags(self, count: int) -> int:
        """Set aside `count` ask tags for the caller: it numbers them from the int returned."""
        first = self._last_tag + 1
        self._last_tag += count
        return first

    def callRemote(self, command: type[amp.Command], **arguments: Any) -> Deferred[Any]:
        """Send `command` and get its parsed answer, or the failure Twisted's AMP would give."""
        if self.lost_reason is not None:
            return fail(self.lost_reason)
        tag = b"%d" % self.reserve_tags(1)
        box = command.makeArguments(arguments, self)
        box[COMMAND] = command.commandName
        box[ASK] = tag
        d: Deferred[Any] = Deferred()
        self._questions[tag] = (command, d)
        assert self.transport is not None
        self.transport.write(box.serialize())
        return d

    def dataReceived(self, data: bytes) -> None:
        """Cut the whole boxes out of `data` (after what was left of the last read), in one pass."""
        buf = self._unparsed + data if self._unparsed else data
        end = len(buf)
        start = 0
        boxes = []
        while True:
            box = {}
            pos = start
            while pos + 2 <= end:
                key_end = pos + 2 + ((buf[pos] << 8) | buf[pos + 1])
                if key_end == pos + 2:
                    break  # the empty key: the box is complete
                if key_end + 2 > end:
                    pos = end
                    break
                value_end = key_end + 2 + ((buf[key_end] << 8) | buf[key_end + 1])
                if value_end > end:
                    pos = end
                    break
                box[buf[pos + 2 : key_end]] = buf[key_end + 2 : value_end]
                pos = value_end
            if pos + 2 > end:
                break  # incomplete: wait for the rest
            start = pos + 2
            boxes.append(box)
        self._unparsed = buf[start:] if start < end else b""
        if self.load is not None:
            self.load.received(boxes)
        else:
            for box in boxes:
                self.box_received(box)

    def box_received(self, box: dict[bytes, bytes]) -> None:
        """An answer to `callRemote`, or a command from the gateway."""
        tag = box.get(ANSWER, box.get(ERROR))
        if tag is not None and tag in self._questions:
            command, d = self._questions.pop(tag)
            if ANSWER in box:
                try:
                    result = command.parseResponse(box, self)
                except Exception:
                    d.errback(Failure())
                else:
                    d.callback(result)
            else:
                d.errback(self._remote_error(command, box))
        elif COMMAND in box:
            # Inbound messages and receipts are for a real host: refuse them
            # as AMP does without a responder (the gateway then sends no more).
            if ASK in box and self.transport is not None:
                self.transport.write(
                    pair(ERROR, box[ASK]) + pair(ERROR_CODE, amp.UNHANDLED_ERROR_CODE)
                    + pair(amp.ERROR_DESCRIPTION, b"Unhandled Command: %r" % box[COMMAND]) + END)
        elif self.transport is not None:
            # An answer to nothing asked, or no command and no answer: AMP
            # drops such a peer, and so does this host.
            self.transport.loseConnection()

    @staticmethod
    def _remote_error(command: type[amp.Command], box: dict[bytes, bytes]) -> Failure:
        code = box.get(ERROR_CODE, amp.UNKNOWN_ERROR_CODE)
        description = box.get(amp.ERROR_DESCRIPTION, b"").decode("utf-8", "replace")
        if code in amp.PROTOCOL_ERRORS:
            return Failure(amp.PROTOCOL_ERRORS[code](code, description))
        reverse: dict[bytes, type[Exception]] = getattr(command, "reverseErrors", {})
        return Failure(reverse.get(code, amp.UnknownRemoteError)(description))

    def connectionLost(self, reason: Failure = _CLOSED) -> None:
        self.lost_reason = reason
        questions, self._questions = self._questions, {}
        for _, d in questions.values():
            d.errback(reason)
        if self.load is not None:
            self.load.connection_lost(reason)


class LoadRun:
    """Sends the requests, refilling the window of outstanding ones as answers come back.

    Latency is measured per read: every answer in one read arrived at once,
    and the requests sent in reply are stamped when they are written.
    """

    def __init__(self, host: RawAMP, messages: int, concurrency: int, mix: str, prefix: str,
                 watch: dict[str, int]) -> None:
        self.host = host
        self.messages = messages
        self.concurrency = concurrency
        self.mix = mix
        self.prefix = prefix.encode("utf-8")
        self.watch = watch
        self.sent = 0
        self.answered = 0
        self.parts = 0
        self.errors: dict[str, int] = {}
        self.lost = False
        self.latencies: list[float] = []
        self.done: Deferred[None] = Deferred()
        #: The ask tag of each outstanding request, and when it was written.
        self.pending: dict[bytes, float] = {}
        self._unwritten: list[bytes] = []
        self._unwritten_tags: list[bytes] = []
        # Every SendSignal box but the varying pairs: ask tag, request_id, recipient, body.
        self._head = pair(COMMAND, SendSignal.commandName) + pair(b"method", b"MESSAGE") \
            + pair(b"sender", b"alice@example.com")
        self._first_tag = 0

    def start(self) -> Deferred[None]:
        if self.host.lost_reason is not None:
            return fail(self.host.lost_reason)
        self._first_tag = self.host.reserve_tags(self.messages)
        self.host.load = self
        self.cpu_before = {name: process_cpu_seconds(pid) for name, pid in self.watch.items()}
        self.own_before = own_cpu_seconds()
        self.machine_before = machine_busy_seconds()
        self.started = time.perf_counter()
        self._send(min(self.concurrency, self.messages))
        self._write()
        return self.done

    def _send(self, count: int) -> None:
        """Queue the next `count` requests for `_write`."""
        head, prefix, mix, first_tag = self._head, self.prefix, self.mix, self._first_tag
        out = self._unwritten
        tags = self._unwritten_tags
        for i in range(self.sent, self.sent + count):
            tag = b"%d" % (first_tag + i)
            request_id = prefix + b"%d" % i
            recipient = b"+%s@smpp" % number(i).encode("ascii")
            text = body(i, mix).encode("utf-8")
            out.append(b"".join((
                head,
                b"\x00\x04_ask", length(tag), tag,
                b"\x00\x0arequest_id", length(request_id), request_id,
                b"\x00\x09recipient", length(recipient), recipient,
                b"\x00\x04body", length(text), text,
                END,
            )))
            tags.append(tag)
        self.sent += count

    def _write(self) -> None:
        if self._unwritten:
            transport = self.host.transport
            assert transport is not None
            self.pending.update(dict.fromkeys(self._unwritten_tags, time.perf_counter()))
            transport.write(b"".join(self._unwritten))
            self._unwritten.clear()
            self._unwritten_tags.clear()

    def received(self, boxes: list[dict[bytes, bytes]]) -> None:
        """Settle the requests that `boxes` answer, and send as many more."""
        now = time.perf_counter()
        pending = self.pending
        latencies = self.latencies
        settled = 0
        for box in boxes:
            tag = box.get(ANSWER)
            if tag is not None:
                sent_at = pending.pop(tag, None)
                if sent_at is None:
                    self.host.box_received(box)
                    continue
                try:
                    self.parts += int(box[b"parts"])
                except Exception as error:  # as SendSignal.parseResponse would fail
                    self._count(error.__class__.__name__)
            else:
                tag = box.get(ERROR)
                sent_at = pending.pop(tag, None) if tag is not None else None
                if sent_at is None:
                    self.host.box_received(box)
                    continue
                self._count(SIGNAL_ERRORS.get(box.get(ERROR_CODE, b""), UNKNOWN_ERROR))
            latencies.append(now - sent_at)
            settled += 1
        if not settled or self.lost:
            return
        self.answered += settled
        if self.sent < self.messages:
            self._send(min(settled, self.messages - self.sent))
            self._write()
        elif self.answered == self.messages:
            self.finished = now
            self.cpu_after = {name: process_cpu_seconds(pid) for name, pid in self.watch.items()}
            self.own_after = own_cpu_seconds()
            self.machine_after = machine_busy_seconds()
            self.host.load = None
            self.done.callback(None)

    def _count(self, error: str) -> None:
        self.errors[error] = self.errors.get(error, 0) + 1

    def connection_lost(self, reason: Failure) -> None:
        """The gateway went away: what is outstanding fails, and the rest is not sent."""
        if self.done.called:
            return
        self.lost = True
        now = time.perf_counter()
        name = reason.value.__class__.__name__
        for sent_at in self.pending.values():
            self.latencies.append(now - sent_at)
            self._count(name)
        self.answered += len(self.pending)
        self.pending.clear()
        self.done.errback(ConnectionError(
            f"the AMP connection was lost after {self.answered} answers: {self.errors}"))

    def result(self) -> dict[str, Any]:
        elapsed = self.finished - self.started
        ordered = sorted(self.latencies)
        cpu = {name: self.cpu_after[name] - self.cpu_before[name] for name in self.watch}
        cpu["host"] = self.own_after - self.own_before
        # Whatever else ran on the machine meanwhile (another job would skew the figures).
        cpu["machine"] = self.machine_after - self.machine_before
        return {
            "messages": self.messages,
            "ok": self.messages - sum(self.errors.values()),
            "errors": self.errors,
            "parts": self.parts,
            "elapsed_s": elapsed,
            "messages_per_s": self.messages / elapsed,
            "latency_ms": {
                "p50": 1000 * percentile(ordered, 0.50),
                "p95": 1000 * percentile(ordered, 0.95),
                "p99": 1000 * percentile(ordered, 0.99),
                "max": 1000 * ordered[-1],
                "mean": 1000 * sum(ordered) / len(ordered),
            },
            "cpu_s": cpu,
        }


@inlineCallbacks
def connect(reactor: Any, path: str, timeout: float) -> Any:
    """An AMP connection (a `RawAMP`) to the unix socket at `path`, retried until it exists and accepts."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            host = yield connectProtocol(UNIXClientEndpoint(reactor, path), RawAMP())
            return host
        except ConnectError:
            if time.monotonic() > deadline:
                raise
            yield deferLater(reactor, 0.05, lambda: None)


@inlineCallbacks
def wait_bound(reactor: Any, host: RawAMP, timeout: float) -> Any:
    """Poll ServerStatus until the first server is bound, so no message waits for the bind."""
    deadline = time.monotonic() + timeout
    while True:
        status = yield host.callRemote(ServerStatus)
        state = status["servers"][0]["state"]
        if state == "bound":
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"the gateway's server is still {state!r} after {timeout} s")
        yield deferLater(reactor, 0.05, lambda: None)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--socket", required=True, help="the gateway's AMP unix socket")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--concurrency", type=int, default=500)
    parser.add_argument("--mix", choices=MIXES, default="gsm160")
    parser.add_argument("--prefix", default="bench-", help="request_id prefix")
    parser.add_argument("--watch", type=watched, action="append", default=[], metavar="NAME:PID",
                        help="a process whose CPU seconds to measure over the run, repeatable")
    parser.add_argument("--timeout", type=float, default=30.0,
                        help="seconds to wait for the socket and the bind")
    args = parser.parse_args()

    from twisted.internet import reactor as global_reactor

    reactor: Any = global_reactor
    outcome: dict[str, Any] = {}

    @inlineCallbacks
    def run() -> Any:
        try:
            host = yield connect(reactor, args.socket, args.timeout)
            yield wait_bound(reactor, host, args.timeout)
            load = LoadRun(host, args.messages, args.concurrency, args.mix, args.prefix,
                           dict(args.watch))
            yield load.start()
            outcome.update(load.result())
            host.transport.loseConnection()
        except Exception as e:
            outcome["failure"] = f"{e.__class__.__name__}: {e}"
        finally:
            reactor.stop()

    reactor.callWhenRunning(run)
    reactor.run()
    print(json.dumps(outcome), flush=True)
    return 1 if "failure" in outcome else 0


if __name__ == "__main__":
    sys.exit(main())

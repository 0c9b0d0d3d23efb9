"""The SMSC simulator's own ceiling: a bare pipelined SMPP sender on a plain socket (or TLS).

It binds as transceiver, then sends `--messages` submit_sm PDUs with up to
`--window` outstanding, and prints one JSON object with the submits per second
from the first submit to the last submit_sm_resp.  Every PDU is encoded (with
smppgw.smpp.codec, the same bytes a gateway would send) before the clock starts,
and responses are counted from their header only, so the sender costs next to
nothing and the simulator is what limits the rate.

With ``--tls CA_FILE`` it speaks TLS, trusting that certificate for the
host name given with ``--server-name`` (localhost).

Run by ``bench/bench_e2e.py``; alone: ``python bench/_raw_sender.py --port 2775``.
"""

from __future__ import annotations

import argparse
import json
import socket
import ssl
import sys
import time

from _cpustat import own_cpu_seconds, process_cpu_seconds
from _messages import MIXES, body, is_ucs2, number

from smppgw.smpp.codec import Framer, decode, encode, peek_header, request, response_to
from smppgw.smpp.constants import COMMAND_IDS
from smppgw.sms import textcodec

SUBMIT_SM_RESP = COMMAND_IDS["submit_sm_resp"]
ENQUIRE_LINK = COMMAND_IDS["enquire_link"]




def submits(messages: int, mix: str) -> list[bytes]:
    """Every submit_sm, encoded, numbered from sequence 2 (the bind is 1)."""
    encoded = []
    for i in range(messages):
        text = textcodec.encode_message(body(i, mix), "gsm", "udh", 1, 0)
        assert len(text.parts) == 1 and (text.data_coding == 8) == is_ucs2(i, mix)
        pdu = request(
            "submit_sm",
            source_addr_ton=1, source_addr_npi=1, source_addr=b"15550100",
            dest_addr_ton=1, dest_addr_npi=1, destination_addr=number(i).encode("ascii"),
            esm_class=text.parts[0].esm_class, registered_delivery=1,
            data_coding=text.data_coding, short_message=text.parts[0].short_message,
        )
        pdu.sequence_number = i + 2
        encoded.append(encode(pdu))
    return encoded


def read_frames(sock: socket.socket, framer: Framer) -> list[bytes]:
    data = sock.recv(1 << 16)
    if not data:
        raise ConnectionError("the simulator closed the connection")
    return framer.feed(data)


def bind(sock: socket.socket, framer: Framer, system_id: str, password: str) -> None:
    pdu = request("bind_transceiver", system_id=system_id.encode(), password=password.encode(),
                  interface_version=0x34)
    pdu.sequence_number = 1
    sock.sendall(encode(pdu))
    while True:
        for frame in read_frames(sock, framer):
            response = decode(frame)
            if response.command == "bind_transceiver_resp":
                if response.command_status:
                    raise ConnectionError(f"bind refused: 0x{response.command_status:08X}")
                return


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--account", default="gw:pw", metavar="SYSTEM_ID:PASSWORD")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--mix", choices=MIXES, default="gsm160")
    parser.add_argument("--watch-pid", type=int, help="the simulator's pid, to report its CPU")
    parser.add_argument("--tls", metavar="CA_FILE", help="speak TLS, trusting this certificate")
    parser.add_argument("--server-name", default="localhost", help="the TLS server's host name")
    args = parser.parse_args()

    pdus = submits(args.messages, args.mix)
    system_id, _, password = args.account.partition(":")
    framer = Framer()
    sock = socket.create_connection((args.host, args.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    if args.tls:
        sock = ssl.create_default_context(cafile=args.tls).wrap_socket(
            sock, server_hostname=args.server_name)
    try:
        bind(sock, framer, system_id, password)
        failed = 0
        answered = 0
        simulator_before = process_cpu_seconds(args.watch_pid) if args.watch_pid else 0.0
        own_before = own_cpu_seconds()
        started = time.perf_counter()
        next_pdu = min(args.window, len(pdus))
        sock.sendall(b"".join(pdus[:next_pdu]))
        while answered < len(pdus):
            batch = []
            for frame in read_frames(sock, framer):
                _length, command_id, status, _sequence = peek_header(frame)
                if command_id == SUBMIT_SM_RESP:
                    answered += 1
                    failed += status != 0
                    if next_pdu < len(pdus):
                        batch.append(pdus[next_pdu])
                        next_pdu += 1
                elif command_id == ENQUIRE_LINK:
                    batch.append(encode(response_to(decode(frame))))
            if batch:
                sock.sendall(b"".join(batch))
        elapsed = time.perf_counter() - started
        result = {
            "messages": len(pdus),
            "window": args.window,
            "failed": failed,
            "elapsed_s": elapsed,
            "submits_per_s": len(pdus) / elapsed,
            "cpu_s": {"sender": own_cpu_seconds() - own_before},
        }
        if args.watch_pid:
            result["cpu_s"]["simulator"] = process_cpu_seconds(args.watch_pid) - simulator_before
        unbind = request("unbind")
        unbind.sequence_number = len(pdus) + 2
        sock.sendall(encode(unbind))
    finally:
        sock.close()
    print(json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

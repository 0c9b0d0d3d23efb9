"""The peer yardstick: the benchmark's messages sent by smpplib, an SMPP client written elsewhere.

It runs under ``bench/.peer-venv`` (smpplib and nothing of this project but
``_messages.py``), binds as transceiver with ``client.bind_transceiver``, then
sends `--messages` submit_sm with up to `--window` outstanding: `window` PDUs
first, then one more for each submit_sm_resp that ``client.read_pdu`` returns
(smpplib is synchronous, so this is the pipelining it allows).  Each message
is built and encoded inside the measured loop, as an application using the
library would: ``smpplib.gsm.make_parts`` for the text (GSM 03.38, or UCS2
for what GSM cannot carry), ``smpplib.smpp.make_pdu`` for the PDU,
``client.send_pdu`` to write it.  It prints one JSON object: messages per
second from the first submit to the last submit_sm_resp, its own CPU seconds,
and those of the processes named with `--watch` and of the whole machine
over the same interval.

Run by ``bench/bench_peer.py``; alone:
``bench/.peer-venv/bin/python bench/_peer_smpplib.py --port 2775``.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import sys
import time
from importlib import metadata
from typing import Any

import smpplib.client
import smpplib.consts
import smpplib.gsm
import smpplib.smpp

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _cpustat import machine_busy_seconds, own_cpu_seconds, process_cpu_seconds, watched  # noqa: E402
from _messages import MIXES, body, number  # noqa: E402


def submit_sm(client: smpplib.client.Client, i: int, mix: str) -> Any:
    """Message `i` of `mix` as smpplib builds it: one part, registered delivery asked."""
    parts, data_coding, esm_class = smpplib.gsm.make_parts(body(i, mix))
    if len(parts) != 1:
        raise RuntimeError(f"smpplib split message {i} into {len(parts)} parts")
    return smpplib.smpp.make_pdu(
        "submit_sm", client=client,
        source_addr_ton=1, source_addr_npi=1, source_addr="15550100",
        dest_addr_ton=1, dest_addr_npi=1, destination_addr=number(i),
        esm_class=esm_class, registered_delivery=1, data_coding=data_coding,
        short_message=parts[0],
    )


def run(client: smpplib.client.Client, messages: int, window: int, mix: str) -> tuple[int, int]:
    """Send every message keeping `window` outstanding; (answered, failed) at the end."""
    sent = answered = failed = 0
    for _ in range(min(window, messages)):
        client.send_pdu(submit_sm(client, sent, mix))
        sent += 1
    while answered < messages:
        pdu = client.read_pdu()
        if pdu.command == "submit_sm_resp":
            answered += 1
            failed += pdu.status != smpplib.consts.SMPP_ESME_ROK
            if sent < messages:
                client.send_pdu(submit_sm(client, sent, mix))
                sent += 1
        elif pdu.command == "enquire_link":
            answer = smpplib.smpp.make_pdu("enquire_link_resp", client=client)
            answer.sequence = pdu.sequence
            client.send_pdu(answer)
        elif pdu.command == "deliver_sm":
            answer = smpplib.smpp.make_pdu("deliver_sm_resp", client=client)
            answer.sequence = pdu.sequence
            client.send_pdu(answer)
        elif pdu.is_error():
            raise RuntimeError(f"{pdu.command} with status 0x{pdu.status:08X}")
    return answered, failed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--account", default="gw:pw", metavar="SYSTEM_ID:PASSWORD")
    parser.add_argument("--messages", type=int, default=20_000)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--mix", choices=MIXES, default="gsm160")
    parser.add_argument("--nagle", action="store_true",
                        help="leave Nagle's algorithm on (smpplib's default) instead of TCP_NODELAY")
    parser.add_argument("--watch", type=watched, action="append", default=[], metavar="NAME:PID",
                        help="a process whose CPU seconds to measure over the run, repeatable")
    args = parser.parse_args()

    system_id, _, password = args.account.partition(":")
    outcome: dict[str, Any] = {}
    client = smpplib.client.Client(args.host, args.port, timeout=30, allow_unknown_opt_params=True)
    try:
        client.connect()
        if not args.nagle:
            # smpplib leaves Nagle on; with several small PDUs in flight that
            # waits for delayed ACKs, which would measure TCP, not the library.
            client._socket.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.bind_transceiver(system_id=system_id, password=password)
        watch = dict(args.watch)
        cpu_before = {name: process_cpu_seconds(pid) for name, pid in watch.items()}
        own_before = own_cpu_seconds()
        machine_before = machine_busy_seconds()
        started = time.perf_counter()
        answered, failed = run(client, args.messages, args.window, args.mix)
        elapsed = time.perf_counter() - started
        cpu = {name: process_cpu_seconds(pid) - cpu_before[name] for name, pid in watch.items()}
        cpu["peer"] = own_cpu_seconds() - own_before
        cpu["machine"] = machine_busy_seconds() - machine_before
        outcome = {
            "messages": answered,
            "window": args.window,
            "failed": failed,
            "elapsed_s": elapsed,
            "messages_per_s": answered / elapsed,
            "cpu_s": cpu,
            "nodelay": not args.nagle,
            "smpplib": metadata.version("smpplib"),
            "python": sys.version.split()[0],
        }
        client.unbind()
    except Exception as e:
        outcome["failure"] = f"{e.__class__.__name__}: {e}"
    finally:
        client.disconnect()
    print(json.dumps(outcome), flush=True)
    return 1 if "failure" in outcome else 0


if __name__ == "__main__":
    sys.exit(main())

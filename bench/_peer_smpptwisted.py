"""The Twisted peer: the benchmark's messages sent by smpp.twisted3's client, straight to the SMSC.

It runs under ``bench/.peer-venv`` (smpp.twisted3 with the Twisted it pins,
smpplib, and nothing of this project but ``_messages.py`` and
``_cpustat.py``), as an application written on that library would:
``SMPPClientTransceiver(config, handler).connectAndBind()``, then
``smpp.sendDataRequest(SubmitSM(...))`` for each message, keeping
``--window`` requests outstanding (one more each time an answer arrives).
The text goes as data_coding 0 (the benchmark's GSM texts use only
characters whose GSM 03.38 code is their ASCII code) or as UCS2.

It prints one JSON object: messages per second from the first submit_sm to
the last submit_sm_resp, its own CPU seconds and those of the processes named
with ``--watch NAME:PID`` over the same interval.

Run by ``bench/bench_user.py``; alone:
``bench/.peer-venv/bin/python bench/_peer_smpptwisted.py --port 2775``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from importlib import metadata
from typing import Any

from smpp.pdu.operations import SubmitSM
from smpp.pdu.pdu_types import (
    AddrNpi,
    AddrTon,
    DataCoding,
    DataCodingDefault,
    EsmClass,
    EsmClassMode,
    EsmClassType,
    RegisteredDelivery,
    RegisteredDeliveryReceipt,
)
from smpp.twisted.client import SMPPClientTransceiver
from smpp.twisted.config import SMPPClientConfig
from twisted.internet import defer, task

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from _cpustat import Interval, watched  # noqa: E402
from _messages import MIXES, body, is_ucs2, number  # noqa: E402


def submit(i: int, mix: str) -> SubmitSM:
    text = body(i, mix)
    if is_ucs2(i, mix):
        coding, data = DataCoding(schemeData=DataCodingDefault.UCS2), text.encode("utf-16-be")
    else:
        coding, data = DataCoding(schemeData=DataCodingDefault.SMSC_DEFAULT_ALPHABET), text.encode("ascii")
    return SubmitSM(
        source_addr_ton=AddrTon.INTERNATIONAL, source_addr_npi=AddrNpi.ISDN,
        source_addr=b"15550000000",
        dest_addr_ton=AddrTon.INTERNATIONAL, dest_addr_npi=AddrNpi.ISDN,
        destination_addr=number(i).encode(),
        esm_class=EsmClass(EsmClassMode.DEFAULT, EsmClassType.DEFAULT),
        registered_delivery=RegisteredDelivery(RegisteredDeliveryReceipt.NO_SMSC_DELIVERY_RECEIPT_REQUESTED),
        data_coding=coding, short_message=data,
    )


async def run(reactor: Any, options: argparse.Namespace) -> dict[str, Any]:
    config = SMPPClientConfig(host="127.0.0.1", port=options.port, username=options.system_id,
                              password=options.password, enquireLinkTimerSecs=60,
                              responseTimerSecs=120)
    client = SMPPClientTransceiver(config, lambda smpp, pdu: None)
    smpp = await client.connectAndBind()
    total = options.messages
    state = {"next": 0, "answered": 0, "errors": 0}
    done: defer.Deferred[None] = defer.Deferred()

    def send_next() -> None:
        i = state["next"]
        state["next"] += 1
        smpp.sendDataRequest(submit(i, options.mix)).addCallbacks(answered, failed)

    def answered(_: Any) -> None:
        state["answered"] += 1
        if state["next"] < total:
            send_next()
        elif state["answered"] == total:
            done.callback(None)

    def failed(_: Any) -> None:
        state["errors"] += 1
        answered(None)

    interval = Interval(options.watch, "peer")
    for _ in range(min(options.window, total)):
        send_next()
    await done
    elapsed, cpu, busy = interval.end()
    await smpp.unbindAndDisconnect()
    return {"client": f"smpp.twisted3 {metadata.version('smpp.twisted3')}",
            "twisted": metadata.version("twisted"),
            "messages": total, "seconds": elapsed, "rate": total / elapsed,
            "errors": state["errors"], "cpu_seconds": cpu, "machine_busy_seconds": busy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--system-id", default="gw")
    parser.add_argument("--password", default="pw")
    parser.add_argument("--messages", type=int, default=5000)
    parser.add_argument("--window", type=int, default=50)
    parser.add_argument("--mix", choices=MIXES, default="gsm160")
    parser.add_argument("--watch", type=watched, action="append", default=[], metavar="NAME:PID")
    options = parser.parse_args()
    # The library logs each bind at WARNING through the standard logging module.
    logging.basicConfig(level=logging.ERROR)

    def go(reactor: Any) -> Any:
        d = defer.Deferred.fromCoroutine(run(reactor, options))
        d.addCallback(lambda result: print(json.dumps(result), flush=True))
        return d

    task.react(go)


if __name__ == "__main__":
    main()

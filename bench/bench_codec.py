"""Benchmark smppgw.smpp.codec: the hot PDUs through raw smpp.pdu, our library path and our lean path.

Run: ``.venv/bin/python bench/bench_codec.py [N] [--repeat R]`` (N defaults to 20,000).

For each operation it prints PDUs per second and microseconds per PDU,
best of R runs of N calls each:
- raw smpp.pdu: the library's own ``PDUEncoder`` on its own PDU objects
  (what a bare smpp.pdu client pays);
- library path: ``libpath.library_encode`` / ``libpath.library_decode``, the
  adapter over smpp.pdu (plain values converted to and from the library's);
- lean path: ``codec.encode`` / ``codec.decode``, which write and read the
  hot PDUs directly.
Then what the gateway pays per submit_sm it sends: the queue encodes each
part once when it accepts the request (``codec.prepare``) and sending writes
only the sequence number into those bytes (``PreparedPDU``).
Every path is first checked to give the same bytes or the same PDU.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import platform
import sys
import time
from collections.abc import Callable
from functools import partial
from importlib import metadata
from typing import Any

from smpp.pdu import pdu_encoding

from smppgw.smpp import codec, libpath
from smppgw.smpp.codec import PDU

GSM_160 = bytes(range(0x41, 0x41 + 26)) * 6 + b"abcd"  # 160 septets of GSM 03.38, one per octet
UCS2_70 = ("Привет, мир! " * 6)[:70].encode("utf-16-be")  # 70 characters, 140 octets


def submit_sm(short_message: bytes, data_coding: int) -> PDU:
    """A submit_sm shaped like the queue's: TON/NPI, addresses, receipt requested."""
    return PDU("submit_sm", 1234, 0, {
        "source_addr_ton": 1,
        "source_addr_npi": 1,
        "source_addr": b"15550001",
        "dest_addr_ton": 1,
        "dest_addr_npi": 1,
        "destination_addr": b"15551234567",
        "esm_class": 0,
        "registered_delivery": 1,
        "data_coding": data_coding,
        "short_message": short_message,
    })


def receipt() -> PDU:
    """A delivery receipt as SMSCs send it: text plus message_state and receipted_message_id."""
    text = (b"id:0000001A sub:001 dlvrd:001 submit date:2501011200 done date:2501011201 "
            b"stat:DELIVRD err:000 text:Hello")
    return PDU("deliver_sm", 77, 0, {
        "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": b"15551234567",
        "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": b"15550001",
        "esm_class": 0x04, "short_message": text,
        "message_state": 2, "receipted_message_id": b"0000001A",
    })


def mobile_originated() -> PDU:
    """A plain mobile-originated deliver_sm of 160 GSM characters."""
    return PDU("deliver_sm", 78, 0, {
        "source_addr_ton": 1, "source_addr_npi": 1, "source_addr": b"15551234567",
        "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": b"15550001",
        "short_message": GSM_160,
    })


def rate(call: Callable[[], Any], count: int, repeat: int) -> float:
    """The best calls per second of `repeat` runs of `count` calls."""
    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        for _ in range(count):
            call()
        best = min(best, time.perf_counter() - started)
    return count / best


def raw_encoder(data: bytes) -> Callable[[], bytes]:
    """Encoding by smpp.pdu of its own PDU object for `data` (decoded once, up front)."""
    # Separate instances: the library's option encoder remembers the last
    # decoded TLV length and would reuse it when encoding.
    with contextlib.redirect_stdout(io.StringIO()):
        lib_pdu = pdu_encoding.PDUEncoder().decode(io.BytesIO(data))
    encoder = pdu_encoding.PDUEncoder()
    assert encoder.encode(lib_pdu) == data
    return lambda: encoder.encode(lib_pdu)


def raw_decoder(data: bytes) -> Callable[[], Any]:
    decoder = pdu_encoding.PDUEncoder()
    return lambda: decoder.decode(io.BytesIO(data))


def row(label: str, rates: list[float]) -> None:
    raw, library, lean = rates
    print(
        f"{label:<34} {raw:>10,.0f} {library:>10,.0f} {lean:>10,.0f}   "
        f"{1e6 / raw:>6.1f} {1e6 / library:>6.1f} {1e6 / lean:>6.1f}   "
        f"{lean / library:>5.1f}x {lean / raw:>5.1f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=20_000)
    parser.add_argument("--repeat", type=int, default=3)
    arguments = parser.parse_args()
    count, repeat = arguments.count, arguments.repeat

    print(
        f"python {platform.python_version()} ({platform.python_implementation()}) on "
        f"{platform.machine()} {platform.system()}; smpp.pdu3 {metadata.version('smpp.pdu3')}; "
        f"N={count:,} calls per run, best of {repeat} runs, one core"
    )
    print(
        f"{'':<34} {'PDUs per second':^32}   {'us per PDU':^20}   lean over\n"
        f"{'operation':<34} {'raw lib':>10} {'lib path':>10} {'lean':>10}   "
        f"{'raw':>6} {'lib':>6} {'lean':>6}   {'lib':>6} {'raw':>6}"
    )

    encodes = [
        ("encode submit_sm, 160 GSM octets", submit_sm(GSM_160, 0)),
        ("encode submit_sm, 70 UCS2 chars", submit_sm(UCS2_70, 8)),
        ("encode deliver_sm_resp", PDU("deliver_sm_resp", 77, 0, {})),
        ("encode enquire_link", PDU("enquire_link", 5, 0, {})),
    ]
    for label, pdu in encodes:
        data = libpath.library_encode(pdu)
        assert codec.encode(pdu) == data, label
        row(label, [
            rate(raw_encoder(data), count, repeat),
            rate(partial(libpath.library_encode, pdu), count, repeat),
            rate(partial(codec.encode, pdu), count, repeat),
        ])

    for label, pdu in encodes[:2]:
        wire = codec.prepare(pdu)

        def send_prepared(wire: bytes = wire) -> bytes:
            prepared = codec.PreparedPDU(wire)
            prepared.sequence_number = 1234
            return codec.encode(prepared)

        assert send_prepared() == codec.encode(pdu), label
        prepared_rate = rate(send_prepared, count, repeat)
        print(f"{'prepared submit_sm, ' + label[len('encode submit_sm, '):]:<34} {'':>10} {'':>10} "
              f"{prepared_rate:>10,.0f}   {'':>6} {'':>6} {1e6 / prepared_rate:>6.1f}")

    decodes = [
        ("decode submit_sm_resp", PDU("submit_sm_resp", 1234, 0, {"message_id": b"0000001A"})),
        ("decode deliver_sm, receipt", receipt()),
        ("decode deliver_sm, 160 GSM octets", mobile_originated()),
        ("decode submit_sm, 160 GSM octets", submit_sm(GSM_160, 0)),
    ]
    for label, pdu in decodes:
        data = codec.encode(pdu)
        assert codec.decode(data) == libpath.library_decode(data), label
        row(label, [
            rate(raw_decoder(data), count, repeat),
            rate(partial(libpath.library_decode, data), count, repeat),
            rate(partial(codec.decode, data), count, repeat),
        ])
    sys.stdout.flush()


if __name__ == "__main__":
    main()

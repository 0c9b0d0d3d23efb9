"""
An SMPP 3.4 server (an SMSC simulator) for the demo, the tests and the benchmarks.

`SMSCSimulator` is a `ServerFactory`: listen with it on any endpoint, or hand
its protocols a `StringTransport` in unit tests.  It binds transmitters,
receivers and transceivers, accepts submit_sm and data_sm with unique message
ids, answers enquire_link and unbind, and sends deliver_sm (plain messages and
delivery receipts) to bound receivers.  Its `Faults` are plain attributes that
a test flips while it runs, to play the zoo of misbehaving SMSCs: throttling
(every Nth submit, or by spacing as a per-account rate limit does), refusing,
black-holing, slow, dropping and bind-refusing.

Everything it receives is kept in `SMSCSimulator.received`, so a test can
compare what the gateway sent with what it expected.  Message bodies are bytes
in and bytes out; text is decoded only for the demo's log (`log_messages`),
and encoded only by `deliver_text`, the SMS a phone sends.

For the demo (``twistd smppgw --demo``) it can also play the phones: with
`log_messages` it logs each SMS it accepts, decoded, and each one it delivers;
with `receipt_delay` it sends a DELIVRD receipt that long after accepting a
submit that asked for one; `deliver_text` sends a phone's text as one
deliver_sm, or several with a UDH when it is long.

Run it alone with ``python -m smppgw.testing.simulator --account smppgw:secret``.

This module is the simulator's public face; its parts live in
`smppgw.testing.smsc`, one concept each.
"""

from __future__ import annotations

import sys

from smppgw.testing.smsc.command import SimulatorOptions, main, parse_args
from smppgw.testing.smsc.deliveries import RECEIPT_STATES
from smppgw.testing.smsc.faults import (
    Drop,
    Faults,
    NotBound,
    Received,
    SentReceipt,
    UnknownMessageId,
)
from smppgw.testing.smsc.server import SMSCSimulator
from smppgw.testing.smsc.session import INTERFACE_VERSION, MAX_SEQUENCE, SMSCProtocol

__all__ = [
    "INTERFACE_VERSION",
    "MAX_SEQUENCE",
    "RECEIPT_STATES",
    "Drop",
    "Faults",
    "NotBound",
    "Received",
    "SMSCProtocol",
    "SMSCSimulator",
    "SentReceipt",
    "SimulatorOptions",
    "UnknownMessageId",
    "main",
    "parse_args",
]


if __name__ == "__main__":
    sys.exit(main())

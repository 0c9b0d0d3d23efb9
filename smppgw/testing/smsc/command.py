"""The command line of the SMSC simulator: ``python -m smppgw.testing.simulator``."""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass, field
from typing import Any

from twisted.logger import Logger
from twisted.python.failure import Failure

from smppgw.smpp.constants import STATUSES
from smppgw.testing.smsc.faults import Faults
from smppgw.testing.smsc.server import _MESSAGE_ID_FORMATS, SMSCSimulator

# One namespace for the simulator's log lines, whichever of its modules writes them.
log = Logger(namespace="smppgw.testing.simulator")


@dataclass(frozen=True)
class SimulatorOptions:
    """The command line of ``python -m smppgw.testing.simulator``, parsed."""

    listen: tuple[str, ...] = ("tcp:2775:interface=127.0.0.1",)
    accounts: dict[str, str] | None = None
    system_id: str = "SIMSMSC"
    message_ids: str = "hex"
    faults: Faults = field(default_factory=Faults)
    log_pdus: bool = False

    def __repr__(self) -> str:
        # Passwords stay out of logs.
        accounts = None if self.accounts is None else sorted(self.accounts)
        return (
            f"SimulatorOptions(listen={self.listen}, accounts={accounts}, "
            f"system_id={self.system_id!r}, message_ids={self.message_ids!r}, faults={self.faults}, "
            f"log_pdus={self.log_pdus})"
        )


def _account(text: str) -> tuple[str, str]:
    system_id, colon, password = text.partition(":")
    if not colon or not system_id:
        raise argparse.ArgumentTypeError(f"expected SYSTEM_ID:PASSWORD, got {text!r}")
    return system_id, password


def _status(text: str) -> int:
    if text in STATUSES:
        return STATUSES[text]
    try:
        return int(text, 0)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected a status number (0x58) or name (ESME_RTHROTTLED), got {text!r}"
        ) from None


def _rate(text: str) -> float:
    try:
        rate = float(text)
    except ValueError:
        rate = -1.0
    if not 0 <= rate < float("inf"):
        raise argparse.ArgumentTypeError(
            f"expected submits per second, a number of 0 (no limit) or more, got {text!r}"
        )
    return rate


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m smppgw.testing.simulator",
        description="Run the smppgw SMSC simulator (an SMPP 3.4 server).",
    )
    parser.add_argument(
        "--listen",
        action="append",
        metavar="ENDPOINT",
        help="a Twisted server endpoint, repeatable (default tcp:2775:interface=127.0.0.1)",
    )
    parser.add_argument(
        "--account",
        action="append",
        type=_account,
        metavar="SYSTEM_ID:PASSWORD",
        help="an account that may bind, repeatable; without any, every bind is accepted",
    )
    parser.add_argument(
        "--system-id", default="SIMSMSC", help="the system_id the SMSC answers binds with"
    )
    parser.add_argument("--message-ids", choices=sorted(_MESSAGE_ID_FORMATS), default="hex")
    parser.add_argument("--log-pdus", action="store_true", help="log every PDU received and sent")
    faults = parser.add_argument_group("faults")
    faults.add_argument("--throttle-every", type=int, default=0, metavar="N")
    faults.add_argument("--submit-status", type=_status, default=0, metavar="STATUS")
    faults.add_argument(
        "--max-rate",
        type=_rate,
        default=0.0,
        metavar="N",
        help="throttle (ESME_RTHROTTLED) any submit sooner than 1/N s after the last accepted",
    )
    faults.add_argument("--black-hole", action="store_true")
    faults.add_argument("--black-hole-all", action="store_true")
    faults.add_argument("--response-delay", type=float, default=0.0, metavar="SECONDS")
    faults.add_argument("--drop-after", type=int, default=0, metavar="N")
    faults.add_argument("--drop-with-reset", action="store_true")
    faults.add_argument(
        "--alternate-drops", action="store_true", help="alternate clean closes and resets"
    )
    faults.add_argument("--bind-status", type=_status, default=0, metavar="STATUS")
    return parser


def parse_args(argv: list[str]) -> SimulatorOptions:
    """The options in `argv` (without the program name); exits with a usage message on bad ones."""
    args = _parser().parse_args(argv)
    return SimulatorOptions(
        listen=tuple(args.listen or SimulatorOptions.listen),
        accounts=dict(args.account) if args.account else None,
        system_id=args.system_id,
        message_ids=args.message_ids,
        log_pdus=args.log_pdus,
        faults=Faults(
            throttle_every=args.throttle_every,
            submit_status=args.submit_status,
            max_rate=args.max_rate,
            black_hole=args.black_hole,
            black_hole_all=args.black_hole_all,
            response_delay=args.response_delay,
            drop_after=args.drop_after,
            drop_with_reset=args.drop_with_reset,
            bind_status=args.bind_status,
            alternate_drops=args.alternate_drops,
        ),
    )


def main(argv: list[str] | None = None) -> int:
    """Run the simulator on the global reactor, logging to stdout, until interrupted."""
    options = parse_args(sys.argv[1:] if argv is None else argv)

    from twisted.internet import reactor as global_reactor
    from twisted.internet.endpoints import serverFromString
    from twisted.logger import (
        FilteringLogObserver,
        LogLevel,
        LogLevelFilterPredicate,
        globalLogBeginner,
        textFileLogObserver,
    )

    reactor: Any = global_reactor
    level = LogLevel.debug if options.log_pdus else LogLevel.info
    globalLogBeginner.beginLoggingTo(
        [
            FilteringLogObserver(
                textFileLogObserver(sys.stdout), [LogLevelFilterPredicate(defaultLogLevel=level)]
            )
        ]
    )
    simulator = SMSCSimulator(
        options.accounts,
        reactor,
        system_id=options.system_id,
        message_ids=options.message_ids,
        log_pdus=options.log_pdus,
    )
    simulator.faults = options.faults
    failed: list[Failure] = []

    def listening(port: Any, description: str) -> None:
        log.info("SMSC simulator listening on {endpoint}", endpoint=description)

    def not_listening(failure: Failure, description: str) -> None:
        log.failure("cannot listen on {endpoint}", failure, endpoint=description)
        failed.append(failure)
        if len(failed) == 1:
            reactor.stop()

    def start() -> None:
        for description in options.listen:
            d = serverFromString(reactor, description).listen(simulator)
            d.addCallback(listening, description)
            d.addErrback(not_listening, description)

    reactor.callWhenRunning(start)
    reactor.run()
    return 1 if failed else 0

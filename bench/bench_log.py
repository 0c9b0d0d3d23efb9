"""What one relay line costs: SmppLog.major through Twisted's log publisher to the
gateway's log file observer (smppgw.logfile), written to memory.

    .venv/bin/python bench/bench_log.py            # best of 5 runs of 50,000 lines

The reference module logs every relayed message at Major, which the default
log level shows: this is that line's share of a message's CPU.
"""

from __future__ import annotations

import io
import sys
import time

from twisted.internet.task import Clock
from twisted.logger import globalLogBeginner

from smppgw.logfile import TurnBufferedLogObserver
from smppgw.smpp.log import SmppLog

LINES = 50_000
RUNS = 5


def main() -> int:
    out = io.StringIO()
    clock = Clock()
    clock.running = True  # type: ignore[attr-defined]  # lines wait for the flush, as under a reactor
    observer = TurnBufferedLogObserver(out, clock)
    globalLogBeginner.beginLoggingTo([observer], discardBuffer=True, redirectStandardIO=False)
    log = SmppLog("eu", "problems")
    best = float("inf")
    for _ in range(RUNS):
        started = time.perf_counter()
        for _ in range(LINES):
            log.major("{request_id} relayed in {parts} part(s)",
                      request_id="5f0c2a7e9b8d4c1e", parts=1)
        best = min(best, (time.perf_counter() - started) / LINES)
        observer.flush()
        written = out.getvalue().count("\n")
        out.seek(0)
        out.truncate()
        if written != LINES:
            print(f"expected {LINES} lines written, got {written}", file=sys.stderr)
            return 1
    print(f"relay line: {best * 1e6:.2f} µs (best of {RUNS} runs of {LINES:,}; every line written)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

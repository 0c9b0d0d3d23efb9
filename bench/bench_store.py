"""Benchmark smppgw.store.sqlite: write rate, start-up read of the queue, peak memory.

Run: ``.venv/bin/python bench/bench_store.py [N]`` (N defaults to 100,000).

It prints
- the rate of SendSignal-shaped request lifecycles (add_outbound +
  set_message_id + finish), committing once per 100 writes as a busy
  reactor would;
- the time to reopen a store holding N unfinished requests and read them
  with unfinished(), as a gateway does at start-up;
- the process's peak RSS.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time

from twisted.internet.task import Clock

from smppgw.smpp.codec import PDU, prepare
from smppgw.store.sqlite import Store

WRITES_PER_COMMIT = 100


def payload(n: int) -> bytes:
    """A payload as the queue stores it: the part's submit_sm, encoded, with a 160-septet body."""
    return prepare(PDU("submit_sm", params={
        "source_addr_ton": 5, "source_addr": b"smppgw",
        "dest_addr_ton": 1, "dest_addr_npi": 1, "destination_addr": b"1555%07d" % n,
        "registered_delivery": 1, "short_message": b"H" * 140,
    }))


def peak_rss_mib() -> float:
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def bench_writes(path: str, count: int) -> None:
    store = Store(path, Clock())
    writes = 0
    started = time.perf_counter()
    for n in range(count):
        request_id = f"req-{n}"
        store.add_outbound(request_id, "smsc1", payload(n), 1, float(n))
        store.set_message_id(request_id, 0, f"{n:08X}", f"{n:x}")
        store.finish(request_id, {"ok": True})  # as the queue stores a relayed request
        writes += 3
        if writes >= WRITES_PER_COMMIT:
            store.commit()
            writes = 0
    store.close()
    elapsed = time.perf_counter() - started
    print(
        f"write: {count:,} requests (add_outbound + set_message_id + finish), "
        f"one commit per {WRITES_PER_COMMIT} writes: {elapsed:.2f} s, "
        f"{count / elapsed:,.0f} requests/s, {3 * count / elapsed:,.0f} writes/s"
    )


def bench_startup(path: str, count: int) -> None:
    store = Store(path, Clock())
    for n in range(count):
        request_id = f"req-{n}"
        # Two parts, the first already accepted: the join has something to fill in.
        store.add_outbound(request_id, "smsc1" if n % 2 else "smsc2", payload(n), 2, float(n))
        store.set_message_id(request_id, 0, f"{n:08X}", f"{n:x}")
        if n % 1000 == 999:
            store.commit()
    store.close()
    print(f"before start-up read: peak RSS {peak_rss_mib():.1f} MiB")

    started = time.perf_counter()
    store = Store(path, Clock())
    opened = time.perf_counter()
    rows = store.unfinished()
    read = time.perf_counter()
    assert len(rows) == count and rows[0].message_ids[0] == "00000000"
    print(
        f"start-up: reopen {1000 * (opened - started):.1f} ms, "
        f"unfinished() of {len(rows):,} rows {1000 * (read - opened):.0f} ms "
        f"({len(rows) / (read - opened):,.0f} rows/s)"
    )
    started = time.perf_counter()
    one_server = store.unfinished("smsc1")
    print(
        f"start-up: unfinished('smsc1') of {len(one_server):,} rows "
        f"{1000 * (time.perf_counter() - started):.0f} ms"
    )
    store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("count", nargs="?", type=int, default=100_000)
    arguments = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="smppgw-bench-") as folder:
        bench_writes(os.path.join(folder, "writes.sqlite"), arguments.count)
        bench_startup(os.path.join(folder, "startup.sqlite"), arguments.count)
    print(f"peak RSS: {peak_rss_mib():.1f} MiB")


if __name__ == "__main__":
    main()

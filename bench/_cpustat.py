"""CPU seconds, as the benchmark's child processes measure them.

Standard library only, so that the peer's virtualenv (smpplib and nothing of
this project) can import it too.
"""

from __future__ import annotations

import argparse
import os
import resource
import time

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def process_cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of process `pid`, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as f:
        # The command name may hold spaces and parentheses: split after the last ")".
        fields = f.read().rsplit(")", 1)[1].split()
    # Fields 14 and 15 of stat(5) (utime, stime); fields[0] here is field 3.
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine spent busy since boot, from /proc/stat."""
    with open("/proc/stat") as f:
        ticks = [int(n) for n in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal...: all but idle and iowait.
    return (sum(ticks[:8]) - ticks[3] - ticks[4]) / CLOCK_TICKS


def own_cpu_seconds() -> float:
    """User plus system CPU seconds of this process."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def watched(text: str) -> tuple[str, int]:
    """A ``--watch NAME:PID`` argument: a process whose CPU seconds to report under NAME."""
    name, colon, pid = text.partition(":")
    if not colon:
        raise argparse.ArgumentTypeError(f"expected NAME:PID, got {text!r}")
    return name, int(pid)


class Interval:
    """The CPU seconds of this process (as `own`), of the watched ones and of the machine over a run."""

    def __init__(self, watch: list[tuple[str, int]], own: str) -> None:
        self._watch = dict(watch)
        self._own = own
        self._before = {name: process_cpu_seconds(pid) for name, pid in self._watch.items()}
        self._own_before = own_cpu_seconds()
        self._busy_before = machine_busy_seconds()
        self._start = time.perf_counter()

    def end(self) -> tuple[float, dict[str, float], float]:
        """Seconds elapsed, CPU seconds by name, machine busy seconds, since the start."""
        elapsed = time.perf_counter() - self._start
        cpu = {name: process_cpu_seconds(pid) - self._before[name]
               for name, pid in self._watch.items()}
        cpu[self._own] = own_cpu_seconds() - self._own_before
        return elapsed, cpu, machine_busy_seconds() - self._busy_before

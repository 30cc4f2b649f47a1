"""PyTorch's OpenMP threads: spin while they wait, or sleep, chosen from the
machine's load at start.

By default (``OMP_WAIT_POLICY`` unset, "active") PyTorch's OpenMP threads spin
for a while after each parallel region, waiting for the next one. On an idle
machine that is fastest: a plain PyTorch training loop ran 20-25% slower with
``PASSIVE`` on 2 idle cores. Beside any other busy process on a small machine
the spinning threads steal its cores and each other's: Keras-on-torch training
ran 10-25x slower there. So the policy is chosen when the process starts: if
other processes keep at least :data:`BUSY_CORES` of the CPU busy, passive.
A user's own ``OMP_WAIT_POLICY`` wins; it must be set before torch loads.
"""

from __future__ import annotations

import os
import time

BUSY_CORES = 0.5  # CPU time other processes used, in cores, over the sample
SAMPLE_S = 0.1


def _cpu_times() -> tuple | None:
    """(busy, total) jiffies of all CPUs from /proc/stat; None where there is none."""
    try:
        with open("/proc/stat") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def busy_cores(sample_s: float = SAMPLE_S) -> float:
    """How many cores the rest of the machine keeps busy now (this process
    sleeps while it measures); the 1-minute load average where /proc is missing."""
    before = _cpu_times()
    if before is None:
        try:
            return os.getloadavg()[0]
        except OSError:
            return 0.0
    time.sleep(sample_s)
    after = _cpu_times()
    total = after[1] - before[1]
    if total <= 0:
        return 0.0
    return (os.cpu_count() or 1) * (after[0] - before[0]) / total


def choose_omp_wait_policy() -> str | None:
    """Sets ``OMP_WAIT_POLICY=PASSIVE`` when the machine is busy; returns the
    policy set, or None (left to the user's setting or OpenMP's default)."""
    if "OMP_WAIT_POLICY" in os.environ:
        return None
    if busy_cores() < BUSY_CORES:
        return None
    os.environ["OMP_WAIT_POLICY"] = "PASSIVE"
    return "PASSIVE"

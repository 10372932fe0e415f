"""Helpers the benchmark scripts share: how busy the machine is, and peak memory."""

from __future__ import annotations

import os


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy (all processes, /proc/stat), or None."""
    try:
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    return (sum(values) - values[3] - values[4]) / os.sysconf("SC_CLK_TCK")  # minus idle and iowait


def peak_memory_mb() -> float:
    """This process's peak resident memory: VmHWM (counts only this program's image, whereas
    ru_maxrss may also keep the high-water mark of the parent that started it), else ru_maxrss."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

"""The resource monitor: samples processes and the host while a run is going on.

A :class:`ResourceMonitor` runs in a background thread of ``perflab run`` and writes
long-format rows ``ts_unix_s, source, metric, value`` to the run's
``raw/perflab_resources.csv`` once per interval. Sources:

``target``
    the service under test: a process and its children (``--target-pid``), or the
    processes whose command line matches a pattern (``--target-match``);
``load_generator``
    the Locust process and its children (``--processes`` workers);
``host``
    the whole machine.

Metrics carry their unit in the name. ``cpu_percent`` of a process group is the sum over
its processes, where 100 is one full core; ``cpu_percent_busiest`` is the busiest single
process, which is what matters for Locust (each of its processes uses one core at most).
"""

from __future__ import annotations

import csv
import logging
import re
import threading
import time
from pathlib import Path

import psutil

log = logging.getLogger(__name__)

RESOURCES_FILE = "perflab_resources.csv"
COLUMNS = ("perflab_resource_unix_s", "source", "metric", "value")


class ProcessGroup:
    """A named set of processes: a root PID and its children, or a command pattern."""

    def __init__(self, source: str, pid: int | None = None, match: str | None = None):
        if pid is None and match is None:
            raise ValueError("a process group needs a pid or a command-line pattern")
        self.source = source
        self.pid = pid
        self.pattern = re.compile(match) if match else None
        self._known: dict[int, psutil.Process] = {}

    def processes(self) -> list[psutil.Process]:
        found: list[psutil.Process] = []
        if self.pid is not None:
            try:
                root = psutil.Process(self.pid)
                found = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                found = []
        else:
            for proc in psutil.process_iter(["cmdline"]):
                cmdline = " ".join(proc.info["cmdline"] or [])
                if self.pattern.search(cmdline):
                    found.append(proc)
        # Keep one Process object per PID: cpu_percent() measures since its last call.
        current = {}
        for proc in found:
            current[proc.pid] = self._known.get(proc.pid, proc)
        self._known = current
        return list(current.values())

    def sample(self) -> dict[str, float]:
        cpu, rss, busiest, threads = 0.0, 0.0, 0.0, 0
        alive = 0
        for proc in self.processes():
            try:
                with proc.oneshot():
                    percent = proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                    threads += proc.num_threads()
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            cpu += percent
            busiest = max(busiest, percent)
            alive += 1
        if not alive:
            return {}
        return {
            "cpu_percent": cpu,
            "cpu_percent_busiest": busiest,
            "rss_mb": rss / 2**20,
            "processes": float(alive),
            "threads": float(threads),
        }


class ResourceMonitor:
    """Samples process groups and the host every ``interval_s`` seconds into a CSV.

    Use as a context manager around the run; the thread stops when the block ends.
    """

    def __init__(self, path: Path, groups: list[ProcessGroup], interval_s: float = 1.0):
        self.path = Path(path)
        self.groups = groups
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="perflab-monitor")
        self.samples = 0

    def __enter__(self) -> ResourceMonitor:
        self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)
        # Prime the CPU counters: the first cpu_percent() call always returns 0.
        psutil.cpu_percent(None)
        for group in self.groups:
            group.sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=10)
        self._file.close()
        log.info("wrote %d resource samples to %s", self.samples, self.path)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_once()

    def sample_once(self) -> None:
        now = f"{time.time():.3f}"
        rows = []
        for group in self.groups:
            for metric, value in group.sample().items():
                rows.append((now, group.source, metric, f"{value:.3f}"))
        memory = psutil.virtual_memory()
        rows.append((now, "host", "cpu_percent", f"{psutil.cpu_percent(None):.3f}"))
        rows.append((now, "host", "memory_used_percent", f"{memory.percent:.3f}"))
        rows.append((now, "host", "memory_used_mb", f"{memory.used / 2**20:.3f}"))
        self._writer.writerows(rows)
        self._file.flush()
        self.samples += 1

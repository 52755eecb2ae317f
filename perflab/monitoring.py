"""The resource monitor: samples processes, the host and services during a run.

A :class:`ResourceMonitor` runs in a background thread of ``perflab run`` and writes
long-format rows ``ts_unix_s, source, metric, value`` to the run's
``raw/perflab_resources.csv`` once per interval. Every source is a *probe*: an object
with a ``source`` name, ``start()`` (connect, or raise :class:`~perflab.errors.
LaunchError`), ``sample()`` returning ``{metric: value}`` and ``close()``. Sources:

``target``
    the service under test: a process and its children (``--target-pid``), the
    processes whose command line matches a pattern (``--target-match``) or whose
    name is given (``--target-name``), see :class:`ProcessGroup`;
``load_generator``
    the Locust process and its children (``--processes`` workers);
``host``
    the whole machine, see :class:`HostProbe`;
``postgres``, ``redis``, ``prometheus``
    the probes of :mod:`perflab.probes`, started only when configured.

Metrics carry their unit in the name. ``cpu_percent`` of a process group is the sum over
its processes, where 100 is one full core; ``cpu_percent_busiest`` is the busiest single
process, which is what matters for Locust (each of its processes uses one core at most).
Rates (``_per_s``) are differences of cumulative counters between two samples divided
by the seconds between them; the first sample of a counter has no rate, and neither has
a sample where the counter went backwards (a restart).

A probe that fails during the run records nothing for that interval (never a 0 in
place of a failure) and logs one warning per outage, and one line when it recovers.
"""

from __future__ import annotations

import csv
import logging
import math
import os
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import psutil

log = logging.getLogger(__name__)

RESOURCES_FILE = "perflab_resources.csv"
COLUMNS = ("perflab_resource_unix_s", "source", "metric", "value")

MB = 2**20


class Probe(Protocol):
    """What the monitor needs of a source of resource metrics."""

    source: str

    def start(self) -> None:
        """Connect; raise :class:`~perflab.errors.LaunchError` when that fails."""

    def sample(self) -> dict[str, float]:
        """The metrics now, ``{name with unit: value}``; raise when it fails."""

    def close(self) -> None:
        """Release connections; called once when the monitor stops."""


class CounterRates:
    """Per-second rates of cumulative counters, from successive readings.

    Each counter is known by a key; :meth:`rate` remembers its last reading and time.
    """

    def __init__(self) -> None:
        self._last: dict[str, tuple[float, float]] = {}

    def rate(self, key: str, value: float, now_s: float) -> float | None:
        """The counter's increase per second since its last reading.

        Parameters
        ----------
        key
            Which counter.
        value
            Its cumulative value now.
        now_s
            A monotonic clock reading, in seconds.

        Returns
        -------
        float or None
            ``None`` at the first reading, when no time has passed, or when the
            counter went backwards (it was reset): there is no honest rate then.
        """
        last = self._last.get(key)
        self._last[key] = (value, now_s)
        if last is None:
            return None
        before, then_s = last
        if now_s <= then_s or value < before:
            return None
        return (value - before) / (now_s - then_s)


class ProcessGroup:
    """A named set of processes, found by root PID, command pattern or name.

    Parameters
    ----------
    source
        The ``source`` its rows carry (``target``, ``load_generator``...).
    pid
        A root process; it and all its descendants belong to the group.
    match
        A regular expression searched in each process's full command line.
    name
        A process name, compared exactly with ``psutil.Process.name()`` (the
        executable's name, such as ``postgres`` or ``uvicorn``).

    Notes
    -----
    Any combination may be given; the group is the union. The monitoring process
    itself never matches a pattern or a name (its own command line often contains
    the pattern, as in ``perflab run --target-match uvicorn``).
    """

    def __init__(
        self,
        source: str,
        pid: int | None = None,
        match: str | None = None,
        name: str | None = None,
    ):
        if pid is None and not match and not name:
            raise ValueError(
                "a process group needs a pid, a command-line pattern or a name"
            )
        self.source = source
        self.pid = pid
        self.pattern = re.compile(match) if match else None
        self.name = name or None
        self._known: dict[int, psutil.Process] = {}

    def start(self) -> None:
        """Prime the CPU counters: a process's first ``cpu_percent()`` is always 0."""
        self.sample()

    def close(self) -> None:
        """Nothing to release."""

    def processes(self) -> list[psutil.Process]:
        """The group's processes now (one long-lived object per PID)."""
        found: list[psutil.Process] = []
        if self.pid is not None:
            try:
                root = psutil.Process(self.pid)
                found = [root, *root.children(recursive=True)]
            except psutil.NoSuchProcess:
                found = []
        if self.pattern is not None or self.name is not None:
            me = os.getpid()
            for proc in psutil.process_iter(["cmdline", "name"]):
                if proc.pid == me:
                    continue
                if self.name is not None and proc.info["name"] == self.name:
                    found.append(proc)
                    continue
                cmdline = " ".join(proc.info["cmdline"] or [])
                if self.pattern is not None and self.pattern.search(cmdline):
                    found.append(proc)
        # Keep one Process object per PID: cpu_percent() measures since its last call.
        current = {}
        for proc in found:
            current[proc.pid] = self._known.get(proc.pid, proc)
        self._known = current
        return list(current.values())

    def sample(self) -> dict[str, float]:
        """CPU, memory, processes and threads of the group; empty when none is alive.

        Exited processes (zombies not yet reaped by their parent) are left out.

        Returns
        -------
        dict
            ``cpu_percent`` (sum, 100 = one core), ``cpu_percent_busiest``,
            ``rss_mb``, ``processes``, ``threads``.
        """
        cpu, rss, busiest, threads = 0.0, 0.0, 0.0, 0
        alive = 0
        for proc in self.processes():
            try:
                with proc.oneshot():
                    # An exited process not yet reaped reports 0 bytes: not a value.
                    if proc.status() == psutil.STATUS_ZOMBIE:
                        continue
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
            "rss_mb": rss / MB,
            "processes": float(alive),
            "threads": float(threads),
        }


class HostProbe:
    """The whole machine: CPU, memory, network and disk I/O rates.

    ``network_*`` sums every interface, loopback included (a load test of a local
    service travels over loopback); ``disk_*`` sums every disk the kernel reports.
    The rates appear from the second sample on; disk rates are absent on a machine
    where the kernel reports no disk.
    """

    source = "host"

    def __init__(self) -> None:
        self._rates = CounterRates()

    def start(self) -> None:
        """Prime the CPU and I/O counters."""
        self.sample()

    def close(self) -> None:
        """Nothing to release."""

    def sample(self) -> dict[str, float]:
        """The host's metrics now.

        Returns
        -------
        dict
            ``cpu_percent`` (all cores, 0–100), ``memory_used_percent``,
            ``memory_used_mb``, and when two readings exist
            ``network_sent_bytes_per_s``, ``network_received_bytes_per_s``,
            ``disk_read_bytes_per_s``, ``disk_write_bytes_per_s``.
        """
        now_s = time.monotonic()
        memory = psutil.virtual_memory()
        values = {
            "cpu_percent": psutil.cpu_percent(None),
            "memory_used_percent": memory.percent,
            "memory_used_mb": memory.used / MB,
        }
        counters = {}
        net = psutil.net_io_counters()
        if net is not None:
            counters["network_sent_bytes_per_s"] = net.bytes_sent
            counters["network_received_bytes_per_s"] = net.bytes_recv
        disk = psutil.disk_io_counters()
        if disk is not None:
            counters["disk_read_bytes_per_s"] = disk.read_bytes
            counters["disk_write_bytes_per_s"] = disk.write_bytes
        for metric, total in counters.items():
            rate = self._rates.rate(metric, total, now_s)
            if rate is not None:
                values[metric] = rate
        return values


class ResourceMonitor:
    """Samples process groups, the host and probes every ``interval_s`` into a CSV.

    Use as a context manager around the run; the thread stops when the block ends.

    Parameters
    ----------
    path
        The CSV file to write (columns :data:`COLUMNS`).
    groups
        Process groups to sample.
    interval_s
        Seconds between samples.
    probes
        Further probes (:mod:`perflab.probes`); each is started on entry, and a
        probe that cannot start raises :class:`~perflab.errors.LaunchError` there.
    host
        Whether to sample the host (:class:`HostProbe`).
    """

    def __init__(
        self,
        path: Path,
        groups: Iterable[ProcessGroup] = (),
        interval_s: float = 1.0,
        probes: Iterable[Probe] = (),
        host: bool = True,
    ):
        self.path = Path(path)
        self.groups = list(groups)
        self.probes = list(probes)
        self.interval_s = interval_s
        self.sources: list[Probe] = [
            *self.groups,
            *([HostProbe()] if host else []),
            *self.probes,
        ]
        self._failing: set[int] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="perflab-monitor")
        self.samples = 0

    def __enter__(self) -> ResourceMonitor:
        started: list[Probe] = []
        try:
            psutil.cpu_percent(None)  # the first call always returns 0
            for source in self.sources:
                source.start()
                started.append(source)
            self._file = open(self.path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        except BaseException:
            for source in started:
                _close(source)
            raise
        self._writer = csv.writer(self._file)
        self._writer.writerow(COLUMNS)
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=10)
        for source in self.sources:
            _close(source)
        self._file.close()
        log.info("wrote %d resource samples to %s", self.samples, self.path)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample_once()

    def sample_once(self) -> None:
        """Sample every source once and append their rows to the CSV."""
        now = f"{time.time():.3f}"
        rows = []
        for index, source in enumerate(self.sources):
            values = self._sample(index, source)
            for metric, value in values.items():
                if value is None or not math.isfinite(value):
                    continue
                rows.append((now, source.source, metric, f"{value:.3f}"))
        self._writer.writerows(rows)
        self._file.flush()
        self.samples += 1

    def _sample(self, index: int, source: Probe) -> dict[str, float]:
        """One source's values; nothing, and one warning per outage, on failure."""
        try:
            values = source.sample()
        except Exception as exc:  # a probe's failure must not end the run
            if index not in self._failing:
                self._failing.add(index)
                log.warning(
                    "The %s probe failed (%s); its metrics are left out until it "
                    "answers again.",
                    source.source,
                    exc,
                )
            return {}
        if index in self._failing:
            self._failing.discard(index)
            log.info("The %s probe answers again.", source.source)
        return values


def _close(source: Probe) -> None:
    try:
        source.close()
    except Exception as exc:  # closing is best effort
        log.debug("closing the %s probe failed: %s", source.source, exc)

"""Launching: run Locust headless into a new run folder, then ingest it.

``run_locust`` creates ``data/runs/<run_id>/``, starts ``locust --headless`` with the
scenario, perflab's recorder and the stages, samples resources while it runs, records
the run in ``run.json`` and ingests the raw files into the canonical tables.

Every run is bounded: the stages end it, and Locust's own ``--run-time`` (the stages
plus a margin) and a wall-clock timeout on the process stop it if the shape does not.
"""

from __future__ import annotations

import csv
import ipaddress
import logging
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd

from perflab.errors import LaunchError
from perflab.ingest import RECORDED, expand, ingest_into
from perflab.monitoring import RESOURCES_FILE, ProcessGroup, ResourceMonitor
from perflab.probes import close_probes, probes_from_options, start_probes
from perflab.recording import RUN_DIR_ENV
from perflab.scenarios import PACE_ENV, WAIT_ENV, scenario_path
from perflab.shapes import STAGES_ENV, Stage, format_stages, total_duration
from perflab.store import DEFAULT_STORE, Run, create_run, iso

log = logging.getLogger(__name__)

#: Seconds Locust may run past the end of its stages before it is stopped.
GRACE_S = 15.0
#: Seconds in-flight requests get to finish when a run stops.
STOP_TIMEOUT_S = 5


@dataclass
class LocustOptions:
    """What to run and against what.

    Attributes
    ----------
    scenario
        A bundled scenario name (see :data:`perflab.scenarios.SCENARIOS`) or a
        locustfile path.
    host
        Base URL of the service under test.
    stages
        The load shape.
    processes
        Locust processes on this machine (``--processes``); 1 runs a single process.
    wait_s
        Think time ``(min, max)`` in seconds between a user's tasks.
    pace_s
        When given, each user starts one task every ``pace_s`` seconds instead
        (Locust's ``constant_pacing``), and ``run.json`` records the intended
        interval between a user's requests, ``expected_interval_ms``, which the
        coordinated-omission correction uses. The plan's tasks send one request
        each; a task of several requests makes that interval too long.
    target_pid, target_match, target_name
        How the resource monitor finds the service's processes (optional): a PID
        and its children, a command-line pattern, or a process name.
    postgres_dsn, redis_url, redis_lists, prometheus_urls
        Further probes (see :func:`perflab.probes.probes_from_options`); each is
        connected before any load is sent, so a wrong address fails the run early.
    environment
        A label for the report (``local``, ``staging`` ...).
    allow_remote
        Allow a host that is not on this machine. Off by default: load is sent to
        loopback addresses only unless this is set.
    """

    scenario: str
    host: str
    stages: list[Stage]
    processes: int = 1
    wait_s: tuple[float, float] = (1.0, 2.0)
    pace_s: float | None = None
    target_pid: int | None = None
    target_match: str | None = None
    target_name: str | None = None
    postgres_dsn: str | None = None
    redis_url: str | None = None
    redis_lists: list[str] = field(default_factory=list)
    prometheus_urls: list[str] = field(default_factory=list)
    environment: str = "local"
    allow_remote: bool = False
    extra_args: list[str] = field(default_factory=list)


def check_host(host: str, allow_remote: bool = False) -> None:
    """Refuse to send load anywhere but this machine unless explicitly allowed."""
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise LaunchError(
            f"The host {host!r} is not a URL; write it like http://127.0.0.1:8080."
        )
    if allow_remote:
        return
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(parts.hostname, None)}
    except socket.gaierror as exc:
        raise LaunchError(f"The host {parts.hostname!r} cannot be resolved.") from exc
    remote = sorted(a for a in addresses if not ipaddress.ip_address(a).is_loopback)
    if remote:
        raise LaunchError(
            f"The host {parts.hostname!r} resolves to {', '.join(remote)}, which is "
            "not this machine. perflab sends load to loopback only unless you pass "
            "--allow-remote (and have permission to load that service)."
        )


def locust_command(options: LocustOptions, run: Run) -> list[str]:
    """The ``locust`` command line for a run."""
    here = Path(__file__).resolve().parent
    locustfiles = (
        f"{here / 'scenarios' / '_record.py'},{scenario_path(options.scenario)}"
    )
    run_time = int(total_duration(options.stages) + GRACE_S)
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        locustfiles,
        "--headless",
        "--host",
        options.host,
        "--csv",
        str(run.raw / "locust"),
        "--csv-full-history",
        "--html",
        str(run.raw / "locust_report.html"),
        "--run-time",
        f"{run_time}s",
        "--stop-timeout",
        str(STOP_TIMEOUT_S),
        "--exit-code-on-error",
        "0",
        "--only-summary",
        "--logfile",
        str(run.raw / "locust.log"),
    ]
    if options.processes > 1:
        command += ["--processes", str(options.processes)]
    return command + list(options.extra_args)


def run_locust(
    options: LocustOptions,
    store: Path | str = DEFAULT_STORE,
    run_id: str | None = None,
) -> Run:
    """Run Locust headless into a new run folder, monitor it, and ingest it.

    Returns
    -------
    Run
        The ingested run; its ``status`` is ``completed`` when Locust ended by itself,
        ``interrupted`` when it had to be stopped, ``failed`` when it exited with an
        error (its log is in ``raw/locust.log``).

    Raises
    ------
    LaunchError
        When the host is not allowed, or Locust cannot be started at all.
    """
    check_host(options.host, options.allow_remote)
    if not options.stages:
        raise LaunchError("A run needs at least one stage.")
    scenario_path(options.scenario)  # an unknown scenario fails before a run exists
    run = create_run(
        store,
        run_id=run_id,
        label=Path(options.scenario).stem,
        tool="locust",
        tool_version=version("locust"),
        format=RECORDED,
        scenario=options.scenario,
        host=options.host,
        stages=[s.to_json() for s in options.stages],
        peak_users_planned=max(s.users for s in options.stages),
        processes=options.processes,
        wait_s=None if options.pace_s else list(options.wait_s),
        pace_s=options.pace_s,
        expected_interval_ms=1000.0 * options.pace_s if options.pace_s else None,
        environment=options.environment,
    )
    command = locust_command(options, run)
    run.meta["command"] = shlex.join(command)
    run.meta["probes"] = _probe_labels(options)
    run.save()
    probes = probes_from_options(
        postgres_dsn=options.postgres_dsn,
        redis_url=options.redis_url,
        redis_lists=options.redis_lists,
        prometheus_urls=options.prometheus_urls,
        target_pid=options.target_pid,
        target_match=options.target_match,
        target_name=options.target_name,
    )
    try:
        start_probes(probes)
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)
        raise

    env = dict(os.environ)
    env[RUN_DIR_ENV] = str(run.path.resolve())
    env[STAGES_ENV] = format_stages(options.stages)
    env[WAIT_ENV] = f"{options.wait_s[0]},{options.wait_s[1]}"
    env.pop(PACE_ENV, None)
    if options.pace_s:
        env[PACE_ENV] = repr(float(options.pace_s))
    timeout = total_duration(options.stages) + GRACE_S + STOP_TIMEOUT_S + 30

    log.info("starting locust for run %s against %s", run.id, options.host)
    started = datetime.now(UTC)
    stderr_path = run.raw / "locust.stderr.txt"
    with open(stderr_path, "wb") as stderr:
        try:
            process = subprocess.Popen(
                command,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=stderr,
                stdin=subprocess.DEVNULL,
            )
        except OSError as exc:
            close_probes(probes)
            raise LaunchError(f"Locust could not be started: {exc}") from exc
        groups = [ProcessGroup("load_generator", pid=process.pid)]
        with ResourceMonitor(run.raw / RESOURCES_FILE, groups, probes=probes):
            status = _wait(process, timeout)
    ended = datetime.now(UTC)

    run.meta.update(
        status=status,
        exit_code=process.returncode,
        launched=iso(started),
        stopped=iso(ended),
    )
    run.save()
    if status == "failed":
        tail = stderr_path.read_text(errors="replace")[-2000:]
        log.error("locust exited with code %s: %s", process.returncode, tail)
        run.add_warnings(
            [f"Locust exited with code {process.returncode}; see raw/locust.log."]
        )
    ingest_into(run, RECORDED, expand([run.raw]))
    _note_request_counts(run)
    return run


def _probe_labels(options: LocustOptions) -> list[str]:
    """What the monitor sampled, for run.json (addresses without passwords)."""
    labels = ["load_generator", "host"]
    if options.target_pid or options.target_match or options.target_name:
        labels.append("target")
    if options.postgres_dsn:
        labels.append("postgres")
    if options.redis_url:
        labels.append("redis")
    labels += ["prometheus"] * len(options.prometheus_urls)
    return labels


def _wait(process: subprocess.Popen, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while process.poll() is None:
        if time.monotonic() > deadline:
            log.warning("locust overran its time limit; stopping it")
            process.terminate()
            try:
                process.wait(timeout=STOP_TIMEOUT_S + 5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            return "interrupted"
        time.sleep(0.2)
    return "completed" if process.returncode == 0 else "failed"


def _note_request_counts(run: Run) -> None:
    """Compare the recorder's request count with Locust's, and say why they differ.

    Locust rewrites its ``_stats.csv`` once a second from a background greenlet and
    does not write it again at shutdown, so requests that complete after its last
    write (at most about a second before the end, during ramp-down and the stop
    timeout) are in the recorder's files only. The history CSV's last row carries the
    time of that write (to the whole second), which bounds how many that can be.
    """
    locust_count = run.meta.get("locust_aggregated_requests")
    recorded = run.meta.get("tables", {}).get("requests", {}).get("rows", 0)
    if locust_count is None:
        run.meta["in_flight_at_stop"] = (
            "Locust's stats CSV has no Aggregated row to compare the recorder with."
        )
        run.save()
        return
    difference = recorded - locust_count
    note = (
        f"Locust's stats CSV counts {locust_count:,} requests and the recorder kept "
        f"{recorded:,} ({difference:+,})."
    )
    last_write = _last_history_write(run.raw / "locust_stats_history.csv")
    if difference == 0:
        note += " They agree: no request ended after Locust's last write of its stats"
        note += (
            f" ({last_write:%H:%M:%S} UTC, from the last row of its history CSV)."
            if last_write is not None
            else "."
        )
    elif last_write is not None and recorded:
        requests = run.table("requests", columns=["ts", "latency_ms"])
        ends = requests["ts"] + pd.to_timedelta(requests["latency_ms"], unit="ms")
        surely_after = int((ends >= last_write + pd.Timedelta(seconds=1)).sum())
        maybe_after = int((ends >= last_write).sum())
        explained = surely_after <= difference <= maybe_after
        share = "the" if explained else "only part of the"
        note += (
            f" Locust last rewrote its stats at {last_write:%H:%M:%S} UTC (to the "
            "second, from the last row of its history CSV) and not at shutdown; "
            "the recorder holds "
            f"{surely_after:,} to {maybe_after:,} requests that completed after that "
            f"write, still in flight then, which accounts for {share} difference."
        )
    note += (
        f" Requests still in flight at the very end had {STOP_TIMEOUT_S} s "
        "(--stop-timeout) to finish; any that did not were counted by neither."
    )
    run.meta["in_flight_at_stop"] = note
    run.meta["in_flight_requests"] = difference
    run.save()


def _last_history_write(path: Path) -> pd.Timestamp | None:
    """Time of the last Aggregated row Locust wrote to its history CSV."""
    if not path.exists():
        return None
    last = None
    with open(path, newline="", encoding="utf-8", errors="replace") as handle:
        for row in csv.DictReader(handle):
            if row.get("Name") == "Aggregated" and row.get("Timestamp", "").isdigit():
                last = int(row["Timestamp"])
    return pd.Timestamp(last, unit="s", tz="UTC") if last is not None else None

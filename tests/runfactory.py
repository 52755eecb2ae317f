"""Small synthetic runs for the analysis tests, built through the run store.

Every number comes from a seeded numpy generator, so a test can recompute it
independently. The default run resembles a short local Locust run against three
endpoints of the publishing API: a ramp to ``peak_users``, a few failures of two kinds,
one endpoint slower than the plan's 150 ms p95 target, and resource samples of the
target process and of the load generator once a second.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path

import numpy as np
import pandas as pd

from perflab import statistics
from perflab.store import TABLES, Run, create_run

START = pd.Timestamp("2026-12-03T19:40:00Z")

#: endpoint label -> (method, name, median latency in ms, log-normal sigma, weight)
ENDPOINTS: dict[str, tuple[str, str, float, float, float]] = {
    "GET /publications": ("GET", "/publications", 25.0, 0.5, 0.5),
    "POST /publications": ("POST", "/publications", 40.0, 0.5, 0.3),
    "GET /analytics/engagement": ("GET", "/analytics/engagement", 90.0, 0.6, 0.2),
}

#: Failure probability per endpoint in the default run; POST is above the 1 % target.
DEFAULT_FAILURE_RATES = {
    "GET /publications": 0.002,
    "POST /publications": 0.03,
    "GET /analytics/engagement": 0.005,
}

HEALTHY_MEDIANS_MS = {
    "GET /publications": 10.0,
    "POST /publications": 15.0,
    "GET /analytics/engagement": 20.0,
}

SERVER_ERROR = "HTTPError('500 Server Error: Internal Server Error')"
RESET_ERROR = "ConnectionResetError(104, 'Connection reset by peer')"


def make_requests(
    rng: np.random.Generator,
    duration_s: int,
    users: np.ndarray,
    requests_per_user_s: float,
    medians_ms: Mapping[str, float],
    failure_rates: Mapping[str, float],
) -> pd.DataFrame:
    """Per-request rows: Poisson arrivals per second, log-normal latencies."""
    labels = list(ENDPOINTS)
    weights = np.array([ENDPOINTS[label][4] for label in labels])
    counts = rng.poisson(users * requests_per_user_s)
    second = np.repeat(np.arange(duration_s), counts)
    n = int(counts.sum())

    # whole microseconds, the run store's timestamp precision
    offset_us = np.floor((second + rng.uniform(0.0, 1.0, n)) * 1e6)
    pick = rng.choice(len(labels), size=n, p=weights / weights.sum())
    endpoint = np.array(labels, dtype=object)[pick]
    median = np.array([medians_ms[label] for label in labels])[pick]
    sigma = np.array([ENDPOINTS[label][3] for label in labels])[pick]
    latency_ms = np.round(median * np.exp(sigma * rng.standard_normal(n)), 3)

    failure_p = np.array([failure_rates.get(label, 0.0) for label in labels])[pick]
    failed = rng.uniform(size=n) < failure_p
    reset = failed & (rng.uniform(size=n) < 0.3)
    status = pd.array(np.where(failed & ~reset, 500, 200), dtype="Int32")
    status[reset] = pd.NA
    error = np.where(reset, RESET_ERROR, np.where(failed, SERVER_ERROR, None))

    frame = pd.DataFrame(
        {
            "ts": START + pd.to_timedelta(offset_us, unit="us"),
            "endpoint": endpoint,
            "method": [ENDPOINTS[e][0] for e in endpoint],
            "name": [ENDPOINTS[e][1] for e in endpoint],
            "status": status,
            "latency_ms": latency_ms,
            "bytes": np.where(failed, 0, rng.integers(200, 4000, n)),
            "ok": ~failed,
            "error": error,
            "worker": "locust-0",
            "user": rng.integers(0, max(int(users.max()), 1), n),
        }
    )
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def make_resources(
    rng: np.random.Generator,
    duration_s: int,
    target_cpu_percent: float,
    loadgen_cpu_percent: float,
) -> pd.DataFrame:
    """Resource samples once a second for the target and the load generator."""
    ts = START + pd.to_timedelta(np.arange(duration_s), unit="s")
    ramp = np.minimum(1.0, (np.arange(duration_s) + 1) / 5)
    series = {
        ("target", "cpu_percent"): target_cpu_percent * ramp
        + rng.normal(0, 2, duration_s),
        ("target", "rss_mb"): 150 + 20 * ramp + rng.normal(0, 1, duration_s),
        ("load_generator", "cpu_percent"): loadgen_cpu_percent * ramp
        + rng.normal(0, 1, duration_s),
        ("load_generator", "rss_mb"): 80 + rng.normal(0, 0.5, duration_s),
    }
    frames = [
        pd.DataFrame({"ts": ts, "source": source, "metric": metric, "value": value})
        for (source, metric), value in series.items()
    ]
    resources = pd.concat(frames, ignore_index=True)
    resources["value"] = resources["value"].clip(lower=0.0)
    return resources


def make_run(
    store: Path,
    run_id: str = "20261203T194000Z-synthetic",
    *,
    seed: int = 20261203,
    duration_s: int = 20,
    peak_users: int = 10,
    requests_per_user_s: float = 3.0,
    medians_ms: Mapping[str, float] | None = None,
    failure_rates: Mapping[str, float] | None = None,
    target_cpu_percent: float = 55.0,
    loadgen_cpu_percent: float = 35.0,
    tables: Iterable[str] = TABLES,
    wait_s: tuple[float, float] = (0.25, 0.35),
) -> Run:
    """Build a synthetic Locust run in ``store`` and return it.

    Parameters
    ----------
    store
        The run store folder.
    run_id
        The run's id (its folder name).
    seed
        Seed of the numpy generator; the same arguments give the same run.
    duration_s
        Run length in seconds; users ramp up over the first 5 s.
    peak_users
        Concurrent users after the ramp.
    requests_per_user_s
        Mean request rate of one user, in requests per second.
    medians_ms
        Median latency per endpoint in ms; defaults to :data:`ENDPOINTS`.
    failure_rates
        Failure probability per endpoint; defaults to :data:`DEFAULT_FAILURE_RATES`.
    target_cpu_percent, loadgen_cpu_percent
        CPU level (percent of one core) of the target and the load generator once
        the ramp is over.
    tables
        Which canonical tables to write; the others are absent from the run.
    wait_s
        The think time ``(min, max)`` in seconds recorded in ``run.json``.
    """
    rng = np.random.default_rng(seed)
    tables = set(tables)
    medians_ms = {k: v[2] for k, v in ENDPOINTS.items()} | dict(medians_ms or {})
    failure_rates = dict(
        DEFAULT_FAILURE_RATES if failure_rates is None else failure_rates
    )
    ramp_s = 5
    users = np.minimum(
        peak_users, np.ceil(peak_users * (np.arange(duration_s) + 1) / ramp_s)
    )

    requests = make_requests(
        rng, duration_s, users, requests_per_user_s, medians_ms, failure_rates
    )
    resources = make_resources(rng, duration_s, target_cpu_percent, loadgen_cpu_percent)
    users_series = pd.DataFrame(
        {"ts": START + pd.to_timedelta(np.arange(duration_s), unit="s"), "users": users}
    )

    run = create_run(
        store,
        run_id=run_id,
        tool="locust",
        tool_version="2.31.0",
        scenario="publishing",
        host="http://127.0.0.1:8000",
        start=START.isoformat().replace("+00:00", "Z"),
        end=(START + pd.Timedelta(seconds=duration_s))
        .isoformat()
        .replace("+00:00", "Z"),
        duration_s=float(duration_s),
        peak_users=peak_users,
        stages=[
            {"duration_s": ramp_s, "users": peak_users},
            {"duration_s": duration_s - ramp_s, "users": peak_users},
        ],
        environment="local",
        # Each user sends requests_per_user_s requests a second, so its cycle of
        # latency R plus think time Z lasts 1 / requests_per_user_s: with the
        # default 3 per second and R of 10 to 90 ms, Z near 0.3 s keeps Little's
        # law N = X (R + Z) within a few percent.
        wait_s=list(wait_s),
        command="perflab run publishing --users 10 --run-time 20s",
        status="completed",
        warnings=["Synthetic run: made by tests/runfactory.py, not by Locust."],
        locust_aggregated_requests=len(requests) + 3,
        in_flight_at_stop=(
            "Locust's Aggregated row counts 3 more requests than the recorder wrote: "
            "they were still in flight when the run stopped."
        ),
    )

    if "requests" in tables:
        run.write_table("requests", requests, "exact")
    if "intervals" in tables:
        intervals = statistics.interval_table(requests, 1.0, users=users_series)
        run.write_table("intervals", intervals, "exact")
    if "endpoints" in tables:
        run.write_table("endpoints", statistics.endpoint_table(requests), "exact")
    if "errors" in tables:
        run.write_table("errors", statistics.error_table(requests), "exact")
    if "resources" in tables:
        run.write_table("resources", resources, "exact")
    return run


def make_healthy_run(store: Path, run_id: str = "20261203T194000Z-healthy") -> Run:
    """A run where every check passes: fast endpoints, no failures, idle generator."""
    return make_run(
        store,
        run_id,
        medians_ms=HEALTHY_MEDIANS_MS,
        failure_rates={},
        target_cpu_percent=30.0,
        loadgen_cpu_percent=20.0,
    )


def make_aggregate_run(store: Path, run_id: str = "20261203T194000Z-import") -> Run:
    """An imported run with only the tool's aggregate endpoint table.

    Its numbers are those of the default run, as if Locust had summarised them.
    """
    source = make_run(store, run_id + "-source", tables=("endpoints",))
    endpoints = source.table("endpoints")
    run = create_run(
        store,
        run_id=run_id,
        tool="locust",
        tool_version="2.31.0",
        start=START.isoformat().replace("+00:00", "Z"),
        duration_s=20.0,
        environment="staging",
        status="completed",
        warnings=[],
    )
    note = (
        "Locust's own stats CSV: percentiles are rounded to 2 significant digits "
        "(10 ms steps above 100 ms)."
    )
    run.write_table("endpoints", endpoints, "aggregate", note)
    return run


#: User levels of :func:`make_staged_run`, each held for ``STAGE_S`` seconds.
STAGED_USERS = (1, 2, 4, 6, 8, 12)
STAGE_S = 5


def make_staged_run(
    store: Path,
    run_id: str = "20261203T194000Z-staged",
    *,
    capacity_rps: float | None = 40.0,
    user_rps: float = 10.0,
    seed: int = 7,
) -> Run:
    """A closed-loop step load against a service with a throughput ceiling.

    Users step through :data:`STAGED_USERS`, ``STAGE_S`` seconds each, with no
    think time. Below the ceiling each user completes ``user_rps`` requests a
    second; at it, throughput stays at ``capacity_rps`` and, by Little's law with no
    think time, the mean latency is ``users / throughput``. So the knee is at
    ``capacity_rps / user_rps`` users (4 by default) and ``capacity_rps`` requests
    per second; ``capacity_rps=None`` never saturates.
    """
    rng = np.random.default_rng(seed)
    frames, users_rows = [], []
    for index, users in enumerate(STAGED_USERS):
        rate = users * user_rps
        if capacity_rps is not None:
            rate = min(rate, capacity_rps)
        mean_ms = 1000.0 * users / rate
        for second in range(STAGE_S):
            t = index * STAGE_S + second
            users_rows.append((START + pd.Timedelta(seconds=t), float(users)))
            n = int(rng.poisson(rate))
            offset = t + np.sort(rng.uniform(0.0, 1.0, n))
            frames.append(
                pd.DataFrame(
                    {
                        "ts": START + pd.to_timedelta(np.floor(offset * 1e6), "us"),
                        "latency_ms": np.round(
                            mean_ms * np.exp(0.2 * rng.standard_normal(n) - 0.02), 3
                        ),
                        "user": rng.integers(0, users, n),
                    }
                )
            )
    requests = pd.concat(frames, ignore_index=True)
    requests = requests.assign(
        endpoint="GET /api/v1/publications",
        method="GET",
        name="/api/v1/publications",
        status=pd.array([200] * len(requests), dtype="Int32"),
        bytes=500,
        ok=True,
        error=None,
        worker="locust-0",
    )
    duration_s = len(STAGED_USERS) * STAGE_S
    run = create_run(
        store,
        run_id=run_id,
        tool="locust",
        start=START.isoformat().replace("+00:00", "Z"),
        duration_s=float(duration_s),
        stages=[{"duration_s": STAGE_S, "users": u} for u in STAGED_USERS],
        wait_s=[0.0, 0.0],
        status="completed",
    )
    users = pd.DataFrame(users_rows, columns=["ts", "users"])
    run.write_table("requests", requests, "exact")
    run.write_table(
        "intervals", statistics.interval_table(requests, 1.0, users=users), "exact"
    )
    run.write_table("endpoints", statistics.endpoint_table(requests), "exact")
    return run


def add_resources(run: Run, series: Mapping[tuple[str, str], Iterable[float]]) -> Run:
    """Add resource series, one sample a second from the run's start, to a run.

    Parameters
    ----------
    run
        The run; its resources table is extended (or created).
    series
        ``(source, metric) -> values``.
    """
    frames = [run.table("resources")] if run.has("resources") else []
    for (source, metric), values in series.items():
        values = np.asarray(list(values), dtype=float)
        frames.append(
            pd.DataFrame(
                {
                    "ts": START + pd.to_timedelta(np.arange(values.size), unit="s"),
                    "source": source,
                    "metric": metric,
                    "value": values,
                }
            )
        )
    run.write_table("resources", pd.concat(frames, ignore_index=True), "exact")
    return run

"""Findings: problems detected in a run, each with severity, evidence and advice.

A *finding* is computed from a run's tables; where a table a check needs is absent,
the check is not evaluated and says why in :attr:`FindingsResult.not_evaluated`
rather than assuming the best. Thresholds are keyword parameters of :func:`find`,
with the load-testing plan's targets as defaults (API p95 < 150 ms, error rate < 1 %,
fewer than 200 database connections). Recommendations quote the plan's "Optimization
Recommendations" and "Common Bottlenecks" lists where they fit.

Checks
------
slow_endpoint
    Endpoints whose whole-window p95 latency is above the target, slowest first
    (warning; critical at ``critical_factor`` times the target). When every endpoint
    meets the target, the slowest one is reported as info.
error_rate
    Endpoints whose error rate (failed / all requests) is above the target.
error_kinds
    The most frequent error kinds with their counts, overall.
load_generator_cpu
    The load generator's CPU at or above a limit: the generator, not the target, may
    have been the bottleneck, so every latency of the run is suspect. The busiest
    Locust process (``cpu_percent_busiest``) is used when measured, else
    ``cpu_percent``.
resource_peak
    Peak CPU and memory of the target (and database connections, Redis memory and
    Redis memory use against its limit when measured), with the time of the peak.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from perflab import statistics
from perflab.store import OVERALL, Run
from perflab.windows import Window, run_window, window_requests

SEVERITIES = ("critical", "warning", "info")

#: Resource series: (source, metric) -> plain name, used by findings and the report.
CPU_METRIC = "cpu_percent"
BUSIEST_CPU_METRIC = "cpu_percent_busiest"
MEMORY_METRIC = "rss_mb"
DB_CONNECTIONS = ("postgres", "connections")
REDIS_MEMORY = ("redis", "used_memory_mb")

LATENCY_ADVICE = (
    "The plan's advice when API latency exceeds target: enable caching for frequently "
    "accessed data; optimize database queries (add indexes); increase the connection "
    "pool size; scale API containers horizontally."
)
RATE_LIMIT_ADVICE = (
    "429 responses point to a rate limit (the plan's \"External Service Rate "
    'Limits" bottleneck): implement backoff and request batching.'
)
TIMEOUT_ADVICE = (
    "Timeouts and refused or reset connections are the symptom of the plan's "
    '"Database Connection Pool Exhausted" bottleneck: increase the pool size and '
    "optimize queries."
)
ERROR_ADVICE = (
    "Find the cause of these errors in the target's logs for the same time range; "
    "the plan's target is an error rate below 1% for every endpoint."
)
LOAD_GENERATOR_ADVICE = (
    "Treat this run's latencies and throughput as suspect: the load generator was "
    "saturated. Run Locust with more processes (`--processes N`, one per core) or "
    "use FastHttpUser, which sends about 4 times as many requests per core as "
    "HttpUser."
)
TARGET_CPU_ADVICE = (
    "The target's CPU was near saturation: scale API containers horizontally (the "
    "plan's last resort when latency exceeds target)."
)
REDIS_ADVICE = (
    "Redis memory passed the plan's 80 % limit (the plan's \"Redis Memory Full\" "
    "bottleneck, seen as evictions and cache misses): increase memory, adjust TTLs."
)
DB_CONNECTIONS_ADVICE = (
    "Database connections passed the plan's limit: increase the pool size and "
    'optimize queries (the plan\'s "Database Connection Pool Exhausted" bottleneck).'
)


@dataclass(frozen=True)
class Finding:
    """A detected problem or notable fact, with the numbers behind it.

    Attributes
    ----------
    kind
        Which check made it: ``slow_endpoint``, ``error_rate``, ``error_kinds``,
        ``load_generator_cpu`` or ``resource_peak``.
    severity
        ``"critical"``, ``"warning"`` or ``"info"``.
    title
        One line, with the key number.
    evidence
        The numbers the finding rests on (latencies in ms, rates as 0-1 fractions,
        CPU in percent of one core, memory in MB), by name.
    summary
        The evidence as one sentence.
    start, end
        The time range it concerns (UTC), or None for the whole window.
    recommendation
        What to do, from the plan where it has advice; empty for plain facts.
    data
        Figure-ready numbers behind the finding (a time series, or a table of
        levels), described in the check's documentation; None when the evidence
        says it all.
    """

    kind: str
    severity: str
    title: str
    evidence: dict[str, Any]
    summary: str
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    recommendation: str = ""
    data: pd.DataFrame | None = field(default=None, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(
                f"severity must be one of {SEVERITIES}, not {self.severity!r}"
            )


@dataclass
class FindingsResult:
    """What :func:`find` returns: the findings, and the checks it could not make.

    Attributes
    ----------
    findings
        Most severe first; within a severity, in the order of the checks.
    not_evaluated
        One sentence per check that was skipped, saying which data was missing.
    """

    findings: list[Finding] = field(default_factory=list)
    not_evaluated: list[str] = field(default_factory=list)

    def __iter__(self):
        return iter(self.findings)

    def __len__(self) -> int:
        return len(self.findings)

    def of_kind(self, kind: str) -> list[Finding]:
        """The findings made by one check."""
        return [f for f in self.findings if f.kind == kind]

    def to_frame(self) -> pd.DataFrame:
        """One row per finding: severity, kind, title, summary, start, end."""
        columns = ["severity", "kind", "title", "summary", "start", "end"]
        return pd.DataFrame(
            [{c: getattr(f, c) for c in columns} for f in self.findings],
            columns=columns,
        )


def find(
    run: Run,
    *,
    p95_target_ms: float = 150.0,
    critical_factor: float = 2.0,
    slowest_count: int = 3,
    error_rate_target: float = 0.01,
    error_kinds_count: int = 5,
    load_generator_cpu_limit_percent: float = 90.0,
    target_cpu_limit_percent: float = 90.0,
    db_connections_limit: float = 200.0,
    pool_waiting_samples: int = 2,
    db_connections_near_percent: float = 90.0,
    cache_memory_full_percent: float = 95.0,
    cache_hit_ratio_target_percent: float = 80.0,
    queue_min_growth: float = 10.0,
    queue_max_p_value: float = 0.01,
    saturation_gain_fraction: float = 0.25,
    saturation_latency_rise: float = 1.2,
    saturation_min_levels: int = 4,
    burst_factor: float = 5.0,
    burst_min_failures: int = 5,
    burst_min_rate: float = 0.05,
    burst_max_p_value: float = 1e-4,
    burst_count: int = 3,
    outlier_factor: float = 3.0,
    outlier_robust_z: float = 3.5,
    outlier_min_requests: int = 20,
    littles_law_tolerance: float = 0.2,
    window: Window | None = None,
    whole: bool = False,
) -> FindingsResult:
    """Run every check on a run.

    Levels (slow endpoints, error rates, outlier endpoints, Little's law) are
    measured over the analysis window: the steady state of
    :func:`perflab.windows.run_window` by default, so that they agree with the
    report's Results. Checks about change over time (saturation across user levels,
    error bursts, resources, queues, pools, coordinated omission) look at the whole
    run and give each finding its own time range.

    Parameters
    ----------
    run
        The run to examine.
    p95_target_ms
        p95 latency target in ms for every endpoint (the plan's "API p95 < 150ms").
    critical_factor
        A p95 or an error rate this many times its target is critical, not a warning.
    slowest_count
        At most this many slow endpoints are reported.
    error_rate_target
        Highest acceptable error rate, failed / all requests, as a 0-1 fraction.
    error_kinds_count
        How many of the most frequent error kinds the evidence lists.
    load_generator_cpu_limit_percent
        Load generator CPU (percent of one core) at or above which results are suspect.
    target_cpu_limit_percent
        Target CPU (percent of one core) at or above which its peak is a warning.
    db_connections_limit
        Database connections at or above which the peak is a warning (plan: < 200).
    pool_waiting_samples
        ``pool_exhausted`` fires when at least this many samples of the service's
        ``perflab_db_pool_waiting`` are above 0 (or on any 503, or PostgreSQL
        connections at ``db_connections_near_percent`` of ``max_connections``).
    db_connections_near_percent
        PostgreSQL connections, in percent of ``max_connections``, that count as
        near the limit.
    cache_memory_full_percent
        ``cache_memory_full`` fires on any Redis eviction, or Redis memory at this
        percent of ``maxmemory``.
    cache_hit_ratio_target_percent
        The plan's hit ratio target (> 80 %); below it the finding is critical.
    queue_min_growth, queue_max_p_value
        ``queue_backed_up`` fires when a queue length's least-squares slope over
        the run is positive with a p-value below ``queue_max_p_value``, and it grew
        by at least ``queue_min_growth`` jobs.
    saturation_gain_fraction, saturation_latency_rise, saturation_min_levels
        ``saturation`` fires when, past the knee of a two-piece linear fit of
        throughput against users, each added user brings at most
        ``saturation_gain_fraction`` of the throughput it brought before, at least
        two user levels lie past the knee, and p95 at the highest level is at least
        ``saturation_latency_rise`` times p95 at the knee. It needs
        ``saturation_min_levels`` user levels.
    burst_factor, burst_min_failures, burst_min_rate, burst_max_p_value, burst_count
        ``error_burst`` flags an interval with at least ``burst_min_failures``
        failures, an error rate of at least ``burst_min_rate`` and
        ``burst_factor`` times the median interval error rate (at least 0.1 %),
        and a binomial tail probability at that median below
        ``burst_max_p_value``; consecutive flagged intervals form a burst, and
        the ``burst_count`` largest are reported.
    outlier_factor, outlier_robust_z, outlier_min_requests
        ``endpoint_outlier`` fires for an endpoint (with at least
        ``outlier_min_requests`` requests, among three or more) whose p95 is more
        than ``outlier_factor`` times the median of the endpoints' p95 and more
        than ``outlier_robust_z`` scaled median absolute deviations above it.
    littles_law_tolerance
        ``littles_law`` fires when ``X * (R + Z) / N`` is further than this from 1
        over the steady window.
    window
        The window for the level checks; by default the steady state.
    whole
        Measure the level checks over the whole run instead.

    Returns
    -------
    FindingsResult
        The findings and the list of checks not evaluated, with the reason.
    """
    result = FindingsResult()
    requests = run.table("requests") if run.has("requests") else None
    if requests is not None and not requests.empty:
        if window is None:
            window = run_window(run, whole=whole, requests=requests)
        in_window = window_requests(requests, window)
        endpoints = statistics.endpoint_table(in_window)
        endpoints.attrs["provenance"] = "exact"
    else:
        window = in_window = None
        endpoints = _endpoints(run)
    resources = run.table("resources") if run.has("resources") else None

    if endpoints is None:
        result.not_evaluated.append(
            "Slow endpoints and error rates were not evaluated because the run has "
            "neither per-request samples nor an endpoints table."
        )
    else:
        _slow_endpoints(
            result, endpoints, p95_target_ms, critical_factor, slowest_count
        )
        _error_rates(result, endpoints, in_window, error_rate_target, critical_factor)

    if in_window is not None:
        _error_kinds(
            result,
            statistics.error_table(in_window),
            endpoints,
            error_rate_target,
            error_kinds_count,
        )
    elif run.has("errors"):
        _error_kinds(
            result, run.table("errors"), endpoints, error_rate_target, error_kinds_count
        )
    elif requests is not None:
        _error_kinds(
            result,
            statistics.error_table(requests),
            endpoints,
            error_rate_target,
            error_kinds_count,
        )
    else:
        result.not_evaluated.append(
            "Error kinds were not evaluated because the run has neither an errors "
            "table nor per-request samples."
        )

    if resources is None or resources.empty:
        result.not_evaluated.append(
            "Load generator CPU and resource peaks were not evaluated because no "
            "resources were measured during the run."
        )
    else:
        _load_generator_cpu(result, resources, load_generator_cpu_limit_percent)
        _resource_peaks(
            result, resources, target_cpu_limit_percent, db_connections_limit
        )

    # bottlenecks of the plan, and problems with the measurement itself
    errors = run.table("errors") if run.has("errors") else None
    if resources is not None or requests is not None or errors is not None:
        _pool_exhausted(
            result,
            resources,
            requests,
            errors,
            pool_waiting_samples,
            db_connections_near_percent,
        )
    else:
        result.not_evaluated.append(
            "Connection pool exhaustion was not evaluated because the run has no "
            "resources, requests or errors."
        )
    if resources is None or resources.empty:
        result.not_evaluated.append(
            "Cache memory and worker queues were not evaluated because no resources "
            "were measured during the run."
        )
    else:
        _cache_full(
            result, resources, cache_memory_full_percent, cache_hit_ratio_target_percent
        )
        _queue_backed_up(result, resources, queue_min_growth, queue_max_p_value)
    _rate_limited(result, requests, errors, error_rate_target, critical_factor)

    intervals = run.table("intervals") if run.has("intervals") else None
    if intervals is None or intervals.empty:
        result.not_evaluated.append(
            "Saturation and error bursts were not evaluated because the run has no "
            "intervals table."
        )
    else:
        _saturation(
            result,
            intervals,
            requests,
            saturation_gain_fraction,
            saturation_latency_rise,
            saturation_min_levels,
        )
        _error_bursts(
            result,
            intervals,
            burst_factor,
            burst_min_failures,
            burst_min_rate,
            burst_max_p_value,
            burst_count,
        )
    if endpoints is not None:
        _endpoint_outliers(
            result, endpoints, outlier_factor, outlier_robust_z, outlier_min_requests
        )
    if requests is None or requests.empty:
        result.not_evaluated.append(
            "Little's law and coordinated omission were not evaluated because the "
            "run has no per-request samples."
        )
    else:
        _littles_law(
            result,
            run,
            requests,
            intervals if intervals is not None else run.table("intervals"),
            littles_law_tolerance,
            window,
        )
        _omission(result, run, requests, window)

    order = {s: i for i, s in enumerate(SEVERITIES)}
    result.findings.sort(key=lambda f: order[f.severity])
    return result


def _endpoints(run: Run) -> pd.DataFrame | None:
    """The endpoints table, or one computed from the requests; None without either."""
    if run.has("endpoints"):
        table = run.table("endpoints")
        info = run.provenance("endpoints")
        table.attrs["provenance"] = info.provenance if info else "unknown"
        return table
    if run.has("requests"):
        table = statistics.endpoint_table(run.table("requests"))
        table.attrs["provenance"] = "exact"
        return table
    return None


def _number(value: Any) -> float | None:
    """A float, or None for a missing value (never NaN in evidence)."""
    if value is None or pd.isna(value):
        return None
    return float(value)


def _ms(value: float) -> str:
    return f"{value:.1f} ms" if value < 100 else f"{value:,.0f} ms"


def _pct(fraction: float) -> str:
    return f"{100 * fraction:.2f}%"


def _slow_endpoints(result, endpoints, target_ms, critical_factor, count) -> None:
    rows = endpoints[endpoints["endpoint"] != OVERALL].dropna(subset=["p95"])
    if rows.empty:
        result.not_evaluated.append(
            "Slow endpoints were not evaluated because no endpoint has a p95 latency."
        )
        return
    rows = rows.sort_values(["p95", "endpoint"], ascending=[False, True])
    provenance = endpoints.attrs.get("provenance", "exact")
    source = (
        "the tool's aggregate percentiles"
        if provenance == "aggregate"
        else "per-request samples, nearest rank"
    )
    over = rows[rows["p95"] > target_ms].head(count)

    def evidence(row) -> dict[str, Any]:
        return {
            "endpoint": row["endpoint"],
            "requests": int(row["requests"]),
            "p50_ms": _number(row["p50"]),
            "p95_ms": _number(row["p95"]),
            "p99_ms": _number(row["p99"]),
            "max_ms": _number(row["max_ms"]),
            "p95_target_ms": target_ms,
            "provenance": provenance,
        }

    def numbers(row) -> str:
        parts = [
            f"{c} {_ms(row[c])}"
            for c in ("p50", "p95", "p99")
            if _number(row[c]) is not None
        ]
        return ", ".join(parts) + f" over {int(row['requests']):,} requests"

    for _, row in over.iterrows():
        critical = row["p95"] >= critical_factor * target_ms
        result.findings.append(
            Finding(
                kind="slow_endpoint",
                severity="critical" if critical else "warning",
                title=f"{row['endpoint']} p95 latency {_ms(row['p95'])} is above the "
                f"{_ms(target_ms)} target",
                evidence=evidence(row),
                summary=f"{row['endpoint']}: {numbers(row)} ({source}).",
                recommendation=LATENCY_ADVICE,
            )
        )
    if over.empty:
        row = rows.iloc[0]
        result.findings.append(
            Finding(
                kind="slow_endpoint",
                severity="info",
                title=f"Slowest endpoint {row['endpoint']} has p95 {_ms(row['p95'])}, "
                f"within the {_ms(target_ms)} target",
                evidence=evidence(row),
                summary=f"{row['endpoint']}: {numbers(row)} ({source}).",
            )
        )


def _failure_times(requests: pd.DataFrame | None, endpoint: str | None):
    """First and last start of a failed request (of one endpoint), or (None, None)."""
    if requests is None or requests.empty:
        return None, None
    failed = requests[~requests["ok"].astype(bool)]
    if endpoint is not None:
        failed = failed[failed["endpoint"] == endpoint]
    if failed.empty:
        return None, None
    ts = pd.to_datetime(failed["ts"], utc=True)
    return ts.min(), ts.max()


def _error_rates(result, endpoints, requests, target, critical_factor) -> None:
    rows = endpoints[endpoints["endpoint"] != OVERALL]
    rows = rows[rows["requests"] > 0].copy()
    rows["error_rate"] = rows["failures"] / rows["requests"]
    rows = rows.sort_values(["error_rate", "endpoint"], ascending=[False, True])
    for _, row in rows[rows["error_rate"] > target].iterrows():
        rate = float(row["error_rate"])
        start, end = _failure_times(requests, row["endpoint"])
        result.findings.append(
            Finding(
                kind="error_rate",
                severity="critical" if rate >= critical_factor * target else "warning",
                title=f"{row['endpoint']} error rate {_pct(rate)} is above the "
                f"{_pct(target)} target",
                evidence={
                    "endpoint": row["endpoint"],
                    "requests": int(row["requests"]),
                    "failures": int(row["failures"]),
                    "error_rate": rate,
                    "error_rate_target": target,
                },
                summary=f"{int(row['failures']):,} of {int(row['requests']):,} "
                f"requests to {row['endpoint']} failed ({_pct(rate)}).",
                start=start,
                end=end,
                recommendation=ERROR_ADVICE,
            )
        )


def _error_kinds(result, errors, endpoints, target, count) -> None:
    if errors.empty:
        return
    kinds = (
        errors.groupby("error", dropna=False)["count"]
        .sum()
        .sort_values(ascending=False, kind="stable")
    )
    total_failures = int(kinds.sum())
    overall_rate = None
    if endpoints is not None:
        overall = endpoints[endpoints["endpoint"] == OVERALL]
        if not overall.empty and overall["requests"].iloc[0] > 0:
            overall_rate = float(
                overall["failures"].iloc[0] / overall["requests"].iloc[0]
            )
    top = kinds.head(count)
    per_endpoint = (
        errors.groupby(["error", "endpoint"], dropna=False)["count"].sum().to_dict()
    )
    listed = "; ".join(f"{kind} ({int(n):,})" for kind, n in top.items())
    rates = _failing_endpoint_rates(errors, endpoints)
    rates_text = ""
    if rates:
        shown = ", ".join(f"{e} {_pct(r)}" for e, r in rates.items())
        rates_text = f" Error rate by endpoint: {shown}."
    text = " ".join(str(k) for k in kinds.index)
    if "429" in text:
        advice = RATE_LIMIT_ADVICE
    elif any(w in text.lower() for w in ("timeout", "timed out", "reset", "refused")):
        advice = TIMEOUT_ADVICE
    else:
        advice = ERROR_ADVICE
    above = overall_rate is not None and overall_rate > target
    rate_text = (
        f", an overall error rate of {_pct(overall_rate)}"
        if overall_rate is not None
        else ""
    )
    result.findings.append(
        Finding(
            kind="error_kinds",
            severity="warning" if above else "info",
            title=f"{total_failures:,} failed requests of {len(kinds)} kind"
            + ("s" if len(kinds) != 1 else ""),
            evidence={
                "failures": total_failures,
                "overall_error_rate": overall_rate,
                "kinds": {str(k): int(n) for k, n in top.items()},
                "error_rate_by_endpoint": rates,
                "by_endpoint": {
                    f"{endpoint}: {kind}": int(n)
                    for (kind, endpoint), n in per_endpoint.items()
                },
            },
            summary=f"{total_failures:,} requests failed{rate_text}; most frequent: "
            f"{listed}.{rates_text}",
            recommendation=advice,
        )
    )


def _failing_endpoint_rates(errors, endpoints) -> dict[str, float]:
    """Error rate (0-1) of each endpoint with errors, highest first; {} if unknown."""
    if endpoints is None:
        return {}
    failing = set(errors["endpoint"].dropna())
    rows = endpoints[endpoints["endpoint"].isin(failing) & (endpoints["requests"] > 0)]
    rates = {
        str(row.endpoint): float(row.failures / row.requests)
        for row in rows.itertuples(index=False)
    }
    return dict(sorted(rates.items(), key=lambda item: (-item[1], item[0])))


def _series(resources: pd.DataFrame, source: str, metric: str) -> pd.DataFrame:
    rows = resources[(resources["source"] == source) & (resources["metric"] == metric)]
    rows = rows.dropna(subset=["value"]).copy()
    rows["ts"] = pd.to_datetime(rows["ts"], utc=True)
    return rows.sort_values("ts")


def _load_generator_cpu(result, resources, limit) -> None:
    # each Locust process uses one core at most, so with several processes the
    # busiest one saturates first; their sum can pass 100 % without any saturation
    metric = BUSIEST_CPU_METRIC
    cpu = _series(resources, "load_generator", metric)
    if cpu.empty:
        metric = CPU_METRIC
        cpu = _series(resources, "load_generator", metric)
    if cpu.empty:
        result.not_evaluated.append(
            "Load generator CPU was not evaluated because it was not measured "
            "(no load_generator cpu_percent samples)."
        )
        return
    hot = cpu[cpu["value"] >= limit]
    if hot.empty:
        return
    peak = cpu.loc[cpu["value"].idxmax()]
    share = len(hot) / len(cpu)
    result.findings.append(
        Finding(
            kind="load_generator_cpu",
            severity="critical" if share >= 0.5 else "warning",
            title=f"Load generator CPU reached {peak['value']:.0f}% "
            f"(limit {limit:.0f}%): results are suspect",
            evidence={
                "peak_percent": float(peak["value"]),
                "mean_percent": float(cpu["value"].mean()),
                "samples_at_or_above_limit": len(hot),
                "samples": len(cpu),
                "limit_percent": limit,
                "metric": metric,
            },
            summary=f"{len(hot)} of {len(cpu)} load generator CPU samples ({metric}) "
            "were at or "
            f"above {limit:.0f}% (peak {peak['value']:.0f}% at "
            f"{peak['ts']:%H:%M:%S} UTC).",
            start=hot["ts"].min(),
            end=hot["ts"].max(),
            recommendation=LOAD_GENERATOR_ADVICE,
        )
    )


def _resource_peaks(result, resources, cpu_limit, db_limit) -> None:
    checks = [
        ("target", CPU_METRIC, "Target CPU", "%", cpu_limit, TARGET_CPU_ADVICE),
        ("target", MEMORY_METRIC, "Target memory", "MB", None, ""),
        (*DB_CONNECTIONS, "Database connections", "", db_limit, DB_CONNECTIONS_ADVICE),
        (*REDIS_MEMORY, "Redis memory", "MB", None, ""),
        ("redis", "memory_used_percent", "Redis memory use", "%", 80.0, REDIS_ADVICE),
    ]
    measured = False
    for source, metric, what, unit, limit, advice in checks:
        series = _series(resources, source, metric)
        if series.empty:
            continue
        measured = True
        peak = series.loc[series["value"].idxmax()]
        value = float(peak["value"])
        above = limit is not None and value >= limit
        shown = f"{value:,.0f}{unit}" if unit == "%" else f"{value:,.0f} {unit}"
        result.findings.append(
            Finding(
                kind="resource_peak",
                severity="warning" if above else "info",
                title=f"{what} peaked at {shown}",
                evidence={
                    "source": source,
                    "metric": metric,
                    "peak": value,
                    "mean": float(series["value"].mean()),
                    "samples": len(series),
                    "limit": limit,
                },
                summary=f"{what} ({source} {metric}) averaged "
                f"{series['value'].mean():,.1f} and peaked at {value:,.1f} at "
                f"{peak['ts']:%H:%M:%S} UTC over {len(series)} samples.",
                start=peak["ts"],
                end=peak["ts"],
                recommendation=advice if above else "",
            )
        )
    if not measured:
        result.not_evaluated.append(
            "Target resource peaks were not evaluated because neither target CPU nor "
            "memory was measured."
        )


# -- bottlenecks and measurement problems ------------------------------------------

POOL_WAITING = "perflab_db_pool_waiting"
POOL_IN_USE = "perflab_db_pool_in_use"
POOL_SIZE = "perflab_db_pool_size"
POOL_TIMEOUTS = "perflab_db_pool_timeouts_total"
QUEUE_LENGTH = "perflab_queue_length"
LIST_LENGTH_PREFIX = "list_length:"

POOL_ADVICE = (
    'The plan\'s "Database Connection Pool Exhausted" bottleneck (symptoms: timeout '
    "errors, high queue depth): increase the pool size and optimize queries."
)
CACHE_ADVICE = (
    'The plan\'s "Redis Memory Full" bottleneck (symptoms: evictions, cache '
    "misses): increase memory, adjust TTLs."
)
QUEUE_ADVICE = (
    'The plan\'s "Worker Queue Backed Up" bottleneck (symptoms: slow newsletter '
    "delivery, high queue depth): scale workers, optimize tasks. If newsletter "
    "generation is slow, the plan also advises batching database operations and "
    "optimizing personalization queries."
)
SATURATION_ADVICE = (
    "The service reached its capacity: past the knee, added users only queue. Find "
    "the resource that ran out in the other findings (connection pool, CPU, cache); "
    "the plan's advice when API latency exceeds target: enable caching for "
    "frequently accessed data; optimize database queries (add indexes); increase "
    "the connection pool size; scale API containers horizontally."
)
BURST_ADVICE = (
    "Read the target's logs for this time range: a burst of errors is an event (a "
    "restart, a dependency failing, a pool or queue overflowing), not steady load. "
    "The plan advises a gradual load increase to prevent cascading failures, and "
    "async delivery with circuit breakers."
)
OUTLIER_ADVICE = (
    "Profile this endpoint first: the plan's advice when API latency exceeds "
    "target is to optimize database queries (add indexes) and enable caching for "
    "frequently accessed data; for analytics, use read replicas."
)
OMISSION_ADVICE = (
    "Latencies of this run understate what users would see: while responses were "
    "slow, users stopped sending, so the slow period has few samples. Use the "
    "corrected percentiles, or rerun with an open-model load (constant arrival "
    "rate, such as k6's constant-arrival-rate executor)."
)


def _any_series(resources: pd.DataFrame, metric: str) -> tuple[str | None, pd.Series]:
    """A metric's samples (index ts) from the first source that has it."""
    rows = resources[resources["metric"] == metric].dropna(subset=["value"])
    if rows.empty:
        return None, pd.Series(dtype=float)
    source = sorted(rows["source"].astype(str).unique())[0]
    rows = rows[rows["source"] == source]
    series = pd.Series(
        rows["value"].to_numpy(dtype=float),
        index=pd.to_datetime(rows["ts"], utc=True),
        name=metric,
    ).sort_index()
    return source, series[~series.index.duplicated(keep="last")]


def _source_series(resources: pd.DataFrame, source: str, metric: str) -> pd.Series:
    rows = _series(resources, source, metric)
    series = pd.Series(
        rows["value"].to_numpy(dtype=float), index=rows["ts"].to_numpy(), name=metric
    )
    return series[~series.index.duplicated(keep="last")]


def _status_times(requests: pd.DataFrame | None, status: int) -> pd.DataFrame | None:
    """The requests answered with one HTTP status, or None without requests."""
    if requests is None or "status" not in requests:
        return None
    hit = requests[requests["status"].astype("Int64") == status]
    return hit.assign(ts=pd.to_datetime(hit["ts"], utc=True))


def _per_second(ts: pd.Series, name: str) -> pd.Series:
    if ts.empty:
        return pd.Series(dtype=float, name=name)
    return ts.dt.floor("s").value_counts().sort_index().rename(name).astype(float)


def _pool_exhausted(
    result, resources, requests, errors, min_samples: int, near_percent: float
) -> None:
    if resources is None:
        resources = pd.DataFrame(columns=["ts", "source", "metric", "value"])
    source, waiting = _any_series(resources, POOL_WAITING)
    _, in_use = _any_series(resources, POOL_IN_USE)
    _, size = _any_series(resources, POOL_SIZE)
    _, timeouts = _any_series(resources, POOL_TIMEOUTS)
    pg = _source_series(resources, "postgres", "connections_percent")
    pg_connections = _source_series(resources, "postgres", "connections")
    refused = _status_times(requests, 503)
    if refused is None and errors is not None and not errors.empty:
        count_503 = int(errors.loc[errors["status"] == 503, "count"].sum())
    else:
        count_503 = 0 if refused is None else len(refused)

    measured = not waiting.empty or not pg.empty or refused is not None
    if not measured and errors is None:
        result.not_evaluated.append(
            "Connection pool exhaustion was not evaluated because neither the "
            "service's pool metrics, PostgreSQL connections nor response statuses "
            "were recorded."
        )
        return

    queued = waiting[waiting > 0]
    full = pd.Series(dtype=float)
    if not in_use.empty and not size.empty:
        both = pd.concat(
            [in_use, size], axis=1, sort=True, keys=["in_use", "size"]
        ).dropna()
        full = both[both["in_use"] >= both["size"]]["in_use"]
    near = pg[pg >= near_percent]
    timed_out = float(timeouts.max() - timeouts.min()) if len(timeouts) > 1 else 0.0
    fired = len(queued) >= min_samples or not near.empty or count_503 > 0
    if not fired:
        return

    symptoms = []
    if len(queued):
        symptoms.append(
            f"requests waited for a pooled connection in {len(queued)} of "
            f"{len(waiting)} samples (peak {queued.max():.0f} waiting, "
            f"{source} {POOL_WAITING})"
        )
    if len(full):
        symptoms.append(
            f"every connection of the pool (size {size.max():.0f}) was in use in "
            f"{len(full)} samples"
        )
    if count_503:
        symptoms.append(f"{count_503:,} requests were refused with 503")
    if timed_out:
        symptoms.append(f"{timed_out:.0f} pool timeouts ({POOL_TIMEOUTS})")
    if not near.empty:
        symptoms.append(
            f"PostgreSQL connections reached {near.max():.0f}% of max_connections"
        )
    if waiting.empty and pg.empty:
        symptoms.append(
            "the pool itself was not measured (probe the service's /metrics to "
            "confirm the cause of the 503s)"
        )

    times = [s.index for s in (queued, near) if len(s)]
    if refused is not None and len(refused):
        times.append(pd.DatetimeIndex(refused["ts"]))
    start = min(t.min() for t in times) if times else None
    end = max(t.max() for t in times) if times else None
    share = len(queued) / len(waiting) if len(waiting) else 0.0
    critical = count_503 > 0 or timed_out > 0 or share >= 0.5 or not near.empty
    frame = (
        pd.concat(
            {
                name: s
                for name, s in (
                    ("in_use", in_use),
                    ("size", size),
                    ("waiting", waiting),
                    ("postgres_connections", pg_connections),
                    ("postgres_connections_percent", pg),
                    (
                        "refused_503_per_s",
                        _per_second(refused["ts"], "503")
                        if refused is not None
                        else pd.Series(dtype=float),
                    ),
                )
                if len(s)
            },
            axis=1,
            sort=True,
        )
        .rename_axis("ts")
        .reset_index()
    )
    result.findings.append(
        Finding(
            kind="pool_exhausted",
            severity="critical" if critical else "warning",
            title="Database connection pool exhausted"
            + (f": {count_503:,} requests refused with 503" if count_503 else ""),
            evidence={
                "samples_waiting": len(queued),
                "samples": len(waiting),
                "peak_waiting": _number(queued.max()) if len(queued) else 0.0,
                "samples_pool_full": len(full),
                "pool_size": _number(size.max()) if len(size) else None,
                "refused_503": count_503,
                "pool_timeouts": timed_out,
                "postgres_peak_connections": _number(pg_connections.max())
                if len(pg_connections)
                else None,
                "postgres_peak_connections_percent": _number(pg.max())
                if len(pg)
                else None,
                "source": source,
            },
            summary="; ".join(symptoms).capitalize() + ".",
            start=start,
            end=end,
            recommendation=POOL_ADVICE,
            data=frame,
        )
    )


def _cache_full(result, resources, memory_full_percent, hit_ratio_target) -> None:
    evictions = _source_series(resources, "redis", "evictions_per_s")
    memory = _source_series(resources, "redis", "memory_used_percent")
    if evictions.empty and memory.empty:
        result.not_evaluated.append(
            "Cache memory was not evaluated because Redis was not probed (no redis "
            "evictions_per_s or memory_used_percent samples)."
        )
        return
    evicting = evictions[evictions > 0]
    full = memory[memory >= memory_full_percent]
    if evicting.empty and full.empty:
        return
    hits = _source_series(resources, "redis", "hits_per_s")
    misses = _source_series(resources, "redis", "misses_per_s")
    lookups = float(hits.sum() + misses.sum())
    hit_ratio = 100 * float(hits.sum()) / lookups if lookups > 0 else None
    # the rates hold over the interval before each sample
    gaps = evictions.index.to_series().diff().dt.total_seconds()
    evicted = float((evictions * gaps.fillna(0)).sum())
    low_hits = hit_ratio is not None and hit_ratio < hit_ratio_target
    parts = []
    if len(evicting):
        parts.append(
            f"Redis evicted keys in {len(evicting)} of {len(evictions)} samples "
            f"(about {evicted:,.0f} keys, peak {evicting.max():,.0f}/s)"
        )
    if len(memory):
        parts.append(f"memory peaked at {memory.max():.0f}% of maxmemory")
    if hit_ratio is not None:
        parts.append(
            f"the hit ratio was {hit_ratio:.0f}% (target above {hit_ratio_target:.0f}%)"
        )
    times = [s.index for s in (evicting, full) if len(s)]
    frame = (
        pd.concat(
            {
                metric: _source_series(resources, "redis", metric)
                for metric in (
                    "used_memory_mb",
                    "maxmemory_mb",
                    "memory_used_percent",
                    "evictions_per_s",
                    "hit_ratio_percent",
                )
                if len(_source_series(resources, "redis", metric))
            },
            axis=1,
            sort=True,
        )
        .rename_axis("ts")
        .reset_index()
    )
    result.findings.append(
        Finding(
            kind="cache_memory_full",
            severity="critical" if low_hits else "warning",
            title="Redis memory full: keys evicted"
            if len(evicting)
            else f"Redis memory at {memory.max():.0f}% of maxmemory",
            evidence={
                "samples_evicting": len(evicting),
                "samples": len(evictions),
                "evicted_keys_estimate": evicted,
                "peak_evictions_per_s": _number(evicting.max())
                if len(evicting)
                else 0.0,
                "peak_memory_used_percent": _number(memory.max())
                if len(memory)
                else None,
                "hit_ratio_percent": hit_ratio,
                "hit_ratio_target_percent": hit_ratio_target,
            },
            summary="; ".join(parts).capitalize() + ".",
            start=min(t.min() for t in times),
            end=max(t.max() for t in times),
            recommendation=CACHE_ADVICE,
            data=frame,
        )
    )


def _queue_backed_up(result, resources, min_growth, max_p_value) -> None:
    from scipy import stats

    queues = []
    for metric in sorted(set(resources["metric"].astype(str))):
        if metric.startswith(LIST_LENGTH_PREFIX) or metric == QUEUE_LENGTH:
            source, series = _any_series(resources, metric)
            queues.append((source, metric, series))
    if not queues:
        result.not_evaluated.append(
            "Worker queues were not evaluated because no queue length was recorded "
            "(probe Redis with --redis-list NAME, or the service's /metrics)."
        )
        return
    seen_redis_lists = {m for _, m, _ in queues if m.startswith(LIST_LENGTH_PREFIX)}
    for source, metric, series in queues:
        # the service's own gauge repeats the Redis list when both are probed
        if metric == QUEUE_LENGTH and seen_redis_lists:
            continue
        if len(series) < 5 or series.nunique() < 2:
            continue
        seconds = (series.index - series.index[0]).total_seconds().to_numpy()
        fit = stats.linregress(seconds, series.to_numpy())
        growth = fit.slope * (seconds[-1] - seconds[0])
        if not (
            fit.slope > 0
            and fit.pvalue < max_p_value
            and growth >= min_growth
            and series.iloc[-1] >= min_growth
        ):
            continue
        name = metric.removeprefix(LIST_LENGTH_PREFIX)
        frame = pd.DataFrame(
            {
                "ts": series.index,
                "length": series.to_numpy(),
                "fitted": fit.intercept + fit.slope * seconds,
            }
        )
        result.findings.append(
            Finding(
                kind="queue_backed_up",
                severity="critical"
                if series.iloc[-1] >= 10 * min_growth
                else "warning",
                title=f"Worker queue {name!r} kept growing: {fit.slope:,.1f} jobs/s, "
                f"{series.iloc[-1]:,.0f} waiting at the end",
                evidence={
                    "queue": name,
                    "source": source,
                    "metric": metric,
                    "slope_jobs_per_s": float(fit.slope),
                    "p_value": float(fit.pvalue),
                    "r_squared": float(fit.rvalue**2),
                    "first_length": float(series.iloc[0]),
                    "last_length": float(series.iloc[-1]),
                    "peak_length": float(series.max()),
                    "samples": len(series),
                },
                summary=f"The length of {name!r} ({source} {metric}) grew by "
                f"{fit.slope:,.2f} jobs per second over {len(series)} samples "
                f"(least-squares slope, p = {fit.pvalue:.1g}, R² = "
                f"{fit.rvalue**2:.2f}), from {series.iloc[0]:,.0f} to "
                f"{series.iloc[-1]:,.0f}: jobs arrived faster than the workers "
                "took them.",
                start=series.index[0],
                end=series.index[-1],
                recommendation=QUEUE_ADVICE,
                data=frame,
            )
        )


def _rate_limited(result, requests, errors, error_rate_target, critical_factor):
    limited = _status_times(requests, 429)
    if limited is None:
        if errors is None or errors.empty:
            return
        rows = errors[errors["status"] == 429]
        if rows.empty:
            return
        by_endpoint = rows.groupby("endpoint")["count"].sum()
        count, total, span, start, end = int(by_endpoint.sum()), None, None, None, None
        frame = by_endpoint.rename("refused_429").reset_index()
    else:
        if limited.empty:
            return
        by_endpoint = limited.groupby("endpoint").size()
        count, total = len(limited), len(requests)
        start, end = limited["ts"].min(), limited["ts"].max()
        span = max((end - start).total_seconds(), 1.0)
        all_ts = pd.to_datetime(requests["ts"], utc=True)
        frame = (
            pd.concat(
                [
                    _per_second(limited["ts"], "refused_429"),
                    _per_second(all_ts, "requests"),
                ],
                axis=1,
                sort=True,
            )
            .fillna(0.0)
            .rename_axis("ts")
            .reset_index()
        )
    share = count / total if total else None
    by_endpoint = by_endpoint.sort_values(ascending=False)
    listed = ", ".join(f"{e} ({int(n):,})" for e, n in by_endpoint.items())
    critical = share is not None and share >= critical_factor * error_rate_target
    when = ""
    if start is not None:
        when = (
            f", from {start:%H:%M:%S} UTC (the first) to {end:%H:%M:%S} UTC, "
            f"{count / span:,.1f} per second"
        )
    share_text = f" ({_pct(share)} of all requests)" if share is not None else ""
    result.findings.append(
        Finding(
            kind="rate_limited",
            severity="critical" if critical else "warning",
            title=f"{count:,} requests refused with 429 Too Many Requests",
            evidence={
                "refused_429": count,
                "share": share,
                "rate_per_s": count / span if span else None,
                "first": start,
                "last": end,
                "by_endpoint": {str(k): int(v) for k, v in by_endpoint.items()},
            },
            summary=f"{count:,} responses were 429{share_text}{when}; by endpoint: "
            f"{listed}.",
            start=start,
            end=end,
            recommendation=RATE_LIMIT_ADVICE,
            data=frame,
        )
    )


def user_levels(
    intervals: pd.DataFrame, requests: pd.DataFrame | None = None
) -> pd.DataFrame:
    """Throughput and latency at each number of users the run held.

    The ``Overall`` intervals are grouped by their ``users``; only intervals whose
    neighbours on both sides have the same users count (users are sampled, so the
    intervals next to a change are mixed), and neither the first nor the last
    interval of the run (partly outside it), are used.

    Parameters
    ----------
    intervals
        The ``intervals`` table.
    requests
        The ``requests`` table; when given, each level's latency percentiles come
        from its requests, else from the median of its intervals' percentiles.

    Returns
    -------
    DataFrame
        One row per level, by users: ``users``, ``intervals``, ``seconds``,
        ``requests``, ``throughput`` (requests per second), ``p50``, ``p95`` and
        ``mean_ms`` (ms).
    """
    columns = ["users", "intervals", "seconds", "requests", "throughput"]
    columns += ["p50", "p95", "mean_ms"]
    overall = intervals[intervals["endpoint"] == OVERALL].sort_values("ts")
    overall = overall.iloc[1:-1]
    users = overall["users"]
    stable = (users == users.shift(1)) & (users == users.shift(-1)) & (users > 0)
    kept = overall[stable.fillna(False).astype(bool)]
    if kept.empty:
        return pd.DataFrame(columns=columns)
    starts = pd.to_datetime(kept["ts"], utc=True)
    if requests is not None and not requests.empty:
        ts = pd.to_datetime(requests["ts"], utc=True)
        origin = pd.to_datetime(overall["ts"], utc=True).min()
        step = pd.to_timedelta(float(kept["interval_s"].iloc[0]), unit="s")
        bucket = origin + ((ts - origin) // step) * step
        level_of = dict(zip(starts, kept["users"], strict=True))
        level = bucket.map(level_of)
    rows = []
    for value, group in kept.groupby("users", sort=True):
        seconds = float(group["interval_s"].sum())
        count = int(group["requests"].sum())
        row = {
            "users": float(value),
            "intervals": len(group),
            "seconds": seconds,
            "requests": count,
            "throughput": count / seconds if seconds else float("nan"),
        }
        if requests is not None and not requests.empty:
            latency = requests.loc[(level == value).to_numpy(), "latency_ms"]
            pcts = statistics.percentiles(latency, (50.0, 95.0))
            row.update(pcts, mean_ms=float(latency.mean()))
        else:
            row.update(
                p50=float(group["p50"].median()),
                p95=float(group["p95"].median()),
                mean_ms=float(
                    (group["mean_ms"] * group["requests"]).sum() / max(count, 1)
                ),
            )
        rows.append(row)
    return pd.DataFrame(rows, columns=columns)


def fit_knee(levels: pd.DataFrame) -> dict[str, Any] | None:
    """A two-piece linear fit of throughput against users, joined at a knee.

    Every level but the first and the last is tried as the knee; the model
    ``throughput = a + b * users + c * max(0, users - knee)`` is fitted by least
    squares weighted by each level's seconds, and the knee with the smallest
    weighted squared error is kept.

    Parameters
    ----------
    levels
        A table from :func:`user_levels` with at least three rows.

    Returns
    -------
    dict or None
        ``knee_index``, ``knee_users``, ``knee_throughput`` (the fit at the knee,
        requests per second), ``slope_before`` and ``slope_after`` (requests per
        second per added user), ``fitted`` (an array, one per level); None with
        fewer than three levels.
    """
    if len(levels) < 3:
        return None
    users = levels["users"].to_numpy(dtype=float)
    throughput = levels["throughput"].to_numpy(dtype=float)
    weight = np.sqrt(levels["seconds"].to_numpy(dtype=float))
    best = None
    for k in range(1, len(users) - 1):
        design = np.column_stack(
            [np.ones_like(users), users, np.clip(users - users[k], 0, None)]
        )
        coef, *_ = np.linalg.lstsq(design * weight[:, None], throughput * weight)
        fitted = design @ coef
        error = float((((throughput - fitted) * weight) ** 2).sum())
        if best is None or error < best[0]:
            best = (error, k, coef, fitted)
    _, k, coef, fitted = best
    return {
        "knee_index": k,
        "knee_users": float(users[k]),
        "knee_throughput": float(fitted[k]),
        "slope_before": float(coef[1]),
        "slope_after": float(coef[1] + coef[2]),
        "fitted": fitted,
    }


def _saturation(
    result, intervals, requests, gain_fraction, latency_rise, min_levels
) -> None:
    levels = user_levels(intervals, requests)
    if len(levels) < min_levels:
        result.not_evaluated.append(
            f"Saturation was not evaluated because the run held only {len(levels)} "
            f"distinct user count(s) long enough to measure (it needs {min_levels}: "
            "a staged or slowly ramping run)."
        )
        return
    fit = fit_knee(levels)
    k = fit["knee_index"]
    after = len(levels) - 1 - k
    knee_p95 = float(levels["p95"].iloc[k])
    last_p95 = float(levels["p95"].iloc[-1])
    saturated = (
        fit["slope_before"] > 0
        and fit["slope_after"] <= gain_fraction * fit["slope_before"]
        and after >= 2
        and last_p95 >= latency_rise * knee_p95
    )
    if not saturated:
        return
    frame = levels.assign(fitted_throughput=fit["fitted"])
    plateau = float(levels["throughput"].iloc[k:].mean())
    users_knee = fit["knee_users"]
    last_users = float(levels["users"].iloc[-1])
    ts = pd.to_datetime(intervals["ts"], utc=True)
    overall = intervals[intervals["endpoint"] == OVERALL]
    past = overall[overall["users"] > users_knee]
    start = pd.to_datetime(past["ts"], utc=True).min() if len(past) else None
    result.findings.append(
        Finding(
            kind="saturation",
            severity="critical"
            if last_p95 >= 2 * latency_rise * knee_p95
            else "warning",
            title=f"Throughput stopped growing at {users_knee:g} users, "
            f"{fit['knee_throughput']:,.0f} requests/s, while latency climbed",
            evidence={
                "knee_users": users_knee,
                "knee_throughput_rps": fit["knee_throughput"],
                "plateau_throughput_rps": plateau,
                "slope_before_rps_per_user": fit["slope_before"],
                "slope_after_rps_per_user": fit["slope_after"],
                "p95_at_knee_ms": knee_p95,
                "p95_at_peak_ms": last_p95,
                "peak_users": last_users,
                "levels": len(levels),
            },
            summary=f"Up to {users_knee:g} users each added user brought "
            f"{fit['slope_before']:,.1f} requests/s; past it only "
            f"{fit['slope_after']:,.1f} (a two-piece linear fit of throughput "
            f"against users over {len(levels)} user levels), throughput staying "
            f"near {plateau:,.0f} requests/s while p95 rose from "
            f"{_ms(knee_p95)} to {_ms(last_p95)} at {last_users:g} users.",
            start=start,
            end=ts.max() if start is not None else None,
            recommendation=SATURATION_ADVICE,
            data=frame,
        )
    )


def _error_bursts(
    result, intervals, burst_factor, min_failures, min_rate, max_p_value, count
) -> None:
    from scipy import stats

    overall = intervals[
        (intervals["endpoint"] == OVERALL) & (intervals["requests"] > 0)
    ].sort_values("ts")
    if overall.empty:
        return
    rate = overall["failures"] / overall["requests"]
    baseline = float(rate.median())
    p0 = max(baseline, 1e-3)
    surprise = stats.binom.sf(
        overall["failures"].to_numpy() - 1, overall["requests"].to_numpy(), p0
    )
    flagged = (
        (overall["failures"] >= min_failures)
        & (rate >= max(burst_factor * p0, min_rate))
        & (surprise < max_p_value)
    ).to_numpy()
    if not flagged.any():
        return
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(overall["ts"], utc=True).to_numpy(),
            "requests": overall["requests"].to_numpy(),
            "failures": overall["failures"].to_numpy(),
            "error_rate": rate.to_numpy(),
            "burst": flagged,
        }
    )
    step = pd.to_timedelta(float(overall["interval_s"].iloc[0]), unit="s")
    group = (~frame["burst"] | (frame["ts"].diff() > step * 1.5)).cumsum()
    bursts = []
    for _, rows in frame[frame["burst"]].groupby(group[frame["burst"]]):
        bursts.append(rows)
    bursts.sort(key=lambda rows: -int(rows["failures"].sum()))
    for rows in bursts[:count]:
        failures, total = int(rows["failures"].sum()), int(rows["requests"].sum())
        burst_rate = failures / total
        start, end = rows["ts"].min(), rows["ts"].max() + step
        result.findings.append(
            Finding(
                kind="error_burst",
                severity="critical" if burst_rate >= 0.5 else "warning",
                title=f"Error burst: {_pct(burst_rate)} of requests failed from "
                f"{start:%H:%M:%S} to {end:%H:%M:%S} UTC",
                evidence={
                    "failures": failures,
                    "requests": total,
                    "error_rate": burst_rate,
                    "baseline_error_rate": baseline,
                    "intervals": len(rows),
                    "interval_s": step.total_seconds(),
                },
                summary=f"{failures:,} of {total:,} requests failed in "
                f"{len(rows)} interval(s) ({_pct(burst_rate)}), against a median "
                f"interval error rate of {_pct(baseline)} over the run (each "
                f"interval at least {burst_factor:g} times the baseline and "
                f"binomially unlikely at it, p < {max_p_value:g}).",
                start=start,
                end=end,
                recommendation=BURST_ADVICE,
                data=frame,
            )
        )


def _endpoint_outliers(result, endpoints, factor, robust_z, min_requests) -> None:
    rows = endpoints[
        (endpoints["endpoint"] != OVERALL) & (endpoints["requests"] >= min_requests)
    ].dropna(subset=["p95"])
    if len(rows) < 3:
        return
    p95 = rows["p95"].astype(float)
    median = float(p95.median())
    mad = float((p95 - median).abs().median()) * 1.4826
    z = (p95 - median) / mad if mad > 0 else pd.Series(np.inf, index=p95.index)
    outliers = rows[(p95 > factor * median) & (z > robust_z)]
    frame = pd.DataFrame(
        {
            "endpoint": rows["endpoint"].to_numpy(),
            "requests": rows["requests"].to_numpy(),
            "p95": p95.to_numpy(),
            "robust_z": z.to_numpy(),
            "outlier": rows.index.isin(outliers.index),
        }
    ).sort_values("p95", ascending=False, ignore_index=True)
    for index, row in outliers.sort_values("p95", ascending=False).iterrows():
        ratio = float(row["p95"]) / median
        result.findings.append(
            Finding(
                kind="endpoint_outlier",
                severity="warning",
                title=f"{row['endpoint']} is {ratio:.1f} times slower than the "
                "typical endpoint",
                evidence={
                    "endpoint": row["endpoint"],
                    "p95_ms": float(row["p95"]),
                    "median_endpoint_p95_ms": median,
                    "ratio": ratio,
                    "robust_z": float(z.loc[index]),
                    "endpoints": len(rows),
                },
                summary=f"{row['endpoint']} has p95 {_ms(row['p95'])} while the "
                f"median p95 of the {len(rows)} endpoints is {_ms(median)} (robust "
                f"z = {float(z.loc[index]):.1f} with the median absolute deviation).",
                recommendation=OUTLIER_ADVICE,
                data=frame,
            )
        )


def _littles_law(result, run, requests, intervals, tolerance, window) -> None:
    wait, pace = run.meta.get("wait_s"), run.meta.get("pace_s")
    if not pace and (not wait or len(wait) != 2):
        result.not_evaluated.append(
            "Little's law was not checked because run.json has no think time "
            "(wait_s) or pacing (pace_s)."
        )
        return
    inside = window_requests(requests, window)
    overall = intervals[intervals["endpoint"] == OVERALL]
    ts = pd.to_datetime(overall["ts"], utc=True)
    users = overall[(ts >= window.start) & (ts < window.end)]["users"].dropna()
    if not users.empty:
        n = float(users.mean())
    elif window.peak_users:
        n = float(window.peak_users)
    else:
        result.not_evaluated.append(
            "Little's law was not checked because the number of users is unknown."
        )
        return
    if inside.empty or n <= 0 or window.seconds <= 0:
        return
    x = len(inside) / window.seconds
    latency_s = inside["latency_ms"].to_numpy(dtype=float) / 1000
    r = float(np.nanmean(latency_s))
    if pace:
        # a paced user starts a task every pace_s, or as soon as a slower one ends
        cycle = float(np.nanmean(np.maximum(latency_s, float(pace))))
        z = cycle - r
    else:
        z = (float(wait[0]) + float(wait[1])) / 2
    predicted = x * (r + z)
    ratio = predicted / n
    if abs(ratio - 1) <= tolerance:
        return
    if ratio < 1:
        direction = (
            f"{n:g} users should have completed {n / (r + z):,.1f} requests/s with "
            f"that latency and think time, but only {x:,.1f} were recorded: users "
            "spent time neither waiting on a response nor thinking. Suspect the load "
            "generator (CPU, connection limits), requests left unrecorded, or a "
            "think time longer than run.json says."
        )
    else:
        direction = (
            f"{x:,.1f} requests/s is more than {n:g} users can send with that "
            f"latency and think time ({n / (r + z):,.1f}/s): suspect users "
            "undercounted, requests recorded twice, latency measured too high, or "
            "a think time shorter than run.json says."
        )
    result.findings.append(
        Finding(
            kind="littles_law",
            severity="warning",
            title=f"Little's law disagrees by {100 * (ratio - 1):+.0f}%: "
            "the measurements are inconsistent",
            evidence={
                "users": n,
                "throughput_rps": x,
                "mean_latency_s": r,
                "think_time_s": z,
                "predicted_users": predicted,
                "ratio": ratio,
                "tolerance": tolerance,
                "window": window.how,
            },
            summary=f"Over {window.how}: N = {n:g} users, X = {x:,.2f} requests/s, "
            f"R = {r:.3f} s, Z = {z:.3f} s; X·(R+Z) = {predicted:,.2f}, not N. "
            + direction,
            start=window.start,
            end=window.end,
            recommendation="Resolve the inconsistency before trusting this run's "
            "numbers: check the load generator's CPU, the recorder's request count "
            "against the tool's, and the scenario's real think time.",
        )
    )


def _omission(result, run, requests, window) -> None:
    from perflab.omission import detect_omission

    if "user" not in requests or requests["user"].isna().all():
        result.not_evaluated.append(
            "Coordinated omission was not evaluated because the requests carry no "
            "user id."
        )
        return
    omission = detect_omission(
        window_requests(requests, window),
        expected_interval_ms=run.meta.get("expected_interval_ms"),
    )
    if not omission.detected:
        return
    evidence = {
        "users_affected": omission.users_affected,
        "users_total": omission.users_total,
        "longest_stall_ms": omission.longest_stall_ms,
        "raw_p99_ms": omission.raw.get("p99"),
        "corrected_p99_ms": (omission.corrected or {}).get("p99"),
        "expected_interval_ms": omission.expected_interval_ms,
        "expected_interval_source": omission.expected_interval_source,
        "window": window.how,
    }
    result.findings.append(
        Finding(
            kind="coordinated_omission",
            severity="warning",
            title=f"Coordinated omission: {omission.users_affected} of "
            f"{omission.users_total} users stopped sending while waiting",
            evidence=evidence,
            summary=omission.summary(),
            start=omission.start,
            end=omission.end,
            recommendation=OMISSION_ADVICE,
            data=omission.episodes,
        )
    )

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

import pandas as pd

from perflab import statistics
from perflab.store import OVERALL, Run

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
    """

    kind: str
    severity: str
    title: str
    evidence: dict[str, Any]
    summary: str
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    recommendation: str = ""

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
) -> FindingsResult:
    """Run every check on a run's whole window.

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

    Returns
    -------
    FindingsResult
        The findings and the list of checks not evaluated, with the reason.
    """
    result = FindingsResult()
    endpoints = _endpoints(run)
    requests = run.table("requests") if run.has("requests") else None
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
        _error_rates(result, endpoints, requests, error_rate_target, critical_factor)

    if run.has("errors"):
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

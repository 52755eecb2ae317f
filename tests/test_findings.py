"""Findings: each check fires on crafted data, stays quiet on healthy data, and says
when it could not be made. Expected numbers are recomputed here from the requests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from runfactory import make_healthy_run, make_run

from perflab.findings import Finding, find


def _nearest_rank(values: np.ndarray, percentile: float) -> float:
    """Textbook nearest rank: the sample at 1-based rank ceil(q * n)."""
    ordered = np.sort(values)
    rank = int(np.ceil(percentile / 100 * ordered.size))
    return float(ordered[max(rank, 1) - 1])


def test_slow_endpoint_fires_with_its_numbers(store):
    run = make_run(store)
    result = find(run)

    slow = result.of_kind("slow_endpoint")
    assert [f.evidence["endpoint"] for f in slow] == ["GET /analytics/engagement"]
    finding = slow[0]
    assert finding.severity == "warning"
    requests = run.table("requests")
    latency = requests.loc[
        requests["endpoint"] == "GET /analytics/engagement", "latency_ms"
    ].to_numpy()
    assert finding.evidence["requests"] == latency.size
    assert finding.evidence["p95_ms"] == _nearest_rank(latency, 95)
    assert finding.evidence["p99_ms"] == _nearest_rank(latency, 99)
    assert "enable caching" in finding.recommendation


def test_slow_endpoint_threshold_is_a_parameter(store):
    result = find(make_run(store), p95_target_ms=10_000.0)
    assert [f.severity for f in result.of_kind("slow_endpoint")] == ["info"]


def test_error_rate_above_target_fires_per_endpoint(store):
    run = make_run(store)
    result = find(run)

    requests = run.table("requests")
    post = requests[requests["endpoint"] == "POST /publications"]
    failed = post[~post["ok"]]
    rate = len(failed) / len(post)
    assert rate > 0.02  # the factory's 3 % failure rate, so critical at 2x the target

    (finding,) = result.of_kind("error_rate")
    assert finding.evidence["endpoint"] == "POST /publications"
    assert finding.evidence["failures"] == len(failed)
    assert finding.evidence["error_rate"] == pytest.approx(rate)
    assert finding.severity == "critical"
    assert finding.start == failed["ts"].min()
    assert finding.end == failed["ts"].max()


def test_error_kinds_counts_come_from_the_requests(store):
    run = make_run(store)
    (finding,) = find(run).of_kind("error_kinds")

    requests = run.table("requests")
    expected = requests.loc[~requests["ok"], "error"].value_counts().to_dict()
    assert finding.evidence["kinds"] == expected
    assert finding.evidence["failures"] == sum(expected.values())
    overall_rate = sum(expected.values()) / len(requests)
    assert finding.evidence["overall_error_rate"] == pytest.approx(overall_rate)
    assert finding.severity == ("warning" if overall_rate > 0.01 else "info")


def test_saturated_load_generator_makes_results_suspect(store):
    run = make_run(store, loadgen_cpu_percent=97.0)
    (finding,) = find(run).of_kind("load_generator_cpu")

    resources = run.table("resources")
    cpu = resources[
        (resources["source"] == "load_generator")
        & (resources["metric"] == "cpu_percent")
    ]
    hot = cpu[cpu["value"] >= 90.0]
    assert finding.evidence["peak_percent"] == cpu["value"].max()
    assert finding.evidence["samples_at_or_above_limit"] == len(hot)
    assert finding.start == hot["ts"].min() and finding.end == hot["ts"].max()
    assert finding.severity == "critical"  # hot for most of the run
    assert "--processes" in finding.recommendation
    assert "FastHttpUser" in finding.recommendation


def test_resource_peaks_report_the_maximum_and_its_time(store):
    run = make_run(store, target_cpu_percent=96.0)
    peaks = {f.evidence["metric"]: f for f in find(run).of_kind("resource_peak")}
    assert set(peaks) == {"cpu_percent", "rss_mb"}

    resources = run.table("resources")
    for metric, finding in peaks.items():
        series = resources[
            (resources["source"] == "target") & (resources["metric"] == metric)
        ]
        top = series.loc[series["value"].idxmax()]
        assert finding.evidence["peak"] == top["value"]
        assert finding.start == top["ts"]
    assert peaks["cpu_percent"].severity == "warning"
    assert peaks["rss_mb"].severity == "info"


def test_healthy_run_has_no_problem(store):
    result = find(make_healthy_run(store))

    assert [f for f in result if f.severity != "info"] == []
    assert result.of_kind("error_rate") == []
    assert result.of_kind("error_kinds") == []
    assert result.of_kind("load_generator_cpu") == []
    assert result.not_evaluated == []


def test_absent_tables_are_not_evaluated(store):
    result = find(make_run(store, tables=()))

    assert result.findings == []
    assert len(result.not_evaluated) == 3
    assert all("not evaluated because" in note for note in result.not_evaluated)


def test_requests_alone_are_enough_for_latency_and_errors(store):
    result = find(make_run(store, tables=("requests",)))

    assert result.of_kind("slow_endpoint") and result.of_kind("error_kinds")
    assert result.not_evaluated == [
        "Load generator CPU and resource peaks were not evaluated because no "
        "resources were measured during the run."
    ]


def test_findings_are_ordered_by_severity(store):
    severities = [f.severity for f in find(make_run(store, loadgen_cpu_percent=97.0))]
    order = {"critical": 0, "warning": 1, "info": 2}
    assert severities == sorted(severities, key=order.__getitem__)


def test_finding_rejects_an_unknown_severity():
    with pytest.raises(ValueError, match="severity"):
        Finding("x", "fatal", "t", {}, "s", pd.Timestamp("2026-01-01", tz="UTC"))


def _add_series(run, source, metric, values):
    resources = run.table("resources")
    ts = resources["ts"].drop_duplicates().sort_values().iloc[: len(values)]
    extra = pd.DataFrame(
        {"ts": ts.to_numpy(), "source": source, "metric": metric, "value": values}
    )
    run.write_table("resources", pd.concat([resources, extra]), "exact")


def test_busiest_locust_process_decides_load_generator_saturation(store):
    # two Locust processes: their sum passes 100 % while neither is saturated
    run = make_run(store, loadgen_cpu_percent=150.0)
    _add_series(run, "load_generator", "cpu_percent_busiest", [75.0] * 20)
    assert find(run).of_kind("load_generator_cpu") == []

    _add_series(run, "load_generator", "cpu_percent_busiest", [95.0] * 3)
    (finding,) = find(run).of_kind("load_generator_cpu")
    assert finding.evidence["metric"] == "cpu_percent_busiest"
    assert finding.evidence["samples_at_or_above_limit"] == 3


def test_redis_memory_near_its_limit_is_a_warning(store):
    run = make_run(store)
    _add_series(run, "redis", "memory_used_percent", [50.0, 85.0, 60.0])
    (finding,) = [
        f for f in find(run).of_kind("resource_peak") if f.evidence["source"] == "redis"
    ]
    assert finding.severity == "warning"
    assert finding.evidence["peak"] == 85.0
    assert "adjust TTLs" in finding.recommendation

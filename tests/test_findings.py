"""Findings: each check fires on crafted data, stays quiet on healthy data, and says
when it could not be made. Expected numbers are recomputed here from the requests."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from runfactory import (
    START,
    add_resources,
    make_healthy_run,
    make_run,
    make_staged_run,
)

from perflab import statistics
from perflab.findings import Finding, find, fit_knee, user_levels
from perflab.windows import run_window


def _nearest_rank(values: np.ndarray, percentile: float) -> float:
    """Textbook nearest rank: the sample at 1-based rank ceil(q * n)."""
    ordered = np.sort(values)
    rank = int(np.ceil(percentile / 100 * ordered.size))
    return float(ordered[max(rank, 1) - 1])


@pytest.mark.parametrize("whole", [False, True])
def test_slow_endpoint_fires_with_its_numbers(store, whole):
    run = make_run(store)
    result = find(run, whole=whole)

    slow = result.of_kind("slow_endpoint")
    assert [f.evidence["endpoint"] for f in slow] == ["GET /analytics/engagement"]
    finding = slow[0]
    assert finding.severity == "warning"
    requests = run.table("requests")
    if not whole:
        # the steady state: ramp-up and ramp-down left out, as in the report
        requests = _in_window(run)
        assert len(requests) < len(run.table("requests"))
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


def _in_window(run):
    requests = run.table("requests")
    window = run_window(run, requests=requests)
    return requests[(requests["ts"] >= window.start) & (requests["ts"] < window.end)]


def test_error_rate_above_target_fires_per_endpoint(store):
    run = make_run(store)
    result = find(run)

    requests = _in_window(run)
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

    requests = _in_window(run)
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
    # a synthetic run probes no Redis and holds a single user count after its ramp
    assert [
        note.split(" was")[0].split(" were")[0] for note in result.not_evaluated
    ] == [
        "Cache memory",
        "Worker queues",
        "Saturation",
    ]


def test_absent_tables_are_not_evaluated(store):
    result = find(make_run(store, tables=()))

    assert result.findings == []
    assert len(result.not_evaluated) == 7  # one note per group of checks
    assert all("not evaluated because" in note for note in result.not_evaluated)


def test_requests_alone_are_enough_for_latency_and_errors(store):
    result = find(make_run(store, tables=("requests",)))

    assert result.of_kind("slow_endpoint") and result.of_kind("error_kinds")
    assert result.not_evaluated == [
        "Load generator CPU and resource peaks were not evaluated because no "
        "resources were measured during the run.",
        "Cache memory and worker queues were not evaluated because no resources "
        "were measured during the run.",
        "Saturation and error bursts were not evaluated because the run has no "
        "intervals table.",
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


# --- the plan's bottlenecks, on synthetic tables ----------------------------------


def test_pool_waiting_and_a_full_pool_are_pool_exhaustion(store):
    waiting = [0.0] * 5 + [3.0, 6.0, 9.0, 7.0] + [0.0] * 11
    in_use = [2.0] * 5 + [4.0] * 4 + [2.0] * 11
    run = add_resources(
        make_healthy_run(store),
        {
            ("prometheus", "perflab_db_pool_waiting"): waiting,
            ("prometheus", "perflab_db_pool_in_use"): in_use,
            ("prometheus", "perflab_db_pool_size"): [4.0] * 20,
        },
    )
    (finding,) = find(run).of_kind("pool_exhausted")

    assert finding.evidence["samples_waiting"] == 4
    assert finding.evidence["peak_waiting"] == 9.0
    assert finding.evidence["samples_pool_full"] == 4
    assert finding.evidence["pool_size"] == 4.0
    assert finding.evidence["refused_503"] == 0
    assert finding.start == START + pd.Timedelta(seconds=5)
    assert finding.end == START + pd.Timedelta(seconds=8)
    assert finding.severity == "warning"  # 4 of 20 samples, no request refused
    assert "increase the pool size" in finding.recommendation
    assert list(finding.data["waiting"].fillna(0)) == waiting


def test_503_responses_alone_are_pool_exhaustion_with_a_caveat(store):
    run = make_healthy_run(store)
    requests = run.table("requests")
    refused = requests.index[::50]
    requests.loc[refused, ["status", "ok", "error"]] = [503, False, "HTTP 503"]
    run.write_table("requests", requests, "exact")

    (finding,) = find(run).of_kind("pool_exhausted")
    assert finding.evidence["refused_503"] == len(refused)
    assert finding.severity == "critical"
    assert "not measured" in finding.summary
    assert finding.start == requests.loc[refused, "ts"].min()


def test_an_idle_pool_is_not_exhausted(store):
    run = add_resources(
        make_healthy_run(store),
        {
            ("prometheus", "perflab_db_pool_waiting"): [0.0] * 19 + [1.0],
            ("prometheus", "perflab_db_pool_in_use"): [1.0] * 20,
            ("prometheus", "perflab_db_pool_size"): [4.0] * 20,
        },
    )
    assert find(run).of_kind("pool_exhausted") == []  # one sample is not a queue


def test_redis_evictions_with_low_hit_ratio_are_cache_memory_full(store):
    run = add_resources(
        make_healthy_run(store),
        {
            ("redis", "evictions_per_s"): [0.0] * 10 + [120.0] * 10,
            ("redis", "memory_used_percent"): [50.0] * 10 + [99.0] * 10,
            ("redis", "hits_per_s"): [30.0] * 20,
            ("redis", "misses_per_s"): [70.0] * 20,
        },
    )
    (finding,) = find(run).of_kind("cache_memory_full")

    assert finding.evidence["samples_evicting"] == 10
    assert finding.evidence["evicted_keys_estimate"] == pytest.approx(1200.0)
    assert finding.evidence["hit_ratio_percent"] == pytest.approx(30.0)
    assert finding.evidence["peak_memory_used_percent"] == 99.0
    assert finding.severity == "critical"  # the hit ratio is below the 80 % target
    assert finding.start == START + pd.Timedelta(seconds=10)
    assert "adjust TTLs" in finding.recommendation


def test_redis_with_room_and_no_evictions_is_not_full(store):
    run = add_resources(
        make_healthy_run(store),
        {
            ("redis", "evictions_per_s"): [0.0] * 20,
            ("redis", "memory_used_percent"): [40.0] * 20,
        },
    )
    result = find(run)
    assert result.of_kind("cache_memory_full") == []
    assert not any(n.startswith("Cache memory") for n in result.not_evaluated)


def test_a_growing_queue_is_backed_up_with_its_slope(store):
    rng = np.random.default_rng(1)
    length = np.maximum(0, 5.0 * np.arange(20) + rng.normal(0, 3, 20)).round()
    run = add_resources(
        make_healthy_run(store), {("redis", "list_length:celery"): length}
    )
    (finding,) = find(run).of_kind("queue_backed_up")

    from scipy import stats

    expected = stats.linregress(np.arange(20.0), length)
    assert finding.evidence["queue"] == "celery"
    assert finding.evidence["slope_jobs_per_s"] == pytest.approx(expected.slope)
    assert finding.evidence["p_value"] < 0.01
    assert finding.evidence["last_length"] == length[-1]
    assert "scale workers" in finding.recommendation


def test_a_queue_that_is_drained_is_not_backed_up(store):
    rng = np.random.default_rng(2)
    length = rng.integers(0, 4, 20).astype(float)
    run = add_resources(
        make_healthy_run(store), {("redis", "list_length:celery"): length}
    )
    assert find(run).of_kind("queue_backed_up") == []


def test_429_responses_are_rate_limiting_with_when_and_where(store):
    run = make_healthy_run(store)
    requests = run.table("requests")
    late = requests["ts"] >= START + pd.Timedelta(seconds=12)
    limited = late & (requests["endpoint"] == "POST /publications")
    requests.loc[limited, ["status", "ok", "error"]] = [429, False, "HTTP 429"]
    run.write_table("requests", requests, "exact")

    (finding,) = find(run).of_kind("rate_limited")
    assert finding.evidence["refused_429"] == int(limited.sum())
    assert finding.evidence["share"] == pytest.approx(limited.sum() / len(requests))
    assert finding.evidence["by_endpoint"] == {"POST /publications": int(limited.sum())}
    assert finding.start == requests.loc[limited, "ts"].min()
    assert "backoff" in finding.recommendation


def test_a_run_without_429_is_not_rate_limited(store):
    assert find(make_run(store)).of_kind("rate_limited") == []


# --- saturation --------------------------------------------------------------------


def test_knee_of_a_capped_service_is_its_capacity(store):
    # Known answer: make_staged_run caps throughput at 40 requests/s, reached at 4
    # users of 10 requests/s each.
    run = make_staged_run(store, capacity_rps=40.0)
    (finding,) = find(run).of_kind("saturation")

    assert finding.evidence["knee_users"] == 4.0
    assert finding.evidence["knee_throughput_rps"] == pytest.approx(40.0, rel=0.1)
    assert finding.evidence["slope_before_rps_per_user"] == pytest.approx(10, rel=0.15)
    assert finding.evidence["slope_after_rps_per_user"] < 2.5
    assert finding.evidence["p95_at_peak_ms"] > 2 * finding.evidence["p95_at_knee_ms"]
    assert list(finding.data.columns[:5]) == [
        "users",
        "intervals",
        "seconds",
        "requests",
        "throughput",
    ]
    assert "fitted_throughput" in finding.data


def test_a_service_that_keeps_up_is_not_saturated(store):
    result = find(make_staged_run(store, capacity_rps=None))
    assert result.of_kind("saturation") == []
    assert not any(n.startswith("Saturation") for n in result.not_evaluated)


def test_user_levels_skip_the_intervals_around_a_change(store):
    run = make_staged_run(store, capacity_rps=None)
    levels = user_levels(run.table("intervals"), run.table("requests"))
    # 5 intervals per level: the first and last of each are next to a change, and
    # the run's first and last intervals are dropped as partial
    assert list(levels["users"]) == [1, 2, 4, 6, 8, 12]
    assert list(levels["intervals"]) == [2, 3, 3, 3, 3, 2]


def test_fit_knee_recovers_a_hinge():
    levels = pd.DataFrame(
        {
            "users": [1, 2, 3, 4, 6, 8, 10],
            "throughput": [10, 20, 30, 40, 41, 42, 43],
            "seconds": [3.0] * 7,
        }
    )
    fit = fit_knee(levels)
    assert fit["knee_users"] == 4
    assert fit["knee_throughput"] == pytest.approx(40.0)
    assert fit["slope_before"] == pytest.approx(10.0)
    assert fit["slope_after"] == pytest.approx(0.5)


# --- error bursts, outliers, Little's law, coordinated omission ----------------------


def test_an_error_burst_is_found_with_its_time_range(store):
    run = make_healthy_run(store)
    requests = run.table("requests")
    second = (requests["ts"] - START).dt.total_seconds() // 1
    burst = second.between(10, 12) & (requests.index % 2 == 0)
    requests.loc[burst, ["status", "ok", "error"]] = [500, False, "HTTP 500"]
    run.write_table("requests", requests, "exact")
    run.write_table(
        "intervals",
        statistics.interval_table(
            requests, 1.0, users=run.table("intervals").query("endpoint == 'Overall'")
        ),
        "exact",
    )

    (finding,) = find(run).of_kind("error_burst")
    assert finding.start == START + pd.Timedelta(seconds=10)
    assert finding.end == START + pd.Timedelta(seconds=13)
    assert finding.evidence["failures"] == int(burst.sum())
    assert finding.evidence["baseline_error_rate"] == 0.0
    assert finding.data["burst"].sum() == 3


def test_errors_spread_evenly_are_not_a_burst(store):
    # the default run fails 3 % of POST requests all along
    assert find(make_run(store)).of_kind("error_burst") == []


def test_an_endpoint_far_slower_than_the_others_is_an_outlier(store):
    medians = {
        "GET /publications": 10.0,
        "POST /publications": 12.0,
        "GET /analytics/engagement": 200.0,
    }
    run = make_run(store, medians_ms=medians, failure_rates={})
    (finding,) = find(run).of_kind("endpoint_outlier")
    assert finding.evidence["endpoint"] == "GET /analytics/engagement"
    assert finding.evidence["ratio"] > 3


def test_similar_endpoints_have_no_outlier(store):
    assert find(make_run(store)).of_kind("endpoint_outlier") == []


def test_littles_law_holds_on_a_consistent_run(store):
    result = find(make_run(store))
    assert result.of_kind("littles_law") == []


@pytest.mark.parametrize(
    ("wait_s", "words"), [((2.0, 3.0), "more than"), ((0.0, 0.0), "only")]
)
def test_littles_law_says_which_way_it_disagrees(store, wait_s, words):
    run = make_run(store, wait_s=wait_s)
    (finding,) = find(run).of_kind("littles_law")
    ev = finding.evidence
    assert ev["predicted_users"] == pytest.approx(
        ev["throughput_rps"] * (ev["mean_latency_s"] + ev["think_time_s"])
    )
    assert ev["think_time_s"] == sum(wait_s) / 2
    assert words in finding.summary


def test_users_stalled_together_are_coordinated_omission(store):
    # 8 users sending every 100 ms for 20 s; at 10 s every user waits 3 s on one
    # response, and sends nothing meanwhile
    rows = []
    for user in range(8):
        t = 0.0
        while t < 20.0:
            latency = 3000.0 if 10.0 <= t < 10.1 else 20.0
            rows.append((t, user, latency))
            t += max(0.1, latency / 1000)
    frame = pd.DataFrame(rows, columns=["offset_s", "user", "latency_ms"])
    requests = frame.assign(
        ts=START + pd.to_timedelta(np.floor(frame["offset_s"] * 1e6), "us"),
        endpoint="GET /publications",
        method="GET",
        name="/publications",
        status=200,
        ok=True,
        worker="w",
    ).drop(columns="offset_s")
    from perflab.store import create_run

    run = create_run(store, run_id="omission", status="completed", wait_s=[0.08, 0.08])
    run.write_table("requests", requests, "exact")

    (finding,) = find(run).of_kind("coordinated_omission")
    assert finding.evidence["users_affected"] == 8
    assert finding.evidence["corrected_p99_ms"] > finding.evidence["raw_p99_ms"]
    assert finding.start >= START + pd.Timedelta(seconds=10)


def test_findings_carry_figure_data_where_they_have_a_series(store):
    run = make_staged_run(store, capacity_rps=40.0)
    for finding in find(run).of_kind("saturation"):
        assert isinstance(finding.data, pd.DataFrame) and not finding.data.empty

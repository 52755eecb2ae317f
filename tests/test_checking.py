"""check_run: verdicts against targets, with the numbers recomputed here, and the
JUnit XML a CI reads."""

from __future__ import annotations

import math
import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from runfactory import add_resources, make_aggregate_run, make_healthy_run, make_run

from perflab.checking import check_run
from perflab.targets import Targets, load_targets, parse_targets
from perflab.windows import run_window, window_requests

TARGETS = """
endpoints:
  - endpoint: GET /publications
    p95_ms: 100
    p99_ms: 200
    max_error_rate_percent: 1
  - endpoint: POST /publications
    p95_ms: 150
  - endpoint: GET /analytics/engagement
    p95_ms: 500
  - endpoint: POST /alerts
    p95_ms: 150
system:
  max_error_rate_percent: 1
  max_db_connections: 200
  max_p95_ms: 150
"""


def targets(text: str = TARGETS) -> Targets:
    return Targets(parse_targets(text, "t.yaml")[0], ["t.yaml"])


def _nearest_rank(values, percentile):
    ordered = np.sort(np.asarray(values, dtype=float))
    return float(ordered[max(math.ceil(percentile / 100 * ordered.size), 1) - 1])


def test_passing_targets_with_their_numbers(store):
    run = make_healthy_run(store)
    result = check_run(run, targets())
    rows = result.to_frame().set_index("target")

    window = run_window(run)
    requests = window_requests(run.table("requests"), window)
    get = requests[requests["endpoint"] == "GET /publications"]["latency_ms"]
    row = rows.loc["GET /publications p95"]
    assert row["verdict"] == "pass"
    assert row["value"] == _nearest_rank(get, 95)
    assert row["low"] <= row["value"] <= row["high"]
    assert row["samples"] == len(get)
    assert row["margin"] == pytest.approx(100 - row["value"])
    assert row["margin_percent"] == pytest.approx(100 - row["value"])  # of 100 ms
    assert rows.loc["system p95_ms", "value"] == _nearest_rank(
        requests["latency_ms"], 95
    )
    assert rows.loc["GET /publications error_rate", "value"] == 0.0
    assert "steady state" in result.window_how
    assert result.window.start > pd.Timestamp(run.meta["start"])  # ramp left out


def test_not_evaluable_targets_say_why_and_never_pass(store):
    result = check_run(make_healthy_run(store), targets())
    rows = result.to_frame().set_index("target")

    alerts = rows.loc["POST /alerts p95"]
    assert alerts["verdict"] == "not evaluable"
    assert alerts["reason"].startswith("Endpoint absent: no endpoint of the run")
    connections = rows.loc["system db_connections"]
    assert connections["verdict"] == "not evaluable"
    assert connections["reason"].startswith("Metric absent")
    assert math.isnan(connections["value"]) and math.isnan(connections["margin"])
    assert not result.failed
    assert result.counts() == {"pass": 7, "fail": 0, "not evaluable": 2}


def test_failing_targets_fail_the_check(store):
    run = make_run(store)  # analytics p95 above 150 ms, POST fails 3 %
    text = TARGETS.replace("p95_ms: 500", "p95_ms: 150")
    result = check_run(run, targets(text))
    rows = result.to_frame().set_index("target")

    assert result.failed
    assert {"GET /analytics/engagement p95", "system error_rate_percent"} <= set(
        result.failures["target"]
    )
    for row in result.failures.itertuples():
        assert row.margin < 0 and not row.value < row.threshold
    failed = rows.loc["GET /analytics/engagement p95"]
    assert (
        failed["margin"] == pytest.approx(150 - failed["value"])
        and failed["margin"] < 0
    )
    assert "is " in failed["reason"] and "not < 150" in failed["reason"]
    requests = window_requests(run.table("requests"), run_window(run))
    rate = 100 * (~requests["ok"]).sum() / len(requests)
    assert rows.loc["system error_rate_percent", "value"] == pytest.approx(rate)


def test_junit_xml_has_one_testcase_per_target(store, tmp_path):
    run = make_run(store)
    result = check_run(run, targets(TARGETS.replace("p95_ms: 500", "p95_ms: 150")))
    path = tmp_path / "check.xml"
    path.write_text(result.to_junit_xml())

    root = ET.parse(path).getroot()
    assert root.tag == "testsuites"
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    counts = result.counts()
    assert len(cases) == len(result.rows) == int(suite.get("tests"))
    assert int(suite.get("failures")) == counts["fail"] > 0
    assert int(suite.get("skipped")) == counts["not evaluable"] > 0
    assert int(suite.get("errors")) == 0
    assert root.get("tests") == suite.get("tests")
    failures = [c for c in cases if c.find("failure") is not None]
    skipped = [c for c in cases if c.find("skipped") is not None]
    assert len(failures) == counts["fail"] and len(skipped) == counts["not evaluable"]
    assert {c.get("name") for c in failures} == set(result.failures["target"])
    assert all(c.find("failure").get("message") for c in failures)
    assert all(c.find("skipped").get("message") for c in skipped)
    props = {p.get("name"): p.get("value") for p in suite.iter("property")}
    assert props["run"] == run.id and "steady state" in props["window"]


def test_a_passing_run_writes_junit_without_failures(store):
    result = check_run(make_healthy_run(store), targets())
    root = ET.fromstring(result.to_junit_xml())
    assert root.find("testsuite").get("failures") == "0"
    assert [e for e in root.iter("failure")] == []


def test_text_and_markdown_tables_show_every_target(store):
    result = check_run(make_run(store), targets())
    text, markdown = result.to_text(), result.to_markdown()
    for name in result.rows["target"]:
        assert name in markdown
        assert name[:40] in text
    assert markdown.count("\n| ") == len(result.rows) + 2  # header, rule, rows
    assert "not evaluable" in text.lower() and result.summary() in markdown
    assert "[" in markdown  # confidence intervals are shown


THROUGHPUT_TARGETS = (
    "endpoints:\n  - endpoint: GET /publications\n    min_throughput_rps: 1000\n"
    "  - endpoint: POST /publications\n    max_rps: 1\n"
)


def _busy_share(run) -> float:
    """Mean requests in flight per user over the steady window (Little's law)."""
    window = run_window(run)
    requests = window_requests(run.table("requests"), window)
    in_flight = requests["latency_ms"].sum() / 1000 / window.seconds
    return in_flight / window.peak_users


def test_throughput_must_reach_the_rate_the_plan_asks(store):
    # users waiting on slow responses most of the time: the service set the rate
    run = make_run(store, medians_ms={"GET /publications": 3000.0})
    assert _busy_share(run) >= 0.5
    rows = check_run(run, targets(THROUGHPUT_TARGETS)).to_frame().set_index("target")
    window = run_window(run)
    requests = window_requests(run.table("requests"), window)
    ok = requests[(requests["endpoint"] == "GET /publications") & requests["ok"]]
    low = rows.loc["GET /publications throughput"]
    assert low["value"] == pytest.approx(len(ok) / window.seconds)
    assert low["verdict"] == "fail" and "must sustain" in low["reason"]
    assert "the service, not the load, set this rate" in low["note"]
    assert rows.loc["POST /publications throughput", "verdict"] == "pass"


def test_a_rate_the_run_never_offered_is_not_evaluable(store):
    # users mostly thinking: their think time set the rate, not the service
    run = make_healthy_run(store)
    assert _busy_share(run) < 0.5
    result = check_run(run, targets(THROUGHPUT_TARGETS))
    rows = result.to_frame().set_index("target")
    low = rows.loc["GET /publications throughput"]
    assert low["verdict"] == "not evaluable"
    assert "offered too little load" in low["reason"]
    assert low["value"] > 0  # the rate reached is still shown
    assert rows.loc["POST /publications throughput", "verdict"] == "pass"
    assert not result.failed


def test_whole_run_window_on_request(store):
    run = make_healthy_run(store)
    steady = check_run(run, targets())
    whole = check_run(run, targets(), whole=True)
    assert "whole run" in whole.window_how
    assert whole.rows["samples"].iloc[0] > steady.rows["samples"].iloc[0]


def test_aggregate_runs_use_the_tools_numbers_without_interval(store):
    run = make_aggregate_run(store)
    rows = check_run(run, targets()).to_frame().set_index("target")
    endpoints = run.table("endpoints").set_index("endpoint")
    row = rows.loc["GET /analytics/engagement p95"]
    assert row["value"] == endpoints.loc["GET /analytics/engagement", "p95"]
    assert row["interval"] == "no interval: aggregate"
    assert math.isnan(row["low"])
    assert row["verdict"] == "pass"


def test_aggregate_runs_without_failure_counts_leave_rates_not_evaluable(store):
    run = make_aggregate_run(store)
    endpoints = run.table("endpoints")
    endpoints["failures"] = pd.array([pd.NA] * len(endpoints), dtype="Int64")
    run.write_table("endpoints", endpoints, "aggregate", "no failure counts")
    rows = check_run(run, targets()).to_frame().set_index("target")
    rates = rows[rows.index.str.contains("throughput|error_rate")]
    assert not rates.empty
    assert (rates["verdict"] == "not evaluable").all()
    assert rates["reason"].str.contains("no failure count").all()
    assert rows.loc["GET /analytics/engagement p95", "verdict"] == "pass"


def test_resource_targets_use_the_peak_inside_the_window(store):
    run = add_resources(
        make_healthy_run(store),
        {
            ("postgres", "connections"): [10.0] * 8 + [250.0] + [20.0] * 11,
            ("redis", "hits_per_s"): [90.0] * 20,
            ("redis", "misses_per_s"): [10.0] * 20,
            ("redis", "memory_used_percent"): [50.0] * 20,
            ("prometheus", "perflab_db_pool_in_use"): [3.0] * 19 + [4.0],
            ("prometheus", "perflab_db_pool_size"): [4.0] * 20,
        },
    )
    result = check_run(run, load_targets())
    rows = result.to_frame().set_index("target")
    assert rows.loc["system db_connections", "value"] == 250.0
    assert rows.loc["system db_connections", "verdict"] == "fail"
    assert rows.loc["system cache_hit_ratio_percent", "value"] == pytest.approx(90.0)
    assert rows.loc["system cache_hit_ratio_percent", "verdict"] == "pass"
    assert rows.loc["system redis_memory_percent", "verdict"] == "pass"
    # the 100 % sample is the last second, after the steady window ends
    window_end = (result.window.end - pd.Timestamp(run.meta["start"])).total_seconds()
    expected = 100.0 if window_end > 19 else 75.0
    assert rows.loc["system db_pool_usage_percent", "value"] == expected


@pytest.mark.parametrize(
    ("high_water", "expected"),
    [
        # rose from 2 to 3 inside the steady window: 3 of 8 were lent at once there
        ([2.0] * 10 + [3.0] * 10, 37.5),
        # unchanged inside the window: it may date from before, so the samples rule
        ([6.0] * 20, 12.5),
    ],
)
def test_pool_usage_counts_bursts_the_samples_miss(store, high_water, expected):
    run = add_resources(
        make_healthy_run(store),
        {
            ("prometheus", "perflab_db_pool_in_use"): [1.0] * 20,
            ("prometheus", "perflab_db_pool_size"): [8.0] * 20,
            ("prometheus", "perflab_db_pool_in_use_max"): high_water,
        },
    )
    rows = check_run(run, load_targets()).to_frame().set_index("target")
    row = rows.loc["system db_pool_usage_percent"]
    assert row["value"] == pytest.approx(expected)
    assert ("rose inside the window" in row["interval"]) == (expected > 12.5)


def test_default_targets_map_the_plans_endpoints(store):
    rows = check_run(make_run(store)).to_frame().set_index("target")
    assert rows.loc["GET /publications p95", "endpoints"] == "GET /publications"
    assert rows.loc["POST /alerts p95", "verdict"] == "not evaluable"
    assert (rows["verdict"] != "pass").any()

"""perflab run: a real, short, staged Locust run against the sample service.

The load goes to 127.0.0.1 only and is bounded by its stages (about 13 s).
"""

from __future__ import annotations

import csv
import json

import pandas as pd
import pytest

from perflab.errors import LaunchError
from perflab.ingest import ingest
from perflab.launching import LocustOptions, check_host, run_locust
from perflab.shapes import parse_stages, total_duration
from perflab.store import OVERALL, open_run

PLAN_ENDPOINTS = {
    "POST /auth/login",
    "POST /api/v1/publications/newsletter/schedule",
    "POST /api/v1/alerts",
    "POST /api/v1/publications",
    "GET /api/v1/publications?limit=20",
    "GET /api/v1/publications/{id}",
    "GET /api/v1/analytics/engagement",
    "GET /api/v1/analytics/performance",
}


def test_loopback_hosts_are_allowed():
    check_host("http://127.0.0.1:8080")
    check_host("http://localhost:1")
    check_host("http://[::1]:80")


def test_other_hosts_are_refused_before_any_request():
    # 192.0.2.0/24 is reserved for documentation: nothing is sent, the check refuses.
    with pytest.raises(LaunchError, match="not this machine"):
        check_host("http://192.0.2.10:8080")
    with pytest.raises(LaunchError, match="not a URL"):
        check_host("127.0.0.1:8080")


@pytest.fixture(scope="module")
def plan_run(tmp_path_factory):
    from perflab.service import ServiceSettings, seed_subscribers, start_service

    tmp = tmp_path_factory.mktemp("launch")
    settings = ServiceSettings(db_path=tmp / "service.sqlite3")
    seed_subscribers(settings.db_path, 500)
    stages = parse_stages("3s:12,8s:12,2s:0")
    assert total_duration(stages) <= 20
    with start_service(settings) as service:
        options = LocustOptions(
            scenario="plan",
            host=service.url,
            stages=stages,
            wait_s=(0.1, 0.3),
            target_pid=service.pid,
        )
        run = run_locust(options, store=tmp / "runs")
    return run


@pytest.mark.slow
def test_run_records_every_request(plan_run):
    run = plan_run
    meta = json.loads((run.path / "run.json").read_text())
    assert meta["status"] == "completed"
    assert meta["tool"] == "locust" and meta["tool_version"]
    assert meta["stages"][0] == {"duration_s": 3.0, "users": 12}
    assert meta["start"] < meta["end"]

    requests = run.table("requests")
    # Locust's own count, read here straight from its CSV.
    with open(run.raw / "locust_stats.csv", newline="") as handle:
        aggregated = next(
            r for r in csv.DictReader(handle) if r["Name"] == "Aggregated"
        )
    locust_count = int(aggregated["Request Count"])
    assert abs(len(requests) - locust_count) <= 5
    assert meta["locust_aggregated_requests"] == locust_count
    explained = "They agree" if locust_count == len(requests) else "after that write"
    assert explained in meta["in_flight_at_stop"]
    assert meta["in_flight_requests"] == len(requests) - locust_count

    assert set(requests["endpoint"]) == PLAN_ENDPOINTS
    assert requests["latency_ms"].gt(0).all()
    assert requests["ok"].all(), requests[~requests["ok"]].head()
    assert requests["ts"].is_monotonic_increasing
    assert requests["user"].nunique() >= 10


@pytest.mark.slow
def test_run_has_users_resources_and_raw_exports(plan_run):
    run = plan_run
    intervals = run.table("intervals")
    overall = intervals[intervals["endpoint"] == OVERALL]
    assert overall["users"].max() == 12
    assert overall["requests"].sum() == run.meta["tables"]["requests"]["rows"]

    resources = run.table("resources")
    sources = set(zip(resources["source"], resources["metric"], strict=True))
    assert ("target", "cpu_percent") in sources
    assert ("target", "rss_mb") in sources
    assert ("load_generator", "cpu_percent") in sources
    assert resources.loc[resources["metric"] == "rss_mb", "value"].gt(10).all()

    names = {p.name for p in run.raw.iterdir()}
    assert {
        "locust_stats.csv",
        "locust_stats_history.csv",
        "locust_report.html",
    } <= names
    assert any(n.startswith("perflab_requests-") for n in names)


@pytest.mark.slow
def test_run_folder_can_be_ingested_again(plan_run, tmp_path):
    before = plan_run.table("endpoints")
    again = ingest([plan_run.path])
    assert again.path == plan_run.path
    pd.testing.assert_frame_equal(open_run(plan_run.path).table("endpoints"), before)


def test_bad_scenario_is_a_clear_error(tmp_path):
    options = LocustOptions(
        scenario="no-such-scenario",
        host="http://127.0.0.1:9",
        stages=parse_stages("1s:1"),
    )
    with pytest.raises(LaunchError, match="Unknown scenario"):
        run_locust(options, store=tmp_path)
    assert list(tmp_path.iterdir()) == []  # no half-made run folder is left behind


@pytest.mark.slow
def test_a_paced_run_sends_at_its_intended_interval(tmp_path):
    # Each alerts user posts one alert every 0.25 s (constant pacing), which the run
    # records as the intended interval for the coordinated-omission correction.
    from perflab.findings import find
    from perflab.reporting import render_markdown
    from perflab.service import ServiceSettings, start_service

    settings = ServiceSettings(db_path=tmp_path / "service.sqlite3")
    with start_service(settings) as service:
        options = LocustOptions(
            scenario="alerts",
            host=service.url,
            stages=parse_stages("1s:2,6s:2"),
            pace_s=0.25,
            target_pid=service.pid,
        )
        run = run_locust(options, store=tmp_path / "runs")

    assert run.meta["pace_s"] == 0.25 and run.meta["wait_s"] is None
    assert run.meta["expected_interval_ms"] == 250.0
    requests = run.table("requests")
    alerts = requests[requests["endpoint"] == "POST /api/v1/alerts"].sort_values("ts")
    gaps_ms = alerts.groupby("user")["ts"].diff().dt.total_seconds().dropna() * 1000
    assert len(gaps_ms) >= 30
    assert gaps_ms.median() == pytest.approx(250.0, rel=0.1)

    # the report corrects with the given interval, and says where it came from
    text = render_markdown(run, find(run))
    assert "250 ms" in text and "given" in text

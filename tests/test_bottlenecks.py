"""The plan's bottlenecks, produced for real against the sample service.

Each test starts the sample service on 127.0.0.1 with a known defect, sends a short
Locust load through :func:`perflab.launching.run_locust`, probes the service's
``/metrics`` page (and PostgreSQL and Redis where they take part) with a
:class:`~perflab.monitoring.ResourceMonitor` running beside it, adds those samples to
the run's resources table, and checks that :func:`perflab.findings.find` names the
bottleneck; a healthy run raises none of them.

Ground truth for saturation: with a pool of N connections each held S seconds per
request, the service completes at most N / S requests per second, whatever the load
(here N = 4, S = 100 ms: 40 requests/s, far below what this machine can push).

PostgreSQL and Redis are named by ``PERFLAB_TEST_POSTGRES_DSN`` and
``PERFLAB_TEST_REDIS_URL`` (``eval "$(bash .ci/services.sh)"``); tests that need them
are skipped without them. The eviction test runs its own ``redis-server`` with a tiny
``maxmemory`` rather than lowering the shared server's limit, which would evict other
tests' keys.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
import uuid
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import urlsplit

import pandas as pd
import pytest

from perflab.checking import check_run
from perflab.findings import find
from perflab.launching import LocustOptions, run_locust
from perflab.monitoring import COLUMNS, ResourceMonitor
from perflab.probes import PostgresProbe, PrometheusProbe, RedisProbe
from perflab.service import ServiceSettings, free_port, seed_subscribers, start_service
from perflab.shapes import parse_stages
from perflab.targets import Targets, parse_targets

pytestmark = pytest.mark.slow

POSTGRES_ENV = "PERFLAB_TEST_POSTGRES_DSN"
REDIS_ENV = "PERFLAB_TEST_REDIS_URL"
WHY = 'is not set; run eval "$(bash .ci/services.sh)" to start the test servers'

BOTTLENECKS = ("pool_exhausted", "cache_memory_full", "queue_backed_up", "rate_limited")

#: The service's gauges and counters the findings read.
SERVICE_METRICS = [
    "perflab_db_pool_size",
    "perflab_db_pool_in_use",
    "perflab_db_pool_waiting",
    "perflab_db_pool_timeouts_total",
    "perflab_queue_length",
]

HEADER = """
import random

from locust import FastHttpUser, constant, task

from perflab.scenarios.common import StagesShape  # noqa: F401

AUTH = {"Authorization": "Bearer test-token"}
"""

#: One database query per request, as fast as the service answers.
LIST_USER = (
    HEADER
    + """
class ListUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def list_publications(self):
        self.client.get("/api/v1/publications?limit=20", headers=AUTH)
"""
)

#: Engagement over random windows: nearly every read misses the cache and adds a key.
ANALYTICS_USER = (
    HEADER
    + """
class AnalyticsUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def engagement(self):
        day = random.randrange(1, 28)
        month = random.randrange(1, 13)
        channel = random.choice(["email", "slack", "webhook", "sms"])
        self.client.get(
            f"/api/v1/analytics/engagement?start_date=2025-{month:02d}-{day:02d}"
            f"&end_date=2025-12-{random.randrange(1, 31):02d}&channel_type={channel}",
            headers=AUTH,
            name="/api/v1/analytics/engagement",
        )
"""
)

#: Newsletters scheduled steadily: one queue job each.
NEWSLETTER_USER = (
    HEADER
    + """
class NewsletterUser(FastHttpUser):
    wait_time = constant(0.05)

    @task
    def schedule(self):
        self.client.post(
            "/api/v1/publications/newsletter/schedule",
            json={
                "content_ids": ["uuid1"],
                "channels": ["channel-uuid"],
                "scheduled_time": "2025-10-29T09:00:00Z",
            },
            headers=AUTH,
        )
"""
)

#: A little of everything, with think time: what a healthy service handles.
MIXED_USER = (
    HEADER
    + """
class MixedUser(FastHttpUser):
    wait_time = constant(0.2)

    @task(3)
    def read(self):
        self.client.get(
            f"/api/v1/publications/{random.randrange(1, 6)}",
            headers=AUTH,
            name="/api/v1/publications/{id}",
        )

    @task(2)
    def engagement(self):
        self.client.get(
            "/api/v1/analytics/engagement?start_date=2025-10-01&end_date=2025-10-31",
            headers=AUTH,
            name="/api/v1/analytics/engagement",
        )

    @task(1)
    def schedule(self):
        self.client.post(
            "/api/v1/publications/newsletter/schedule",
            json={
                "content_ids": ["uuid1"],
                "channels": ["channel-uuid"],
                "scheduled_time": "2025-10-29T09:00:00Z",
            },
            headers=AUTH,
        )
"""
)


def server_or_skip(variable: str) -> str:
    """The server a variable names; skip without it, but fail in CI, which has it."""
    value = os.environ.get(variable)
    if not value:
        if os.environ.get("CI"):
            pytest.fail(f"{variable} {WHY}; CI must run these tests")
        pytest.skip(f"{variable} {WHY}")
    return value


def monitored_run(
    tmp: Path,
    settings: ServiceSettings,
    locustfile: str,
    stages: str,
    redis_url: str | None = None,
    redis_lists: tuple[str, ...] = (),
    postgres_dsn: str | None = None,
):
    """Run Locust against the service while probing it, and store the probes' rows.

    The probes' samples are added to the run's ``resources`` table, beside the
    load generator and target samples :func:`run_locust` records itself.
    """
    scenario = tmp / "locustfile.py"
    scenario.write_text(locustfile)
    samples = tmp / "probes.csv"
    with start_service(settings) as service:
        probes = [
            PrometheusProbe(f"{service.url}/metrics", names=SERVICE_METRICS),
        ]
        if redis_url:
            probes.append(RedisProbe(redis_url, lists=redis_lists))
        if postgres_dsn:
            probes.append(PostgresProbe(postgres_dsn))
        options = LocustOptions(
            scenario=str(scenario),
            host=service.url,
            stages=parse_stages(stages),
            wait_s=(0.0, 0.0),
            target_pid=service.pid,
        )
        with ResourceMonitor(samples, probes=probes, host=False):
            run = run_locust(options, store=tmp / "runs")
    assert run.meta["status"] == "completed", run.meta
    probed = pd.read_csv(samples)
    rows = pd.DataFrame(
        {
            "ts": pd.to_datetime(probed[COLUMNS[0]], unit="s", utc=True),
            "source": probed["source"],
            "metric": probed["metric"],
            "value": probed["value"].astype(float),
        }
    )
    resources = pd.concat([run.table("resources"), rows], ignore_index=True)
    run.write_table("resources", resources, "exact", "psutil and service probes")
    return run


def _kinds(result) -> set[str]:
    return {f.kind for f in result}


# --- saturation: ground truth N / S ---------------------------------------------------

POOL, SERVICE_TIME_MS = 4, 100.0
CAPACITY_RPS = POOL / (SERVICE_TIME_MS / 1000)  # 40 requests/s
#: Users step 1, 2, 4, 6, 9, 12: ramp over 1 s, hold 3.5 s (27 s in all).
STEPS = ",".join(f"1s:{u},3.5s:{u}" for u in (1, 2, 4, 6, 9, 12))


def test_saturation_knee_is_the_pools_capacity(tmp_path):
    settings = ServiceSettings(
        db_path=tmp_path / "service.sqlite3",
        pool_size=POOL,
        query_delay_ms=SERVICE_TIME_MS,
    )
    run = monitored_run(tmp_path, settings, LIST_USER, STEPS)
    result = find(run)

    (finding,) = result.of_kind("saturation")
    knee = finding.evidence["knee_throughput_rps"]
    print(
        f"knee at {finding.evidence['knee_users']:g} users, {knee:.1f} requests/s; "
        f"N/S = {CAPACITY_RPS:.1f}; plateau "
        f"{finding.evidence['plateau_throughput_rps']:.1f}"
    )
    assert knee == pytest.approx(CAPACITY_RPS, rel=0.15)
    # a user completes about 1 / S requests/s, so N users reach the capacity
    assert finding.evidence["knee_users"] in (POOL - 1, POOL, POOL + 2)
    assert finding.evidence["p95_at_peak_ms"] > finding.evidence["p95_at_knee_ms"]
    # the cause is named too: the pool had requests waiting
    assert "pool_exhausted" in _kinds(result)


def test_a_pool_large_enough_never_saturates(tmp_path):
    settings = ServiceSettings(
        db_path=tmp_path / "service.sqlite3",
        pool_size=64,
        query_delay_ms=SERVICE_TIME_MS,
    )
    run = monitored_run(tmp_path, settings, LIST_USER, STEPS)
    result = find(run)
    assert result.of_kind("saturation") == []
    assert not any(n.startswith("Saturation") for n in result.not_evaluated)
    assert result.of_kind("pool_exhausted") == []


# --- connection pool exhausted --------------------------------------------------------


def _pool_exhaustion_checks(run, backend: str) -> None:
    result = find(run)
    (finding,) = result.of_kind("pool_exhausted")
    requests = run.table("requests")
    refused = int((requests["status"] == 503).sum())
    assert refused > 0
    assert finding.evidence["refused_503"] == refused
    assert finding.evidence["samples_waiting"] >= 2
    assert finding.evidence["pool_size"] == 2
    assert finding.evidence["samples_pool_full"] >= 1
    assert finding.severity == "critical"
    assert "increase the pool size" in finding.recommendation
    assert {"waiting", "in_use", "size"} <= set(finding.data.columns)
    print(f"{backend}: {finding.summary}")


def test_a_small_sqlite_pool_is_exhausted(tmp_path):
    # Evidence from the service's /metrics (pool waiting, in use == size) and 503s.
    settings = ServiceSettings(
        db_path=tmp_path / "service.sqlite3",
        pool_size=2,
        query_delay_ms=50.0,
        pool_timeout_s=0.2,
    )
    run = monitored_run(tmp_path, settings, LIST_USER, "1s:12,9s:12")
    _pool_exhaustion_checks(run, "SQLite")


@pytest.fixture
def postgres_url():
    """A fresh, seeded PostgreSQL database on the test server, dropped afterwards."""
    dsn = server_or_skip(POSTGRES_ENV)
    import psycopg

    name = f"perflab_bottleneck_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = urlsplit(dsn)._replace(path=f"/{name}").geturl()
    seed_subscribers(url, count=200, publications=10, events_per_subscriber=1)
    yield url
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def test_a_small_postgres_pool_is_exhausted(tmp_path, postgres_url):
    settings = ServiceSettings(
        database_url=postgres_url,
        pool_size=2,
        query_delay_ms=50.0,
        pool_timeout_s=0.2,
    )
    run = monitored_run(
        tmp_path, settings, LIST_USER, "1s:12,9s:12", postgres_dsn=postgres_url
    )
    _pool_exhaustion_checks(run, "PostgreSQL")
    (finding,) = find(run).of_kind("pool_exhausted")
    # the server saw the pool's connections (and perhaps other tests' too)
    assert finding.evidence["postgres_peak_connections"] >= 2
    assert "postgres_connections" in finding.data


# --- Redis memory full ----------------------------------------------------------------


@pytest.fixture
def tiny_redis(tmp_path):
    """A private redis-server on 127.0.0.1 with a 2 MB maxmemory (LRU eviction)."""
    server_or_skip(REDIS_ENV)
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.skip("redis-server is not installed, so no private server can start")
    port = free_port()
    process = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
            "--maxmemory",
            "2mb",
            "--maxmemory-policy",
            "allkeys-lru",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "redis-server did not start"
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_redis_that_evicts_is_cache_memory_full(tmp_path, tiny_redis):
    db = tmp_path / "service.sqlite3"
    seed_subscribers(db, count=500, publications=20, events_per_subscriber=2)
    settings = ServiceSettings(db_path=db, cache_url=tiny_redis, cache_ttl_s=600)
    run = monitored_run(
        tmp_path, settings, ANALYTICS_USER, "1s:6,9s:6", redis_url=tiny_redis
    )
    (finding,) = find(run).of_kind("cache_memory_full")

    resources = run.table("resources")
    evictions = resources[
        (resources["source"] == "redis") & (resources["metric"] == "evictions_per_s")
    ]
    assert finding.evidence["samples_evicting"] == int((evictions["value"] > 0).sum())
    assert finding.evidence["samples_evicting"] > 0
    assert finding.evidence["hit_ratio_percent"] < 80  # random windows rarely hit
    assert finding.severity == "critical"
    assert "adjust TTLs" in finding.recommendation
    rows = check_run(run).to_frame().set_index("target")
    assert rows.loc["system cache_hit_ratio_percent", "verdict"] == "fail"


# --- worker queue backed up -----------------------------------------------------------


@pytest.fixture
def redis_db():
    """Database 13 of the shared test Redis server, emptied before and after."""
    url = server_or_skip(REDIS_ENV)
    import redis

    url = urlsplit(url)._replace(path="/13").geturl()
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


def test_an_undrained_queue_is_backed_up(tmp_path, redis_db):
    queue = f"newsletters-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "service.sqlite3"
    seed_subscribers(db, count=200, publications=5, events_per_subscriber=0)
    settings = ServiceSettings(
        db_path=db, cache_url=redis_db, queue_name=queue, queue_workers=0
    )
    run = monitored_run(
        tmp_path,
        settings,
        NEWSLETTER_USER,
        "1s:2,9s:2",
        redis_url=redis_db,
        redis_lists=(queue,),
    )
    (finding,) = find(run).of_kind("queue_backed_up")

    scheduled = run.table("requests")
    accepted = int((scheduled["status"] == 202).sum())
    assert finding.evidence["queue"] == queue
    assert finding.evidence["slope_jobs_per_s"] > 5
    assert finding.evidence["p_value"] < 0.01
    # no worker took a job: every accepted newsletter is still waiting (the last
    # sample may precede the last few)
    assert 0.8 * accepted <= finding.evidence["peak_length"] <= accepted
    assert "scale workers" in finding.recommendation


# --- external rate limit -----------------------------------------------------------


def test_a_rate_limited_service_is_found_and_fails_the_check(tmp_path):
    settings = ServiceSettings(db_path=tmp_path / "service.sqlite3", rate_limit_rps=20)
    run = monitored_run(tmp_path, settings, LIST_USER, "1s:4,7s:4")
    result = find(run)
    (finding,) = result.of_kind("rate_limited")

    requests = run.table("requests")
    limited = requests[requests["status"] == 429]
    assert finding.evidence["refused_429"] == len(limited) > 0
    assert finding.evidence["share"] == pytest.approx(len(limited) / len(requests))
    assert finding.start == limited["ts"].min()
    assert finding.evidence["by_endpoint"] == {
        "GET /api/v1/publications?limit=20": len(limited)
    }
    ok = requests[requests["ok"]]
    seconds = (ok["ts"].max() - ok["ts"].min()).total_seconds()
    assert len(ok) / seconds == pytest.approx(20, rel=0.25)  # the limit held

    # the CI gate: the error rate fails, JUnit XML says so
    targets = Targets(parse_targets("system:\n  max_error_rate_percent: 1\n")[0])
    check = check_run(run, targets)
    assert check.failed
    suite = ET.fromstring(check.to_junit_xml()).find("testsuite")
    assert (suite.get("tests"), suite.get("failures")) == ("1", "1")


# --- a healthy run -----------------------------------------------------------------


def test_a_healthy_run_has_none_of_the_bottlenecks(tmp_path, redis_db):
    postgres_dsn = os.environ.get(POSTGRES_ENV)
    queue = f"newsletters-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "service.sqlite3"
    seed_subscribers(db, count=200, publications=5, events_per_subscriber=2)
    settings = ServiceSettings(
        db_path=db,
        pool_size=16,
        cache_url=redis_db,
        queue_name=queue,
        queue_workers=4,
        queue_job_ms=1.0,
    )
    run = monitored_run(
        tmp_path,
        settings,
        MIXED_USER,
        "1s:4,9s:4",
        redis_url=redis_db,
        redis_lists=(queue,),
        postgres_dsn=postgres_dsn,
    )
    result = find(run)
    assert _kinds(result) & {*BOTTLENECKS, "saturation", "error_burst"} == set()
    # every one of them was evaluated (the queue and cache through Redis)
    assert not any(
        n.startswith(("Cache memory", "Worker queues", "Connection pool"))
        for n in result.not_evaluated
    )
    targets = Targets(
        parse_targets(
            "system:\n  max_error_rate_percent: 1\n  max_db_pool_usage_percent: 100\n"
            "  min_cache_hit_ratio_percent: 50\n"
        )[0]
    )
    check = check_run(run, targets)
    assert not check.failed, check.to_text()
    assert check.counts()["not evaluable"] == 0

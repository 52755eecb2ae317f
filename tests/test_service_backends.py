"""The sample service on PostgreSQL and Redis, against real servers.

The servers are named by ``PERFLAB_TEST_POSTGRES_DSN`` and ``PERFLAB_TEST_REDIS_URL``
(``eval "$(bash .ci/services.sh)"`` sets them); without them every test here is
skipped. Each module run gets a PostgreSQL database of its own, dropped afterwards,
and Redis database 14, emptied before and after.

Expected analytics come from the same seed written to a SQLite file and queried there:
both backends must give the same answers for the same data.
"""

from __future__ import annotations

import os
import time
import uuid
from contextlib import closing
from datetime import date
from urllib.parse import urlsplit

import pytest
from test_service import LOGIN, OCTOBER, call, concurrently, metric

from perflab.probes import RedisProbe
from perflab.service import ServiceSettings, seed_subscribers, start_service
from perflab.service import database as db

POSTGRES_ENV = "PERFLAB_TEST_POSTGRES_DSN"
REDIS_ENV = "PERFLAB_TEST_REDIS_URL"
WHY = 'is not set; run eval "$(bash .ci/services.sh)" to start the test servers'


def server_or_skip(variable: str) -> str:
    """The server a variable names; skip without it, but fail in CI, which has it."""
    value = os.environ.get(variable)
    if not value:
        if os.environ.get("CI"):
            pytest.fail(f"{variable} {WHY}; CI must run these tests")
        pytest.skip(f"{variable} {WHY}")
    return value


SEED = {"count": 2000, "publications": 50, "events_per_subscriber": 2}
SCHEDULE = {
    "content_ids": ["uuid1", "uuid2", "uuid3"],
    "channels": ["channel-uuid"],
    "scheduled_time": "2025-10-29T09:00:00Z",
}


@pytest.fixture(scope="module")
def postgres_url():
    """A fresh PostgreSQL database on the test server, seeded, dropped at the end."""
    dsn = server_or_skip(POSTGRES_ENV)
    import psycopg

    name = f"perflab_backends_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    url = urlsplit(dsn)._replace(path=f"/{name}").geturl()
    seed_subscribers(url, **SEED)
    yield url
    with psycopg.connect(dsn, autocommit=True) as admin:
        admin.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


@pytest.fixture(scope="module")
def redis_url():
    """Database 14 of the test Redis server, emptied before and after."""
    url = server_or_skip(REDIS_ENV)
    import redis

    url = urlsplit(url)._replace(path="/14").geturl()
    client = redis.Redis.from_url(url)
    client.flushdb()
    yield url
    client.flushdb()
    client.close()


@pytest.fixture(scope="module")
def sqlite_twin(tmp_path_factory):
    """The same seed in a SQLite file, for the expected answers."""
    path = tmp_path_factory.mktemp("twin") / "twin.sqlite3"
    seed_subscribers(path, **SEED)
    return path


@pytest.fixture(scope="module")
def service(postgres_url, redis_url):
    settings = ServiceSettings(
        database_url=postgres_url, cache_url=redis_url, pool_size=4, cache_ttl_s=30
    )
    with start_service(settings) as running:
        yield running


@pytest.fixture(scope="module")
def token(service) -> str:
    status, _, body = call(service.url, "POST", "/auth/login", LOGIN)
    assert status == 200
    return body["token"]


def test_health_names_both_backends(service):
    status, _, body = call(service.url, "GET", "/health")
    assert status == 200
    assert body["database"] == "postgresql"
    assert body["cache"] is True


def test_every_endpoint_answers(service, token):
    def api(method, path, body=None):
        return call(service.url, method, "/api/v1" + path, body, token)

    status, _, created = api(
        "POST", "/publications", {"content_ids": ["a"], "channels": ["c"]}
    )
    assert status == 201
    assert created["id"] == SEED["publications"] + 1  # after the seeded ids
    assert created["status"] == "draft"

    status, _, page = api("GET", "/publications?limit=5")
    assert status == 200
    assert page["items"][0]["id"] == created["id"]
    assert page["total"] == SEED["publications"] + 1

    assert api("GET", f"/publications/{created['id']}")[2] == created
    assert api("GET", "/publications/999999")[0] == 404

    status, _, scheduled = api("POST", "/publications/newsletter/schedule", SCHEDULE)
    assert status == 202
    assert scheduled["status"] == "scheduled"
    assert 0 < scheduled["recipients"] <= SEED["count"]

    alert = {"content_id": "alert-uuid", "priority": "high", "channels": ["ch"]}
    status, _, queued = api("POST", "/alerts", alert)
    assert (status, queued["status"], queued["id"]) == (201, "queued", 1)

    subscriber = {"email": "someone.new@example.com", "preferred_channels": ["sms"]}
    assert api("POST", "/subscribers", subscriber)[0] == 201
    assert api("POST", "/subscribers", subscriber)[0] == 409
    assert api("POST", "/subscribers", {"email": "test7@example.com"})[0] == 409

    for path in ("/analytics/engagement", "/analytics/performance"):
        assert api("GET", f"{path}?{OCTOBER}")[0] == 200
        bad = "start_date=2025-10-31&end_date=2025-10-01"
        assert api("GET", f"{path}?{bad}")[0] == 422

    assert call(service.url, "GET", "/metrics")[0] == 200


@pytest.mark.parametrize("channel_type", [None, "email"])
def test_analytics_match_the_same_data_in_sqlite(
    service, token, sqlite_twin, channel_type
):
    path = f"/api/v1/analytics/engagement?{OCTOBER}"
    if channel_type:
        path += f"&channel_type={channel_type}"
    status, _, body = call(service.url, "GET", path, token=token)
    october = (date(2025, 10, 1), date(2025, 10, 31))
    with closing(db.connect(sqlite_twin)) as conn:
        assert status == 200
        assert body == db.engagement(conn, *october, channel_type)
        expected = db.performance(conn, *october)
    status, _, body = call(
        service.url, "GET", f"/api/v1/analytics/performance?{OCTOBER}", token=token
    )
    assert body == expected


def test_repeated_reads_hit_the_cache(service, token):
    hits = metric(service.url, "perflab_cache_hits_total")
    misses = metric(service.url, "perflab_cache_misses_total")

    first = call(service.url, "GET", "/api/v1/publications/7", token=token)
    second = call(service.url, "GET", "/api/v1/publications/7", token=token)
    third = call(service.url, "GET", "/api/v1/publications/7", token=token)
    assert first[0] == second[0] == third[0] == 200
    assert first[2] == second[2] == third[2]
    assert metric(service.url, "perflab_cache_misses_total") == misses + 1
    assert metric(service.url, "perflab_cache_hits_total") == hits + 2

    # A 404 is not cached: both go to the database.
    for _ in range(2):
        call(service.url, "GET", "/api/v1/publications/888888", token=token)
    assert metric(service.url, "perflab_cache_misses_total") == misses + 3


def test_scheduling_grows_the_undrained_queue(service, token, redis_url):
    probe = RedisProbe(redis_url, lists=["celery"])
    probe.start()
    before = probe.sample()["list_length:celery"]

    for _ in range(5):
        path = "/api/v1/publications/newsletter/schedule"
        assert call(service.url, "POST", path, SCHEDULE, token)[0] == 202

    # No worker (queue_workers=0): nothing takes them off.
    time.sleep(0.2)
    after = probe.sample()
    probe.close()
    assert after["list_length:celery"] == before + 5
    assert metric(service.url, "perflab_queue_length") == before + 5
    assert metric(service.url, "perflab_queue_workers") == 0
    assert metric(service.url, "perflab_queue_done_total") == 0


def test_workers_drain_the_queue_and_the_pool_bounds_postgres(postgres_url, redis_url):
    settings = ServiceSettings(
        database_url=postgres_url,
        cache_url=redis_url,
        pool_size=2,
        query_delay_ms=100,
        queue_name="celery-drained",
        queue_workers=2,
        queue_job_ms=10,
    )
    with start_service(settings) as running:
        path = "/api/v1/publications/newsletter/schedule"
        results, wall_s = concurrently(
            8, lambda i: call(running.url, "POST", path, SCHEDULE, "test-token")[0]
        )
        assert results == [202] * 8
        # 8 requests through 2 connections of 100 ms each: at least 4 rounds.
        assert wall_s >= 0.38
        assert metric(running.url, "perflab_db_pool_in_use_max") == 2
        assert metric(running.url, "perflab_db_pool_waiting_max") >= 4

        deadline = time.monotonic() + 5
        while metric(running.url, "perflab_queue_done_total") < 8:
            assert time.monotonic() < deadline, "the workers did not drain the queue"
            time.sleep(0.05)
        assert metric(running.url, "perflab_queue_length") == 0
        assert metric(running.url, "perflab_queue_enqueued_total") == 8


def test_pool_timeout_answers_503_on_postgres(postgres_url):
    settings = ServiceSettings(
        database_url=postgres_url, pool_size=1, query_delay_ms=400, pool_timeout_s=0.1
    )
    with start_service(settings) as running:
        results, _ = concurrently(
            3,
            lambda i: call(
                running.url, "GET", "/api/v1/publications/1", token="test-token"
            )[0],
        )
        assert set(results) == {200, 503}
        assert metric(running.url, "perflab_db_pool_timeouts_total") == results.count(
            503
        )


def test_an_unreachable_cache_is_a_launch_error(postgres_url):
    from perflab.errors import LaunchError
    from perflab.service import free_port

    settings = ServiceSettings(
        database_url=postgres_url, cache_url=f"redis://127.0.0.1:{free_port()}/0"
    )
    with pytest.raises(LaunchError, match="cannot reach its cache"):
        start_service(settings, timeout_s=15)


def test_the_pool_reconnects_after_postgres_drops_its_connections(postgres_url):
    import psycopg

    settings = ServiceSettings(database_url=postgres_url, pool_size=2)
    with start_service(settings) as running:
        path = "/api/v1/publications/3"
        assert call(running.url, "GET", path, token="test-token")[0] == 200
        with psycopg.connect(postgres_url, autocommit=True) as admin:
            dropped = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                " WHERE application_name = %s",
                (f"perflab-sample-service-{running.pid}",),
            ).fetchone()[0]
        assert dropped == 2

        # A request on a dropped connection fails (500); the connection is then
        # replaced, so each one fails at most once.
        statuses = [
            call(running.url, "GET", path, token="test-token")[0] for _ in range(6)
        ]
        assert set(statuses) <= {200, 500}
        assert statuses.count(500) <= 2
        assert statuses[-2:] == [200, 200]

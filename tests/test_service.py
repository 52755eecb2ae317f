"""Tests of the bundled sample service, against real uvicorn processes on 127.0.0.1.

Expected analytics numbers are recomputed here from the raw ``engagement_events`` rows
in plain Python, independently of the service's SQL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from contextlib import closing
from pathlib import Path

import pytest

from perflab.errors import LaunchError
from perflab.service import ServiceSettings, seed_subscribers, start_service
from perflab.service.app import TokenBucket, Tokens

#: Never through a proxy, whatever the environment says.
OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

LOGIN = {"username": "test@example.com", "password": "password"}
OCTOBER = "start_date=2025-10-01&end_date=2025-10-31"


def call(url, method, path, body=None, token=None, timeout=10):
    """One request; returns (status, headers, parsed JSON or text)."""
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url + path, data, headers, method=method)
    try:
        with OPENER.open(request, timeout=timeout) as response:
            status, answer, text = response.status, response.headers, response.read()
    except urllib.error.HTTPError as error:
        status, answer, text = error.code, error.headers, error.read()
    if answer.get("content-type", "").startswith("application/json"):
        return status, answer, json.loads(text)
    return status, answer, text.decode()


def metric(url, name):
    """The value of one unlabelled sample on the /metrics page."""
    _, _, text = call(url, "GET", "/metrics")
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise AssertionError(f"{name} is not on the metrics page")


def concurrently(count, work):
    """Run ``work(i)`` in ``count`` threads released together; return results, s."""
    barrier = threading.Barrier(count + 1)
    results = [None] * count

    def run(i):
        barrier.wait()
        results[i] = work(i)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    barrier.wait()
    started = time.perf_counter()
    for thread in threads:
        thread.join(30)
    return results, time.perf_counter() - started


@pytest.fixture(scope="module")
def db_path(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("service") / "service.sqlite3"
    seed_subscribers(path, 2000, publications=50, events_per_subscriber=2)
    return path


@pytest.fixture(scope="module")
def service(db_path):
    with start_service(ServiceSettings(db_path=db_path, pool_size=4)) as running:
        yield running


@pytest.fixture(scope="module")
def token(service) -> str:
    status, _, body = call(service.url, "POST", "/auth/login", LOGIN)
    assert status == 200
    return body["token"]


# --- health, login, tokens ----------------------------------------------------------


def test_health_needs_no_login(service):
    status, _, body = call(service.url, "GET", "/health")
    assert status == 200
    assert body["status"] == "ok"
    assert body["pool_size"] == 4


def test_login_issues_a_token_that_opens_the_api(service, token):
    status, _, body = call(service.url, "GET", "/api/v1/publications", token=token)
    assert status == 200
    assert isinstance(body["items"], list)


def test_login_refuses_wrong_password(service):
    wrong = {**LOGIN, "password": "nope"}
    status, _, body = call(service.url, "POST", "/auth/login", wrong)
    assert status == 401
    assert "password" in body["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/publications",
        "/api/v1/publications/1",
        f"/api/v1/analytics/engagement?{OCTOBER}",
        f"/api/v1/analytics/performance?{OCTOBER}",
    ],
)
def test_api_requires_a_token(service, path):
    status, headers, _ = call(service.url, "GET", path)
    assert status == 401
    assert headers["www-authenticate"] == "Bearer"

    status, _, body = call(service.url, "GET", path, token="forged.token")
    assert status == 401
    assert "invalid or expired" in body["detail"]


@pytest.mark.parametrize(
    "method, path",
    [
        ("POST", "/api/v1/publications"),
        ("POST", "/api/v1/publications/newsletter/schedule"),
        ("POST", "/api/v1/alerts"),
        ("POST", "/api/v1/subscribers"),
    ],
)
def test_writes_require_a_token_before_validating(service, method, path):
    assert call(service.url, method, path, {})[0] == 401


def test_the_plans_static_token_is_accepted(service):
    status, _, _ = call(service.url, "GET", "/api/v1/publications", token="test-token")
    assert status == 200


def test_tokens_expire_and_are_bound_to_their_secret():
    tokens = Tokens("secret", ttl_s=3600, static_token=None)
    token = tokens.issue("someone")
    assert tokens.valid(token)
    assert not Tokens("other", ttl_s=3600, static_token=None).valid(token)
    assert not Tokens("secret", ttl_s=-1, static_token=None).valid(
        Tokens("secret", ttl_s=-1, static_token=None).issue("someone")
    )
    assert not tokens.valid("test-token")
    assert not tokens.valid("tökén.sïgnature")


def test_non_ascii_credentials_are_refused_not_crashed(service):
    wrong = {"username": "tëst@example.com", "password": "pässword"}
    assert call(service.url, "POST", "/auth/login", wrong)[0] == 401


# --- publications ---------------------------------------------------------------------


def test_create_then_get_then_list_a_publication(service, token):
    body = {
        "content_ids": ["uuid1", "uuid2"],
        "channels": ["channel-uuid"],
        "publication_type": "newsletter",
    }
    status, _, created = call(service.url, "POST", "/api/v1/publications", body, token)
    assert status == 201
    assert isinstance(created["id"], int)
    assert created["content_ids"] == ["uuid1", "uuid2"]
    assert created["channels"] == ["channel-uuid"]
    assert created["publication_type"] == "newsletter"
    assert created["status"] == "draft"

    path = f"/api/v1/publications/{created['id']}"
    status, _, fetched = call(service.url, "GET", path, token=token)
    assert status == 200
    assert fetched == created

    status, _, page = call(
        service.url, "GET", "/api/v1/publications?limit=20", token=token
    )
    assert status == 200
    assert page["limit"] == 20
    assert len(page["items"]) == 20
    assert page["total"] >= 51  # 50 seeded and this one
    assert created["id"] in [item["id"] for item in page["items"]]  # newest first


def test_missing_publication_is_404(service, token):
    status, _, body = call(
        service.url, "GET", "/api/v1/publications/999999", None, token
    )
    assert status == 404
    assert "999999" in body["detail"]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/publications/not-a-number",
        "/api/v1/publications?limit=0",
        "/api/v1/publications?limit=101",
    ],
)
def test_bad_publication_parameters_are_422(service, token, path):
    assert call(service.url, "GET", path, token=token)[0] == 422


@pytest.mark.parametrize(
    "body",
    [
        {"content_ids": [], "channels": ["c"]},
        {"content_ids": ["a"], "channels": ["c"], "publication_type": "poster"},
        {"channels": ["c"]},
    ],
)
def test_bad_publication_bodies_are_422(service, token, body):
    assert call(service.url, "POST", "/api/v1/publications", body, token)[0] == 422


def test_newsletter_schedule_counts_active_subscribers(service, token, db_path):
    body = {
        "content_ids": ["uuid1", "uuid2", "uuid3"],
        "channels": ["channel-uuid"],
        "scheduled_time": "2025-10-29T09:00:00Z",
    }
    path = "/api/v1/publications/newsletter/schedule"
    status, _, scheduled = call(service.url, "POST", path, body, token)
    assert status == 202
    assert scheduled["status"] == "scheduled"
    assert scheduled["scheduled_time"].startswith("2025-10-29T09:00:00")

    with closing(sqlite3.connect(db_path)) as conn:
        statuses = [row[0] for row in conn.execute("SELECT status FROM subscribers")]
    assert scheduled["recipients"] == statuses.count("active")
    assert 0 < scheduled["recipients"] <= 2000

    body["scheduled_time"] = "tomorrow"
    assert call(service.url, "POST", path, body, token)[0] == 422


# --- alerts and subscribers -----------------------------------------------------------


def test_alert_is_queued_with_201(service):
    body = {"content_id": "alert-uuid", "priority": "high", "channels": ["ch"]}
    # The plan's k6 scenario sends the fixed token without logging in.
    status, _, alert = call(service.url, "POST", "/api/v1/alerts", body, "test-token")
    assert status == 201
    assert alert["content_id"] == "alert-uuid"
    assert alert["priority"] == "high"
    assert alert["status"] == "queued"
    assert isinstance(alert["id"], int)

    body["priority"] = "urgent"
    assert call(service.url, "POST", "/api/v1/alerts", body, "test-token")[0] == 422


def test_subscriber_is_created_once(service, token):
    body = {
        "email": "new.reader@example.com",
        "preferred_channels": ["email"],
        "topic_interests": {"artificial_intelligence": 0.9, "machine_learning": 0.8},
    }
    status, _, created = call(service.url, "POST", "/api/v1/subscribers", body, token)
    assert status == 201
    assert created["email"] == body["email"]
    assert created["topic_interests"] == body["topic_interests"]
    assert created["status"] == "active"

    status, _, again = call(service.url, "POST", "/api/v1/subscribers", body, token)
    assert status == 409

    # test5@example.com is one of the seeded subscribers.
    seeded = {**body, "email": "test5@example.com"}
    assert call(service.url, "POST", "/api/v1/subscribers", seeded, token)[0] == 409


@pytest.mark.parametrize(
    "body",
    [
        {"email": "not-an-address"},
        {"email": "a@example.com", "topic_interests": {"ai": 1.5}},
        {"email": "a@example.com", "preferred_channels": ["pigeon"]},
    ],
)
def test_bad_subscribers_are_422(service, token, body):
    assert call(service.url, "POST", "/api/v1/subscribers", body, token)[0] == 422


# --- analytics ------------------------------------------------------------------------


def october_events(db_path, channel_type=None):
    """The seeded events of October 2025, read without SQL filtering."""
    with closing(sqlite3.connect(db_path)) as conn:
        rows = conn.execute(
            "SELECT subscriber_id, publication_id, channel_type, event_type, "
            "occurred_at FROM engagement_events"
        ).fetchall()
    return [
        row
        for row in rows
        if "2025-10-01" <= row[4][:10] <= "2025-10-31"
        and (channel_type is None or row[2] == channel_type)
    ]


@pytest.mark.parametrize("channel_type", ["email", "slack", None])
def test_engagement_matches_the_raw_events(service, token, db_path, channel_type):
    path = f"/api/v1/analytics/engagement?{OCTOBER}"
    if channel_type is not None:
        path += f"&channel_type={channel_type}"
    status, _, body = call(service.url, "GET", path, token=token)
    assert status == 200

    events = october_events(db_path, channel_type)
    assert events, "the seed should put events in October 2025"
    kinds = Counter(row[3] for row in events)
    assert body["totals"] == {
        kind: kinds[kind] for kind in ("delivered", "opened", "clicked", "unsubscribed")
    }
    assert body["unique_subscribers"] == len({row[0] for row in events})
    assert body["open_rate"] == pytest.approx(kinds["opened"] / kinds["delivered"])
    assert body["click_rate"] == pytest.approx(kinds["clicked"] / kinds["delivered"])
    days = Counter(row[4][:10] for row in events if row[3] == "delivered")
    assert {d["date"]: d["delivered"] for d in body["daily"] if d["delivered"]} == days
    assert body["channel_type"] == channel_type


def test_engagement_of_an_empty_window_has_no_rates(service, token):
    path = "/api/v1/analytics/engagement?start_date=2030-01-01&end_date=2030-01-31"
    status, _, body = call(service.url, "GET", path, token=token)
    assert status == 200
    assert body["totals"]["delivered"] == 0
    assert body["open_rate"] is None
    assert body["daily"] == []


def test_performance_matches_the_raw_events(service, token, db_path):
    path = f"/api/v1/analytics/performance?{OCTOBER}"
    status, _, body = call(service.url, "GET", path, token=token)
    assert status == 200

    events = october_events(db_path)
    kinds = Counter(row[3] for row in events)
    for kind in ("delivered", "opened", "clicked"):
        assert sum(group[kind] for group in body["by_type"]) == kinds[kind]

    clicks = Counter(row[1] for row in events if row[3] == "clicked")
    top = body["top_publications"]
    assert len(top) == 10
    assert [p["clicked"] for p in top] == sorted(clicks.values(), reverse=True)[:10]
    for publication in top:
        assert publication["clicked"] == clicks[publication["publication_id"]]


@pytest.mark.parametrize(
    "query",
    [
        "start_date=2025-13-01&end_date=2025-10-31",
        "start_date=yesterday&end_date=2025-10-31",
        "start_date=2025-10-31&end_date=2025-10-01",
        "end_date=2025-10-31",
        "start_date=2025-10-01&end_date=2025-10-31&channel_type=carrier-pigeon",
    ],
)
def test_bad_analytics_dates_are_422(service, token, query):
    status, _, body = call(
        service.url, "GET", f"/api/v1/analytics/engagement?{query}", token=token
    )
    assert status == 422
    assert body["detail"][0]["loc"][0] == "query"
    if "channel_type" not in query:
        path = f"/api/v1/analytics/performance?{query}"
        assert call(service.url, "GET", path, token=token)[0] == 422


# --- metrics --------------------------------------------------------------------------


def test_metrics_page_is_prometheus_text(service, token):
    call(service.url, "GET", "/api/v1/publications/999999", token=token)
    status, headers, text = call(service.url, "GET", "/metrics")
    assert status == 200
    assert headers["content-type"].startswith("text/plain")
    assert "# TYPE perflab_db_pool_size gauge" in text
    assert "perflab_db_pool_size 4\n" in text
    assert "perflab_db_pool_in_use 0\n" in text
    assert "perflab_db_pool_waiting 0\n" in text
    # Route templates, not raw paths, label the request counts.
    assert (
        'perflab_http_requests_total{method="GET",'
        'route="/api/v1/publications/{publication_id}",status="404"}'
    ) in text
    assert "999999" not in text


# --- seeding --------------------------------------------------------------------------


def table_counts(path):
    with closing(sqlite3.connect(path)) as conn:
        return {
            table: conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
            for table in ("subscribers", "publications", "engagement_events", "alerts")
        }


def test_seeding_writes_the_requested_rows(tmp_path):
    path = tmp_path / "seeded.sqlite3"
    summary = seed_subscribers(path, 3000, publications=20, events_per_subscriber=1)
    assert summary.subscribers == 3000
    assert summary.publications == 20
    assert 3000 <= summary.events <= 3003
    assert table_counts(path) == {
        "subscribers": 3000,
        "publications": 20,
        "engagement_events": summary.events,
        "alerts": 0,
    }
    with closing(sqlite3.connect(path)) as conn:
        emails = {row[0] for row in conn.execute("SELECT email FROM subscribers")}
    assert emails == {f"test{i}@example.com" for i in range(3000)}


def test_seeding_again_replaces_the_data_identically(tmp_path):
    path = tmp_path / "seeded.sqlite3"

    def dump():
        with closing(sqlite3.connect(path)) as conn:
            return conn.execute("SELECT * FROM engagement_events").fetchall()

    seed_subscribers(path, 500)
    first = dump()
    seed_subscribers(path, 300)
    assert table_counts(path)["subscribers"] == 300
    seed_subscribers(path, 500)
    assert dump() == first


@pytest.mark.slow
def test_seeding_100k_subscribers_is_fast(tmp_path):
    summary = seed_subscribers(tmp_path / "big.sqlite3", 100_000)
    assert summary.subscribers == 100_000
    assert summary.seconds < 10  # about 1.5 s on a 2-core machine


# --- the pool, the rate limit, the pool timeout -------------------------------------


def test_the_pool_bounds_concurrent_queries(tmp_path):
    settings = ServiceSettings(
        db_path=tmp_path / "pool.sqlite3", pool_size=2, query_delay_ms=100
    )
    with start_service(settings) as running:
        path = "/api/v1/publications?limit=1"

        results, wall_s = concurrently(
            8, lambda i: call(running.url, "GET", path, token="test-token")[0]
        )

        assert results == [200] * 8
        # 8 requests through 2 connections of 100 ms each: 4 rounds, at least 0.4 s.
        # An unbounded pool would answer all of them in about 0.1 s.
        assert wall_s >= 0.38
        assert metric(running.url, "perflab_db_pool_in_use_max") == 2
        assert metric(running.url, "perflab_db_pool_waiting_max") >= 4
        assert metric(running.url, "perflab_db_pool_acquired_total") == 8


def test_a_queue_longer_than_the_thread_pool_does_not_deadlock(tmp_path):
    # Starlette runs blocking work on 40 threads; 60 requests waiting for 2
    # connections must neither hang nor fail.
    settings = ServiceSettings(
        db_path=tmp_path / "queue.sqlite3", pool_size=2, query_delay_ms=30
    )
    with start_service(settings) as running:
        results, wall_s = concurrently(
            60,
            lambda i: call(
                running.url, "GET", "/api/v1/publications/1", token="test-token"
            )[0],
        )
        assert results == [404] * 60
        assert metric(running.url, "perflab_db_pool_in_use_max") == 2
        assert metric(running.url, "perflab_db_pool_waiting_max") > 40 - 2
        assert wall_s < 10


def test_rate_limit_answers_429_above_the_rate(tmp_path):
    settings = ServiceSettings(db_path=tmp_path / "rate.sqlite3", rate_limit_rps=5)
    with start_service(settings) as running:
        started = time.perf_counter()
        statuses = [
            call(running.url, "GET", "/api/v1/publications", token="test-token")[0]
            for _ in range(20)
        ]
        elapsed_s = time.perf_counter() - started

        # A full bucket admits 5 at once, then 5 per second.
        admitted = statuses.count(200)
        assert statuses.count(429) == 20 - admitted
        assert 5 <= admitted <= 5 + 5 * elapsed_s + 1
        assert statuses[:5] == [200] * 5

        # Writes count too; a refusal says when to retry.
        body = {"content_id": "a", "channels": ["c"]}
        refusals = [
            answer
            for answer in (
                call(running.url, "POST", "/api/v1/alerts", body, "test-token")
                for _ in range(10)
            )
            if answer[0] == 429
        ]
        assert refusals
        _, headers, refusal = refusals[0]
        assert int(headers["retry-after"]) >= 1
        assert "Rate limit of 5 requests per second" in refusal["detail"]

        # Logging in and the probes are never limited.
        assert call(running.url, "POST", "/auth/login", LOGIN)[0] == 200
        assert call(running.url, "GET", "/health")[0] == 200
        assert metric(running.url, "perflab_rate_limited_total") >= 15


def test_token_bucket_admits_a_burst_then_the_rate():
    bucket = TokenBucket(rate_per_s=10)
    assert [bucket.take() for _ in range(10)] == [True] * 10
    assert not bucket.take()
    bucket.updated -= 0.25  # as if a quarter second had passed
    assert [bucket.take() for _ in range(3)] == [True, True, False]


def test_pool_timeout_answers_503(tmp_path):
    settings = ServiceSettings(
        db_path=tmp_path / "timeout.sqlite3",
        pool_size=1,
        query_delay_ms=400,
        pool_timeout_s=0.1,
    )
    with start_service(settings) as running:
        results, _ = concurrently(
            3,
            lambda i: call(
                running.url, "GET", "/api/v1/publications/1", token="test-token"
            )[0],
        )
        # The first holds the only connection for 400 ms; whoever waits for it
        # longer than 100 ms is turned away.
        assert 404 in results
        assert 503 in results
        assert set(results) == {404, 503}
        timeouts = metric(running.url, "perflab_db_pool_timeouts_total")
        assert timeouts == results.count(503)


# --- starting and stopping ------------------------------------------------------------


def test_stop_ends_the_process(tmp_path):
    service = start_service(ServiceSettings(db_path=tmp_path / "stop.sqlite3"))
    assert service.url.startswith("http://127.0.0.1:")
    assert service.running
    log_path = service.log_path
    service.stop()
    assert not service.running
    assert not log_path.exists()
    service.stop()  # stopping twice is harmless


def test_start_fails_with_launch_error_on_an_unusable_database(tmp_path):
    not_a_folder = tmp_path / "a-file"
    not_a_folder.write_text("")
    settings = ServiceSettings(db_path=not_a_folder / "service.sqlite3")
    with pytest.raises(LaunchError) as caught:
        start_service(settings, timeout_s=15)
    message = str(caught.value)
    assert "exited with code" in message
    assert "cannot open its database" in message  # from the child's output


def test_start_refuses_a_non_loopback_host(tmp_path):
    with pytest.raises(LaunchError, match="loopback"):
        start_service(ServiceSettings(db_path=tmp_path / "x.sqlite3"), host="0.0.0.0")


@pytest.mark.parametrize(
    "field, value",
    [("pool_size", 0), ("query_delay_ms", -1), ("rate_limit_rps", 0)],
)
def test_out_of_range_settings_are_refused(field, value):
    with pytest.raises(LaunchError, match=field):
        ServiceSettings(**{field: value})


def test_settings_round_trip_through_the_environment(tmp_path):
    settings = ServiceSettings(
        db_path=tmp_path / "env.sqlite3",
        pool_size=3,
        query_delay_ms=12.5,
        rate_limit_rps=None,
        static_token=None,
        access_log=True,
    )
    assert ServiceSettings.from_env(settings.to_env()) == settings
    limited = ServiceSettings(rate_limit_rps=7.5)
    assert ServiceSettings.from_env(limited.to_env()).rate_limit_rps == 7.5


def test_malformed_environment_is_a_launch_error():
    with pytest.raises(LaunchError, match="PERFLAB_SERVICE_POOL_SIZE"):
        ServiceSettings.from_env({"PERFLAB_SERVICE_POOL_SIZE": "many"})

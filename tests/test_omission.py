"""Coordinated omission: detection on real closed-model load, and the correction."""

from __future__ import annotations

import http.client
import math
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pandas as pd
import pytest

from perflab import omission
from perflab.errors import DataWarning

STALL_S = 2.0
THINK_S = 0.03


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body go out in two writes; without this, Nagle's algorithm and the
    # client's delayed ACK add ~40 ms to every response.
    disable_nagle_algorithm = True

    def do_GET(self):  # noqa: N802 (the name http.server calls)
        server = self.server
        if server.stall_from <= time.monotonic() < server.stall_until:
            time.sleep(STALL_S)
        self.send_response(200)
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"ok")

    def log_message(self, *args):  # keep the test output quiet
        pass


def _closed_load(
    users: int, duration_s: float, stall_at_s: float | None, cap: int = 4000
) -> pd.DataFrame:
    """Run a closed-model load against a loopback server and return its requests.

    Each thread is one user: send, wait for the response, think, repeat, until
    ``duration_s`` has passed or ``cap`` requests were sent. When ``stall_at_s`` is
    given, the server holds every request arriving in the 0.3 s from then for
    ``STALL_S`` seconds, so each user meets the stall once.
    """
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    server.daemon_threads = True
    started = time.monotonic()
    server.stall_from = started + stall_at_s if stall_at_s is not None else math.inf
    server.stall_until = server.stall_from + 0.3
    serving = threading.Thread(target=server.serve_forever, daemon=True)
    serving.start()
    rows: list[dict] = []
    port = server.server_address[1]

    def user(number: int) -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            while time.monotonic() - started < duration_s and len(rows) < cap:
                sent = time.time()
                clock = time.perf_counter()
                connection.request("GET", "/")
                response = connection.getresponse()
                response.read()
                latency_ms = (time.perf_counter() - clock) * 1000.0
                rows.append(
                    {
                        "ts": pd.Timestamp(sent, unit="s", tz="UTC"),
                        "endpoint": "GET /",
                        "latency_ms": latency_ms,
                        "ok": response.status == 200,
                        "worker": "w0",
                        "user": number,
                    }
                )
                time.sleep(THINK_S)
        finally:
            connection.close()

    threads = [threading.Thread(target=user, args=(n,)) for n in range(users)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=duration_s + 3 * STALL_S)
    finally:
        server.shutdown()
        server.server_close()
    return pd.DataFrame(rows).sort_values("ts", ignore_index=True)


@pytest.mark.slow
def test_a_real_stall_is_detected_and_corrected():
    requests = _closed_load(users=8, duration_s=7.0, stall_at_s=2.0)
    found = omission.detect_omission(requests)

    assert found.detected, found.evidence
    assert found.users_affected >= 6
    assert found.longest_stall_ms >= STALL_S * 1000
    # Every user met the stall once, in one episode of about STALL_S seconds.
    assert (found.end - found.start).total_seconds() < STALL_S + 1.5
    assert found.expected_interval_source == "estimated"
    assert found.expected_interval_ms == pytest.approx(THINK_S * 1000, rel=0.5)
    assert found.corrected["p99"] > found.raw["p99"]
    assert found.corrected["p99"] > 1000
    assert "HdrHistogram" in found.method
    print(
        f"\nstall: {len(requests)} requests, raw p99 {found.raw['p99']:.1f} ms, "
        f"corrected p99 {found.corrected['p99']:.1f} ms, expected interval "
        f"{found.expected_interval_ms:.1f} ms, {found.users_affected}/"
        f"{found.users_total} users, longest stall {found.longest_stall_ms:.0f} ms"
    )

    # With the intended interval given (think time + p50 latency) the same holds.
    given = THINK_S * 1000 + found.raw["p50"]
    corrected = omission.detect_omission(requests, expected_interval_ms=given)
    assert corrected.expected_interval_source == "given"
    assert corrected.corrected["p99"] > corrected.raw["p99"]


@pytest.mark.slow
def test_the_same_load_without_a_stall_finds_nothing():
    requests = _closed_load(users=8, duration_s=2.5, stall_at_s=None)
    found = omission.detect_omission(requests)
    assert len(requests) > 200
    assert not found.detected
    assert found.corrected is None
    assert found.users_total == 8
    assert "paused" in found.evidence["reason"]


# -- synthetic frames ------------------------------------------------------------------


def _frame(latencies_by_user: dict[int, list[float]], think_ms: float = 50.0):
    """Closed-model send times: each user sends after its previous response + think."""
    origin = pd.Timestamp("2026-01-01T00:00:00Z")
    rows = []
    for user, latencies in latencies_by_user.items():
        clock = 0.0
        for latency in latencies:
            rows.append(
                {
                    "ts": origin + pd.Timedelta(milliseconds=clock),
                    "latency_ms": latency,
                    "worker": "w",
                    "user": user,
                }
            )
            clock += latency + think_ms
    return pd.DataFrame(rows)


def test_one_slow_user_among_many_is_an_outlier_not_an_omission():
    users = {u: [2.0] * 50 for u in range(10)}
    users[3][20] = 3000.0
    found = omission.detect_omission(users_frame := _frame(users))
    assert not found.detected
    assert found.users_affected == 1
    assert "fewer than the 3 needed" in found.evidence["reason"]
    # The raw numbers are still there, uncorrected.
    assert found.raw["p50"] == 2.0
    assert found.corrected is None
    assert len(users_frame) == 500


def test_an_idle_gap_without_a_slow_response_is_not_a_stall():
    # Every user pauses 5 s (a long think), but no response was slow.
    frame = _frame({u: [2.0] * 40 for u in range(4)})
    late = frame.index[frame.groupby("user").cumcount() >= 20]
    frame.loc[late, "ts"] += pd.Timedelta(seconds=5)
    found = omission.detect_omission(frame)
    assert not found.detected
    assert found.evidence["stalls"] == 0


def test_all_users_stalling_together_is_detected():
    users = {u: [2.0] * 60 + [2500.0] + [2.0] * 60 for u in range(5)}
    found = omission.detect_omission(_frame(users))
    assert found.detected
    assert found.users_affected == 5
    assert found.longest_stall_ms == pytest.approx(2550.0)
    assert found.expected_interval_ms == pytest.approx(52.0)
    assert found.corrected["p99"] > found.raw["p99"]


def test_without_user_ids_nothing_is_judged_but_a_given_interval_corrects():
    frame = _frame({0: [2.0] * 99 + [500.0]}).drop(columns=["user"])
    found = omission.detect_omission(
        frame, expected_interval_ms=100.0, percentiles=(95, 96, 99)
    )
    assert not found.detected
    assert found.users_total == 0
    assert "no user" in found.evidence["reason"]
    assert found.summary().startswith("Coordinated omission was not evaluated: no user")
    # By hand: 500 ms at E = 100 ms adds 400, 300, 200 and 100, so 104 samples with
    # 99 of 2 ms; nearest ranks ceil(0.95 * 104) = 99, ceil(0.96 * 104) = 100 and
    # ceil(0.99 * 104) = 103.
    assert found.corrected == {"p95": 2.0, "p96": 100.0, "p99": 400.0}
    assert found.raw == {"p95": 2.0, "p96": 2.0, "p99": 2.0}


def test_expected_interval_samples_by_hand():
    # HdrHistogram's rule: L - E, L - 2E, ... while at least E.
    got = omission.expected_interval_samples(np.array([100.0, 90.0, 30.0, 5.0]), 30.0)
    assert sorted(got.tolist()) == sorted([100, 90, 30, 5, 70, 40, 60, 30])


def test_expected_interval_samples_refuses_an_absurd_interval():
    with pytest.raises(ValueError, match="too small"):
        omission.expected_interval_samples(np.array([60_000.0] * 100), 0.01)
    with pytest.raises(ValueError, match="positive"):
        omission.expected_interval_samples(np.array([1.0]), 0.0)


def test_an_absurd_interval_leaves_the_numbers_uncorrected_with_a_warning():
    frame = _frame({0: [60_000.0] * 200})
    with pytest.warns(DataWarning, match="too small"):
        found = omission.detect_omission(frame, expected_interval_ms=0.01)
    assert found.corrected is None
    assert found.method.startswith("Not corrected")


def test_summary_reads_as_a_sentence():
    users = {u: [2.0] * 60 + [2500.0] + [2.0] * 60 for u in range(5)}
    text = omission.detect_omission(_frame(users)).summary()
    assert text.startswith("Coordinated omission: from 00:00:03")
    assert "5 of 5 users" in text and "corrected" in text

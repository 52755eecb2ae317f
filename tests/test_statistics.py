"""Percentiles and tables from samples, against known answers."""

import math

import numpy as np
import pandas as pd
import pytest

from perflab import statistics
from perflab.store import OVERALL


def test_nearest_rank_by_hand():
    # Ten samples 1..10: nearest rank of q is the ceil(q * 10)-th smallest.
    samples = list(range(10, 0, -1))
    got = statistics.percentiles(samples, [50, 90, 95, 99, 99.9, 100])
    assert got == {
        "p50": 5.0,
        "p90": 9.0,
        "p95": 10.0,
        "p99": 10.0,
        "p99_9": 10.0,
        "p100": 10.0,
    }


def test_linear_matches_k6_formula_by_hand():
    # k6: position q * (n - 1), interpolated. n = 5, p90: 0.9 * 4 = 3.6 -> 40 + 0.6 * 10
    samples = [10, 20, 30, 40, 50]
    got = statistics.percentiles(samples, [90, 50], method="linear")
    assert got["p90"] == pytest.approx(46.0)
    assert got["p50"] == pytest.approx(30.0)


def test_against_numpy_on_generated_samples():
    rng = np.random.default_rng(7)
    samples = rng.lognormal(3, 0.8, 50_000)
    got = statistics.percentiles(samples, [95, 99])
    ordered = np.sort(samples)
    assert got["p95"] == ordered[math.ceil(0.95 * len(samples)) - 1]
    assert got["p99"] == ordered[math.ceil(0.99 * len(samples)) - 1]


def test_no_samples_gives_nan_not_zero():
    got = statistics.percentiles([float("nan")], [50])
    assert math.isnan(got["p50"])


def test_unknown_method():
    with pytest.raises(ValueError, match="method must be one of"):
        statistics.percentiles([1.0], method="average")


def _requests():
    ts = pd.Timestamp("2026-01-01T00:00:00Z")
    rows = []
    # Two endpoints: A in both seconds, B only in the second one; one failure.
    for i, (second, endpoint, latency, ok) in enumerate(
        [
            (0, "GET /a", 10, True),
            (0, "GET /a", 30, True),
            (1, "GET /a", 50, False),
            (1, "GET /b", 5, True),
            (1, "GET /b", 7, True),
        ]
    ):
        method, name = endpoint.split(" ")
        rows.append(
            {
                "ts": ts + pd.Timedelta(seconds=second, milliseconds=i),
                "endpoint": endpoint,
                "method": method,
                "name": name,
                "status": 500 if not ok else 200,
                "latency_ms": float(latency),
                "bytes": 100,
                "ok": ok,
                "error": None if ok else "HTTPError: 500",
            }
        )
    return pd.DataFrame(rows)


def test_endpoint_table():
    table = statistics.endpoint_table(_requests()).set_index("endpoint")
    assert list(table.index) == ["GET /a", "GET /b", OVERALL]
    assert table.loc["GET /a", "requests"] == 3
    assert table.loc["GET /a", "failures"] == 1
    assert table.loc["GET /a", "p50"] == 30.0
    assert table.loc[OVERALL, "requests"] == 5
    assert table.loc[OVERALL, "max_ms"] == 50.0
    assert table.loc[OVERALL, "error_rate"] == pytest.approx(0.2)


def test_interval_table_uses_only_samples_inside_each_interval():
    table = statistics.interval_table(_requests(), interval_s=1.0)
    overall = table[table["endpoint"] == OVERALL].reset_index(drop=True)
    assert list(overall["requests"]) == [2, 3]
    assert list(overall["p50"]) == [10.0, 7.0]
    b = table[table["endpoint"] == "GET /b"]
    assert len(b) == 1  # no zero-filled row for the second B was absent


def test_interval_table_joins_users():
    users = pd.DataFrame(
        {"ts": pd.to_datetime(["2026-01-01T00:00:00Z"], utc=True), "users": [4.0]}
    )
    table = statistics.interval_table(_requests(), users=users)
    assert set(table["users"]) == {4.0}


def test_error_table():
    errors = statistics.error_table(_requests())
    assert errors.to_dict("records") == [
        {
            "endpoint": "GET /a",
            "method": "GET",
            "name": "/a",
            "status": 500,
            "error": "HTTPError: 500",
            "count": 1,
        }
    ]

"""Steady-state windows on synthetic users series and stages."""

from __future__ import annotations

import pandas as pd
import pytest

from perflab import statistics, windows
from perflab.shapes import parse_stages
from perflab.store import create_run

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def _users(values: list[float]) -> pd.DataFrame:
    """A users series sampled once a second from T0."""
    return pd.DataFrame(
        {
            "ts": [T0 + pd.Timedelta(seconds=i) for i in range(len(values))],
            "users": values,
        }
    )


def _requests(seconds: int, per_second: int = 4) -> pd.DataFrame:
    """Evenly spread 10 ms requests from T0 for ``seconds`` seconds."""
    step = 1000 / per_second
    ts = [T0 + pd.Timedelta(milliseconds=i * step) for i in range(seconds * per_second)]
    return pd.DataFrame(
        {
            "ts": ts,
            "endpoint": "GET /",
            "method": "GET",
            "name": "/",
            "latency_ms": 10.0,
            "bytes": 1,
            "ok": True,
        }
    )


def _at(seconds: float) -> pd.Timestamp:
    return T0 + pd.Timedelta(seconds=seconds)


def test_ramp_hold_ramp():
    # 0..10 s ramp to 20, hold to 50 s, ramp down to 0 by 60 s.
    values = [2 * i for i in range(10)] + [20] * 41 + [20 - 2 * i for i in range(1, 11)]
    window = windows.steady_from_users(_users(values))
    # 19 users (95 %) count as at peak: 9.5 s... first sample >= 19 is at 10 s.
    assert window.start == _at(10)
    assert window.end == _at(50)
    assert window.steady and window.peak_users == 20
    assert "within 5%" in window.how


def test_tolerance_admits_a_dip():
    values = [0, 10, 20, 20, 19, 20, 20, 0]
    assert windows.steady_from_users(_users(values)).start == _at(2)
    assert windows.steady_from_users(_users(values)).end == _at(6)
    strict = windows.steady_from_users(_users(values), tolerance=0.0)
    assert (strict.start, strict.end) == (_at(2), _at(3))


def test_step_load_takes_the_top_step():
    values = [10] * 20 + [20] * 20 + [30] * 15 + [0]
    window = windows.steady_from_users(_users(values))
    assert (window.start, window.end) == (_at(40), _at(54))
    assert window.peak_users == 30


def test_two_holds_at_peak_take_the_longest():
    values = [0] + [10] * 5 + [5] * 5 + [10] * 8 + [0]
    window = windows.steady_from_users(_users(values))
    assert (window.start, window.end) == (_at(11), _at(18))
    assert "longest of 2 holds" in window.how


def test_all_constant_series_holds_to_its_end():
    window = windows.steady_from_users(_users([8] * 30), series_end=_at(30))
    assert (window.start, window.end) == (_at(0), _at(30))


def test_no_users_series_falls_back_to_the_whole_run():
    requests = _requests(10)
    window = windows.steady_window(requests)
    assert not window.steady
    assert window.start == T0
    assert "no users series and no stages" in window.how
    assert len(windows.window_requests(requests, window)) == len(requests)
    assert windows.steady_from_users(_users([])) is None
    assert windows.steady_from_users(_users([0, 0, 0])) is None


def test_whole_true_analyzes_the_whole_run():
    requests = _requests(60)
    users = _users([2 * i for i in range(10)] + [20] * 41 + [0] * 9)
    window = windows.steady_window(requests, users=users, whole=True)
    assert not window.steady and "whole=True" in window.how
    assert len(windows.window_requests(requests, window)) == len(requests)


def test_steady_window_filters_requests():
    requests = _requests(60)
    users = _users([2 * i for i in range(10)] + [20] * 41 + [0] * 9)
    window = windows.steady_window(requests, users=users)
    kept = windows.window_requests(requests, window)
    assert window.steady
    assert len(kept) == 40 * 4
    assert kept["ts"].min() == _at(10)
    assert kept["ts"].max() < _at(50)
    assert window.seconds == 40


def test_a_brief_touch_of_the_peak_is_no_steady_state():
    # 4 users for 30 s with two samples of 5 (as JMeter's allThreads can show):
    # the "hold" at 5 lasts 1 s, under 10 s and under a quarter of the run
    requests = _requests(30)
    users = _users([4] * 12 + [5] * 2 + [4] * 16)
    window = windows.steady_window(requests, users=users)
    assert not window.steady
    assert "peak of 5 for only 1.0 s" in window.how
    assert len(windows.window_requests(requests, window)) == len(requests)

    # a short run whose 5 s hold (samples at 1 to 6 s) is most of it keeps it
    short = windows.steady_window(_requests(8), users=_users([2] + [5] * 6 + [0]))
    assert short.steady and short.seconds == 5


def test_stages_give_the_exact_plan():
    stages = [s.to_json() for s in parse_stages("10s:20,40s:20,10s:0")]
    window = windows.steady_from_stages(stages, T0)
    # Ramps cross 19 users (95 % of 20) at 9.5 s and at 50.5 s.
    assert window.start == _at(9.5)
    assert window.end == _at(50.5)
    assert "stages" in window.how


def test_stage_steps_and_objects():
    stages = parse_stages("1s:10,20s:10,1s:30,15s:30,1s:0")
    window = windows.steady_from_stages(stages, "2026-01-01T00:00:00")
    # 28.5 users (95 % of 30) are crossed 0.925 s into the 10 -> 30 ramp at 21 s and
    # 0.05 s into the 30 -> 0 ramp at 37 s.
    assert window.start == _at(21.925)
    assert window.end == _at(37.05)
    assert window.peak_users == 30


def test_stages_are_used_when_there_is_no_users_series():
    requests = _requests(60)
    stages = [{"duration_s": 10, "users": 20}, {"duration_s": 50, "users": 20}]
    window = windows.steady_window(requests, stages=stages, run_start=T0)
    assert window.steady
    assert window.start == _at(9.5)
    # The plan holds to 60 s; the window stops at the end of the last request.
    assert window.end == _at(59.75 + 0.010) + pd.Timedelta(microseconds=1)


def test_run_window_reads_the_intervals_users(store):
    requests = _requests(60)
    users = _users([2 * i for i in range(10)] + [20] * 41 + [0] * 9)
    run = create_run(store, "r1", start="2026-01-01T00:00:00Z")
    run.write_table("requests", requests, "exact")
    run.write_table(
        "intervals", statistics.interval_table(requests, users=users), "exact"
    )
    window = windows.run_window(run)
    assert (window.start, window.end) == (_at(10), _at(50))
    assert windows.run_window(run, whole=True).steady is False


def test_run_window_without_users_uses_stages(store):
    run = create_run(
        store,
        "r2",
        start="2026-01-01T00:00:00Z",
        stages=[{"duration_s": 10, "users": 20}, {"duration_s": 50, "users": 20}],
    )
    run.write_table("requests", _requests(60), "exact")
    window = windows.run_window(run)
    assert window.start == _at(9.5)


def test_bad_tolerance():
    with pytest.raises(ValueError, match="tolerance"):
        windows.steady_from_users(_users([1, 2]), tolerance=1.5)

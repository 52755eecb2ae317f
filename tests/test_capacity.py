"""Capacity: step-load shapes, the USL fit, throughput per step and users at a target.

The USL answers are known: throughput is generated from the USL formula with chosen
parameters plus seeded noise, and the fit must give them back. The real step-load run
(marked slow) measures the sample service with a pool of N connections each held for
a known service time S, so its throughput cannot exceed N / S.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from perflab import statistics
from perflab.capacity import (
    fit_usl,
    step_throughput,
    users_at_target,
    usl,
)
from perflab.errors import AnalysisError
from perflab.notebooks import default_notebooks_dir, kernel_for_this_python
from perflab.shapes import (
    Stage,
    parse_shape,
    parse_steps,
    step_stages,
    tick,
    total_duration,
    users_at,
)
from perflab.store import OVERALL, create_run
from perflab.targets import load_targets

START = pd.Timestamp("2026-12-03T20:00:00Z")


# ---------------------------------------------------------------------------
# The step-load shape


def test_steps_are_stages_with_short_ramps():
    stages = parse_shape("steps:2:2:3:5s")
    assert stages == [
        Stage(1, 2),
        Stage(5, 2),
        Stage(1, 4),
        Stage(5, 4),
        Stage(1, 6),
        Stage(5, 6),
        Stage(1, 0),
    ]
    assert total_duration(stages) == 19
    assert users_at(stages, 3) == 2 and users_at(stages, 9) == 4
    assert tick(stages, 8)[0] == 4  # holding the second level
    assert parse_steps("steps:10:10:5:1m:5s")[:2] == [Stage(5, 10), Stage(60, 10)]
    assert parse_shape("10s:20,40s:20,10s:0") == [
        Stage(10, 20),
        Stage(40, 20),
        Stage(10, 0),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("steps:1:2:3", "not a step load"),
        ("steps:a:2:3:5s", "whole numbers"),
        ("steps:0:2:3:5s", "at least 1"),
        ("steps:1:2:3:0s", "positive HOLD"),
        ("steps:1:2:3:xs", "not a duration"),
    ],
)
def test_bad_step_specs_say_what_is_wrong(text, message):
    with pytest.raises(ValueError, match=message):
        parse_shape(text)


def test_step_stages_validate():
    with pytest.raises(ValueError, match="at least 1"):
        step_stages(1, 0, 3, 5.0)


# ---------------------------------------------------------------------------
# The USL fit

TRUE = {"lam": 50.0, "sigma": 0.05, "kappa": 0.002}


def test_usl_fit_recovers_known_parameters():
    rng = np.random.default_rng(20261203)
    users = np.repeat(np.arange(1, 41, 3), 2).astype(float)
    truth = usl(users, **TRUE)
    measured = truth * (1 + rng.normal(0, 0.02, users.size))

    fit = fit_usl(users, measured)

    assert fit.lam == pytest.approx(TRUE["lam"], rel=0.05)
    assert fit.sigma == pytest.approx(TRUE["sigma"], abs=0.015)
    assert fit.kappa == pytest.approx(TRUE["kappa"], rel=0.25)
    for name in ("lam", "sigma", "kappa"):
        low, high = getattr(fit, f"{name}_interval")
        assert low <= TRUE[name] <= high, name
    peak_users = math.sqrt((1 - TRUE["sigma"]) / TRUE["kappa"])  # 21.8 users
    assert fit.peak_users == pytest.approx(peak_users, rel=0.1)
    assert fit.peak_throughput == pytest.approx(
        float(usl(peak_users, **TRUE)), rel=0.03
    )
    assert fit.r_squared > 0.97
    assert "peaks at" in fit.note


def test_usl_without_coherency_has_no_peak():
    users = np.arange(1, 30, 2, dtype=float)
    fit = fit_usl(users, usl(users, 20.0, 0.1, 0.0))
    assert fit.kappa == pytest.approx(0.0, abs=1e-6)
    if fit.kappa == 0:
        assert fit.peak_users is None
        assert fit.peak_throughput == pytest.approx(200.0, rel=0.01)  # lambda / sigma
        assert "no peak" in fit.note
    # Little's law with Z = 0: R = N / X(N) = (1 + sigma (N - 1)) / lambda = 0.095 s
    assert fit.response_time_s(10.0) == pytest.approx(0.095, rel=0.01)
    assert fit.users_at_response_time(0.095) == pytest.approx(10.0, rel=0.02)
    # with a think time of 1 s, R = N / X - Z reaches 0.095 s at 10 + 1 / 0.005 users
    assert fit.users_at_response_time(0.095, think_time_s=1.0) == pytest.approx(
        210.0, rel=0.02
    )


def test_usl_fit_needs_enough_points():
    with pytest.raises(AnalysisError, match="at least 4 points"):
        fit_usl([1, 2, 3], [10, 20, 30])


# ---------------------------------------------------------------------------
# Throughput per step, from a synthetic step-load run


def make_step_run(store, levels=(2, 4, 6, 8, 10), hold_s=6, seed=7):
    """A step-load run: each level held ``hold_s`` seconds, Poisson arrivals at the
    USL throughput of that level, latencies from Little's law (R = N / X) with a
    log-normal spread, one endpoint twice as slow as the other."""
    rng = np.random.default_rng(seed)
    frames, users_rows = [], []
    for i, level in enumerate(levels):
        rate = float(usl(level, **TRUE))
        mean_ms = 1000 * level / rate
        for second in range(hold_s):
            t0 = i * hold_s + second
            users_rows.append({"ts": START + pd.Timedelta(seconds=t0), "users": level})
            n = rng.poisson(rate)
            slow = rng.uniform(size=n) < 0.25
            scale = np.where(slow, 2.0, 2.0 / 3.0) * mean_ms
            frames.append(
                pd.DataFrame(
                    {
                        "ts": START
                        + pd.to_timedelta(
                            np.floor((t0 + rng.uniform(size=n)) * 1e6), unit="us"
                        ),
                        "endpoint": np.where(slow, "GET /slow", "GET /fast"),
                        "method": "GET",
                        "name": np.where(slow, "/slow", "/fast"),
                        "status": 200,
                        "latency_ms": scale * np.exp(0.3 * rng.standard_normal(n)),
                        "ok": True,
                    }
                )
            )
    requests = pd.concat(frames).sort_values("ts").reset_index(drop=True)
    run = create_run(
        store,
        run_id="steps",
        tool="locust",
        start=START.isoformat(),
        stages=[s.to_json() for s in step_stages(levels[0], 2, len(levels), hold_s)],
        status="completed",
    )
    run.write_table("requests", requests, "exact")
    users = pd.DataFrame(users_rows)
    run.write_table(
        "intervals", statistics.interval_table(requests, 1.0, users=users), "exact"
    )
    return run


def test_step_throughput_measures_each_level(store):
    run = make_step_run(store)
    steps = step_throughput(run)
    overall = steps[steps["endpoint"] == OVERALL]
    assert overall["users"].tolist() == [2, 4, 6, 8, 10]
    # 6 s held - 1 s settling - the last two intervals
    assert (overall["seconds"] == 3).all()
    expected = usl(overall["users"].to_numpy(), **TRUE)
    # Poisson counts over 4 s: within 4 standard deviations
    assert np.all(np.abs(overall["throughput"] - expected) < 4 * np.sqrt(expected / 4))
    assert set(steps["endpoint"]) == {"GET /fast", "GET /slow", OVERALL}
    slow = steps[steps["endpoint"] == "GET /slow"].set_index("users")["p95"]
    fast = steps[steps["endpoint"] == "GET /fast"].set_index("users")["p95"]
    assert (slow > fast).all() and slow.is_monotonic_increasing

    fit = fit_usl(overall["users"], overall["throughput"])
    assert fit.lam == pytest.approx(TRUE["lam"], rel=0.15)


def test_users_at_target_interpolates_measured_p95(store):
    steps = step_throughput(make_step_run(store))
    slow = steps[steps["endpoint"] == "GET /slow"].set_index("users")["p95"]
    target = float((slow[6] + slow[8]) / 2)
    overall = steps[steps["endpoint"] == OVERALL]
    fit = fit_usl(overall["users"], overall["throughput"])

    table = users_at_target(steps, target, fit=fit)

    rows = table.set_index(["endpoint", "method"])
    assert 6 < rows.loc[("GET /slow", "measured"), "users"] < 8
    assert math.isnan(rows.loc[("GET /fast", "measured"), "users"])
    assert "stays under" in rows.loc[("GET /fast", "measured"), "note"]
    usl_users = rows.loc[(OVERALL, "usl"), "users"]
    # the mean reaches the target later than the p95 of the slowest endpoint
    assert usl_users > rows.loc[("GET /slow", "measured"), "users"]
    assert fit.response_time_s(usl_users) == pytest.approx(target / 1000, rel=1e-6)


def test_each_endpoint_is_held_to_its_own_target(store, tmp_path):
    steps = step_throughput(make_step_run(store))
    p95 = steps.pivot(index="users", columns="endpoint", values="p95")
    slow_target = float((p95.loc[6, "GET /slow"] + p95.loc[8, "GET /slow"]) / 2)
    fast_target = float((p95.loc[2, "GET /fast"] + p95.loc[4, "GET /fast"]) / 2)
    assert fast_target < slow_target  # the loose target would hold for GET /fast
    path = tmp_path / "targets.yaml"
    path.write_text(
        "extends: none\n"
        "endpoints:\n"
        "  - endpoint: /slow\n"
        f"    p95_ms: {slow_target}\n"
        "  - endpoint: GET /fast\n"
        f"    p95_ms: {slow_target}\n"
        "  - endpoint: /fast\n"  # two targets concern GET /fast: the tighter holds
        f"    p95_ms: {fast_target}\n"
    )
    overall = steps[steps["endpoint"] == OVERALL]
    fit = fit_usl(overall["users"], overall["throughput"])

    table = users_at_target(steps, fit=fit, targets=load_targets(path))

    rows = table.set_index(["endpoint", "method"])
    assert rows.loc[("GET /slow", "measured"), "target_ms"] == slow_target
    assert 6 < rows.loc[("GET /slow", "measured"), "users"] < 8
    fast = rows.loc[("GET /fast", "measured")]
    assert fast["target_ms"] == fast_target
    assert fast["target"].endswith(f"({path}:8)")
    assert 2 < fast["users"] < 4
    # no system p95 in the file: Overall has no target, and no USL row
    assert math.isnan(rows.loc[(OVERALL, "measured"), "users"])
    assert rows.loc[(OVERALL, "measured"), "note"] == (
        "No p95 target is set for this endpoint."
    )
    assert (OVERALL, "usl") not in rows.index


def test_capacity_notebook_runs_under_papermill(store, tmp_path):
    import nbformat
    import papermill

    run = make_step_run(store)
    source = default_notebooks_dir() / "capacity.ipynb"
    stored = nbformat.read(source, as_version=4)
    tagged = [c for c in stored.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert all(c.outputs == [] for c in stored.cells if c.cell_type == "code")

    out_dir = tmp_path / "out"
    papermill.execute_notebook(
        str(source),
        str(tmp_path / "capacity.ipynb"),
        parameters={
            "run_dir": str(run.path),
            "out_dir": str(out_dir),
            "think_time_s": 0.0,
            "p95_target_ms": 150.0,
        },
        kernel_name=kernel_for_this_python(),
        progress_bar=False,
    )
    assert (out_dir / "figures" / "usl.png").stat().st_size > 1000


# ---------------------------------------------------------------------------
# A real step load against the sample service

POOL_SIZE = 4
QUERY_DELAY_MS = 50.0

LOCUSTFILE = '''
"""One cheap endpoint, one database query per request, no think time."""

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from perflab.scenarios.common import StagesShape  # noqa: F401 (the shape)


class QueryUser(FastHttpUser):
    wait_time = constant(0)

    @task
    def list_one(self):
        self.client.get(
            "/api/v1/publications?limit=1",
            headers={"Authorization": "Bearer test-token"},
            name="/api/v1/publications",
        )
'''


@pytest.mark.slow
def test_real_step_load_peak_is_near_pool_size_over_service_time(tmp_path):
    from perflab.launching import LocustOptions, run_locust
    from perflab.service import ServiceSettings, start_service

    # N / S = 4 / 0.05 s = 80 requests/s, a tenth of what the service does on CPU
    capacity = POOL_SIZE / (QUERY_DELAY_MS / 1000)
    locustfile = tmp_path / "one_query.py"
    locustfile.write_text(LOCUSTFILE)
    settings = ServiceSettings(
        db_path=tmp_path / "service.sqlite3",
        pool_size=POOL_SIZE,
        query_delay_ms=QUERY_DELAY_MS,
    )
    stages = parse_shape("steps:1:2:5:5s")  # 1, 3, 5, 7, 9 users; 31 s
    with start_service(settings) as service:
        run = run_locust(
            LocustOptions(
                scenario=str(locustfile),
                host=service.url,
                stages=stages,
                wait_s=(0.0, 0.0),
                target_pid=service.pid,
            ),
            store=tmp_path / "runs",
        )
    assert run.meta["status"] == "completed"

    steps = step_throughput(run)
    overall = steps[steps["endpoint"] == OVERALL]
    assert overall["users"].tolist() == [1, 3, 5, 7, 9]
    assert overall["error_rate"].eq(0).all()
    fit = fit_usl(overall["users"], overall["throughput"])

    assert fit.peak_throughput == pytest.approx(capacity, rel=0.15), fit
    # one user waits about S per request, so it alone makes about 1 / S requests/s
    # (measured; the fit's lambda trades off against sigma and varies more)
    alone = overall.loc[overall["users"] == 1, "throughput"].iloc[0]
    assert alone == pytest.approx(1000 / QUERY_DELAY_MS, rel=0.25)
    # the service, not the machine, was the limit
    resources = run.table("resources")
    target_cpu = resources[
        (resources["source"] == "target") & (resources["metric"] == "cpu_percent")
    ]["value"]
    assert target_cpu.median() < 60

"""Comparing runs: A/A pairs pass, also when latencies drift with the load from second
to second, an A/B slowdown is found on its endpoint only, differing loads are stated,
the block bootstrap gives the known answers, and the report, gate, JUnit XML and
notebook work.

The runs are synthetic (tests/runfactory.py): log-normal latencies from a seeded
generator, so every pair of runs made with the same medians is a true A/A pair. The
slow test makes real runs against the sample service.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pandas as pd
import pytest
from realruns import HEALTH, QUERY, SERVICE_MS, steady_runs
from runfactory import ENDPOINTS, make_run

from perflab import comparing
from perflab.comparing import (
    FASTER,
    RUN_NOISE,
    SLOWER,
    UNCHANGED,
    RunNoise,
    compare,
    estimate_run_noise,
    holm,
    junit_xml,
    regressions,
    render_comparison,
    write_comparison,
)
from perflab.errors import AnalysisError
from perflab.notebooks import default_notebooks_dir, kernel_for_this_python
from perflab.store import OVERALL
from perflab.windows import window_requests

#: A run of about 1,500 requests in its steady window.
SIZE = {"duration_s": 30, "requests_per_user_s": 6.0}

#: A run of about 20,000 requests in its steady window.
BIG = {"duration_s": 60, "peak_users": 40, "requests_per_user_s": 10.0}

#: No run noise. The synthetic runs vary only within themselves (their requests are
#: drawn afresh, the build's distribution stays put), so the tests of the block
#: bootstrap's power use the within-run tests alone; the run noise has tests of its
#: own below.
WITHIN = RunNoise(0, 0)


def test_holm_matches_the_step_down_definition():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, max(0.04, 0.06), max(.., 0.06), 0.5
    adjusted = holm(np.array([0.03, 0.01, 0.5, 0.02, np.nan]))
    np.testing.assert_allclose(adjusted[:4], [0.06, 0.04, 0.5, 0.06])
    assert np.isnan(adjusted[4])


def test_percentiles_are_tested_behind_their_endpoint():
    # First tier, m = 4: endpoints A 0.001, B 0.2, throughput 0.01 and error rate
    # 0.04 of A -> sorted 0.001, 0.01, 0.04, 0.2 times 4, 3, 2, 1 -> A 0.004,
    # throughput 0.03, error rate 0.08, B 0.2. A's percentiles 0.01, 0.02, 0.3 ->
    # Holm among three: 0.03, 0.04, 0.3, none below A's 0.004. B's percentiles
    # 0.001 (and NaN, outside the family) -> 0.001, raised to B's 0.2. B failed no
    # request in either run: its error-rate test (p = 1) cannot reject, and stays
    # out of the family (Tarone), so m is still 4.
    endpoints = pd.DataFrame({"endpoint": ["A", "B"], "p_value": [0.001, 0.2]})
    changes = pd.DataFrame(
        {
            "endpoint": ["A", "A", "A", "A", "A", "B", "B", "B"],
            "metric": [
                *("p50", "p95", "p99", "throughput", "error_rate"),
                *("p50", "p95", "error_rate"),
            ],
            "base": [10.0, 20.0, 30.0, 5.0, 0.01, 10.0, 20.0, 0.0],
            "candidate": [11.0, 22.0, 33.0, 5.5, 0.02, 10.0, 20.0, 0.0],
            "p_value": [0.01, 0.02, 0.3, 0.01, 0.04, 0.001, np.nan, 1.0],
        }
    )
    change_p, endpoint_p = comparing.adjusted_p_values(changes, endpoints)
    np.testing.assert_allclose(endpoint_p, [0.004, 0.2])
    np.testing.assert_allclose(change_p[:6], [0.03, 0.04, 0.3, 0.03, 0.08, 0.2])
    assert np.isnan(change_p[6])
    assert change_p[7] == 1.0


def test_block_plan_follows_the_cube_root_rule():
    # b = round(T ** (2/3)) within [10, 100], blocks of T / b seconds
    assert comparing.block_plan(25.0) == comparing.BlockPlan(10, 2.5)  # 8.5 -> 10
    assert comparing.block_plan(60.0) == comparing.BlockPlan(15, 4.0)  # 15.3 -> 15
    assert comparing.block_plan(1000.0) == comparing.BlockPlan(100, 10.0)
    assert comparing.block_plan(3600.0) == comparing.BlockPlan(100, 36.0)
    short = comparing.block_plan(6.0)
    assert (short.blocks, short.seconds, short.short) == (10, 0.6, True)
    assert not comparing.block_plan(10.0).short


def test_block_resampler_known_answers():
    # Block 0 holds 1 and 2 ms, block 1 holds 10 ms. Drawing block 0 twice gives
    # [1, 1, 2, 2]: p50 has rank ceil(0.5 * 4) = 2 -> 1, p95 rank 4 -> 2. Block 1
    # twice gives [10, 10]. One of each gives [1, 2, 10]: p50 rank 2 -> 2, p95 rank
    # ceil(2.85) = 3 -> 10. Drawing nothing of a run leaves it empty: NaN.
    weights = np.array([[2, 0], [0, 2], [1, 1]])
    got = comparing.block_resample_percentiles(
        np.array([10.0, 1.0, 2.0]), np.array([1, 0, 0]), weights, [50, 95]
    )
    np.testing.assert_array_equal(got, [[1, 10, 2], [2, 10, 10]])

    # Superiority: base {1 | 2}, candidate {2 | 3} (blocks split by |). Both whole:
    # of the 4 pairs, 2 > 1, 3 > 1, 3 > 2 and the tie 2 = 2 counts half: 3.5 / 4.
    # Base block 0 twice, candidate block 1 twice: {1, 1} against {3, 3}: 1.
    values, index, exact = comparing.latency_grid(np.array([1.0, 2.0, 2.0, 3.0]))
    assert exact and values.tolist() == [1.0, 2.0, 3.0]
    base = comparing.block_counts(index[:2], np.array([0, 1]), values.size, 2)
    candidate = comparing.block_counts(index[2:], np.array([0, 1]), values.size, 2)
    got = comparing.resampled_superiority(
        base, np.array([[1, 1], [2, 0]]), candidate, np.array([[1, 1], [0, 2]])
    )
    np.testing.assert_allclose(got, [0.875, 1.0])


def test_block_resampler_matches_building_the_resamples():
    rng = np.random.default_rng(11)
    for _ in range(20):
        blocks = int(rng.integers(2, 6))
        latency = np.round(rng.lognormal(3.0, 0.5, 60), 0)  # ties, as in whole ms
        block = rng.integers(0, blocks, latency.size)
        weights = comparing.resample_weights(blocks, 25, rng)
        got = comparing.block_resample_percentiles(latency, block, weights, [50, 99])
        for r, row in enumerate(weights):
            resample = np.sort(np.repeat(latency, row[block]))
            for i, q in enumerate((50, 99)):
                k = max(1, int(np.ceil(q / 100 * resample.size - 1e-9)))
                expected = resample[k - 1] if resample.size else np.nan
                np.testing.assert_equal(got[i, r], expected)


def test_log_bins_stay_within_their_resolution():
    rng = np.random.default_rng(12)
    latency = rng.lognormal(3.0, 1.0, 3 * comparing.MAX_GRID_VALUES)
    values, index, exact = comparing.latency_grid(latency)
    assert not exact and values.size < latency.size
    ratio = latency / values[index]
    assert ratio.min() >= 1.0 and ratio.max() < 1.0 + comparing.GRID_RESOLUTION


def test_design_effect_of_a_burst_of_failures():
    requests = np.full(4, 100.0)
    # 3 failures in one block: p = 3 / 400, sum (f - p n)^2 = 2.25^2 + 3 * 0.75^2
    # = 6.75, times 4 / 3 = 9, over n p (1 - p) = 2.9775 -> 3.0227
    burst = comparing.design_effect(np.array([3.0, 0, 0, 0]), requests)
    assert burst == pytest.approx(9 / (400 * 0.0075 * 0.9925))
    # spread one a block, they vary less than independent requests would: 1
    assert comparing.design_effect(np.array([1.0, 1, 1, 0]), requests) == 1.0


def test_a_a_pairs_show_no_significant_change(store):
    unchanged, gate_passes = 0, 0
    for pair in range(20):
        base = make_run(store, f"base-{pair}", seed=1000 + pair, **SIZE)
        candidate = make_run(store, f"candidate-{pair}", seed=2000 + pair, **SIZE)
        comparison = compare(base, candidate)
        unchanged += (comparison.endpoints["verdict"] == UNCHANGED).all()
        gate_passes += not regressions(comparison)
    # 1 - confidence = 5 % family-wise: about one pair in 20 may be called changed
    assert unchanged >= 19
    assert gate_passes >= 19


def _drifting(store, name: str, seed: int):
    """A run whose latencies all follow a machine load that drifts from second to
    second: each second's latencies are multiplied by ``exp(x)``, ``x`` the average
    of two neighbouring normal draws of sd 0.2 (so seconds 1 apart are alike)."""
    run = make_run(store, name, seed=seed, **SIZE)
    requests = run.table("requests")
    second = (requests["ts"] - requests["ts"].min()).dt.total_seconds().astype(int)
    draws = np.random.default_rng(seed + 1).normal(0.0, 0.2, second.max() + 2)
    load = (draws[1:] + draws[:-1]) / np.sqrt(2)
    requests["latency_ms"] = np.round(requests["latency_ms"] * np.exp(load[second]), 3)
    run.write_table("requests", requests, "exact")
    return run


def test_autocorrelated_a_a_pairs_pass_where_independent_tests_fail(store):
    # Requests close in time share the load; the block bootstrap keeps them together
    # and holds the 5 % family-wise rate, while a bootstrap of single requests
    # takes the drift between the two runs for a change.
    unchanged, gate_passes, independent_flags = 0, 0, 0
    rng = np.random.default_rng(0)
    for pair in range(20):
        base = _drifting(store, f"base-{pair}", seed=1000 + pair)
        candidate = _drifting(store, f"candidate-{pair}", seed=2000 + pair)
        comparison = compare(base, candidate)
        unchanged += (comparison.endpoints["verdict"] == UNCHANGED).all()
        gate_passes += not regressions(comparison)
        samples = [
            window_requests(run.table("requests"), window)
            for run, window in (
                (base, comparison.base_window),
                (candidate, comparison.candidate_window),
            )
        ]
        # the plain bootstrap: each endpoint's median from 1,000 resamples of single
        # requests; a change of 5 % or more whose Bonferroni-adjusted 95 % interval
        # excludes 0 flags the pair
        for endpoint in ENDPOINTS:
            b, c = (s.loc[s["endpoint"] == endpoint, "latency_ms"] for s in samples)
            b_star = np.median(rng.choice(b, (1000, b.size)), axis=1)
            c_star = np.median(rng.choice(c, (1000, c.size)), axis=1)
            low, high = np.quantile(c_star / b_star - 1, [0.025 / 3, 1 - 0.025 / 3])
            if (low > 0 or high < 0) and abs(c.median() / b.median() - 1) >= 0.05:
                independent_flags += 1
                break
    assert unchanged >= 18
    assert gate_passes >= 18
    # Here 19, 19 and 9. Over 40 such pairs the block bootstrap kept 39 unchanged
    # and passed 39 at the gate, while the plain bootstrap flagged 19.
    assert independent_flags >= 5
    assert independent_flags > 2 * (20 - min(unchanged, gate_passes))


def _slower_post(store, name: str, seed: int):
    slower = ENDPOINTS["POST /publications"][2] * 1.2
    return make_run(
        store, name, seed=seed, medians_ms={"POST /publications": slower}, **SIZE
    )


@pytest.fixture(scope="module")
def a_b(tmp_path_factory):
    store = tmp_path_factory.mktemp("runs")
    base = make_run(store, "base", seed=1, **SIZE)
    candidate = _slower_post(store, "candidate", seed=101)
    return base, candidate, compare(base, candidate)


def test_a_b_slower_endpoint_is_found_and_the_others_are_unchanged(store):
    # 10 A/B pairs: the 20 % slower endpoint must be found every time; the unchanged
    # ones may be called changed at most at the 5 % family-wise rate.
    found, others_unchanged = 0, 0
    for pair in range(10):
        base = make_run(store, f"base-{pair}", seed=3000 + pair, **SIZE)
        candidate = _slower_post(store, f"candidate-{pair}", seed=4000 + pair)
        comparison = compare(base, candidate, run_noise=WITHIN)
        verdicts = comparison.endpoints.set_index("endpoint")["verdict"]
        found += verdicts["POST /publications"] == SLOWER
        others_unchanged += (
            verdicts[["GET /publications", "GET /analytics/engagement"]] == UNCHANGED
        ).all()
    assert found == 10
    assert others_unchanged >= 9


def test_a_b_interval_holds_the_true_change(a_b):
    _, _, comparison = a_b
    verdicts = comparison.endpoints.set_index("endpoint")["verdict"]
    assert verdicts["POST /publications"] == SLOWER
    p50 = comparison.changes.set_index(["endpoint", "metric"]).loc[
        ("POST /publications", "p50")
    ]
    assert p50["relative_low"] < 0.2 < p50["relative_high"]
    assert p50["status"] == "worse"


def test_a_b_regressions_gate_and_junit(a_b):
    _, _, comparison = a_b
    found = regressions(comparison)
    assert {r.endpoint for r in found} <= {"POST /publications", OVERALL}
    assert ("POST /publications", "p50") in {(r.endpoint, r.metric) for r in found}

    root = ET.fromstring(junit_xml(comparison))
    assert root.tag == "testsuites"
    suite = root.find("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == len(comparison.changes) == 4 * 5
    failed = [c for c in cases if c.find("failure") is not None]
    assert int(suite.get("failures")) == len(failed) == len(found)
    assert all(c.get("classname").startswith("perflab.compare.") for c in cases)


def test_faster_candidate_is_faster_not_a_regression(store):
    base = make_run(store, "base", seed=3, **SIZE)
    faster = make_run(
        store,
        "faster",
        seed=4,
        medians_ms={label: spec[2] * 0.7 for label, spec in ENDPOINTS.items()},
        **SIZE,
    )
    comparison = compare(base, faster, run_noise=WITHIN)
    assert (comparison.endpoints["verdict"] == FASTER).all()
    assert not [r for r in regressions(comparison) if r.metric.startswith("p")]


# ---------------------------------------------------------------------------
# Run noise: what differs between two runs as a whole


def test_run_noise_model():
    noise = RunNoise(relative=0.01, absolute_ms=0.12)
    assert noise.log_sd(2.0) == pytest.approx(np.log(1.07))
    assert noise.log_sd(120.0) == pytest.approx(np.log(1.011))
    assert str(noise) == "1 % + 0.12 ms"
    assert RunNoise(0, 0).none and not noise.none
    with pytest.raises(ValueError, match="absolute_ms must be 0 or more"):
        RunNoise(0.01, -0.1)
    with pytest.raises(ValueError, match="relative must be 0 or more"):
        RunNoise(float("nan"), 0.1)


def _fast(store, name: str, seed: int, scale: float = 1.0):
    """A run whose endpoints answer in 2 to 4 ms, like a health page."""
    medians = {label: (2.0 + i) * scale for i, label in enumerate(ENDPOINTS)}
    return make_run(store, name, seed=seed, medians_ms=medians, **BIG)


def test_a_whole_run_shift_within_run_noise_is_no_change(store):
    # A 2 ms endpoint 8 % slower in one run than in the next is what two runs of
    # one build do on a busy machine: without run noise the tests, which see only
    # each run's own variation, call it slower; with the default they do not.
    base = _fast(store, "base", seed=11)
    shifted = _fast(store, "shifted", seed=12, scale=1.08)
    within = compare(base, shifted, run_noise=RunNoise(0, 0))
    assert (within.endpoints["verdict"] == SLOWER).all(), render_comparison(within)
    assert any("Run noise: none added" in note for note in within.notes)

    noisy = compare(base, shifted)
    assert (noisy.endpoints["verdict"] == UNCHANGED).all(), render_comparison(noisy)
    assert noisy.run_noise == RUN_NOISE
    assert any(f"differing as a whole by {RUN_NOISE}" in n for n in noisy.notes)
    # the run noise widens the intervals, never moves the point values
    columns = ["base", "candidate", "relative"]
    pd.testing.assert_frame_equal(noisy.changes[columns], within.changes[columns])
    width = noisy.changes["relative_high"] - noisy.changes["relative_low"]
    narrow = within.changes["relative_high"] - within.changes["relative_low"]
    latency = noisy.changes["metric"].isin(["p50", "p95", "p99"])
    assert (width[latency] > narrow[latency]).all()

    # a shift well beyond the noise is still found: 50 % on these 2-4 ms endpoints,
    # whose run noise is 7 to 11 % a run
    slower = _fast(store, "slower", seed=13, scale=1.5)
    found = compare(base, slower)
    assert (found.endpoints["verdict"] == SLOWER).all(), render_comparison(found)


def test_a_b_with_the_default_run_noise_and_enough_requests(store):
    # The run noise costs power: with it, the 20 % slower endpoint of 450 requests
    # a run above is found slower in 9 of those 10 pairs (the tenth is significant,
    # its percentiles are not). With some 7,000 requests an endpoint, what is left
    # is the run noise itself, and 20 % is well beyond it.
    slower = {"POST /publications": ENDPOINTS["POST /publications"][2] * 1.2}
    for pair in range(3):
        base = make_run(store, f"base-{pair}", seed=5000 + pair, **BIG)
        candidate = make_run(
            store, f"slower-{pair}", seed=6000 + pair, medians_ms=slower, **BIG
        )
        comparison = compare(base, candidate)
        verdicts = comparison.endpoints.set_index("endpoint")["verdict"]
        assert verdicts["POST /publications"] == SLOWER, render_comparison(comparison)
        others = verdicts[["GET /publications", "GET /analytics/engagement"]]
        assert (others == UNCHANGED).all(), render_comparison(comparison)


def _noisy_runs(store, count: int, noise: RunNoise, seed: int):
    """``count`` runs of one build whose endpoints' medians each move as a whole, run
    by run, by ``exp(z log_sd(median))``, one ``z`` per run for every endpoint."""
    rng = np.random.default_rng(seed)
    levels = {"GET /publications": 2.0, "POST /publications": 8.0}
    levels["GET /analytics/engagement"] = 40.0
    runs = []
    for i in range(count):
        z = rng.standard_normal()
        medians = {
            label: level * np.exp(z * noise.log_sd(level))
            for label, level in levels.items()
        }
        runs.append(
            make_run(store, f"run-{seed}-{i}", seed=seed + i, medians_ms=medians, **BIG)
        )
    return runs


def test_estimate_run_noise_recovers_a_known_noise(store):
    truth = RunNoise(relative=0.03, absolute_ms=0.3)
    noise, table = estimate_run_noise(_noisy_runs(store, 16, truth, seed=40))
    assert len(table) == 6  # three endpoints, p50 and p95
    assert set(table["runs"]) == {16}
    # the p50s' log sd is 16 % at 2 ms, 6.6 % at 8 ms and 3.7 % at 40 ms; the
    # estimate of a standard deviation from 16 runs is good to about 20 %
    for row in table[table["metric"] == "p50"].itertuples(index=False):
        expected = truth.log_sd(row.level_ms)
        assert row.fitted_sd == pytest.approx(expected, rel=0.35), row
    # each run's own sampling is counted apart: it is not taken for run noise
    assert (table["within_sd"] > 0).all()


def test_estimate_run_noise_of_identical_conditions_is_small(store):
    noise, table = estimate_run_noise(_noisy_runs(store, 8, RunNoise(0, 0), seed=70))
    # what is left is the estimate's own error: far below the default's 7 % at 2 ms
    assert noise.log_sd(2.0) < 0.03, table
    with pytest.raises(ValueError, match="three or more runs"):
        estimate_run_noise(_noisy_runs(store, 2, RunNoise(0, 0), seed=90))


def test_small_significant_change_is_called_out_below_threshold(store):
    # 3 % slower everywhere, with enough requests for the test to see it
    big = {"duration_s": 60, "peak_users": 40, "requests_per_user_s": 10.0}
    base = make_run(store, "base", seed=5, **big)
    slightly = make_run(
        store,
        "slightly",
        seed=6,
        medians_ms={label: spec[2] * 1.03 for label, spec in ENDPOINTS.items()},
        **big,
    )
    # within-run tests alone: the default run noise would rightly take 3 % for
    # what two runs of one build can differ by
    comparison = compare(base, slightly, run_noise=RunNoise(0, 0))
    overall = comparison.endpoints.set_index("endpoint").loc[OVERALL]
    assert overall["verdict"] == comparing.SMALL
    assert "below the 5% threshold" in overall["summary"]
    overall_found = [r for r in regressions(comparison) if r.endpoint == OVERALL]
    assert not [r for r in overall_found if r.metric in ("p50", "p95")]


def test_differing_loads_are_stated_and_compared_on_what_they_share(store):
    base = make_run(store, "base", seed=8, **SIZE)
    other = make_run(store, "other", seed=9, peak_users=20, duration_s=40)
    requests = other.table("requests")
    other.write_table(
        "requests",
        requests[requests["endpoint"] != "GET /analytics/engagement"],
        "exact",
    )
    comparison = compare(base, other)
    text = " ".join(comparison.differences)
    assert "peaked at 10 users and the candidate at 20" in text
    assert "lasted 30 s and the candidate 40 s" in text
    assert "Only the base run has `GET /analytics/engagement`" in text
    assert "GET /analytics/engagement" not in set(comparison.endpoints["endpoint"])
    throughput = comparison.changes[comparison.changes["metric"] == "throughput"]
    assert (throughput["status"] == "not compared").all()
    assert "steady state" in comparison.notes[0]


def test_runs_without_samples_cannot_be_compared(store):
    base = make_run(store, "base", seed=8)
    imported = make_run(store, "imported", seed=9, tables=("endpoints",))
    with pytest.raises(AnalysisError, match="no per-request samples"):
        compare(base, imported)


def test_an_endpoint_without_latencies_is_not_compared(store):
    # every POST of the candidate failed before a response: no latency to compare
    base = make_run(store, "base", seed=10, **SIZE)
    candidate = make_run(store, "broken", seed=11, **SIZE)
    requests = candidate.table("requests")
    post = requests["endpoint"] == "POST /publications"
    requests.loc[post, "latency_ms"] = np.nan
    requests.loc[post, "ok"] = False
    candidate.write_table("requests", requests, "exact")

    comparison = compare(base, candidate)
    row = comparison.endpoints.set_index("endpoint").loc["POST /publications"]
    assert row["verdict"] == comparing.NOT_COMPARED
    assert row["candidate_requests"] == 0
    assert "Not compared" in row["summary"]
    changes = comparison.changes.set_index(["endpoint", "metric"])
    assert changes.loc[("POST /publications", "p50"), "status"] == "not compared"
    # its failures still count: the error rate is compared, and it is worse
    assert changes.loc[("POST /publications", "error_rate"), "status"] == "worse"


def test_markdown_report_is_written(a_b, tmp_path):
    _, _, comparison = a_b
    text = render_comparison(comparison)
    assert text.startswith("# Comparison: candidate against base")
    assert text.index("## Differences") < text.index("## Verdict")
    assert "| POST /publications | slower |" in text
    path = write_comparison(comparison, tmp_path / "compare-base-candidate")
    assert path.name == "comparison.md" and path.read_text() == text
    assert (path.parent / "changes.csv").exists()


def test_compare_notebook_runs_under_papermill(a_b, tmp_path):
    import nbformat
    import papermill

    base, candidate, _ = a_b
    source = default_notebooks_dir() / "compare.ipynb"
    stored = nbformat.read(source, as_version=4)
    tagged = [c for c in stored.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert all(c.outputs == [] for c in stored.cells if c.cell_type == "code")
    # the notebook's own defaults are the library's
    defaults = {}
    exec(tagged[0].source, {}, defaults)
    assert defaults["threshold"] == 0.05 and defaults["whole"] is False
    noise = RunNoise(defaults["run_noise_relative"], defaults["run_noise_ms"])
    assert noise == RUN_NOISE

    out_dir = tmp_path / "out"
    papermill.execute_notebook(
        str(source),
        str(tmp_path / "compare.ipynb"),
        parameters={
            "base_dir": str(base.path),
            "candidate_dir": str(candidate.path),
            "out_dir": str(out_dir),
            "threshold": 0.05,
        },
        kernel_name=kernel_for_this_python(),
        progress_bar=False,
    )
    assert (out_dir / "comparison.md").exists()
    assert (out_dir / "figures" / "changes.png").stat().st_size > 1000
    assert (out_dir / "figures" / "ecdf.png").stat().st_size > 1000


# ---------------------------------------------------------------------------
# A real A/A pair against the sample service


@pytest.mark.slow
def test_a_real_service_slower_on_one_endpoint_is_found_slower(tmp_path):
    # 20 % more service time on the listing's query, which moves its median by
    # about 12 %; each run holds about 15 s of steady state (some 50 s of load with
    # the two warm-ups), enough to find that beyond the default run noise. (Whether
    # two runs of the same service pass is measured by benchmarks/real_a_a.py.)
    (base,) = steady_runs(tmp_path, SERVICE_MS, 1, "1s:5,20s:5", "base")
    (candidate,) = steady_runs(tmp_path, 1.2 * SERVICE_MS, 1, "1s:5,20s:5", "slower")

    comparison = compare(base, candidate)
    detail = render_comparison(comparison)
    # two services, two loopback ports: the load itself is the same
    (difference,) = comparison.differences
    assert difference.startswith("The target host differs: http://127.0.0.1:")
    verdicts = comparison.endpoints.set_index("endpoint")["verdict"]
    assert verdicts[QUERY] == SLOWER, detail
    assert (QUERY, "p50") in {(r.endpoint, r.metric) for r in regressions(comparison)}
    # the health page shares the machine, not the query: within the run noise
    assert verdicts[HEALTH] == UNCHANGED, detail

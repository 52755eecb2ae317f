"""Comparing runs: A/A pairs pass, an A/B slowdown is found on its endpoint only,
differing loads are stated, and the report, gate, JUnit XML and notebook work.

The runs are synthetic (tests/runfactory.py): log-normal latencies from a seeded
generator, so every pair of runs made with the same medians is a true A/A pair.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import pytest
from runfactory import ENDPOINTS, make_run
from scipy import stats

from perflab import comparing
from perflab.comparing import (
    FASTER,
    SLOWER,
    UNCHANGED,
    bootstrap_percentile,
    compare,
    holm,
    junit_xml,
    regressions,
    render_comparison,
    write_comparison,
)
from perflab.errors import AnalysisError
from perflab.notebooks import default_notebooks_dir, kernel_for_this_python
from perflab.store import OVERALL

#: A run of about 1,500 requests in its steady window.
SIZE = {"duration_s": 30, "requests_per_user_s": 6.0}


def test_holm_matches_the_step_down_definition():
    # m = 4: sorted 0.01, 0.02, 0.03, 0.5 -> 0.04, max(0.04, 0.06), max(.., 0.06), 0.5
    adjusted = holm(np.array([0.03, 0.01, 0.5, 0.02, np.nan]))
    np.testing.assert_allclose(adjusted[:4], [0.06, 0.04, 0.5, 0.06])
    assert np.isnan(adjusted[4])


def test_bootstrap_percentile_is_the_resampled_nearest_rank():
    # The Beta shortcut against brute-force resampling of the same sample.
    rng = np.random.default_rng(7)
    sample = np.sort(rng.lognormal(3.0, 0.5, 400))
    shortcut = bootstrap_percentile(sample, 95.0, 20000, rng)
    resamples = rng.choice(sample, size=(20000, sample.size))
    brute = np.quantile(resamples, 0.95, axis=1, method="inverted_cdf")
    result = stats.ks_2samp(shortcut, brute)
    assert result.pvalue > 0.01
    assert abs(np.mean(shortcut) - np.mean(brute)) < 0.5


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
        verdicts = compare(base, candidate).endpoints.set_index("endpoint")["verdict"]
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
    comparison = compare(base, faster)
    assert (comparison.endpoints["verdict"] == FASTER).all()
    assert not [r for r in regressions(comparison) if r.metric.startswith("p")]


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
    comparison = compare(base, slightly)
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

AA_LOCUSTFILE = '''
"""Two endpoints of the sample service: one database query, and the health page."""

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from perflab.scenarios.common import StagesShape  # noqa: F401 (the shape)


class SteadyUser(FastHttpUser):
    wait_time = constant(0.02)

    @task(3)
    def list_one(self):
        self.client.get(
            "/api/v1/publications?limit=1",
            headers={"Authorization": "Bearer test-token"},
            name="/api/v1/publications",
        )

    @task
    def health(self):
        self.client.get("/health")
'''


@pytest.mark.slow
def test_real_a_a_runs_of_the_same_service_pass_the_gate(tmp_path):
    from perflab.launching import LocustOptions, run_locust
    from perflab.service import ServiceSettings, start_service
    from perflab.shapes import parse_shape

    locustfile = tmp_path / "steady.py"
    locustfile.write_text(AA_LOCUSTFILE)
    # a fixed service time dominates the latency, as in a real database-bound service
    settings = ServiceSettings(
        db_path=tmp_path / "service.sqlite3", pool_size=8, query_delay_ms=20.0
    )
    runs = []
    with start_service(settings) as service:
        # the first run warms the service up (imports, caches, pool); it is not compared
        for _ in range(3):
            options = LocustOptions(
                scenario=str(locustfile),
                host=service.url,
                stages=parse_shape("2s:5,6s:5"),
                wait_s=(0.02, 0.02),
                target_pid=service.pid,
            )
            runs.append(run_locust(options, store=tmp_path / "runs"))

    comparison = compare(runs[1], runs[2])

    assert comparison.differences == []
    assert not set(comparison.endpoints["verdict"]) & {FASTER, SLOWER}, (
        comparison.endpoints[["endpoint", "verdict", "summary"]].to_string()
    )
    assert regressions(comparison) == []

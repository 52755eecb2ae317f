"""The command line: ``check``, ``compare``, ``runs`` and ``run --shape`` through
cli.main() on synthetic runs, with the expected numbers recomputed through the library.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import nbformat
import pytest
from runfactory import ENDPOINTS, make_aggregate_run, make_healthy_run, make_run

from perflab import cli
from perflab.catalog import catalog, trend
from perflab.comparing import (
    RUN_NOISE,
    SLOWER,
    compare,
    estimate_run_noise,
    regressions,
    render_comparison,
)
from perflab.errors import AnalysisError
from perflab.notebooks import analyze_comparison
from perflab.shapes import Stage
from perflab.store import OVERALL, create_run, open_run
from perflab.targets import default_targets

#: Long enough for a 20 % slower candidate to be found (see test_comparing.py).
SIZE = {"duration_s": 60, "requests_per_user_s": 6.0}

GENEROUS = """\
extends: none
endpoints:
  - endpoint: GET /publications
    p95_ms: 1000
  - endpoint: POST /publications
    p95_ms: 1000
    max_error_rate_percent: 10
  - endpoint: GET /analytics/engagement
    p95_ms: 1000
  - endpoint: POST /alerts
    p95_ms: 150
system:
  max_error_rate_percent: 10
  max_db_connections: 200
"""

#: The target names GENEROUS defines, and those the synthetic runs cannot judge.
GENEROUS_NAMES = {
    "GET /publications p95",
    "POST /publications p95",
    "POST /publications error_rate",
    "GET /analytics/engagement p95",
    "POST /alerts p95",
    "system error_rate_percent",
    "system db_connections",
}
NOT_EVALUABLE = {"POST /alerts p95", "system db_connections"}

#: Every endpoint of the synthetic runs is slower than 1 ms at its p95.
STRICT = """\
extends: none
endpoints:
  - endpoint: GET /publications
    p95_ms: 1
  - endpoint: POST /publications
    p95_ms: 1
  - endpoint: GET /analytics/engagement
    p95_ms: 1
system:
  max_error_rate_percent: 10
"""
STRICT_FAILURES = {
    "GET /publications p95",
    "POST /publications p95",
    "GET /analytics/engagement p95",
}


@pytest.fixture(scope="module")
def runs(tmp_path_factory) -> Path:
    """A store with a base run, a candidate 20 % slower on every endpoint, and a
    healthy run."""
    store = tmp_path_factory.mktemp("runs")
    make_run(store, "base", seed=1, **SIZE)
    slower = {label: spec[2] * 1.2 for label, spec in ENDPOINTS.items()}
    make_run(store, "slower", seed=101, medians_ms=slower, **SIZE)
    make_healthy_run(store, "healthy")
    return store


def _targets(tmp_path: Path, text: str, name: str = "targets.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def _main(store: Path, *args: str) -> int:
    return cli.main(["-q", "--store", str(store), *args])


def _lines_starting(out: str, word: str) -> list[str]:
    return [line for line in out.splitlines() if line.startswith(word)]


# ---------------------------------------------------------------------------
# check


def test_check_passes_with_generous_targets(runs, tmp_path, capsys):
    junit = tmp_path / "ci" / "check.xml"
    code = _main(
        runs,
        "check",
        "healthy",
        "--targets",
        _targets(tmp_path, GENEROUS),
        "--junit",
        str(junit),
    )
    out = capsys.readouterr().out

    assert code == 0
    passed = _lines_starting(out, "PASS")
    assert len(passed) == len(GENEROUS_NAMES - NOT_EVALUABLE)
    for name in GENEROUS_NAMES - NOT_EVALUABLE:
        assert any(name in line for line in passed)
    not_evaluable = _lines_starting(out, "NOT EVALUABLE")
    assert len(not_evaluable) == len(NOT_EVALUABLE)
    for name in NOT_EVALUABLE:
        assert any(name in line for line in not_evaluable)
    assert "Endpoint absent: no endpoint of the run matches 'POST /alerts'" in out
    assert "Metric absent: no postgres connections samples" in out
    assert "Check pass: 0 targets failed." in out
    assert f"junit: {junit}" in out

    root = ET.parse(junit).getroot()
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert {c.get("name") for c in cases} == GENEROUS_NAMES
    assert int(suite.get("tests")) == len(cases) == len(GENEROUS_NAMES)
    assert suite.get("failures") == "0" and not list(root.iter("failure"))
    skipped = {c.get("name") for c in cases if c.find("skipped") is not None}
    assert skipped == NOT_EVALUABLE and int(suite.get("skipped")) == 2


def test_check_fails_with_strict_targets(runs, tmp_path, capsys):
    junit = tmp_path / "check.xml"
    code = _main(
        runs,
        "check",
        "healthy",
        "--targets",
        _targets(tmp_path, STRICT),
        "--junit",
        str(junit),
    )
    out = capsys.readouterr().out

    assert code == 1
    failed = _lines_starting(out, "FAIL")
    assert len(failed) == 3
    for name in STRICT_FAILURES:
        assert any(name in line for line in failed)
    assert "Check fail: 3 targets failed." in out

    root = ET.parse(junit).getroot()
    (suite,) = root.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == 4  # three endpoints and the system error rate
    failures = {c.get("name"): c.find("failure") for c in cases}
    failures = {name: f for name, f in failures.items() if f is not None}
    assert set(failures) == STRICT_FAILURES
    assert suite.get("failures") == root.get("failures") == "3"
    assert all("not < 1.0 ms" in f.get("message") for f in failures.values())


def test_check_takes_a_run_folder_and_writes_markdown(runs, tmp_path, capsys):
    markdown = tmp_path / "check.md"
    code = _main(
        runs,
        "check",
        str(runs / "healthy"),
        "--targets",
        _targets(tmp_path, STRICT),
        "--markdown",
        str(markdown),
    )
    assert code == 1
    text = markdown.read_text()
    assert text.startswith("# Check: healthy")
    assert text.count("❌ fail") == 3 and text.count("✅ pass") == 1


def test_targets_extend_the_plans_unless_replaced(runs, tmp_path, capsys):
    own = _targets(
        tmp_path,
        "endpoints:\n"
        "  - endpoint: GET /publications\n"
        "    p95_ms: 1000\n"
        "  - endpoint: GET /analytics/engagement\n"
        "    p90_ms: 1000\n",
    )
    plan = default_targets()
    assert "GET /publications p95" in plan.names()

    extended, replaced = tmp_path / "extended.xml", tmp_path / "replaced.xml"
    _main(runs, "check", "healthy", "--targets", own, "--junit", str(extended))
    _main(
        runs,
        "check",
        "healthy",
        "--targets",
        own,
        "--replace-default",
        "--junit",
        str(replaced),
    )

    # the file's GET /publications p95 replaces the plan's, its p90 target is added
    cases = ET.parse(extended).getroot().find("testsuite").findall("testcase")
    assert len(cases) == len(plan) + 1
    by_name = {c.get("name"): c for c in cases}
    assert "< 1,000 ms" in by_name["GET /publications p95"].find("system-out").text
    assert "GET /analytics/engagement p90" in by_name
    cases = ET.parse(replaced).getroot().find("testsuite").findall("testcase")
    assert {c.get("name") for c in cases} == {
        "GET /publications p95",
        "GET /analytics/engagement p90",
    }


def test_targets_the_run_cannot_judge_are_shown_never_passed(runs, tmp_path, capsys):
    absent = _targets(
        tmp_path,
        "extends: none\n"
        "endpoints:\n"
        "  - endpoint: POST /subscribers\n"
        "    p95_ms: 150\n"
        "system:\n"
        "  min_cache_hit_ratio_percent: 80\n",
    )
    junit = tmp_path / "check.xml"
    code = _main(runs, "check", "healthy", "--targets", absent, "--junit", str(junit))
    captured = capsys.readouterr()

    # nothing failed, but a gate that judged nothing does not pass
    assert code == 1
    assert "Check inconclusive: no target could be evaluated." in captured.out
    assert len(_lines_starting(captured.out, "NOT EVALUABLE")) == 2
    assert not _lines_starting(captured.out, "PASS")
    assert "none of the 2 targets could be evaluated on run healthy" in captured.err
    suite = ET.parse(junit).getroot().find("testsuite")
    assert suite.get("skipped") == "2" and suite.get("tests") == "2"


def test_baseline_regression_fails_the_check(runs, tmp_path, capsys):
    base, candidate = open_run(runs / "base"), open_run(runs / "slower")
    comparison = compare(base, candidate)
    expected = regressions(comparison)
    assert expected, "a candidate 20 % slower everywhere must regress"
    assert comparison.verdict(OVERALL) == SLOWER

    junit = tmp_path / "gate.xml"
    code = _main(
        runs,
        "check",
        "slower",
        "--targets",
        _targets(tmp_path, GENEROUS),
        "--baseline",
        "base",
        "--junit",
        str(junit),
    )
    out = capsys.readouterr().out

    assert code == 1  # every target passed or was not evaluable; the gate failed
    assert not _lines_starting(out, "FAIL")
    for regression in expected:
        assert str(regression) in out
    assert f"{len(expected)} regression" in out
    assert f"{len(expected)} regression{'s' * (len(expected) > 1)} against base" in out

    root = ET.parse(junit).getroot()
    check_suite, compare_suite = root.findall("testsuite")
    assert len(check_suite.findall("testcase")) == len(GENEROUS_NAMES)
    assert len(compare_suite.findall("testcase")) == len(comparison.changes)
    compare_failed = [
        c for c in compare_suite.iter("testcase") if c.find("failure") is not None
    ]
    assert int(compare_suite.get("failures")) == len(expected)
    assert {(c.get("classname"), c.get("name")) for c in compare_failed} == {
        (f"perflab.compare.{r.endpoint}", r.metric) for r in expected
    }
    assert int(root.get("failures")) == len(expected)
    assert int(root.get("tests")) == len(GENEROUS_NAMES) + len(comparison.changes)
    assert int(root.get("skipped")) == int(check_suite.get("skipped")) + int(
        compare_suite.get("skipped")
    )


def test_baseline_without_change_passes(runs, tmp_path, capsys):
    code = _main(
        runs,
        "check",
        "base",
        "--targets",
        _targets(tmp_path, GENEROUS),
        "--baseline",
        "base",
    )
    out = capsys.readouterr().out
    assert code == 0
    assert "No significant regression beyond the 5% threshold." in out
    assert "Check pass: 0 targets failed, 0 regressions against base." in out


# ---------------------------------------------------------------------------
# compare


def test_compare_prints_verdicts_and_writes_the_markdown(runs, tmp_path, capsys):
    out_dir = tmp_path / "cmp"
    code = _main(runs, "compare", "base", "slower", "--out", str(out_dir))
    out = capsys.readouterr().out

    assert code == 0
    comparison = compare(open_run(runs / "base"), open_run(runs / "slower"))
    table = out[out.index("ENDPOINT") :]
    for row in comparison.endpoints.itertuples(index=False):
        (line,) = [x for x in table.splitlines() if x.startswith(row.endpoint + " ")]
        assert row.verdict in line
        assert f"{row.base_requests:,} / {row.candidate_requests:,}" in line
    assert "Differences between the runs:" in out and "None found" in out
    path = out_dir / "comparison.md"
    assert f"comparison: {path}" in out
    assert path.read_text() == render_comparison(comparison)
    assert (out_dir / "changes.csv").exists()


def test_compare_writes_into_reports_by_default(runs, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert _main(runs, "compare", "base", "slower", "--threshold", "10%") == 0
    path = tmp_path / "reports" / "compare-base-slower" / "comparison.md"
    assert "beyond the 10% threshold" in path.read_text()


def test_compare_notebook_writes_html_and_figures(runs, tmp_path, capsys):
    out_dir = tmp_path / "cmp"
    code = _main(runs, "compare", "base", "slower", "--out", str(out_dir), "--notebook")
    out = capsys.readouterr().out

    assert code == 0
    html = out_dir / "compare.html"
    assert f"html:       {html.resolve()}" in out
    body = html.read_text()
    assert "<title>Comparison: slower against base</title>" in body
    assert 'src="data:image/png;base64,' in body and 'src="figures/' not in body
    assert (out_dir / "figures" / "changes.png").stat().st_size > 1000
    assert (out_dir / "compare.ipynb").exists()


def test_compare_takes_the_run_noise_given(runs, capsys):
    assert _main(runs, "compare", "base", "slower", "--run-noise", "0,0") == 0
    out = capsys.readouterr().out
    assert "run noise 0 % + 0 ms)" in out
    assert _main(runs, "compare", "base", "slower", "--run-noise", "2.5%,0.3ms") == 0
    assert "run noise 2.5 % + 0.3 ms)" in capsys.readouterr().out
    assert _main(runs, "compare", "base", "slower") == 0
    assert f"run noise {RUN_NOISE})" in capsys.readouterr().out


@pytest.mark.parametrize("text", ["5%", "a,b", "1%,-2ms", "1,2,3"])
def test_compare_refuses_a_run_noise_it_cannot_read(runs, capsys, text):
    assert _main(runs, "compare", "base", "slower", "--run-noise", text) == 2
    err = capsys.readouterr().err
    assert "--run-noise" in err
    assert "RELATIVE,MS" in err or "must be 0 or more" in err


def test_noise_estimates_the_run_noise_of_repeated_runs(runs, capsys):
    code = _main(runs, "noise", "base", "slower", "healthy")
    out = capsys.readouterr().out
    assert code == 0
    noise, table = estimate_run_noise(
        [open_run(runs / name) for name in ("base", "slower", "healthy")]
    )
    assert f"Estimated run noise: {noise}" in out
    relative, absolute_ms = 100 * noise.relative, noise.absolute_ms
    assert f"--run-noise {relative:.3g}%,{absolute_ms:.3g}ms" in out
    for row in table.itertuples(index=False):
        (line,) = [
            x
            for x in _lines_starting(out, row.endpoint + " ")
            if x.split()[-6] == row.metric
        ]
        assert line.split()[-1] == f"{100 * row.fitted_sd:.1f}%"
    # two runs are too few to tell runs apart from their own sampling
    assert _main(runs, "noise", "base", "slower") == 2
    assert "three or more runs" in capsys.readouterr().err


def test_comparison_notebook_without_whole_refuses_whole(runs, tmp_path):
    nb = nbformat.v4.new_notebook()
    cell = nbformat.v4.new_code_cell('base_dir = ""\ncandidate_dir = ""\nout_dir = ""')
    cell.metadata["tags"] = ["parameters"]
    nb.cells.append(cell)
    nb.metadata["kernelspec"] = {"name": "python3", "language": "python"}
    nbformat.write(nb, tmp_path / "compare.ipynb")

    with pytest.raises(AnalysisError, match="no 'whole' parameter"):
        analyze_comparison(
            runs / "base",
            runs / "slower",
            tmp_path / "out",
            whole=True,
            notebooks_dir=tmp_path,
        )


# ---------------------------------------------------------------------------
# runs


def test_runs_lists_every_run(runs, capsys):
    assert _main(runs, "runs") == 0
    out = capsys.readouterr().out

    lines = out.splitlines()
    assert lines[0].split() == [
        "RUN",
        "ID",
        "DATE",
        "(UTC)",
        "TOOL",
        "SCENARIO",
        "ENVIRONMENT",
        "REQUESTS",
        "P95",
        "MS",
        "STATUS",
        "VERDICT",
    ]
    for row in catalog(runs).itertuples(index=False):
        (line,) = [x for x in lines if x.startswith(row.id + " ")]
        assert line.split() == [
            row.id,
            "2026-12-03",
            "19:40",
            "locust",
            "publishing",
            "local",
            f"{int(row.requests):,}",
            f"{row.p95:,.1f}",
            "completed",
            row.check or "-",
        ]
    assert lines[-1].startswith(f"3 runs in {runs}; requests and p95: the whole run")


def test_runs_shows_the_verdict_a_check_recorded(tmp_path, capsys):
    store = tmp_path / "runs"
    make_run(store, "checked")
    make_run(store, "unchecked", seed=2)
    assert _main(store, "check", "checked") == 1  # POST /publications fails
    capsys.readouterr()

    assert _main(store, "runs") == 0
    lines = capsys.readouterr().out.splitlines()
    (checked,) = [x for x in lines if x.startswith("checked ")]
    (unchecked,) = [x for x in lines if x.startswith("unchecked ")]
    assert checked.split()[-1] == "fail"
    assert unchecked.split()[-1] == "-"
    recorded = open_run(store / "checked").meta["check"]
    assert recorded["verdict"] == "fail" and recorded["fail"] >= 1
    assert recorded["targets"] == [str(default_targets().sources[0])]
    assert recorded["window"].startswith("steady state")


def test_runs_trend_shows_each_verdict(runs, capsys):
    assert _main(runs, "runs", "--trend") == 0
    out = capsys.readouterr().out

    trends = trend(runs)
    compared = trends[trends["previous"].notna()]
    assert len(compared) == 2  # the first of the three comparable runs has none
    for row in compared.itertuples(index=False):
        (line,) = [x for x in out.splitlines() if x.startswith(row.id + " ")]
        assert row.verdict in line
        if row.regressions:
            assert f"({row.regressions} regression" in line


def test_runs_of_an_empty_store(tmp_path, capsys):
    assert _main(tmp_path / "nothing", "runs") == 0
    assert capsys.readouterr().out == f"no runs in {tmp_path / 'nothing'}\n"


# ---------------------------------------------------------------------------
# errors


def test_bad_targets_file_names_file_and_line(runs, tmp_path, capsys):
    bad = _targets(
        tmp_path,
        "extends: none\nendpoints:\n  - endpoint: GET /publications\n    p95: 100\n",
        "bad.yaml",
    )
    assert _main(runs, "check", "healthy", "--targets", bad) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"perflab: error: {bad}:4: Unknown key 'p95'")
    assert "Traceback" not in err


@pytest.mark.parametrize(
    "args, message",
    [
        (
            ["check", "healthy", "--targets", "missing.yaml"],
            "missing.yaml: The targets",
        ),
        (["check", "healthy", "--replace-default"], "--replace-default needs"),
        (["check", "no-such-run"], "No run found at 'no-such-run'"),
        (["check", "healthy", "--baseline", "gone"], "No run found at 'gone'"),
        (["compare", "base", "gone"], "No run found at 'gone'"),
        (["compare", "base", "slower", "--threshold", "5"], "argument --threshold"),
        (["compare", "base", "slower", "--threshold", "x"], "is not a number"),
    ],
)
def test_usage_and_input_errors_exit_2(
    runs, tmp_path, monkeypatch, capsys, args, message
):
    monkeypatch.chdir(tmp_path)
    assert _main(runs, *args) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_a_baseline_that_cannot_be_compared_is_an_error(store, capsys):
    make_run(store, "base")
    make_aggregate_run(store, "imported")  # the tool's aggregates, no samples
    assert _main(store, "check", "imported", "--baseline", "base") == 2
    captured = capsys.readouterr()
    assert "Run imported has no per-request samples" in captured.err
    assert captured.out == ""  # no half-printed check


def test_an_empty_targets_file_checks_nothing_and_says_so(runs, tmp_path, capsys):
    empty = _targets(tmp_path, "extends: none\n", "empty.yaml")
    assert _main(runs, "check", "healthy", "--targets", empty) == 2
    assert "sets no target" in capsys.readouterr().err


def test_threshold_accepts_a_fraction_or_a_percentage():
    assert cli._threshold("0.05") == cli._threshold("5%") == pytest.approx(0.05)


# ---------------------------------------------------------------------------
# run --shape


@pytest.fixture
def launched(monkeypatch, tmp_path):
    """Replace run_locust: record the options, return a completed run."""
    calls = []

    def fake_run_locust(options, store, run_id=None):
        calls.append(options)
        run = create_run(store, run_id=f"fake-{len(calls)}", status="completed")
        return run

    monkeypatch.setattr("perflab.launching.run_locust", fake_run_locust)
    return calls


@pytest.mark.parametrize(
    "option, spec, stages",
    [
        (
            "--shape",
            "steps:2:2:3:5s",
            [(1, 2), (5, 2), (1, 4), (5, 4), (1, 6), (5, 6), (1, 0)],
        ),
        (
            "--shape",
            "steps:10:10:2:1m:5s",
            [(5, 10), (60, 10), (5, 20), (60, 20), (5, 0)],
        ),
        ("--stages", "10s:5,20s:5,5s:0", [(10, 5), (20, 5), (5, 0)]),
        (None, None, [(10, 20), (40, 20), (10, 0)]),  # the default
    ],
)
def test_run_takes_stages_or_a_step_load(
    launched, tmp_path, capsys, option, spec, stages
):
    shape = [option, spec] if option else []
    code = _main(tmp_path / "runs", "run", "--host", "http://127.0.0.1:9", *shape)
    assert code == 0
    (options,) = launched
    assert options.stages == [Stage(float(d), u) for d, u in stages]
    assert "run: " in capsys.readouterr().out


@pytest.mark.parametrize(
    "spec, message",
    [
        ("steps:2:x:3:5s", "START, STEP and COUNT must be whole numbers"),
        ("steps:2:2:3", "is not a step load"),
        ("steps:0:2:3:5s", "at least 1"),
        ("10s", "Stage 1 ('10s') is not DURATION:USERS"),
        ("10s:5,soon:5", "Stage 2 ('soon:5')"),
    ],
)
def test_malformed_shapes_exit_2(launched, tmp_path, capsys, spec, message):
    code = _main(
        tmp_path / "runs", "run", "--host", "http://127.0.0.1:9", "--shape", spec
    )
    err = capsys.readouterr().err
    assert code == 2
    assert "argument --shape/--stages" in err and message in err
    assert not launched


def test_check_of_a_run_without_requests_is_inconclusive(tmp_path, capsys):
    # Locust's stats CSV of a run that sent nothing: one Aggregated row of zeros
    header = (
        "Type,Name,Request Count,Failure Count,Median Response Time,"
        "Average Response Time,Min Response Time,Max Response Time,"
        "Average Content Size,Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,"
        "99%,99.9%,99.99%,100%\n"
    )
    stats = tmp_path / "idle_stats.csv"
    stats.write_text(header + ",Aggregated,0,0,0,0.0,0,0,0,0.0,0.0" + ",N/A" * 11)
    store = tmp_path / "runs"
    assert _main(store, "ingest", "--run-id", "idle", str(stats)) == 0
    capsys.readouterr()

    assert _main(store, "check", "idle") == 1
    out = capsys.readouterr().out
    assert "system error_rate_percent" in out
    assert "The tool's aggregate table counts no requests." in out
    assert out.rstrip().endswith("Check inconclusive: no target could be evaluated.")


def test_analyze_whole_reaches_the_notebooks(runs, tmp_path, monkeypatch, capsys):
    # the wiring only: the notebooks themselves run in tests/test_notebooks.py
    import perflab.notebooks

    seen = {}

    def analyze(run, out_dir=None, whole=False, **_):
        seen.update(run=run.id, out_dir=out_dir, whole=whole)
        return SimpleNamespace(
            report_md=out_dir / "report.md", report_html=out_dir / "report.html"
        )

    monkeypatch.setattr(perflab.notebooks, "analyze", analyze)
    out = tmp_path / "out"
    assert _main(runs, "analyze", "healthy", "--whole", "--out", str(out)) == 0
    assert seen == {"run": "healthy", "out_dir": out, "whole": True}
    assert _main(runs, "analyze", "healthy", "--out", str(out)) == 0
    assert seen["whole"] is False
    assert f"report: {out / 'report.md'}" in capsys.readouterr().out

"""The markdown report: the plan's layout, numbers equal to an independent computation
from requests.parquet over the steady-state window, confidence intervals, and honesty
about what was not measured."""

from __future__ import annotations

import re
import sys

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
from runfactory import START, make_aggregate_run, make_run

from perflab import statistics, windows
from perflab.findings import FindingsResult
from perflab.reporting import (
    HEADINGS,
    endpoint_summary,
    format_count,
    format_duration,
    format_interval,
    format_ms,
    render_markdown,
    results_summary,
    run_findings,
    write_figures,
    write_report,
)
from perflab.store import Run, create_run

PLAN_FIELDS = ["**Date**", "**Environment**", "**Duration**", "**Peak Users**"]
RESULT_FIELDS = [
    "Total Requests",
    "Window Analysed",
    "Success Rate",
    "Throughput",
    "Latency p95",
    "Latency p99",
]
RESOURCE_FIELDS = ["API CPU", "API Memory", "DB Connections", "Redis Memory"]


def _section(text: str, heading: str) -> list[str]:
    """The lines under a heading, up to the next heading."""
    lines = text.splitlines()
    start = lines.index(heading) + 1
    end = next(
        (i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines)
    )
    return [line for line in lines[start:end] if line.strip()]


def _results(text: str) -> dict[str, str]:
    """Results bullets by label."""
    found = {}
    for line in _section(text, "### Results"):
        match = re.match(r"- \*\*(.+?)\*\*: (.*)", line)
        found[match.group(1)] = match.group(2)
    return found


def _bullet_labels(lines: list[str]) -> list[str]:
    return [re.match(r"- \*\*(.+?)\*\*:", line).group(1) for line in lines]


def _nearest_rank(values: np.ndarray, quantile: float) -> float:
    """The sample at 1-based rank ceil(q * n) of the sorted values, by hand."""
    ordered = np.sort(values)
    return float(ordered[int(np.ceil(quantile * ordered.size)) - 1])


def _window_rows(run) -> tuple[pd.DataFrame, windows.Window]:
    """requests.parquet read directly, cut to the steady window by hand."""
    table = pq.read_table(run.path / "requests.parquet").to_pandas()
    window = windows.run_window(run)
    inside = table[(table["ts"] >= window.start) & (table["ts"] < window.end)]
    return inside, window


@pytest.fixture
def run(store):
    return make_run(store)


def test_layout_follows_the_plan(run):
    text = render_markdown(run)
    lines = text.splitlines()

    assert lines[0] == "## Load Test Results"
    assert [line for line in lines if line.startswith("#")] == list(HEADINGS)
    header = _section(text, "## Load Test Results")
    assert [line.split(":")[0] for line in header] == PLAN_FIELDS
    assert _bullet_labels(_section(text, "### Results")) == RESULT_FIELDS
    assert _bullet_labels(_section(text, "### Resource Usage")) == RESOURCE_FIELDS
    assert _section(text, "### Bottlenecks Identified")[0].startswith("1. ")
    assert _section(text, "### Recommendations")[0].startswith("1. ")
    assert _section(text, "### Targets")


def test_the_synthetic_run_has_a_ramp_to_leave_out(run):
    inside, window = _window_rows(run)
    assert window.steady
    assert 0 < len(inside) < len(run.table("requests"))


def test_total_requests_is_the_whole_run_and_the_window_is_counted_apart(run):
    # the acceptance check of issue 2: Total Requests equals requests.parquet's rows
    rows = pq.read_metadata(run.path / "requests.parquet").num_rows
    inside, window = _window_rows(run)
    results = _results(render_markdown(run))

    assert _section(render_markdown(run), "### Results")[0] == (
        f"- **Total Requests**: {rows:,}"
    )
    assert results["Window Analysed"] == (
        f"steady state {window.start:%H:%M:%S}–{window.end:%H:%M:%S} UTC (users held "
        f"at 10), ramp-up and ramp-down left out: {len(inside):,} requests of "
        f"{rows:,}"
    )
    summary = results_summary(run)
    assert summary["run_requests"] == rows
    assert summary["requests"] == len(inside)


def test_percentiles_and_intervals_equal_an_independent_computation(run):
    inside, _ = _window_rows(run)
    latency = inside["latency_ms"].to_numpy(dtype=float)
    n = latency.size
    p95, p99 = _nearest_rank(latency, 0.95), _nearest_rank(latency, 0.99)
    assert p95 == float(np.quantile(latency, 0.95, method="inverted_cdf"))
    intervals = statistics.percentile_intervals(latency, (95.0, 99.0), warn=False)
    bounds = {row.column: (row.low, row.high) for row in intervals.itertuples()}

    summary = results_summary(run)
    assert (summary["p95"], summary["p99"]) == (p95, p99)
    assert (summary["p95_low"], summary["p95_high"]) == bounds["p95"]
    assert (summary["p99_low"], summary["p99_high"]) == bounds["p99"]

    results = _results(render_markdown(run))
    how = f"nearest-rank over all {n:,} requests of the window"
    low, high = bounds["p95"]
    assert results["Latency p95"] == (
        f"{format_ms(p95)} (95 % CI {low:,.0f}–{high:,.0f} ms, {how})"
    )
    assert results["Latency p99"].startswith(
        f"{format_ms(p99)} ({format_interval(*bounds['p99'])}, {how})"
    )


def test_endpoint_table_intervals_equal_an_independent_computation(run):
    inside, _ = _window_rows(run)
    table = endpoint_summary(run)
    for label, group in [*inside.groupby("endpoint"), ("Overall", inside)]:
        row = table[table["endpoint"] == label].iloc[0]
        expected = statistics.percentile_intervals(
            group["latency_ms"], (50.0, 95.0, 99.0, 99.9), warn=False
        )
        for bound in expected.itertuples():
            assert row[bound.column] == bound.value
            assert row[f"{bound.column}_low"] == pytest.approx(bound.low, nan_ok=True)
            assert row[f"{bound.column}_high"] == pytest.approx(bound.high, nan_ok=True)
        assert row["requests"] == len(group)

    shown = endpoint_summary(run, formatted=True)
    overall = shown[shown["endpoint"] == "Overall"].iloc[0]
    p50 = table[table["endpoint"] == "Overall"].iloc[0]
    assert overall["p50 ms (95 % CI)"] == (
        f"{p50['p50']:.1f} ({p50['p50_low']:.1f}–{p50['p50_high']:.1f})"
    )


def test_whole_run_gives_whole_run_numbers(run):
    table = pq.read_table(run.path / "requests.parquet").to_pandas()
    latency = table["latency_ms"].to_numpy(dtype=float)
    n = len(table)

    summary = results_summary(run, whole=True)
    assert summary["requests"] == summary["run_requests"] == n
    assert summary["p95"] == _nearest_rank(latency, 0.95)
    assert summary["p99"] == _nearest_rank(latency, 0.99)
    window = windows.run_window(run, whole=True)
    assert summary["throughput"] == n / window.seconds

    text = render_markdown(run, whole=True)
    results = _results(text)
    assert results["Window Analysed"].startswith("the whole run ")
    assert "ramp-up and ramp-down included (asked for with whole=True)" in text
    assert results["Window Analysed"].endswith(f": {n:,} requests of {n:,}")
    assert f"over all {n:,} requests of the window" in results["Latency p95"]
    assert text != render_markdown(run)


def test_success_rate_and_throughput_over_the_window(run):
    inside, window = _window_rows(run)
    failed = int((~inside["ok"]).sum())
    summary = results_summary(run)
    assert summary["success_rate"] == (len(inside) - failed) / len(inside)
    assert summary["throughput"] == len(inside) / window.seconds
    assert summary["window_s"] == window.seconds
    assert f"({failed:,} failed)" in _results(render_markdown(run))["Success Rate"]


def test_window_is_printed_in_notes(run):
    inside, window = _window_rows(run)
    notes = "\n".join(_section(render_markdown(run), "### Notes"))
    total = len(run.table("requests"))
    assert (
        f"- Window analysed: steady state {window.start:%H:%M:%S}–"
        f"{window.end:%H:%M:%S} UTC (users held at 10), ramp-up and ramp-down left "
        f"out: {len(inside):,} requests of {total:,}; chosen as {window.how}."
    ) in notes


def test_too_few_samples_are_flagged_next_to_the_number_and_in_notes(store):
    run = make_run(store, duration_s=8, peak_users=2, requests_per_user_s=2.0)
    inside, _ = _window_rows(run)
    n = len(inside)
    assert n < 200  # too few for p95 and p99
    text = render_markdown(run)
    results = _results(text)
    for name, needed in (("p95", 200), ("p99", 1000)):
        assert results[f"Latency {name}"].endswith(
            f"; **warning: {name} from {n:,} requests: too few samples to mean "
            f"anything (at least {needed:,} needed)**"
        )
    notes = _section(text, "### Notes")
    numbers = endpoint_summary(run)
    expected = statistics.sample_size_warnings(
        numbers[["endpoint", "requests", "p50", "p95", "p99", "p99_9"]],
        (50.0, 95.0, 99.0, 99.9),
        warn=False,
    )
    assert expected
    assert all(f"- Warning: {message}" in notes for message in expected)
    rows = _section(text, "### Endpoints")
    overall = next(row for row in rows if row.startswith("| Overall"))
    assert "too few samples" in overall


def test_enough_samples_carry_no_warning(store):
    run = make_run(store, duration_s=40, peak_users=40, requests_per_user_s=2.0)
    results = _results(render_markdown(run))
    assert results_summary(run)["requests"] >= 1000
    assert "warning" not in results["Latency p95"]
    assert "warning" not in results["Latency p99"]


def test_unmeasured_resources_say_not_measured(store):
    text = render_markdown(make_run(store, tables=("requests",)))
    resources = _section(text, "### Resource Usage")
    assert resources == [f"- **{field}**: not measured" for field in RESOURCE_FIELDS]


def test_measured_resources_show_average_and_peak(run):
    resources = _section(render_markdown(run), "### Resource Usage")
    assert "average" in resources[0] and "peak" in resources[0]
    assert resources[2:] == [
        "- **DB Connections**: not measured",
        "- **Redis Memory**: not measured",
    ]


@pytest.mark.parametrize(
    "tables", [(), ("endpoints",), ("requests",), ("intervals", "resources")]
)
def test_never_prints_nan(store, tables):
    text = render_markdown(make_run(store, tables=tables))
    assert not re.search(r"\bnan\b", text, re.IGNORECASE)


def test_run_without_any_table_is_not_measured(store):
    text = render_markdown(make_run(store, tables=()))
    results = _section(text, "### Results")
    assert results == [f"- **{field}**: not measured" for field in RESULT_FIELDS]
    assert "Per-endpoint numbers: not measured." in text


def test_aggregate_only_run_states_resolution_and_gives_no_interval(store):
    run = make_aggregate_run(store)
    text = render_markdown(run)

    results = _results(text)
    assert "Locust's aggregate count" in results["Total Requests"]
    assert results["Window Analysed"].startswith("the whole run: the tool's aggregate")
    for name in ("Latency p95", "Latency p99"):
        assert "aggregate percentile" in results[name]
        assert "not computed from samples" in results[name]
        assert "no interval: the tool's aggregate" in results[name]
        assert "CI" not in results[name]
    notes = "\n".join(_section(text, "### Notes"))
    assert "Table `endpoints`: 4 rows, Locust's aggregate, not exact" in notes
    assert "rounded to 2 significant digits" in notes
    assert statistics.resolution_note("locust") in notes
    assert "Table `requests`: absent (not measured)." in notes
    header = _section(text, "### Endpoints")[0]
    assert "p95 ms (tool's, no CI)" in header and "95 % CI" not in header


def test_inconsistent_tool_percentiles_are_fixed_with_a_visible_warning(store):
    source = make_run(store, "source", tables=("endpoints",))
    endpoints = source.table("endpoints")
    overall = endpoints["endpoint"] == "Overall"
    # a p99 below the p95, as a tool that rounds can report
    endpoints.loc[overall, "p99"] = endpoints.loc[overall, "p95"] - 5.0
    run = create_run(store, "imported", tool="locust", start=START.isoformat())
    run.write_table("endpoints", endpoints, "aggregate", "Locust's stats CSV.")
    tidy = statistics.tidy_tool_percentiles(endpoints, "locust", warn=False)

    text = render_markdown(run)
    results = _results(text)
    assert "changed by perflab" in results["Latency p99"]
    assert "changed by perflab" not in results["Latency p95"]
    assert results_summary(run)["p99"] == tidy.loc[overall, "p99"].iloc[0]
    notes = "\n".join(_section(text, "### Notes"))
    assert tidy.attrs["changes"]
    for change in tidy.attrs["changes"]:
        assert change in notes
    rows = _section(text, "### Endpoints")
    assert "adjusted" in next(row for row in rows if row.startswith("| Overall"))


def _stalled_run(store):
    """Ten closed-model users sending every 100 ms; at 10 s each waits 2 s once."""
    rows = []
    for user in range(10):
        t, stalled = user * 0.01, False
        while t < 20.0:
            latency = 20.0
            if t >= 10.0 and not stalled:
                latency, stalled = 2000.0, True
            rows.append((t, user, latency))
            t += latency / 1000.0 + 0.08
    frame = pd.DataFrame(rows, columns=["s", "user", "latency_ms"])
    requests = pd.DataFrame(
        {
            "ts": START + pd.to_timedelta(frame["s"], unit="s"),
            "endpoint": "GET /publications",
            "method": "GET",
            "name": "/publications",
            "status": 200,
            "latency_ms": frame["latency_ms"],
            "bytes": 100,
            "ok": True,
            "worker": "locust-0",
            "user": frame["user"],
        }
    ).sort_values("ts", kind="stable")
    run = create_run(store, "stalled", tool="locust", start=START.isoformat())
    run.write_table("requests", requests, "exact")
    return run


def test_coordinated_omission_is_shown_with_corrected_percentiles(store):
    run = _stalled_run(store)
    text = render_markdown(run, findings=FindingsResult())
    bottlenecks = "\n".join(_section(text, "### Bottlenecks Identified"))
    assert bottlenecks.startswith("1. **Coordinated omission** (warning).")
    assert "Latency corrected for coordinated omission" in bottlenecks
    recommendations = "\n".join(_section(text, "### Recommendations"))
    assert "open workload" in recommendations


def test_coordinated_omission_is_not_shown_twice(store):
    run = _stalled_run(store)
    findings = run_findings(run)
    text = render_markdown(run, findings)
    mine = "**Coordinated omission** (warning)" in text
    assert mine != bool(findings.of_kind("coordinated_omission"))
    # either way, the corrected percentiles appear once, under the one item
    assert text.count("Latency corrected for coordinated omission") == 1
    notes = "\n".join(_section(text, "### Notes"))
    assert "Corrected for coordinated omission in the manner of HdrHistogram" in notes


def test_no_omission_is_said_in_notes(run):
    notes = "\n".join(_section(render_markdown(run), "### Notes"))
    assert "No coordinated omission detected" in notes


def test_targets_section_renders_without_the_checker(run, monkeypatch):
    monkeypatch.setitem(sys.modules, "perflab.checking", None)  # import fails
    targets = _section(render_markdown(run), "### Targets")
    assert targets == [
        "Not checked: this perflab has no targets checker (perflab.checking)."
    ]


def test_targets_section_shows_the_checker_table(run):
    checking = pytest.importorskip("perflab.checking")
    expected = checking.check_run(run, window=windows.run_window(run)).to_markdown()
    targets = "\n".join(_section(render_markdown(run), "### Targets"))
    assert targets == "\n".join(line for line in expected.splitlines() if line.strip())


def test_notes_carry_method_provenance_warnings_and_locust_count(run):
    notes = "\n".join(_section(render_markdown(run), "### Notes"))
    assert statistics.METHOD_DESCRIPTIONS["nearest-rank"] in notes
    assert "Confidence intervals (95 % CI): distribution-free" in notes
    assert "Table `requests`: " in notes and "exact" in notes
    assert run.meta["warnings"][0] in notes
    # perflab run's account of the two counts, once
    assert f"- {run.meta['in_flight_at_stop']}" in notes
    assert notes.count("Aggregated row counts") == 1


def test_notes_give_locust_count_without_an_account_of_it(run, tmp_path):
    imported = Run(tmp_path / "imported", dict(run.meta))
    imported.meta.pop("in_flight_at_stop")
    imported.path.mkdir()
    for name in ("requests", "intervals", "endpoints", "errors"):
        imported.write_table(name, run.table(name), "exact")
    notes = "\n".join(_section(render_markdown(imported), "### Notes"))
    n = len(run.table("requests"))
    assert (
        f"Locust's own Aggregated row counts {n + 3:,} requests; "
        f"the recorder wrote {n:,}." in notes
    )


def test_endpoint_table_lists_every_endpoint_then_overall(run):
    rows = _section(render_markdown(run), "### Endpoints")
    labels = [row.split("|")[1].strip() for row in rows[2:] if row.startswith("|")]
    assert labels == [
        "GET /analytics/engagement",
        "GET /publications",
        "POST /publications",
        "Overall",
    ]
    assert rows[0].split("|")[4].strip() == "p50 ms (95 % CI)"


def test_write_report_writes_report_md(run, tmp_path):
    path = write_report(run, tmp_path / "reports" / run.id)
    assert path == tmp_path / "reports" / run.id / "report.md"
    assert path.read_text() == render_markdown(run)
    whole = write_report(run, tmp_path / "whole", whole=True)
    assert whole.read_text() == render_markdown(run, whole=True)


def test_formats():
    assert format_duration(600) == "10 minutes"
    assert format_duration(750) == "12 min 30 s"
    assert format_duration(None) == "not measured"
    assert format_ms(142.4) == "142 ms"
    assert format_ms(87.46) == "87.5 ms"
    assert format_ms(float("nan")) == "n/a (no samples)"
    assert format_count(500000) == "500,000"
    assert format_interval(138.2, 147.0) == "95 % CI 138–147 ms"
    assert format_interval(87.46, 101.0) == "95 % CI 87.5–101 ms"
    assert format_interval(None, 147.0).endswith("to 147 ms")
    assert "beyond the largest latency seen" in format_interval(138.0, None)


def test_write_figures_skips_what_was_not_measured(store, tmp_path):
    run = make_run(store, tables=("requests",))
    paths = write_figures(run, tmp_path)
    assert [p.name for p in paths] == [
        "latency_histogram.png",
        "latency_ecdf.png",
        "latency_percentiles.png",
    ]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)


def test_an_intended_interval_corrects_without_a_detected_stall(store):
    run = make_run(store)
    run.meta["expected_interval_ms"] = 20.0
    run.save()
    notes = "\n".join(_section(render_markdown(run), "### Notes"))
    assert "No coordinated omission detected" in notes
    (line,) = [x for x in notes.splitlines() if "Latency corrected" in x]
    assert "expected interval 20.0 ms, given" in line
    # By hand, on the window's requests: every latency L above 20 ms also counts
    # L - 20, L - 40, ... down to 20 ms; the corrected p99 is that sample's.
    requests = windows.window_requests(run.table("requests"), windows.run_window(run))
    latency = requests["latency_ms"].dropna().to_numpy()
    extra = [
        value - k * 20.0
        for value in latency
        for k in range(1, int(value // 20.0) + 1)
        if value - k * 20.0 >= 20.0
    ]
    every = np.sort(np.concatenate([latency, extra]))
    p99 = every[int(np.ceil(0.99 * every.size)) - 1]
    assert f"p99 {format_ms(p99)}" in line

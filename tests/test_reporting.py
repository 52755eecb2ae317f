"""The markdown report: the plan's layout, numbers equal to an independent computation
from requests.parquet, and honesty about what was not measured."""

from __future__ import annotations

import re

import numpy as np
import pyarrow.parquet as pq
import pytest
from runfactory import make_aggregate_run, make_run

from perflab import plotting, statistics
from perflab.reporting import (
    HEADINGS,
    format_count,
    format_duration,
    format_ms,
    render_markdown,
    results_summary,
    write_figures,
    write_report,
)

PLAN_FIELDS = ["**Date**", "**Environment**", "**Duration**", "**Peak Users**"]
RESULT_FIELDS = [
    "Total Requests",
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


def _bullet_labels(lines: list[str]) -> list[str]:
    return [re.match(r"- \*\*(.+?)\*\*:", line).group(1) for line in lines]


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


def test_totals_and_percentiles_equal_an_independent_computation(run):
    # read the file directly, not through perflab, and compute with plain numpy
    table = pq.read_table(run.path / "requests.parquet").to_pandas()
    latency = table["latency_ms"].to_numpy(dtype=float)
    n = len(table)
    ordered = np.sort(latency)
    # nearest rank by hand: the sample at 1-based rank ceil(q * n)
    p95 = float(ordered[int(np.ceil(0.95 * n)) - 1])
    p99 = float(ordered[int(np.ceil(0.99 * n)) - 1])
    assert p95 == float(np.quantile(latency, 0.95, method="inverted_cdf"))

    summary = results_summary(run)
    assert summary["requests"] == n
    assert summary["p95"] == p95
    assert summary["p99"] == p99
    assert statistics.percentiles(latency, (95.0, 99.0)) == {"p95": p95, "p99": p99}

    results = _section(render_markdown(run), "### Results")
    assert results[0] == f"- **Total Requests**: {n:,}"
    method = f"(nearest-rank over all {n:,} requests)"
    assert results[3] == f"- **Latency p95**: {format_ms(p95)} {method}"
    assert results[4] == f"- **Latency p99**: {format_ms(p99)} {method}"


def test_success_rate_and_throughput(run):
    table = run.table("requests")
    failed = int((~table["ok"]).sum())
    summary = results_summary(run)
    assert summary["success_rate"] == (len(table) - failed) / len(table)
    assert summary["throughput"] == len(table) / statistics.window_seconds(table)
    text = render_markdown(run)
    assert f"({failed:,} failed)" in text


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


def test_aggregate_only_run_says_so(store):
    run = make_aggregate_run(store)
    text = render_markdown(run)

    results = _section(text, "### Results")
    assert "Locust's aggregate count" in results[0]
    assert "aggregate percentile" in results[3]
    assert "not computed from samples" in results[3]
    notes = "\n".join(_section(text, "### Notes"))
    assert "Table `endpoints`: 4 rows, Locust's aggregate, not exact" in notes
    assert "rounded to 2 significant digits" in notes
    assert "Table `requests`: absent (not measured)." in notes


def test_notes_carry_method_provenance_warnings_and_locust_count(run):
    notes = "\n".join(_section(render_markdown(run), "### Notes"))
    assert statistics.METHOD_DESCRIPTIONS["nearest-rank"] in notes
    assert "Window analysed: the whole run" in notes
    assert "Table `requests`: " in notes and "exact" in notes
    assert run.meta["warnings"][0] in notes
    n = len(run.table("requests"))
    assert (
        f"Locust's own Aggregated row counts {n + 3:,} requests; "
        f"the recorder wrote {n:,}." in notes
    )
    assert run.meta["in_flight_at_stop"] in notes


def test_endpoint_table_lists_every_endpoint_then_overall(run):
    rows = _section(render_markdown(run), "### Endpoints")
    labels = [row.split("|")[1].strip() for row in rows[2:]]
    assert labels == [
        "GET /analytics/engagement",
        "GET /publications",
        "POST /publications",
        "Overall",
    ]


def test_write_report_writes_report_md(run, tmp_path):
    path = write_report(run, tmp_path / "reports" / run.id)
    assert path == tmp_path / "reports" / run.id / "report.md"
    assert path.read_text().startswith("## Load Test Results\n")


def test_formats():
    assert format_duration(600) == "10 minutes"
    assert format_duration(750) == "12 min 30 s"
    assert format_duration(None) == "not measured"
    assert format_ms(142.4) == "142 ms"
    assert format_ms(87.46) == "87.5 ms"
    assert format_ms(float("nan")) == "n/a (no samples)"
    assert format_count(500000) == "500,000"


def test_write_figures_skips_what_was_not_measured(store, tmp_path):
    run = make_run(store, tables=("requests",))
    paths = write_figures(run, tmp_path)
    assert [p.name for p in paths] == ["latency_histogram.png", "latency_ecdf.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") for p in paths)


def test_figures_of_absent_tables_say_not_measured(store):
    run = make_run(store, tables=())
    figures = [
        plotting.latency_histogram(run.table("requests")),
        plotting.latency_ecdf(run.table("requests")),
        plotting.percentiles_over_time(run.table("intervals")),
        plotting.throughput_over_time(run.table("intervals")),
        plotting.resource_usage(run.table("resources")),
    ]
    for figure in figures:
        texts = [t.get_text() for ax in figure.axes for t in ax.texts]
        assert any(text.startswith("Not measured") for text in texts)


def test_endpoint_colors_are_fixed_by_label_order():
    first = plotting.endpoint_colors(["b", "a", "Overall"])
    second = plotting.endpoint_colors(["a", "b"])
    assert first == second
    assert first["a"] == plotting.PALETTE[0] and first["b"] == plotting.PALETTE[1]
    assert first["Overall"] == plotting.OVERALL_COLOR

"""The run catalog and the trend across runs, on a small synthetic run store."""

from __future__ import annotations

import math

import pandas as pd
import pytest
from runfactory import ENDPOINTS, make_aggregate_run, make_run

from perflab.catalog import CATALOG_COLUMNS, catalog, plot_trend, trend
from perflab.comparing import SLOWER
from perflab.notebooks import default_notebooks_dir, kernel_for_this_python
from perflab.store import OVERALL

SIZE = {"duration_s": 30, "requests_per_user_s": 6.0}


def _dated(run, day: int):
    """Give a run another start date, so that the store has a history."""
    run.meta["start"] = f"2026-11-{day:02d}T10:00:00Z"
    run.save()
    return run


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    """Four comparable runs (the third 30 % slower on POST), an imported run without
    samples and a failed run."""
    store = tmp_path_factory.mktemp("runs")
    slower = {"POST /publications": ENDPOINTS["POST /publications"][2] * 1.3}
    _dated(make_run(store, "r1", seed=11, **SIZE), 1)
    _dated(make_run(store, "r2", seed=12, **SIZE), 2)
    _dated(make_run(store, "r3", seed=13, medians_ms=slower, **SIZE), 3)
    _dated(make_run(store, "r4", seed=14, medians_ms=slower, **SIZE), 4)
    _dated(make_aggregate_run(store, "imported"), 5)
    failed = _dated(make_run(store, "broken", seed=15, **SIZE), 6)
    failed.meta["status"] = "failed"
    failed.save()
    return store


def test_catalog_lists_every_run_in_date_order(history):
    runs = catalog(history)

    assert list(runs.columns) == CATALOG_COLUMNS
    # make_aggregate_run leaves its source run (endpoints only) on 2026-12-03
    assert runs["id"].tolist() == [
        "r1",
        "r2",
        "r3",
        "r4",
        "imported",
        "broken",
        "imported-source",
    ]
    assert runs["date"].is_monotonic_increasing
    first = runs.set_index("id").loc["r1"]
    endpoints = pd.read_parquet(history / "r1" / "endpoints.parquet")
    overall = endpoints[endpoints["endpoint"] == OVERALL].iloc[0]
    assert first["p95"] == overall["p95"]
    assert first["requests"] == overall["requests"]
    assert first["error_rate"] == overall["error_rate"]
    assert first["tool"] == "locust" and first["status"] == "completed"
    assert bool(first["samples"])
    imported = runs.set_index("id").loc["imported"]
    assert not imported["samples"] and not math.isnan(imported["p95"])


def test_catalog_reads_start_times_with_and_without_fractions(tmp_path):
    # a run ingested from whole-second history rows, and one with microseconds
    _dated(make_run(tmp_path, "whole", seed=1), 1)
    fraction = make_run(tmp_path, "fraction", seed=2)
    fraction.meta["start"] = "2026-11-02T10:00:00.524000Z"
    fraction.save()
    runs = catalog(tmp_path)
    assert runs["id"].tolist() == ["whole", "fraction"]
    assert runs["date"].tolist() == [
        pd.Timestamp("2026-11-01T10:00:00Z"),
        pd.Timestamp("2026-11-02T10:00:00.524Z"),
    ]


def test_catalog_of_an_empty_or_missing_store(tmp_path):
    assert catalog(tmp_path / "nothing").empty
    assert list(catalog(tmp_path).columns) == CATALOG_COLUMNS


def test_trend_marks_the_significant_change(history):
    trends = trend(history).set_index("id")

    assert "broken" not in trends.index  # only completed runs
    assert pd.isna(trends.loc["r1", "previous"])
    assert trends.loc["r2", "previous"] == "r1"
    assert trends.loc["r3", "previous"] == "r2"
    assert trends.loc["r3", "verdict"] == SLOWER
    assert trends.loc["r3", "regressions"] >= 1
    assert trends["changed"].tolist()[:4] == [False, False, True, False]
    assert pd.isna(trends.loc["imported", "previous"])  # no samples to compare
    assert len(plot_trend(trends.reset_index()).axes) == 4


def test_trend_notebook_runs_under_papermill(history, tmp_path):
    import nbformat
    import papermill

    source = default_notebooks_dir() / "trend.ipynb"
    stored = nbformat.read(source, as_version=4)
    tagged = [c for c in stored.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1
    assert all(c.outputs == [] for c in stored.cells if c.cell_type == "code")

    out_dir = tmp_path / "out"
    papermill.execute_notebook(
        str(source),
        str(tmp_path / "trend.ipynb"),
        parameters={"store_dir": str(history), "out_dir": str(out_dir)},
        kernel_name=kernel_for_this_python(),
        progress_bar=False,
    )
    assert (out_dir / "figures" / "trend.png").stat().st_size > 1000
    assert len(pd.read_csv(out_dir / "trend.csv")) == 6  # the completed runs

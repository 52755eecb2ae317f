"""The figures: each builds on the synthetic run with labelled axes, the percentile
plot's x axis shows the nines, and an endpoint keeps its colour across figures."""

from __future__ import annotations

import matplotlib.colors as mcolors
import numpy as np
import pytest
from runfactory import make_run

from perflab import plotting, windows
from perflab.store import OVERALL


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("runs"))


@pytest.fixture(scope="module")
def tables(run):
    requests = run.table("requests")
    window = windows.run_window(run)
    return {
        "requests": requests,
        "window": window,
        "inside": windows.window_requests(requests, window),
        "intervals": run.table("intervals"),
        "resources": run.table("resources"),
    }


def _figures(tables) -> dict:
    inside, window = tables["inside"], tables["window"]
    return {
        "latency_histogram": plotting.latency_histogram(inside),
        "latency_ecdf": plotting.latency_ecdf(inside),
        "percentile_plot": plotting.percentile_plot(inside),
        "latency_heatmap": plotting.latency_heatmap(tables["requests"], window),
        "latency_boxplot": plotting.latency_boxplot(inside),
        "percentiles_over_time": plotting.percentiles_over_time(
            tables["intervals"], window=window
        ),
        "throughput_over_time": plotting.throughput_over_time(
            tables["intervals"], window=window
        ),
        "resource_usage": plotting.resource_usage(tables["resources"]),
    }


def _line_colors(ax) -> dict[str, str]:
    """Legend label (up to its first " (") to the line's colour, as hex."""
    return {
        line.get_label().split(" (")[0]: mcolors.to_hex(line.get_color())
        for line in ax.get_lines()
        if not line.get_label().startswith("_")
    }


def test_every_figure_builds_with_labelled_axes(tables, tmp_path):
    for name, figure in _figures(tables).items():
        bars = [ax for ax in figure.axes if ax.get_label() == "<colorbar>"]
        plotted = [ax for ax in figure.axes if ax.has_data() and ax not in bars]
        assert plotted, name
        assert all(ax.get_ylabel() for ax in plotted + bars), name
        # the bottom panel names the x axis
        assert plotted[-1].get_xlabel(), name
        assert figure.description() != "figure", name
        path = plotting.save_figure(figure, tmp_path / f"{name}.png")
        assert path.read_bytes().startswith(b"\x89PNG")


def test_percentile_plot_x_ticks_are_the_nines(tables):
    figure = plotting.percentile_plot(tables["inside"])
    ax = figure.axes[0]
    figure.canvas.draw()
    labels = [t.get_text() for t in ax.get_xticklabels() if t.get_text()]
    n = len(tables["inside"])
    # 530 samples reach 99.8 %: the axis runs to the next power of ten, 99.9 %
    assert n < 1000
    assert labels == ["0%", "50%", "90%", "99%", "99.9%"]
    assert ax.get_xscale() == "log"
    assert list(ax.get_xticks()) == pytest.approx([1, 2, 10, 100, 1000])


def test_percentile_plot_lines_are_the_nearest_rank_percentiles(tables):
    inside = tables["inside"]
    ax = plotting.percentile_plot(inside).axes[0]
    overall = next(
        line for line in ax.get_lines() if line.get_label().startswith(OVERALL)
    )
    x, y = overall.get_data()
    ordered = np.sort(inside["latency_ms"].to_numpy(float))
    q = 1.0 - 1.0 / np.asarray(x)
    ranks = np.clip(np.ceil(q * ordered.size - 1e-9).astype(int), 1, ordered.size)
    assert np.array_equal(y, ordered[ranks - 1])
    assert y[0] == ordered[0]
    # the shaded confidence band of Overall is drawn
    assert any("confidence interval" in c.get_label() for c in ax.collections)


def test_percentile_plot_marks_where_too_few_samples_lie_above(tables):
    ax = plotting.percentile_plot(tables["inside"]).axes[0]
    n = len(tables["inside"])
    marks = [
        line for line in ax.get_lines() if line.get_label().startswith("right of it")
    ]
    assert len(marks) == 1
    assert marks[0].get_xdata()[0] == pytest.approx(n / 10)


def test_heatmap_counts_every_request(tables):
    requests = tables["requests"]
    figure = plotting.latency_heatmap(requests, tables["window"])
    ax = figure.axes[0]
    mesh = ax.collections[0]
    assert mesh.get_array().sum() == requests["latency_ms"].notna().sum()
    assert ax.get_yscale() == "log"
    assert ax.get_xlabel() == "time (UTC)"


def test_boxplot_uses_nearest_rank_percentiles(tables):
    inside = tables["inside"]
    ax = plotting.latency_boxplot(inside).axes[0]
    labels = [t.get_text().split("\n")[0] for t in ax.get_yticklabels()]
    assert labels == [*sorted(inside["endpoint"].unique()), OVERALL]
    # the Overall box spans the nearest-rank p25 to p75 of every sample
    edges = ax.patches[-1].get_path().vertices[:, 0]
    latency = inside["latency_ms"]
    assert (edges.min(), edges.max()) == (
        float(np.quantile(latency, 0.25, method="inverted_cdf")),
        float(np.quantile(latency, 0.75, method="inverted_cdf")),
    )


def test_the_same_endpoint_gets_the_same_colour_in_every_figure(tables):
    inside = tables["inside"]
    colors = plotting.endpoint_colors(inside["endpoint"])
    for figure in (
        plotting.latency_ecdf(inside),
        plotting.percentile_plot(inside),
    ):
        drawn = _line_colors(figure.axes[0])
        for label, color in colors.items():
            if label in drawn:
                assert drawn[label] == color
    # twice the same call, the same colours
    first = _line_colors(plotting.percentile_plot(inside).axes[0])
    second = _line_colors(plotting.percentile_plot(inside).axes[0])
    assert first == second


def test_given_colours_hold_when_a_figure_shows_fewer_endpoints(tables):
    inside = tables["inside"]
    colors = plotting.endpoint_colors(inside["endpoint"])
    one = inside[inside["endpoint"] == "POST /publications"]
    drawn = _line_colors(plotting.latency_ecdf(one, colors=colors).axes[0])
    assert drawn == {"POST /publications": colors["POST /publications"]}
    # without the run's colours, the lone endpoint would take the first colour
    alone = _line_colors(plotting.latency_ecdf(one).axes[0])
    assert alone == {"POST /publications": plotting.PALETTE[0]}


def test_steady_window_is_shaded_on_series_over_time(tables):
    figure = plotting.throughput_over_time(tables["intervals"], window=tables["window"])
    labels = [p.get_label() for p in figure.axes[0].patches]
    assert "window analysed" in labels
    unshaded = plotting.throughput_over_time(tables["intervals"])
    assert "window analysed" not in [p.get_label() for p in unshaded.axes[0].patches]


def test_figures_of_absent_tables_say_not_measured(store):
    run = make_run(store, tables=())
    requests = run.table("requests")
    figures = [
        plotting.latency_histogram(requests),
        plotting.latency_ecdf(requests),
        plotting.percentile_plot(requests),
        plotting.latency_heatmap(requests),
        plotting.latency_boxplot(requests),
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

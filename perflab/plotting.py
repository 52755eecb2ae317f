"""Figures of a run: latency distributions, series over time, resource usage.

Every function takes canonical tables (see :mod:`perflab.store`) and returns a
matplotlib :class:`~matplotlib.figure.Figure`, made without pyplot so that it works
headless and leaves no global state; nothing is shown or saved here except by
:func:`save_figure`. When the data a figure needs is absent, the figure says so in
words instead of drawing an empty or zero-filled plot. Endpoints are drawn in label
order, each in the colour :func:`endpoint_colors` gives it, so the figures of a run
agree; pass ``colors`` (from :func:`endpoint_colors` over every label of the run) when
a figure draws only part of a run, such as its steady-state window. Time axes are UTC
clock time; latencies are in milliseconds.

The latency figures: :func:`latency_histogram`, :func:`latency_ecdf`,
:func:`percentile_plot` (latency against the percentile on a "nines" axis, as
HdrHistogram plots it), :func:`latency_heatmap` (latency over time, counts as colour)
and :func:`latency_boxplot`.
"""

from __future__ import annotations

import io
import logging
import math
from collections.abc import Iterable
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.layout_engine import ConstrainedLayoutEngine
from matplotlib.ticker import (
    FixedLocator,
    FuncFormatter,
    LogLocator,
    NullFormatter,
    NullLocator,
)

from perflab import statistics
from perflab.store import OVERALL
from perflab.windows import Window

log = logging.getLogger(__name__)

#: Colours for endpoints in label order (the tab10 palette without its grey).
PALETTE = (
    "#1f77b4",
    "#ff7f0e",
    "#2ca02c",
    "#d62728",
    "#9467bd",
    "#8c564b",
    "#e377c2",
    "#bcbd22",
    "#17becf",
)
OVERALL_COLOR = "#333333"
PERCENTILE_STYLES = {"p50": ":", "p95": "-", "p99": "--"}
WIDTH_IN = 9.0

#: Percentiles (0-100) marked on the x axis of :func:`percentile_plot`.
NINES = (0.0, 50.0, 90.0, 99.0, 99.9, 99.99, 99.999, 99.9999)

WINDOW_COLOR = "#ebebeb"


class PlotFigure(Figure):
    """A matplotlib Figure that Jupyter shows as a PNG image.

    The figures are made without pyplot, so no backend registers a display hook for
    them; ``_repr_png_`` lets a notebook cell that returns one show the image,
    whatever the backend.
    """

    def _repr_png_(self) -> tuple[bytes, dict[str, str]]:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches=_bbox(self))
        return buffer.getvalue(), {"alt": self.description()}

    def description(self) -> str:
        """The figure's title, used as the alternative text of its image."""
        titles = [self.get_suptitle()] + [ax.get_title() for ax in self.axes]
        return next((t for t in titles if t), "figure")


def _bbox(figure: Figure) -> str | None:
    """``"tight"`` unless constrained layout already fits the figure's contents.

    A tight bounding box draws the figure twice, which costs a third of the time of
    saving it.
    """
    constrained = isinstance(figure.get_layout_engine(), ConstrainedLayoutEngine)
    return None if constrained else "tight"


def endpoint_colors(labels: Iterable[str]) -> dict[str, str]:
    """A fixed colour per endpoint label.

    Labels are sorted and coloured in that order from :data:`PALETTE` (cycling after
    nine); ``Overall`` is always dark grey. Pass the union of labels when figures of
    two runs must agree.

    Parameters
    ----------
    labels
        Endpoint labels (``"GET /publications"``); duplicates are ignored.

    Returns
    -------
    dict
        Label to a hex colour.
    """
    ordered = sorted({str(label) for label in labels} - {OVERALL})
    colors = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(ordered)}
    colors[OVERALL] = OVERALL_COLOR
    return colors


def _colors(labels: Iterable[str], given: dict[str, str] | None) -> dict[str, str]:
    """``given`` colours, completed by :func:`endpoint_colors` where it lacks one."""
    return {**endpoint_colors(labels), **(given or {})}


def save_figure(figure: Figure, path: Path | str, dpi: int = 100) -> Path:
    """Write a figure as PNG (parent folders are created) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches=_bbox(figure))
    log.info("wrote figure %s", path)
    return path


def _message_figure(title: str, message: str) -> Figure:
    """A small figure that says what is missing, in place of an empty plot."""
    fig = PlotFigure(figsize=(WIDTH_IN, 1.6), layout="constrained")
    ax = fig.add_subplot()
    ax.set_axis_off()
    ax.set_title(title)
    ax.text(0.5, 0.4, message, ha="center", va="center", wrap=True)
    return fig


def _utc(values: pd.Series) -> np.ndarray:
    """Timestamps as naive UTC datetime64, which matplotlib dates understand."""
    return pd.to_datetime(values, utc=True).dt.tz_localize(None).to_numpy()


def _time_axis(ax) -> None:
    ax.xaxis.set_major_locator(mdates.AutoDateLocator(minticks=3, maxticks=8))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S"))
    ax.set_xlabel("time (UTC)")


def _measured(requests: pd.DataFrame) -> pd.DataFrame:
    if requests is None or requests.empty:
        return pd.DataFrame(columns=["endpoint", "latency_ms"])
    return requests[["endpoint", "latency_ms"]].dropna(subset=["latency_ms"])


def _log_bins(values: np.ndarray, count: int = 50) -> np.ndarray:
    low = max(float(values.min()), 1e-3)
    high = max(float(values.max()), low * 1.01)
    return np.logspace(np.log10(low), np.log10(high), count + 1)


def latency_histogram(
    requests: pd.DataFrame, bins: int = 50, colors: dict[str, str] | None = None
) -> Figure:
    """Histogram of request latency, one panel per endpoint, log-scaled latency axis.

    Parameters
    ----------
    requests
        The ``requests`` table (``endpoint``, ``latency_ms``); requests without a
        latency are left out.
    bins
        Number of logarithmically spaced bins, shared by every panel.
    colors
        Endpoint label to colour; :func:`endpoint_colors` of the labels drawn by
        default.

    Returns
    -------
    Figure
        One panel per endpoint, in label order; a figure saying "not measured"
        when the run has no latency samples.
    """
    title = "Latency distribution per endpoint"
    data = _measured(requests)
    if data.empty:
        return _message_figure(
            title, "Not measured: this run has no per-request latency samples."
        )
    labels = sorted(data["endpoint"].unique())
    colors = _colors(labels, colors)
    edges = _log_bins(data["latency_ms"].to_numpy(dtype=float), bins)

    fig = PlotFigure(figsize=(WIDTH_IN, 1.0 + 1.6 * len(labels)), layout="constrained")
    axes = fig.subplots(len(labels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, label in zip(axes, labels, strict=True):
        values = data.loc[data["endpoint"] == label, "latency_ms"].to_numpy(float)
        # one filled outline per panel draws much faster than a bar per bin
        ax.hist(values, bins=edges, histtype="stepfilled", color=colors[label])
        ax.set_xscale("log")
        ax.set_ylabel("requests")
        ax.set_title(f"{label} ({values.size:,} requests)", fontsize="medium")
    axes[-1].set_xlabel("latency (ms, log scale)")
    fig.suptitle(title)
    return fig


def latency_ecdf(
    requests: pd.DataFrame, colors: dict[str, str] | None = None
) -> Figure:
    """Empirical cumulative distribution of latency per endpoint (log latency axis).

    The fraction of requests at or below each latency; the dotted lines mark 0.95 and
    0.99, where a curve crosses them is that endpoint's p95 and p99 (nearest rank).

    Parameters
    ----------
    requests
        The ``requests`` table (``endpoint``, ``latency_ms``).
    colors
        Endpoint label to colour; :func:`endpoint_colors` of the labels drawn by
        default.

    Returns
    -------
    Figure
        One line per endpoint; a figure saying "not measured" without samples.
    """
    title = "Cumulative latency distribution per endpoint"
    data = _measured(requests)
    if data.empty:
        return _message_figure(
            title, "Not measured: this run has no per-request latency samples."
        )
    labels = sorted(data["endpoint"].unique())
    colors = _colors(labels, colors)

    fig = PlotFigure(figsize=(WIDTH_IN, 4.5), layout="constrained")
    ax = fig.add_subplot()
    for label in labels:
        values = np.sort(
            data.loc[data["endpoint"] == label, "latency_ms"].to_numpy(float)
        )
        fraction = np.arange(1, values.size + 1) / values.size
        ax.step(values, fraction, where="post", color=colors[label], label=label)
    for level in (0.95, 0.99):
        ax.axhline(level, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.005)
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_ylabel("fraction of requests at or below")
    ax.set_title(title)
    ax.legend(loc="lower right", fontsize="small")
    return fig


def _shade_window(ax, window: Window | None, label: bool = True) -> None:
    """Shade a steady-state window on a time axis (nothing for the whole run)."""
    if window is None or not window.steady:
        return
    start, end = (
        pd.Timestamp(t).tz_convert("UTC").tz_localize(None).to_datetime64()
        for t in (window.start, window.end)
    )
    ax.axvspan(
        start,
        end,
        color=WINDOW_COLOR,
        zorder=0,
        label="window analysed" if label else None,
    )


def _nines_x(percentile: np.ndarray | float) -> np.ndarray:
    """Position on the nines axis: ``1 / (1 - q)``; 1 at p0, 10 at p90, 100 at p99."""
    return 1.0 / (1.0 - np.asarray(percentile, dtype=float) / 100.0)


def _nearest_rank(ordered: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """Nearest-rank values of sorted samples (rank ``ceil(q * n)``, at least 1)."""
    n = ordered.size
    ranks = np.clip(np.ceil(quantiles * n - 1e-9).astype(np.int64), 1, n)
    return ordered[ranks - 1]


def percentile_plot(
    requests: pd.DataFrame,
    colors: dict[str, str] | None = None,
    confidence: float = statistics.DEFAULT_CONFIDENCE,
    band: bool = True,
    points: int = 300,
) -> Figure:
    """Latency by percentile, on an axis that spreads out the nines (HdrHistogram's).

    The x axis is ``1 / (1 - q)`` on a log scale, so 0 %, 90 %, 99 %, 99.9 % and
    99.99 % are evenly spaced and the tail gets as much room as the body; its ticks
    are labelled as percentiles. Each line is the nearest-rank percentile of one
    endpoint's latencies, drawn up to the percentile its sample count reaches
    (``1 - 1 / n``); ``Overall`` is the thick dark line, with the distribution-free
    confidence interval of each of its percentiles shaded
    (:func:`perflab.statistics.rank_interval`) where the samples give both bounds.
    A dotted vertical line marks where fewer than
    :data:`~perflab.statistics.MIN_TAIL_SAMPLES` Overall requests lie above the
    percentile: right of it, the numbers rest on a handful of requests.

    Parameters
    ----------
    requests
        The ``requests`` table (``endpoint``, ``latency_ms``), or a window of it.
    colors
        Endpoint label to colour; :func:`endpoint_colors` of the labels drawn by
        default.
    confidence
        Confidence level of the Overall band, in (0, 1).
    band
        Shade the Overall confidence band.
    points
        Points per line, spaced evenly on the x axis.

    Returns
    -------
    Figure
        One line per endpoint in label order, then Overall; a figure saying "not
        measured" without samples.
    """
    title = "Latency by percentile"
    data = _measured(requests)
    if data.empty:
        return _message_figure(
            title, "Not measured: this run has no per-request latency samples."
        )
    labels = sorted(data["endpoint"].unique())
    colors = _colors(labels, colors)
    overall = np.sort(data["latency_ms"].to_numpy(float))
    reach = _nines_x(100.0 * (1.0 - 1.0 / overall.size)) if overall.size > 1 else 1.0
    right = max(10.0 ** math.ceil(math.log10(max(reach, 1.0)) - 1e-9), 100.0)

    fig = PlotFigure(figsize=(WIDTH_IN, 5.0), layout="constrained")
    ax = fig.add_subplot()
    series = [
        (label, data.loc[data["endpoint"] == label, "latency_ms"]) for label in labels
    ]
    if len(labels) > 1:
        series.append((OVERALL, data["latency_ms"]))
    for label, values in series:
        ordered = np.sort(values.to_numpy(float))
        n = ordered.size
        last = _nines_x(100.0 * (1.0 - 1.0 / n)) if n > 1 else 1.0
        x = np.logspace(0.0, math.log10(last), points) if last > 1 else np.ones(1)
        y = _nearest_rank(ordered, 1.0 - 1.0 / x)
        is_overall = label == OVERALL
        ax.plot(
            x,
            y,
            color=colors[label],
            linewidth=2.2 if is_overall else 1.3,
            zorder=3 if is_overall else 2,
            label=f"{label} ({n:,} requests, max {ordered[-1]:,.1f} ms)",
        )
    if band:
        _percentile_band(ax, overall, reach, confidence, colors[OVERALL])
    edge = overall.size / statistics.MIN_TAIL_SAMPLES
    if 1.0 < edge < right:
        ax.axvline(
            edge,
            color="grey",
            linestyle=":",
            linewidth=1.0,
            label=f"right of it: fewer than {statistics.MIN_TAIL_SAMPLES} requests "
            "above (Overall)",
        )

    ticks = [p for p in NINES if _nines_x(p) <= right * 1.000001]
    ax.set_xscale("log")
    ax.set_xlim(1.0, right)
    ax.xaxis.set_major_locator(FixedLocator(_nines_x(np.array(ticks)).tolist()))
    ax.xaxis.set_major_formatter(_NinesFormatter(ticks))
    ax.xaxis.set_minor_locator(NullLocator())
    ax.set_ylim(bottom=0)
    ax.set_xlabel("percentile (log scale of 1 / (1 - q): each nine gets equal room)")
    ax.set_ylabel("latency (ms)")
    ax.set_title(title)
    ax.grid(True, axis="x", color="#eeeeee")
    ax.legend(loc="upper left", fontsize="small")
    return fig


class _NinesFormatter:
    """Labels a tick at ``1 / (1 - q)`` as its percentile (``50%``, ``99.9%``)."""

    def __init__(self, percentiles: list[float]):
        self.labels = {float(_nines_x(p)): f"{p:g}%" for p in percentiles}

    def __call__(self, value, position=None) -> str:
        for x, label in self.labels.items():
            if math.isclose(value, x, rel_tol=1e-6):
                return label
        return ""


def _percentile_band(ax, ordered, reach, confidence, color) -> None:
    """Shade the confidence interval of the percentiles of sorted samples."""
    n = ordered.size
    if n < 2 or reach <= 1.0:
        return
    x = np.logspace(0.0, math.log10(reach), 60)
    quantiles = 1.0 - 1.0 / x
    low = np.full(x.shape, np.nan)
    high = np.full(x.shape, np.nan)
    for i, q in enumerate(quantiles):
        low_rank, high_rank, _ = statistics.rank_interval(n, float(q), confidence)
        if low_rank is not None and high_rank is not None:
            low[i], high[i] = ordered[low_rank - 1], ordered[high_rank - 1]
    if np.isnan(low).all():
        return
    ax.fill_between(
        x,
        low,
        high,
        color=color,
        alpha=0.18,
        linewidth=0,
        step="post",
        label=f"Overall {100 * confidence:g} % confidence interval",
    )


def _time_step_s(span_s: float, columns: int = 120) -> float:
    """A round interval giving at most ``columns`` time columns over ``span_s``."""
    for step in (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600):
        if span_s / step <= columns:
            return float(step)
    return float(math.ceil(span_s / columns / 3600.0) * 3600)


def latency_heatmap(
    requests: pd.DataFrame,
    window: Window | None = None,
    interval_s: float | None = None,
    bins: int = 40,
) -> Figure:
    """Latency over time: requests counted by start time and latency, as colour.

    Parameters
    ----------
    requests
        The ``requests`` table (``ts``, ``latency_ms``); requests without a latency
        are left out.
    window
        The analysis window; a steady-state window is outlined by two lines.
    interval_s
        Width of a time column in seconds; by default a round value giving at most
        120 columns.
    bins
        Number of logarithmically spaced latency rows.

    Returns
    -------
    Figure
        Time (UTC) on x, latency (ms, log scale) on y, the number of requests of each
        cell as colour on a log scale (empty cells blank); a figure saying "not
        measured" without samples.
    """
    title = "Latency over time"
    if requests is None or requests.empty:
        return _message_figure(
            title, "Not measured: this run has no per-request latency samples."
        )
    data = requests[["ts", "latency_ms"]].dropna()
    if data.empty:
        return _message_figure(
            title, "Not measured: this run has no per-request latency samples."
        )
    ts = pd.to_datetime(data["ts"], utc=True)
    origin = ts.min().floor("s")
    seconds = ((ts - origin) / pd.Timedelta(seconds=1)).to_numpy(float)
    step = interval_s or _time_step_s(float(seconds.max()) + 1e-9)
    columns = max(int(math.ceil((seconds.max() + 1e-9) / step)), 1)
    time_edges = np.arange(columns + 1) * step
    latency = data["latency_ms"].to_numpy(float)
    latency_edges = _log_bins(latency, bins)
    counts, _, _ = np.histogram2d(
        seconds,
        np.clip(latency, latency_edges[0], latency_edges[-1]),
        bins=[time_edges, latency_edges],
    )
    x = (origin.tz_localize(None) + pd.to_timedelta(time_edges, unit="s")).to_numpy()

    fig = PlotFigure(figsize=(WIDTH_IN, 4.5), layout="constrained")
    ax = fig.add_subplot()
    shown = np.ma.masked_equal(counts.T, 0)
    mesh = ax.pcolormesh(
        x,
        latency_edges,
        shown,
        cmap="viridis",
        norm=LogNorm(vmin=1, vmax=max(float(counts.max()), 2.0)),
        shading="flat",
    )
    bar = fig.colorbar(mesh, ax=ax, label=f"requests per cell ({step:g} s wide)")
    bar.ax.yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    bar.ax.yaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:,.0f}"))
    bar.ax.yaxis.set_minor_formatter(NullFormatter())
    if window is not None and window.steady:
        for edge in (window.start, window.end):
            ax.axvline(
                pd.Timestamp(edge).tz_convert("UTC").tz_localize(None).to_datetime64(),
                color="#d62728",
                linestyle="--",
                linewidth=1.0,
            )
        title += " (dashed: the steady-state window analysed)"
    ax.set_yscale("log")
    ax.set_ylabel("latency (ms, log scale)")
    ax.set_title(title)
    _time_axis(ax)
    return fig


def latency_boxplot(
    requests: pd.DataFrame, colors: dict[str, str] | None = None
) -> Figure:
    """Latency per endpoint as boxes: the body and the tail side by side.

    Each box spans p25 to p75 with a line at p50; the whiskers reach p1 and p99 and
    a cross marks the maximum. All are nearest-rank percentiles of the samples
    (perflab's method, not matplotlib's interpolation).

    Parameters
    ----------
    requests
        The ``requests`` table (``endpoint``, ``latency_ms``), or a window of it.
    colors
        Endpoint label to colour; :func:`endpoint_colors` of the labels drawn by
        default.

    Returns
    -------
    Figure
        One box per endpoint in label order, then Overall, on a log latency axis; a
        figure saying "not measured" without samples.
    """
    title = "Latency per endpoint (box p25-p75, whiskers p1-p99, x the max)"
    data = _measured(requests)
    if data.empty:
        return _message_figure(
            title, "Not measured: this run has no per-request latency samples."
        )
    labels = sorted(data["endpoint"].unique())
    colors = _colors(labels, colors)
    groups = [
        (label, data.loc[data["endpoint"] == label, "latency_ms"]) for label in labels
    ]
    if len(labels) > 1:
        groups.append((OVERALL, data["latency_ms"]))

    boxes = []
    for label, values in groups:
        ordered = np.sort(values.to_numpy(float))
        p1, p25, p50, p75, p99 = _nearest_rank(
            ordered, np.array([0.01, 0.25, 0.5, 0.75, 0.99])
        )
        boxes.append(
            {
                "label": f"{label}\n{ordered.size:,} requests",
                "whislo": p1,
                "q1": p25,
                "med": p50,
                "q3": p75,
                "whishi": p99,
                "fliers": [ordered[-1]],
            }
        )
    fig = PlotFigure(figsize=(WIDTH_IN, 1.2 + 0.7 * len(boxes)), layout="constrained")
    ax = fig.add_subplot()
    drawn = ax.bxp(
        boxes,
        orientation="horizontal",
        patch_artist=True,
        flierprops={"marker": "x", "markeredgecolor": "#333333"},
        medianprops={"color": "black"},
    )
    for patch, (label, _) in zip(drawn["boxes"], groups, strict=True):
        patch.set_facecolor(colors[label])
        patch.set_alpha(0.75)
    ax.invert_yaxis()  # first label on top
    ax.set_ylabel("endpoint")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, log scale)")
    ax.set_title(title)
    return fig


def percentiles_over_time(
    intervals: pd.DataFrame,
    percentiles: tuple[str, ...] = ("p50", "p95", "p99"),
    colors: dict[str, str] | None = None,
    window: Window | None = None,
) -> Figure:
    """Latency percentiles of each interval, one panel per endpoint and Overall.

    Each point uses only the requests that started in that interval; an interval with
    no request of an endpoint has no point (gaps are not filled).

    Parameters
    ----------
    intervals
        The ``intervals`` table (``ts``, ``endpoint``, and the percentile columns).
    percentiles
        Percentile columns to draw, in ms.
    colors
        Endpoint label to colour; :func:`endpoint_colors` of the labels drawn by
        default.
    window
        The analysis window; a steady-state window is shaded.

    Returns
    -------
    Figure
        ``Overall`` first, then one panel per endpoint in label order.
    """
    title = "Latency percentiles over time"
    if intervals is None or intervals.empty:
        return _message_figure(title, "Not measured: this run has no interval series.")
    present = [p for p in percentiles if p in intervals and intervals[p].notna().any()]
    if not present:
        return _message_figure(
            title, "Not measured: the interval series carries no latency percentiles."
        )
    labels = sorted(set(intervals["endpoint"]) - {OVERALL})
    if OVERALL in set(intervals["endpoint"]):
        labels = [OVERALL, *labels]
    colors = _colors(labels, colors)

    fig = PlotFigure(figsize=(WIDTH_IN, 1.0 + 2.0 * len(labels)), layout="constrained")
    axes = fig.subplots(len(labels), 1, sharex=True, squeeze=False)[:, 0]
    for ax, label in zip(axes, labels, strict=True):
        series = intervals[intervals["endpoint"] == label].sort_values("ts")
        for column in present:
            ax.plot(
                _utc(series["ts"]),
                series[column].to_numpy(float),
                color=colors[label],
                linestyle=PERCENTILE_STYLES.get(column, "-"),
                marker=".",
                markersize=3,
                label=column,
            )
        _shade_window(ax, window)
        ax.set_ylabel("latency (ms)")
        ax.set_title(label, fontsize="medium")
        ax.legend(loc="upper left", fontsize="x-small", ncols=len(present) + 1)
    _time_axis(axes[-1])
    fig.suptitle(title)
    return fig


def throughput_over_time(
    intervals: pd.DataFrame,
    colors: dict[str, str] | None = None,
    window: Window | None = None,
) -> Figure:
    """Throughput per endpoint and overall (top) and concurrent users (bottom).

    Parameters
    ----------
    intervals
        The ``intervals`` table (``ts``, ``endpoint``, ``throughput`` in requests per
        second, ``users``).
    colors
        Endpoint label to colour; :func:`endpoint_colors` of the labels drawn by
        default.
    window
        The analysis window; a steady-state window is shaded.

    Returns
    -------
    Figure
        Two panels sharing the time axis; users are written "not measured"
        when the series has none.
    """
    title = "Throughput and users over time"
    if intervals is None or intervals.empty:
        return _message_figure(title, "Not measured: this run has no interval series.")
    labels = sorted(set(intervals["endpoint"]) - {OVERALL})
    has_overall = OVERALL in set(intervals["endpoint"])
    colors = _colors(labels, colors)

    fig = PlotFigure(figsize=(WIDTH_IN, 5.5), layout="constrained")
    top, bottom = fig.subplots(2, 1, sharex=True, height_ratios=(2, 1))
    for label in ([OVERALL] if has_overall else []) + labels:
        series = intervals[intervals["endpoint"] == label].sort_values("ts")
        top.plot(
            _utc(series["ts"]),
            series["throughput"].to_numpy(float),
            color=colors[label],
            linewidth=2.0 if label == OVERALL else 1.2,
            label=label,
        )
    _shade_window(top, window)
    _shade_window(bottom, window, label=False)
    top.set_ylabel("throughput (req/s)")
    top.legend(loc="upper left", fontsize="x-small")
    top.set_title("Completed requests per second", fontsize="medium")

    users = intervals[intervals["endpoint"] == (OVERALL if has_overall else labels[0])]
    users = users.sort_values("ts")
    if "users" in users and users["users"].notna().any():
        bottom.step(
            _utc(users["ts"]),
            users["users"].to_numpy(float),
            where="post",
            color=OVERALL_COLOR,
        )
        bottom.set_ylim(bottom=0)
    else:
        bottom.text(
            0.5,
            0.5,
            "users: not measured",
            ha="center",
            va="center",
            transform=bottom.transAxes,
        )
    bottom.set_ylabel("users")
    bottom.set_title("Concurrent users", fontsize="medium")
    _time_axis(bottom)
    fig.suptitle(title)
    return fig


def resource_usage(resources: pd.DataFrame) -> Figure:
    """Resource samples over time, one panel per metric, one line per source.

    Parameters
    ----------
    resources
        The ``resources`` table (``ts``, ``source``, ``metric`` with its unit in the
        name such as ``cpu_percent`` or ``rss_mb``, ``value``).

    Returns
    -------
    Figure
        One panel per metric in name order; a figure saying "not measured"
        when nothing was sampled.
    """
    title = "Resource usage over time"
    if resources is None or resources.empty or resources["value"].isna().all():
        return _message_figure(
            title, "Not measured: no resources were sampled during this run."
        )
    metrics = sorted(resources["metric"].dropna().unique())
    sources = sorted(resources["source"].dropna().unique())
    colors = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(sources)}

    fig = PlotFigure(figsize=(WIDTH_IN, 1.0 + 2.2 * len(metrics)), layout="constrained")
    axes = fig.subplots(len(metrics), 1, sharex=True, squeeze=False)[:, 0]
    for ax, metric in zip(axes, metrics, strict=True):
        for source in sources:
            series = resources[
                (resources["metric"] == metric) & (resources["source"] == source)
            ].dropna(subset=["value"])
            if series.empty:
                continue
            series = series.sort_values("ts")
            ax.plot(
                _utc(series["ts"]),
                series["value"].to_numpy(float),
                color=colors[source],
                label=source,
            )
        ax.set_ylabel(_metric_label(metric))
        ax.set_title(metric, fontsize="medium")
        ax.legend(loc="upper left", fontsize="x-small")
    _time_axis(axes[-1])
    fig.suptitle(title)
    return fig


def _metric_label(metric: str) -> str:
    """Axis label from a metric name with its unit: ``rss_mb`` -> ``rss (MB)``."""
    units = {"percent": "%", "mb": "MB", "ms": "ms", "count": "count", "s": "s"}
    stem, _, unit = metric.rpartition("_")
    if stem and unit in units:
        return f"{stem.replace('_', ' ')} ({units[unit]})"
    return metric.replace("_", " ")

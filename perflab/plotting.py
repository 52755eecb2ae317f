"""Figures of a run: latency distributions, series over time, resource usage.

Every function takes canonical tables (see :mod:`perflab.store`) and returns a
matplotlib :class:`~matplotlib.figure.Figure`, made without pyplot so that it works
headless and leaves no global state; nothing is shown or saved here except by
:func:`save_figure`. When the data a figure needs is absent, the figure says so in
words instead of drawing an empty or zero-filled plot. Endpoints are drawn in label
order, each in the colour :func:`endpoint_colors` gives it, so the figures of a run
agree. Time axes are UTC clock time; latencies are in milliseconds.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterable
from pathlib import Path

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from perflab.store import OVERALL

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


class PlotFigure(Figure):
    """A matplotlib Figure that Jupyter shows as a PNG image.

    The figures are made without pyplot, so no backend registers a display hook for
    them; ``_repr_png_`` lets a notebook cell that returns one show the image,
    whatever the backend.
    """

    def _repr_png_(self) -> tuple[bytes, dict[str, str]]:
        buffer = io.BytesIO()
        self.savefig(buffer, format="png", dpi=100, bbox_inches="tight")
        return buffer.getvalue(), {"alt": self.description()}

    def description(self) -> str:
        """The figure's title, used as the alternative text of its image."""
        titles = [self.get_suptitle()] + [ax.get_title() for ax in self.axes]
        return next((t for t in titles if t), "figure")


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


def save_figure(figure: Figure, path: Path | str, dpi: int = 100) -> Path:
    """Write a figure as PNG (parent folders are created) and return its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=dpi, bbox_inches="tight")
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


def latency_histogram(requests: pd.DataFrame, bins: int = 50) -> Figure:
    """Histogram of request latency, one panel per endpoint, log-scaled latency axis.

    Parameters
    ----------
    requests
        The ``requests`` table (``endpoint``, ``latency_ms``); requests without a
        latency are left out.
    bins
        Number of logarithmically spaced bins, shared by every panel.

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
    colors = endpoint_colors(labels)
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


def latency_ecdf(requests: pd.DataFrame) -> Figure:
    """Empirical cumulative distribution of latency per endpoint (log latency axis).

    The fraction of requests at or below each latency; the dotted lines mark 0.95 and
    0.99, where a curve crosses them is that endpoint's p95 and p99 (nearest rank).

    Parameters
    ----------
    requests
        The ``requests`` table (``endpoint``, ``latency_ms``).

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
    colors = endpoint_colors(labels)

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


def percentiles_over_time(
    intervals: pd.DataFrame, percentiles: tuple[str, ...] = ("p50", "p95", "p99")
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
    colors = endpoint_colors(labels)

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
        ax.set_ylabel("latency (ms)")
        ax.set_title(label, fontsize="medium")
        ax.legend(loc="upper left", fontsize="x-small", ncols=len(present))
    _time_axis(axes[-1])
    fig.suptitle(title)
    return fig


def throughput_over_time(intervals: pd.DataFrame) -> Figure:
    """Throughput per endpoint and overall (top) and concurrent users (bottom).

    Parameters
    ----------
    intervals
        The ``intervals`` table (``ts``, ``endpoint``, ``throughput`` in requests per
        second, ``users``).

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
    colors = endpoint_colors(labels)

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

"""Latency statistics computed from per-request samples.

Definitions
-----------
quantile
    A number in [0, 1]; *percentile* is the same on a 0-100 scale. Columns are named
    ``p50``, ``p95``, ``p99``, ``p99_9`` (see :func:`perflab.store.percentile_column`).
nearest-rank percentile (the default, ``method="nearest-rank"``)
    The smallest sample ``x`` such that at least a fraction q of the samples are <= x:
    with the n samples sorted, the one at 1-based rank ``ceil(q * n)`` (rank 1 for
    q = 0). It is always a latency that was actually observed. This is numpy's
    ``inverted_cdf`` method (Hyndman and Fan's definition 1).
linear percentile (``method="linear"``)
    Linear interpolation between the two samples around 0-based position
    ``q * (n - 1)``: numpy's default and Hyndman and Fan's definition 7. k6 computes
    its trend percentiles this way, so use it to compare perflab's numbers with k6's.
throughput
    Completed requests (with a response or an error) per second of the window; per
    interval, requests are counted in the interval of their start.
error rate
    Failed requests divided by all requests.
confidence interval of a percentile
    A distribution-free interval ``[X_(l), X_(u)]`` between two order statistics of the
    samples (1-based ranks ``l < u``) that holds the true percentile of the
    distribution the samples came from with probability at least ``confidence``
    (0.95 by default), whatever that distribution. The number ``B`` of samples below
    the true quantile q is binomial(n, q), and ``P(X_(l) <= x_q <= X_(u)) >=
    P(l <= B <= u - 1)``, with equality for continuous distributions; perflab takes
    ``l = binom.ppf((1 - c) / 2, n, q)`` and ``u = binom.ppf((1 + c) / 2, n, q) + 1``,
    which puts at most ``(1 - c) / 2`` of probability outside each end. That
    probability, computed exactly, is the ``exact_coverage`` column. When n is so small
    that ``l < 1`` or ``u > n``, no sample can serve as that bound and it is NaN: the
    truth may lie below the minimum or above the maximum seen.
too few samples
    A tail percentile means little when only a handful of samples lie above it. perflab
    asks for at least :data:`MIN_TAIL_SAMPLES` (10) samples above a percentile q,
    that is ``n * (1 - q) >= 10``, or ``n >= 10 / (1 - q)``: 200 samples for p95, 1,000
    for p99, 10,000 for p99.9. Below that, :func:`too_few_samples` is true and the
    number is reported with a :class:`~perflab.errors.PrecisionWarning`. p100 (the
    maximum) is what was observed and is never flagged.
histogram percentile
    A percentile read from a :class:`LatencyHistogram`, whose logarithmic buckets are
    at most ``2 * relative_error`` wide relative to their lower edge and are
    represented by a value within ``relative_error`` of every latency in them
    (0.1 % by default, about three significant digits). Histograms merge by adding
    counts, exactly like taking the union of the samples.

Every statistic here is computed from samples, or from mergeable histograms of samples.
Per-interval percentiles use only the samples inside each interval; nothing is ever
averaged across intervals or workers. Samples of several workers, files or runs are
merged by concatenating them (:func:`merge_requests`): the ``requests`` table of a run
already is the merged sample set of all its workers. Where only a tool's own aggregates
exist, :func:`tidy_tool_percentiles` and :func:`resolution_note` say how far to trust
them.
"""

from __future__ import annotations

import math
import re
import warnings
from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from perflab.errors import DataWarning, PrecisionWarning
from perflab.store import OVERALL, PERCENTILES, endpoint_label, percentile_column

METHODS = {"nearest-rank": "inverted_cdf", "linear": "linear"}
DEFAULT_METHOD = "nearest-rank"

METHOD_DESCRIPTIONS = {
    "nearest-rank": "nearest rank (the smallest observed latency with at least q of "
    "the requests at or below it; numpy's inverted_cdf)",
    "linear": "linear interpolation between closest ranks (numpy's default; the "
    "method k6 uses)",
}


#: Samples needed above a percentile for it to be reported without a caveat.
MIN_TAIL_SAMPLES = 10

#: Confidence level of the percentile intervals, unless asked otherwise.
DEFAULT_CONFIDENCE = 0.95

#: Most intervals a run's series is cut into; a longer run gets longer intervals.
MAX_INTERVALS = 20_000

#: The interval lengths :func:`interval_length` chooses from, in seconds.
INTERVAL_LENGTHS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200)


def interval_length(span_s: float) -> float:
    """The interval length, in seconds, of the series of a run spanning ``span_s``.

    One second, unless that would cut the run into more than :data:`MAX_INTERVALS`
    intervals (a run of over 5.5 hours, or files from runs days apart): then the
    shortest of :data:`INTERVAL_LENGTHS_S` that keeps within it, and beyond two
    hours a whole number of hours.
    """
    for length in INTERVAL_LENGTHS_S:
        if span_s <= length * MAX_INTERVALS:
            return float(length)
    return 3600.0 * math.ceil(span_s / 3600 / MAX_INTERVALS)


def percentiles(
    latencies_ms: Sequence[float] | np.ndarray | pd.Series,
    percentiles: Sequence[float] = PERCENTILES,
    method: str = DEFAULT_METHOD,
) -> dict[str, float]:
    """Percentiles of a set of latency samples.

    Parameters
    ----------
    latencies_ms
        Latency samples in milliseconds; NaN values (requests without a latency) are
        left out.
    percentiles
        Percentiles on the 0-100 scale.
    method
        ``"nearest-rank"`` (default) or ``"linear"``; see the module docstring.

    Returns
    -------
    dict
        Column name (``p95``) to value in milliseconds; NaN for every percentile when
        there are no samples.
    """
    return _percentile_values(latencies_ms, percentiles, method)


def _percentile_values(latencies_ms, percentiles, method):
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, not {method!r}")
    values = np.asarray(latencies_ms, dtype=float)
    values = values[~np.isnan(values)]
    names = [percentile_column(p) for p in percentiles]
    if values.size == 0:
        return dict.fromkeys(names, float("nan"))
    qs = np.asarray(percentiles, dtype=float) / 100.0
    result = np.quantile(values, qs, method=METHODS[method])
    return {name: float(value) for name, value in zip(names, result, strict=True)}


def _summary(
    group: pd.DataFrame, seconds: float, method: str, pcts: Sequence[float]
) -> dict[str, float]:
    latency = group["latency_ms"].to_numpy(dtype=float)
    measured = latency[~np.isnan(latency)]
    failures = int((~group["ok"].astype(bool)).sum())
    count = len(group)
    row = {
        "requests": count,
        "failures": failures,
        "error_rate": failures / count if count else float("nan"),
        "throughput": count / seconds if seconds > 0 else float("nan"),
        "mean_ms": float(measured.mean()) if measured.size else float("nan"),
        "min_ms": float(measured.min()) if measured.size else float("nan"),
        "max_ms": float(measured.max()) if measured.size else float("nan"),
        "bytes_mean": float(group["bytes"].mean())
        if group["bytes"].notna().any()
        else float("nan"),
    }
    row.update(_percentile_values(measured, pcts, method))
    return row


def window_seconds(requests: pd.DataFrame) -> float:
    """Length of the span of request start times, in seconds (at least 1 ms)."""
    if requests.empty:
        return float("nan")
    ts = pd.to_datetime(requests["ts"], utc=True)
    end = ts + pd.to_timedelta(requests["latency_ms"].fillna(0), unit="ms")
    return max((end.max() - ts.min()).total_seconds(), 1e-3)


def _grouped_stats(
    codes: np.ndarray,
    ngroups: int,
    latency: np.ndarray,
    failed: np.ndarray,
    percentiles: Sequence[float],
    method: str,
) -> dict[str, np.ndarray]:
    """Per-group request statistics, for groups numbered ``0 .. ngroups - 1``.

    Rows whose code is negative belong to no group. Returns arrays of length
    ``ngroups``: ``requests``, ``failures``, ``mean_ms``, ``min_ms``, ``max_ms``
    (NaN where a group has no latency), and ``percentiles``, shape
    ``(ngroups, len(percentiles))``. The values are those of :func:`percentiles`
    and ``ndarray.mean`` on each group's latencies (in row order) alone: one sort
    by group and latency, then the order statistics are taken by index, with
    numpy's formulas for the index and the interpolation.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {sorted(METHODS)}, not {method!r}")
    inside = codes >= 0
    requests = np.bincount(codes[inside], minlength=ngroups)
    failures = np.bincount(codes[inside & failed], minlength=ngroups)

    measured = inside & ~np.isnan(latency)
    group = codes[measured]
    values = latency[measured]
    counts = np.bincount(group, minlength=ngroups)
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    some = np.flatnonzero(counts)
    mean = np.full(ngroups, np.nan)
    low = np.full(ngroups, np.nan)
    high = np.full(ngroups, np.nan)
    result = np.full((ngroups, len(percentiles)), np.nan)
    if some.size == 0:
        return {
            "requests": requests,
            "failures": failures,
            "mean_ms": mean,
            "min_ms": low,
            "max_ms": high,
            "percentiles": result,
        }

    # Means as numpy sums each group's values in row order (pairwise summation).
    in_order = values[np.argsort(group, kind="stable")]
    for g in some.tolist():
        mean[g] = in_order[starts[g] : starts[g] + counts[g]].mean()
    low[some] = np.minimum.reduceat(in_order, starts[some])
    high[some] = np.maximum.reduceat(in_order, starts[some])

    ordered = values[np.lexsort((values, group))]
    n = counts[some].astype(float)[:, None]
    first = starts[some][:, None]
    qs = np.asarray(percentiles, dtype=float)[None, :] / 100.0
    if method == "nearest-rank":
        # numpy's inverted_cdf: index n*q - 1, rounded up unless it is whole
        index = n * qs - 1
        below = np.floor(index)
        rank = np.where(index - below == 0, below, below + 1)
        rank = np.where(rank < 0, 0, rank).astype(np.int64)
        result[some] = ordered[first + rank]
    else:
        # numpy's linear: between the order statistics around (n - 1) * q
        virtual = (n - 1) * qs
        before = np.floor(virtual)
        after = before + 1
        top = virtual >= n - 1
        before = np.where(top, n - 1, before)
        after = np.where(top, n - 1, after)
        gamma = virtual - np.where(top, -1, before)
        a = ordered[first + before.astype(np.int64)]
        b = ordered[first + after.astype(np.int64)]
        diff = b - a
        result[some] = np.where(gamma >= 0.5, b - diff * (1 - gamma), a + diff * gamma)
    return {
        "requests": requests,
        "failures": failures,
        "mean_ms": mean,
        "min_ms": low,
        "max_ms": high,
        "percentiles": result,
    }


def _failed(requests: pd.DataFrame) -> np.ndarray:
    return (~requests["ok"].astype(bool)).to_numpy(dtype=bool)


def endpoint_table(
    requests: pd.DataFrame,
    method: str = DEFAULT_METHOD,
    seconds: float | None = None,
    intervals: bool = False,
    confidence: float = DEFAULT_CONFIDENCE,
    percentiles: Sequence[float] = PERCENTILES,
) -> pd.DataFrame:
    """Whole-window aggregates per endpoint, plus an ``Overall`` row.

    Parameters
    ----------
    requests
        The ``requests`` table (or a window of it).
    method
        Percentile method, see :func:`percentiles`.
    seconds
        Length of the window for throughput; by default from the first request start
        to the last request end.
    intervals
        When true, add ``<column>_low`` and ``<column>_high`` (``p95_low``,
        ``p95_high``...) after the ``endpoints`` columns: the distribution-free
        confidence interval of each percentile (see :func:`percentile_intervals`), in
        milliseconds, NaN where too few samples allow no bound. Off by default so the
        stored table keeps its schema.
    confidence
        Confidence level of the intervals, in (0, 1).
    percentiles
        Percentiles (0-100) to report; the stored table has :data:`PERCENTILES`.

    Returns
    -------
    DataFrame
        The ``endpoints`` table columns (``requests``, ``failures``, ``error_rate`` =
        failures / requests, ``throughput`` = requests / ``seconds``, ``mean_ms``,
        ``min_ms``, ``max_ms``, the percentiles in ms, ``bytes_mean``), endpoints
        sorted by label, ``Overall`` last.
    """
    seconds = window_seconds(requests) if seconds is None else seconds
    pcts = [percentile_column(p) for p in percentiles]

    # Endpoints sorted by label (a missing label last), then Overall over all rows
    codes, labels = pd.factorize(requests["endpoint"], sort=True)
    codes = np.asarray(codes, dtype=np.int64)
    labels = list(labels)
    if (codes < 0).any():
        codes = np.where(codes < 0, len(labels), codes)
        labels.append(requests["endpoint"][codes == len(labels)].iloc[0])
    groups = len(labels)
    if not requests.empty:
        codes = np.concatenate([codes, np.full(len(requests), groups)])
        groups += 1
        labels.append(OVERALL)
    rows_of = np.concatenate([np.arange(len(requests))] * 2)[: len(codes)]
    latency = requests["latency_ms"].to_numpy(dtype=float)[rows_of]
    stats = _grouped_stats(
        codes, groups, latency, _failed(requests)[rows_of], percentiles, method
    )

    first = np.unique(codes, return_index=True)[1]
    rows = []
    for g, label in enumerate(labels):
        count = int(stats["requests"][g])
        overall = label == OVERALL and g == groups - 1 and not requests.empty
        if overall:
            group = requests
            http_method, name = None, OVERALL
        else:
            group = requests.iloc[np.flatnonzero(codes[: len(requests)] == g)]
            http_method = requests["method"].iloc[first[g]]
            name = requests["name"].iloc[first[g]]
        failures = int(stats["failures"][g])
        row = {
            "endpoint": label,
            "method": http_method,
            "name": name,
            "requests": count,
            "failures": failures,
            "error_rate": failures / count if count else float("nan"),
            "throughput": count / seconds if seconds > 0 else float("nan"),
            "mean_ms": float(stats["mean_ms"][g]),
            "min_ms": float(stats["min_ms"][g]),
            "max_ms": float(stats["max_ms"][g]),
            "bytes_mean": float(group["bytes"].mean())
            if group["bytes"].notna().any()
            else float("nan"),
            **dict(zip(pcts, stats["percentiles"][g].tolist(), strict=True)),
        }
        if intervals:
            bounds = percentile_intervals(
                group["latency_ms"], percentiles, confidence, method, warn=False
            )
            for bound in bounds.itertuples():
                row[f"{bound.column}_low"] = bound.low
                row[f"{bound.column}_high"] = bound.high
        rows.append(row)
    columns = [
        *_ENDPOINT_COLUMNS[:10],
        *[percentile_column(p) for p in percentiles],
        "bytes_mean",
    ]
    if intervals:
        columns += [
            f"{percentile_column(p)}_{side}"
            for p in percentiles
            for side in ("low", "high")
        ]
    return pd.DataFrame(rows, columns=columns)


_ENDPOINT_COLUMNS = [
    "endpoint",
    "method",
    "name",
    "requests",
    "failures",
    "error_rate",
    "throughput",
    "mean_ms",
    "min_ms",
    "max_ms",
    *[percentile_column(p) for p in PERCENTILES],
    "bytes_mean",
]


def interval_table(
    requests: pd.DataFrame,
    interval_s: float = 1.0,
    users: pd.DataFrame | None = None,
    method: str = DEFAULT_METHOD,
    percentiles: Sequence[float] = PERCENTILES,
) -> pd.DataFrame:
    """Per-interval series per endpoint and overall, from the samples in each interval.

    Requests are assigned to the interval holding their start time, and every number
    of an interval comes from its own samples (percentiles of different intervals are
    never averaged). ``throughput`` is the interval's requests divided by
    ``interval_s``; intervals start on a whole second, so the first and the last
    interval of a run are only partly inside it and their throughput is understated.
    Intervals with no
    request of an endpoint are absent for that endpoint (not zero-filled) except in the
    ``Overall`` series, where an empty interval inside the run has ``requests = 0`` and
    NaN percentiles, since a stall with no completed request is itself information.

    Parameters
    ----------
    requests
        The ``requests`` table.
    interval_s
        Interval length in seconds.
    users
        Optional series with columns ``ts`` and ``users`` (concurrent virtual users);
        the last value at or before each interval start is used.
    method
        Percentile method, see :func:`percentiles`.
    percentiles
        Percentiles (0-100) to report; the stored table has :data:`PERCENTILES`.

    Returns
    -------
    DataFrame
        ``ts`` (interval start, UTC), ``interval_s``, ``endpoint``, ``requests``,
        ``failures``, ``throughput`` (requests per second), ``users``, ``mean_ms``,
        ``max_ms`` and the percentile columns in ms, ordered by endpoint and time.
    """
    columns = [
        "ts",
        "interval_s",
        "endpoint",
        "requests",
        "failures",
        "throughput",
        "users",
        "mean_ms",
        "max_ms",
        *[percentile_column(p) for p in percentiles],
    ]
    if requests.empty:
        return pd.DataFrame(columns=columns)
    ts = pd.to_datetime(requests["ts"], utc=True)
    step = pd.Timedelta(seconds=interval_s)
    origin = ts.min().floor("s")
    position = ((ts - origin) // step).to_numpy(dtype=float, na_value=np.nan)
    timed = ~np.isnan(position)
    position = np.where(timed, position, -1).astype(np.int64)
    starts = pd.date_range(origin, origin + int(position.max()) * step, freq=step)
    latency = requests["latency_ms"].to_numpy(dtype=float)
    failed = _failed(requests)

    # Per endpoint, only the intervals that have its requests
    names, labels = pd.factorize(requests["endpoint"], sort=True)
    names = np.asarray(names, dtype=np.int64)
    pair = np.where(timed & (names >= 0), position * len(labels) + names, -1)
    present, pair = np.unique(pair, return_inverse=True)
    if present.size and present[0] < 0:
        present, pair = present[1:], pair - 1
    by_pair = _grouped_stats(pair, len(present), latency, failed, percentiles, method)
    by_start = _grouped_stats(
        position, len(starts), latency, failed, percentiles, method
    )
    pcts = [percentile_column(p) for p in percentiles]
    parts = [
        pd.DataFrame(
            {
                "ts": starts[present // max(len(labels), 1)],
                "interval_s": interval_s,
                "endpoint": np.asarray(labels, dtype=object)[
                    present % max(len(labels), 1)
                ],
                **_interval_columns(by_pair, interval_s, pcts),
            }
        ),
        pd.DataFrame(
            {
                "ts": starts,
                "interval_s": interval_s,
                "endpoint": OVERALL,
                **_interval_columns(by_start, interval_s, pcts),
            }
        ),
    ]
    table = pd.concat(parts, ignore_index=True)[columns]

    if users is not None and not users.empty:
        series = users[["ts", "users"]].copy()
        series["ts"] = pd.to_datetime(series["ts"], utc=True).astype(
            "datetime64[us, UTC]"
        )
        series = series.sort_values("ts")
        table = table.assign(ts=table["ts"].astype("datetime64[us, UTC]"))
        table = table.sort_values("ts")
        merged = pd.merge_asof(
            table.drop(columns="users"), series, on="ts", direction="backward"
        )
        table = merged[columns]
    return table.sort_values(["endpoint", "ts"], kind="stable").reset_index(drop=True)


def _interval_columns(
    stats: dict[str, np.ndarray], interval_s: float, pcts: list[str]
) -> dict[str, np.ndarray]:
    return {
        "requests": stats["requests"].astype(np.int64),
        "failures": stats["failures"].astype(np.int64),
        "throughput": stats["requests"] / interval_s,
        "users": np.full(len(stats["requests"]), np.nan),
        "mean_ms": stats["mean_ms"],
        "max_ms": stats["max_ms"],
        **{name: stats["percentiles"][:, i] for i, name in enumerate(pcts)},
    }


def _interval_row(start, label, group, interval_s, method, pcts):
    latency = group["latency_ms"].to_numpy(dtype=float)
    measured = latency[~np.isnan(latency)]
    return {
        "ts": start,
        "interval_s": interval_s,
        "endpoint": label,
        "requests": len(group),
        "failures": int((~group["ok"].astype(bool)).sum()),
        "throughput": len(group) / interval_s,
        "users": float("nan"),
        "mean_ms": float(measured.mean()) if measured.size else float("nan"),
        "max_ms": float(measured.max()) if measured.size else float("nan"),
        **_percentile_values(measured, pcts, method),
    }


def error_table(requests: pd.DataFrame) -> pd.DataFrame:
    """Error kinds with their counts per endpoint, most frequent first.

    A failed request's kind is its error message, or ``HTTP <status>`` when the tool
    gave none.
    """
    columns = ["endpoint", "method", "name", "status", "error", "count"]
    failed = requests[~requests["ok"].astype(bool)]
    if failed.empty:
        return pd.DataFrame(columns=columns)
    kind = failed["error"].copy()
    no_message = kind.isna() | (kind.astype(str).str.strip() == "")
    status_text = "HTTP " + failed["status"].astype("Int64").astype(str)
    kind[no_message] = status_text[no_message].where(
        failed["status"][no_message].notna(), "unknown error"
    )
    grouped = (
        failed.assign(error=kind, status=failed["status"].astype("Int64"))
        .groupby(["endpoint", "method", "name", "status", "error"], dropna=False)
        .size()
        .rename("count")
        .reset_index()
    )
    return grouped.sort_values(["count", "endpoint"], ascending=[False, True])[
        columns
    ].reset_index(drop=True)


def label_requests(frame: pd.DataFrame) -> pd.DataFrame:
    """Fill the ``endpoint`` column from ``method`` and ``name`` where it is missing."""
    if "endpoint" not in frame or frame["endpoint"].isna().any():
        labels = [
            endpoint_label(m if isinstance(m, str) and m else None, str(n))
            for m, n in zip(frame["method"], frame["name"], strict=True)
        ]
        frame = frame.assign(endpoint=labels)
    return frame


# -- confidence intervals and sample sizes ---------------------------------------------


def min_samples(percentile: float, tail: int = MIN_TAIL_SAMPLES) -> int:
    """Fewest samples for which a percentile has ``tail`` samples above it.

    Parameters
    ----------
    percentile
        Percentile on the 0-100 scale.
    tail
        Samples wanted above the percentile (10 by default).

    Returns
    -------
    int
        ``ceil(tail / (1 - q))`` with ``q = percentile / 100``: 200 for p95, 1,000 for
        p99, 10,000 for p99.9; 0 for p100 (the maximum), which needs no tail.
    """
    _check_percentile(percentile)
    if percentile >= 100:
        return 0
    # Rounded first so that p99.9 needs 10,000 samples, not 10,000.0000000006.
    return math.ceil(round(tail * 100.0 / (100.0 - percentile), 6))


def too_few_samples(n: int, percentile: float, tail: int = MIN_TAIL_SAMPLES) -> bool:
    """Whether ``n`` samples are too few for a percentile to mean much.

    The rule: fewer than ``tail`` (10) samples are expected above the percentile,
    ``n * (1 - q) < tail``; see :func:`min_samples`. p99.9 from 500 requests is too
    few (0.5 samples above it); p95 from 500 is enough (25 above it).
    """
    return n < min_samples(percentile, tail)


def rank_interval(
    n: int, quantile: float, confidence: float = DEFAULT_CONFIDENCE
) -> tuple[int | None, int | None, float]:
    """Ranks of the order statistics that bound a quantile with given confidence.

    Parameters
    ----------
    n
        Number of samples.
    quantile
        The quantile q, in [0, 1].
    confidence
        Wanted probability that the interval holds the true quantile, in (0, 1).

    Returns
    -------
    tuple
        ``(l, u, coverage)``: 1-based ranks of the lower and upper bound in the sorted
        samples, None for a bound no sample can give (``l < 1`` or ``u > n``), and
        the exact coverage ``P(l <= B <= u - 1)`` for B ~ binomial(n, q) (NaN when a
        bound is None). See the module docstring for the construction.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence!r}")
    if not 0.0 <= quantile <= 1.0:
        raise ValueError(f"quantile must be in [0, 1], not {quantile!r}")
    if n <= 0:
        return None, None, float("nan")
    tail = (1.0 - confidence) / 2.0
    low = int(stats.binom.ppf(tail, n, quantile))
    high = int(stats.binom.ppf(1.0 - tail, n, quantile)) + 1
    # ppf is the smallest k with cdf(k) >= p; floating error can leave it one off,
    # and each end must keep at most `tail` of the probability outside it.
    while low >= 1 and stats.binom.cdf(low - 1, n, quantile) > tail:
        low -= 1
    while high <= n and stats.binom.cdf(high - 1, n, quantile) < 1.0 - tail:
        high += 1
    while high - 1 >= 1 and stats.binom.cdf(high - 2, n, quantile) >= 1.0 - tail:
        high -= 1
    low_rank = low if low >= 1 else None
    high_rank = high if high <= n else None
    coverage = float("nan")
    if low_rank is not None and high_rank is not None:
        coverage = float(
            stats.binom.cdf(high_rank - 1, n, quantile)
            - stats.binom.cdf(low_rank - 1, n, quantile)
        )
    return low_rank, high_rank, coverage


def percentile_intervals(
    latencies_ms: Sequence[float] | np.ndarray | pd.Series,
    percentiles: Sequence[float] = PERCENTILES,
    confidence: float = DEFAULT_CONFIDENCE,
    method: str = DEFAULT_METHOD,
    warn: bool = True,
    label: str = "",
) -> pd.DataFrame:
    """Percentiles with distribution-free confidence intervals.

    Parameters
    ----------
    latencies_ms
        Latency samples in milliseconds; NaN values are left out.
    percentiles
        Percentiles on the 0-100 scale.
    confidence
        Probability, in (0, 1), that each interval holds the true percentile.
    method
        Method of the point estimate ``value``, see :func:`percentiles`. The interval
        does not depend on it.
    warn
        Emit a :class:`~perflab.errors.PrecisionWarning` for every percentile that has
        too few samples (:func:`too_few_samples`) or no interval.
    label
        What the samples are (an endpoint), named in the warnings.

    Returns
    -------
    DataFrame
        One row per percentile: ``percentile`` (0-100), ``column`` (``p95``),
        ``value`` (ms), ``low`` and ``high`` (ms, the order statistics ``X_(l)`` and
        ``X_(u)``; NaN where no sample can be that bound), ``n`` (samples),
        ``exact_coverage`` (the interval's exact probability of holding the true
        percentile, at least ``confidence``; NaN when a bound is missing) and
        ``too_few`` (:func:`too_few_samples`).
    """
    values = np.asarray(latencies_ms, dtype=float)
    values = np.sort(values[~np.isnan(values)])
    n = int(values.size)
    point = _percentile_values(values, percentiles, method)
    rows = []
    for percentile in percentiles:
        column = percentile_column(percentile)
        low_rank, high_rank, coverage = rank_interval(n, percentile / 100.0, confidence)
        rows.append(
            {
                "percentile": float(percentile),
                "column": column,
                "value": point[column],
                "low": values[low_rank - 1] if low_rank else float("nan"),
                "high": values[high_rank - 1] if high_rank else float("nan"),
                "n": n,
                "exact_coverage": coverage,
                "too_few": too_few_samples(n, percentile),
            }
        )
    table = pd.DataFrame(rows, columns=_INTERVAL_COLUMNS)
    if warn:
        for message in sample_size_messages(table, label):
            warnings.warn(message, PrecisionWarning, stacklevel=2)
    return table


_INTERVAL_COLUMNS = [
    "percentile",
    "column",
    "value",
    "low",
    "high",
    "n",
    "exact_coverage",
    "too_few",
]


def sample_size_messages(intervals: pd.DataFrame, label: str = "") -> list[str]:
    """Caveats about the sample size behind each percentile of an interval table.

    Parameters
    ----------
    intervals
        A table returned by :func:`percentile_intervals`.
    label
        What the samples are (an endpoint), put in front of each message.

    Returns
    -------
    list of str
        One sentence per percentile with too few samples or without an interval.
    """
    where = f"{label}: " if label else ""
    messages = []
    for row in intervals.itertuples():
        name = f"p{row.percentile:g}"
        if row.n == 0:
            continue
        if row.too_few:
            messages.append(
                f"{where}{name} comes from {row.n} samples; at least "
                f"{min_samples(row.percentile)} are needed to have "
                f"{MIN_TAIL_SAMPLES} above it, so it rests on fewer than that many "
                "requests and may move a lot between runs."
            )
        if math.isnan(row.low) or math.isnan(row.high):
            missing = " and ".join(
                side
                for side, bound in (("lower", row.low), ("upper", row.high))
                if math.isnan(bound)
            )
            messages.append(
                f"{where}{name} has no {missing} confidence bound from {row.n} "
                "samples: the true value may lie beyond the smallest or largest "
                "latency seen."
            )
    return messages


def sample_size_warnings(
    table: pd.DataFrame, percentiles: Sequence[float] = PERCENTILES, warn: bool = True
) -> list[str]:
    """Caveats for the percentiles of an ``endpoints`` table with too few samples.

    Parameters
    ----------
    table
        An ``endpoints`` table (columns ``endpoint``, ``requests`` and the percentile
        columns); only percentiles present as columns are checked.
    percentiles
        Percentiles on the 0-100 scale.
    warn
        Also emit each message as a :class:`~perflab.errors.PrecisionWarning`.

    Returns
    -------
    list of str
        One sentence per endpoint, naming the percentiles that rest on fewer than
        :data:`MIN_TAIL_SAMPLES` samples above them (:func:`too_few_samples`), for the
        report.
    """
    messages = []
    for row in table.itertuples(index=False):
        n = row.requests
        if n is None or pd.isna(n) or n == 0:
            continue
        flagged = [
            f"p{p:g} (needs {min_samples(p):,})"
            for p in percentiles
            if percentile_column(p) in table.columns and too_few_samples(int(n), p)
        ]
        if flagged:
            messages.append(
                f"{row.endpoint}: {int(n):,} requests are too few for "
                f"{', '.join(flagged)}: fewer than {MIN_TAIL_SAMPLES} requests lie "
                "above them, so treat them as rough."
            )
    if warn:
        for message in messages:
            warnings.warn(message, PrecisionWarning, stacklevel=2)
    return messages


def _check_percentile(percentile: float) -> None:
    if not 0.0 <= percentile <= 100.0:
        raise ValueError(f"percentile must be in [0, 100], not {percentile!r}")


# -- merging samples -------------------------------------------------------------------


def merge_requests(
    frames: Iterable[pd.DataFrame], workers: Sequence[str] | None = None
) -> pd.DataFrame:
    """Merge the per-request samples of several workers, files or runs.

    Statistics of the result are those of the union of the samples; this is the only
    way perflab combines latencies from several sources (summary numbers such as
    percentiles are never averaged). A run's ``requests`` table is already the merged
    sample set of all its workers.

    Parameters
    ----------
    frames
        ``requests`` tables (or frames with at least ``ts`` and ``latency_ms``).
    workers
        One label per frame, used for the ``worker`` column where a frame has none or
        it is null; by default the frame's position (``"0"``, ``"1"``...). A user is
        identified by ``worker`` and ``user`` together.

    Returns
    -------
    DataFrame
        All rows, ordered by ``ts`` (stable), with a fresh index.
    """
    frames = list(frames)
    if workers is not None and len(workers) != len(frames):
        raise ValueError(
            f"workers has {len(workers)} labels for {len(frames)} frames; give one "
            "label per frame."
        )
    labelled = []
    seen: dict[str, int] = {}
    for position, frame in enumerate(frames):
        label = str(workers[position]) if workers is not None else str(position)
        worker = frame["worker"] if "worker" in frame else pd.Series(None, frame.index)
        worker = worker.astype("object").where(worker.notna(), label)
        for name in pd.unique(worker):
            if name in seen and seen[name] != position:
                warnings.warn(
                    f"Worker {name!r} appears in frame {seen[name]} and frame "
                    f"{position}; their users are merged as one worker's. Give "
                    "distinct worker labels if they are different processes.",
                    DataWarning,
                    stacklevel=2,
                )
            seen.setdefault(name, position)
        labelled.append(frame.assign(worker=worker))
    if not labelled:
        return pd.DataFrame(columns=["ts", "latency_ms", "worker"])
    merged = pd.concat([f for f in labelled if not f.empty] or labelled[:1])
    return merged.sort_values("ts", kind="stable").reset_index(drop=True)


# -- histograms ------------------------------------------------------------------------

#: Default relative error of :class:`LatencyHistogram` values (~3 significant digits).
DEFAULT_RELATIVE_ERROR = 0.001

#: Latencies below this many milliseconds are counted as 0 ms by the histogram.
HISTOGRAM_LOWEST_MS = 0.001


class LatencyHistogram:
    """A mergeable histogram of latencies with logarithmic buckets, like HdrHistogram.

    Bucket k holds latencies in ``[a * g**k, a * g**(k + 1))`` with
    ``a = HISTOGRAM_LOWEST_MS`` and ``g = (1 + e) / (1 - e)`` for the relative error
    e; each bucket is represented by ``2 * lo * hi / (lo + hi)``, which is within a
    fraction e of every latency in it. Latencies below ``a`` (1 microsecond) count as
    0 ms, an absolute error under 1 microsecond. Percentiles from the histogram are
    therefore within a relative error e (plus that absolute microsecond) of the
    exact percentile of the recorded samples, for either method; the minimum and
    maximum (``min_ms``, ``max_ms``, p0 and p100) are kept exactly.

    Two histograms with the same relative error merge by adding counts
    (``a + b`` or :meth:`merge`), which gives exactly the histogram of the union of
    their samples. Use it where only aggregates can be merged; where samples exist,
    merge the samples (:func:`merge_requests`).

    Parameters
    ----------
    relative_error
        The e above, in (0, 0.5); 0.001 (0.1 %, about 3 significant digits) by default.
    """

    def __init__(self, relative_error: float = DEFAULT_RELATIVE_ERROR):
        if not 0.0 < relative_error < 0.5:
            raise ValueError(
                f"relative_error must be in (0, 0.5), not {relative_error!r}"
            )
        self.relative_error = float(relative_error)
        self._log_growth = math.log((1 + relative_error) / (1 - relative_error))
        self.counts: dict[int, int] = {}
        self.min_ms = float("nan")
        self.max_ms = float("nan")

    @classmethod
    def of(
        cls,
        latencies_ms: Sequence[float] | np.ndarray | pd.Series,
        relative_error: float = DEFAULT_RELATIVE_ERROR,
    ) -> LatencyHistogram:
        """A histogram of latency samples (ms); NaN values are left out."""
        histogram = cls(relative_error)
        histogram.record(latencies_ms)
        return histogram

    @classmethod
    def merge(cls, histograms: Iterable[LatencyHistogram]) -> LatencyHistogram:
        """The histogram of the union of the samples of several histograms."""
        histograms = list(histograms)
        if not histograms:
            raise ValueError("merge needs at least one histogram")
        merged = cls(histograms[0].relative_error)
        for histogram in histograms:
            merged += histogram
        return merged

    @property
    def count(self) -> int:
        """Number of samples recorded."""
        return sum(self.counts.values())

    def bucket(self, latencies_ms: np.ndarray) -> np.ndarray:
        """Bucket index of each latency (ms); -1 is the bucket of 0 ms."""
        values = np.asarray(latencies_ms, dtype=float)
        index = np.full(values.shape, -1, dtype=np.int64)
        positive = values >= HISTOGRAM_LOWEST_MS
        index[positive] = np.floor(
            np.log(values[positive] / HISTOGRAM_LOWEST_MS) / self._log_growth
        ).astype(np.int64)
        return index

    def bucket_value(self, index: np.ndarray) -> np.ndarray:
        """Value (ms) that represents each bucket index."""
        index = np.asarray(index, dtype=np.int64)
        low = HISTOGRAM_LOWEST_MS * np.exp(index * self._log_growth)
        high = low * math.exp(self._log_growth)
        return np.where(index < 0, 0.0, 2 * low * high / (low + high))

    def record(
        self,
        latencies_ms: Sequence[float] | np.ndarray | pd.Series,
        counts: Sequence[int] | np.ndarray | None = None,
    ) -> None:
        """Add latencies (ms), each ``counts`` times (once by default).

        ``counts`` lets a tool's own histogram, such as Locust's rounded
        ``response_times`` (latency -> count), be recorded as it is.
        """
        values = np.asarray(latencies_ms, dtype=float).ravel()
        weights = (
            np.ones(values.shape, dtype=np.int64)
            if counts is None
            else np.asarray(counts, dtype=np.int64).ravel()
        )
        if weights.shape != values.shape:
            raise ValueError("counts must have one entry per latency")
        keep = ~np.isnan(values) & (weights > 0)
        values, weights = values[keep], weights[keep]
        if values.size == 0:
            return
        if (values < 0).any() or not np.isfinite(values).all():
            raise ValueError("latencies must be finite and not negative")
        index = self.bucket(values)
        unique, inverse = np.unique(index, return_inverse=True)
        sums = np.bincount(inverse, weights=weights).astype(np.int64)
        for key, add in zip(unique.tolist(), sums.tolist(), strict=True):
            self.counts[key] = self.counts.get(key, 0) + add
        self.min_ms = float(np.nanmin([self.min_ms, values.min()]))
        self.max_ms = float(np.nanmax([self.max_ms, values.max()]))

    def __iadd__(self, other: LatencyHistogram) -> LatencyHistogram:
        if other.relative_error != self.relative_error:
            raise ValueError(
                "Histograms with different relative errors cannot be merged "
                f"({self.relative_error} and {other.relative_error}); record both "
                "with the same relative_error."
            )
        for key, add in other.counts.items():
            self.counts[key] = self.counts.get(key, 0) + add
        if other.counts:
            self.min_ms = float(np.nanmin([self.min_ms, other.min_ms]))
            self.max_ms = float(np.nanmax([self.max_ms, other.max_ms]))
        return self

    def __add__(self, other: LatencyHistogram) -> LatencyHistogram:
        return LatencyHistogram.merge([self, other])

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, LatencyHistogram):
            return NotImplemented
        same_range = (self.min_ms, self.max_ms) == (other.min_ms, other.max_ms) or (
            not self.counts and not other.counts
        )
        return (
            self.relative_error == other.relative_error
            and self.counts == other.counts
            and same_range
        )

    __hash__ = None  # mutable

    def __repr__(self) -> str:
        return (
            f"LatencyHistogram(count={self.count}, relative_error="
            f"{self.relative_error}, buckets={len(self.counts)})"
        )

    def percentiles(
        self, percentiles: Sequence[float] = PERCENTILES, method: str = DEFAULT_METHOD
    ) -> dict[str, float]:
        """Percentiles (ms) of the recorded latencies, within the relative error.

        Same definitions and result as :func:`percentiles`, each value read from the
        bucket holding the sample of that rank and kept within [min, max]; NaN when
        the histogram is empty.
        """
        if method not in METHODS:
            raise ValueError(f"method must be one of {sorted(METHODS)}, not {method!r}")
        names = [percentile_column(p) for p in percentiles]
        n = self.count
        if n == 0:
            return dict.fromkeys(names, float("nan"))
        keys = np.array(sorted(self.counts), dtype=np.int64)
        cumulative = np.cumsum([self.counts[k] for k in keys.tolist()])
        values = np.clip(self.bucket_value(keys), self.min_ms, self.max_ms)

        def at(rank0: np.ndarray) -> np.ndarray:  # value of 0-based sorted rank
            found = values[np.searchsorted(cumulative, rank0 + 1, side="left")]
            # The smallest and largest samples are known exactly.
            return np.where(
                rank0 == 0, self.min_ms, np.where(rank0 == n - 1, self.max_ms, found)
            )

        # The positions numpy uses for n samples, so ranks match percentiles() exactly.
        qs = np.asarray(percentiles, dtype=float) / 100.0
        position = np.quantile(np.arange(n), qs, method=METHODS[method])
        lower = np.floor(position).astype(np.int64)
        fraction = position - lower
        upper = np.minimum(lower + 1, n - 1)
        result = at(lower) + fraction * (at(upper) - at(lower))
        return {name: float(v) for name, v in zip(names, result, strict=True)}

    def to_frame(self) -> pd.DataFrame:
        """Buckets as a table: ``bucket``, ``low_ms``, ``high_ms``, ``value_ms``,
        ``count``, ordered by latency; ``low_ms`` of the 0 ms bucket is 0."""
        keys = np.array(sorted(self.counts), dtype=np.int64)
        low = np.where(
            keys < 0, 0.0, HISTOGRAM_LOWEST_MS * np.exp(keys * self._log_growth)
        )
        high = np.where(
            keys < 0,
            HISTOGRAM_LOWEST_MS,
            HISTOGRAM_LOWEST_MS * np.exp((keys + 1) * self._log_growth),
        )
        return pd.DataFrame(
            {
                "bucket": keys,
                "low_ms": low,
                "high_ms": high,
                "value_ms": self.bucket_value(keys),
                "count": [self.counts[k] for k in keys.tolist()],
            }
        )


# -- aggregate-only sources ------------------------------------------------------------

#: How precise the percentiles a tool reports are, stated for the report.
TOOL_RESOLUTION = {
    "locust": (
        "Locust keeps no samples: it rounds each response time before counting it "
        "into the histogram its percentiles come from (bucket_response_time in "
        "locust/stats.py, read in Locust 2.47.0): below 100 ms to the whole "
        "millisecond, from 100 ms to the nearest 10 ms, from 1,000 ms to the nearest "
        "100 ms and from 10,000 ms to the nearest 1,000 ms (Python's round, halves "
        "to even), about two significant digits, so a percentile above 100 ms may be "
        "off by up to 5 % and one below by up to 0.5 ms. Its percentile is the "
        "rounded time at rank floor(n * q) + 1 (calculate_response_time_percentile), "
        "one rank above nearest rank when n * q is whole. Min, max and mean are "
        "computed from the unrounded times."
    ),
    "k6": (
        "k6 computes its trend percentiles over all samples of the run by linear "
        "interpolation between closest ranks (numpy's 'linear'); they are exact for "
        "that method, not perflab's nearest rank, and only the statistics k6 was "
        "asked for (summaryTrendStats) exist."
    ),
}


def resolution_note(tool: str | None) -> str:
    """What is known about the precision of a tool's own percentiles.

    Returns
    -------
    str
        A sentence for the report; a generic caveat for a tool perflab does not know.
    """
    if tool and tool.lower() in TOOL_RESOLUTION:
        return TOOL_RESOLUTION[tool.lower()]
    return (
        f"{tool or 'The tool'}'s percentiles are its own aggregate; how they were "
        "computed and rounded is not known to perflab."
    )


def tidy_tool_percentiles(
    table: pd.DataFrame, tool: str | None = None, warn: bool = True
) -> pd.DataFrame:
    """Make tool-reported percentiles consistent, saying what was changed.

    A tool's aggregate percentiles can contradict each other (a p99 below the p95,
    a p99 above the maximum) when the tool rounds latencies before computing them or
    merged summaries. Per row, each percentile column is first held within
    ``[min_ms, max_ms]`` where those are known, then raised to the largest lower
    percentile, so the row never decreases. Every change is reported as a
    :class:`~perflab.errors.PrecisionWarning` naming the endpoint, the column, the old
    and new value and why, followed by :func:`resolution_note`. Missing values stay
    missing, and rows that need no change are left exactly as they were.

    Parameters
    ----------
    table
        An ``endpoints``-like table: ``endpoint``, optional ``min_ms`` and
        ``max_ms``, and percentile columns (``p50``, ``p99_9``...) in ms.
    tool
        The tool the numbers come from (``"locust"``, ``"k6"``), for the note.
    warn
        Emit one warning listing every change (also in ``result.attrs``).

    Returns
    -------
    DataFrame
        A copy of ``table`` with the percentile columns as floats, changed where
        needed; ``attrs["changes"]`` lists one message per changed endpoint and
        ``attrs["resolution"]`` holds :func:`resolution_note`.
    """
    columns = sorted(
        (c for c in table.columns if _PERCENTILE_NAME.fullmatch(str(c))),
        key=_column_percentile,
    )
    result = table.astype(dict.fromkeys(columns, float))
    messages = []
    for position in range(len(result)):
        row = result.iloc[position]
        low = _number(row.get("min_ms"))
        high = _number(row.get("max_ms"))
        changes = []
        floor_value = float("nan")
        for column in columns:
            old = _number(row[column])
            if math.isnan(old):
                continue
            new, why = old, ""
            if not math.isnan(high) and new > high:
                new, why = high, f"above the max {high:g} ms"
            if not math.isnan(low) and new < low:
                new, why = low, f"below the min {low:g} ms"
            if not math.isnan(floor_value) and new < floor_value:
                new, why = floor_value, "below a lower percentile"
            floor_value = new if math.isnan(floor_value) else max(floor_value, new)
            if new != old:
                result.iloc[position, result.columns.get_loc(column)] = new
                changes.append(f"{column} {old:g} -> {new:g} ms ({why})")
        if changes:
            label = row.get("endpoint", position)
            messages.append(f"{label}: {'; '.join(changes)}")
    note = resolution_note(tool)
    if warn and messages:
        warnings.warn(
            "The tool's percentiles were inconsistent and perflab changed them: "
            + ". ".join(messages)
            + f". {note}",
            PrecisionWarning,
            stacklevel=2,
        )
    result.attrs["changes"] = messages
    result.attrs["resolution"] = note
    return result


_PERCENTILE_NAME = re.compile(r"p\d+(_\d+)?")


def _column_percentile(column: str) -> float:
    return float(column[1:].replace("_", "."))


def _number(value) -> float:
    if value is None or pd.isna(value):
        return float("nan")
    return float(value)

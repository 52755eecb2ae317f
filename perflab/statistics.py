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
    Completed requests per second of the window or interval.
error rate
    Failed requests divided by all requests.

Every statistic here is computed from samples. Per-interval percentiles use only the
samples inside each interval; nothing is ever averaged across intervals or workers.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from perflab.store import OVERALL, PERCENTILES, endpoint_label, percentile_column

METHODS = {"nearest-rank": "inverted_cdf", "linear": "linear"}
DEFAULT_METHOD = "nearest-rank"

METHOD_DESCRIPTIONS = {
    "nearest-rank": "nearest rank (the smallest observed latency with at least q of the "
    "requests at or below it; numpy's inverted_cdf)",
    "linear": "linear interpolation between closest ranks (numpy's default; the "
    "method k6 uses)",
}


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


def _summary(group: pd.DataFrame, seconds: float, method: str) -> dict[str, float]:
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
    row.update(percentiles(measured, PERCENTILES, method))
    return row


def window_seconds(requests: pd.DataFrame) -> float:
    """Length of the span of request start times, in seconds (at least 1 ms)."""
    if requests.empty:
        return float("nan")
    ts = pd.to_datetime(requests["ts"], utc=True)
    end = ts + pd.to_timedelta(requests["latency_ms"].fillna(0), unit="ms")
    return max((end.max() - ts.min()).total_seconds(), 1e-3)


def endpoint_table(
    requests: pd.DataFrame,
    method: str = DEFAULT_METHOD,
    seconds: float | None = None,
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

    Returns
    -------
    DataFrame
        The ``endpoints`` table columns, endpoints sorted by label, ``Overall`` last.
    """
    seconds = window_seconds(requests) if seconds is None else seconds
    rows = []
    for label, group in requests.groupby("endpoint", sort=True, dropna=False):
        first = group.iloc[0]
        rows.append(
            {
                "endpoint": label,
                "method": first["method"],
                "name": first["name"],
                **_summary(group, seconds, method),
            }
        )
    if not requests.empty:
        rows.append(
            {
                "endpoint": OVERALL,
                "method": None,
                "name": OVERALL,
                **_summary(requests, seconds, method),
            }
        )
    return pd.DataFrame(rows, columns=_ENDPOINT_COLUMNS)


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
) -> pd.DataFrame:
    """Per-interval series per endpoint and overall, from the samples in each interval.

    Requests are assigned to the interval holding their start time. Intervals with no
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
        Optional series with columns ``ts`` and ``users`` (concurrent virtual users); the
        last value at or before each interval start is used.
    method
        Percentile method, see :func:`percentiles`.
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
        *[percentile_column(p) for p in PERCENTILES],
    ]
    if requests.empty:
        return pd.DataFrame(columns=columns)
    ts = pd.to_datetime(requests["ts"], utc=True)
    step = pd.Timedelta(seconds=interval_s)
    origin = ts.min().floor("s")
    bucket = origin + ((ts - origin) // step) * step
    frame = requests.assign(_bucket=bucket)

    rows = []
    for (start, label), group in frame.groupby(["_bucket", "endpoint"], sort=True):
        rows.append(_interval_row(start, label, group, interval_s, method))
    overall_starts = pd.date_range(origin, bucket.max(), freq=step)
    by_bucket = dict(tuple(frame.groupby("_bucket")))
    for start in overall_starts:
        group = by_bucket.get(start, frame.iloc[0:0])
        rows.append(_interval_row(start, OVERALL, group, interval_s, method))
    table = pd.DataFrame(rows, columns=columns[:3] + columns[3:])

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


def _interval_row(start, label, group, interval_s, method):
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
        **percentiles(measured, PERCENTILES, method),
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

"""The run catalog: what the run store holds, and how its headline numbers trend.

:func:`catalog` lists every run of a store with its headline numbers, read from each
run's ``run.json`` and the ``Overall`` row of its ``endpoints`` table (the whole run,
as ingested). :func:`trend` puts the comparable runs in date order and compares each
with the one before it (see :func:`perflab.comparing.compare`), so that a trend figure
can mark where a change was significant.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import numpy as np
import pandas as pd

from perflab.comparing import FASTER, SLOWER, compare, regressions
from perflab.errors import PerflabError
from perflab.store import DEFAULT_STORE, OVERALL, Run, list_runs

log = logging.getLogger(__name__)

#: Columns of :func:`catalog`.
CATALOG_COLUMNS = [
    "id",
    "date",
    "tool",
    "scenario",
    "environment",
    "users",
    "duration_s",
    "requests",
    "throughput",
    "p95",
    "p99",
    "error_rate",
    "status",
    "samples",
    "check",
]

#: Headline numbers plotted by :func:`plot_trend`, with their axis labels.
HEADLINES = {
    "p95": "p95 (ms)",
    "p99": "p99 (ms)",
    "throughput": "throughput (requests/s)",
    "error_rate": "error rate (%)",
}


def catalog(store: Path | str = DEFAULT_STORE) -> pd.DataFrame:
    """Every run in a store, oldest first, with its headline numbers.

    Parameters
    ----------
    store
        The run store folder (``data/runs`` by default).

    Returns
    -------
    DataFrame
        One row per run: ``id``; ``date`` (start, UTC timestamp); ``tool``;
        ``scenario``; ``environment``; ``users`` (peak users, planned when not
        measured); ``duration_s``; ``requests``, ``throughput`` (requests/s),
        ``p95``, ``p99`` (ms) and ``error_rate`` (failed / all) from the ``Overall``
        row of the ``endpoints`` table (the whole run; NaN when the run has no such
        table); ``status`` (``completed``, ``interrupted``, ``failed``); ``samples``
        (True when per-request samples exist, so the run can be compared).
    """
    rows = [_catalog_row(run) for run in list_runs(store)]
    frame = pd.DataFrame(rows, columns=CATALOG_COLUMNS)
    # start times are ISO 8601 with or without fractional seconds
    frame["date"] = pd.to_datetime(frame["date"], utc=True, format="ISO8601")
    return frame.sort_values("date", kind="stable", na_position="first").reset_index(
        drop=True
    )


def _catalog_row(run: Run) -> dict:
    meta = run.meta
    row = {
        "id": run.id,
        "date": meta.get("start"),
        "tool": meta.get("tool"),
        "scenario": meta.get("scenario"),
        "environment": meta.get("environment"),
        "users": meta.get("peak_users", meta.get("peak_users_planned")),
        "duration_s": meta.get("duration_s"),
        "requests": math.nan,
        "throughput": math.nan,
        "p95": math.nan,
        "p99": math.nan,
        "error_rate": math.nan,
        "status": meta.get("status"),
        "samples": run.has("requests"),
        "check": (meta.get("check") or {}).get("verdict"),
    }
    if run.has("endpoints"):
        endpoints = run.table("endpoints")
        overall = endpoints[endpoints["endpoint"] == OVERALL]
        if not overall.empty:
            first = overall.iloc[0]
            for column in ("requests", "throughput", "p95", "p99", "error_rate"):
                row[column] = first[column]
    return row


def comparable(base: pd.Series, candidate: pd.Series) -> bool:
    """Whether two catalog rows describe the same load: same scenario, environment
    and peak users, and both with per-request samples."""
    same = all(
        _same(base[key], candidate[key]) for key in ("scenario", "environment", "users")
    )
    return same and bool(base["samples"]) and bool(candidate["samples"])


def _same(a, b) -> bool:
    if a is None or (isinstance(a, float) and math.isnan(a)):
        return b is None or (isinstance(b, float) and math.isnan(b))
    return a == b


def trend(
    store: Path | str = DEFAULT_STORE,
    threshold: float = 0.05,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """The catalog in date order, each run compared with the previous comparable one.

    Parameters
    ----------
    store
        The run store folder.
    threshold, confidence
        Passed to :func:`perflab.comparing.compare`.

    Returns
    -------
    DataFrame
        The :func:`catalog` columns of the completed runs, plus ``previous`` (the id
        of the run it was compared with, None when there is none: the first run of a
        load, or a run without samples), ``verdict`` (the ``Overall`` verdict of that
        comparison), ``changed`` (True when the ``Overall`` verdict is faster or
        slower, or any metric regressed) and ``regressions`` (how many metrics
        regressed, as in :func:`perflab.comparing.regressions`).
    """
    runs = {run.id: run for run in list_runs(store)}
    frame = catalog(store)
    frame = frame[frame["status"] == "completed"].reset_index(drop=True)
    previous, verdicts, changed, counts = [], [], [], []
    for i, row in frame.iterrows():
        earlier = [j for j in range(i) if comparable(frame.loc[j], row)]
        if not earlier:
            previous.append(None)
            verdicts.append(None)
            changed.append(False)
            counts.append(0)
            continue
        base_id = frame.loc[earlier[-1], "id"]
        try:
            result = compare(runs[base_id], runs[row["id"]], threshold, confidence)
        except PerflabError as exc:
            log.warning("run %s not compared with %s: %s", row["id"], base_id, exc)
            previous.append(None)
            verdicts.append(None)
            changed.append(False)
            counts.append(0)
            continue
        verdict = result.verdict(OVERALL)
        found = len(regressions(result))
        previous.append(base_id)
        verdicts.append(verdict)
        changed.append(verdict in (FASTER, SLOWER) or found > 0)
        counts.append(found)
    frame["previous"] = previous
    frame["verdict"] = verdicts
    frame["changed"] = changed
    frame["regressions"] = counts
    return frame


def plot_trend(trends: pd.DataFrame):
    """Headline numbers (p95, p99, throughput, error rate) across runs in date order,
    one panel each; a red ring marks a run significantly changed from the previous
    comparable run (see :func:`trend`)."""
    from perflab.plotting import PlotFigure

    fig = PlotFigure(figsize=(9, 2.2 * len(HEADLINES)), layout="constrained")
    axes = fig.subplots(len(HEADLINES), 1)
    x = np.arange(len(trends))
    for ax, (column, label) in zip(axes, HEADLINES.items(), strict=True):
        values = trends[column].to_numpy(dtype=float)
        if column == "error_rate":
            values = 100 * values
        ax.plot(x, values, marker="o", color="tab:blue")
        marked = trends["changed"].to_numpy(dtype=bool)
        ax.scatter(
            x[marked],
            values[marked],
            s=140,
            facecolors="none",
            edgecolors="tab:red",
            linewidths=1.5,
            label="significant change from the previous comparable run",
        )
        ax.set_ylabel(label)
        ax.set_xticks(x, [])
    labels = [
        f"{d:%m-%d %H:%M}\n{i[-12:]}" if pd.notna(d) else i[-12:]
        for d, i in zip(trends["date"], trends["id"], strict=True)
    ]
    axes[-1].set_xticks(x, labels, rotation=45, ha="right", fontsize=7)
    if trends["changed"].any():
        axes[0].legend(fontsize=8, loc="best")
    return fig

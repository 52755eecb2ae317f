"""Analysis windows: the steady state of a run, without its ramp-up and ramp-down.

A *window* is the part of a run being analyzed. While users are still being started
(ramp-up) or stopped (ramp-down), the load is not the load the run was meant to
measure, so headline numbers come from the *steady state*: the longest span in which
the number of concurrent users stays within a tolerance (5 % by default) of its peak.
``whole=True`` asks for the whole run instead.

Where the users come from, in order of preference:

1. a users series (the ``Overall`` rows of the ``intervals`` table, column ``users``,
   or any frame with ``ts`` and ``users``). Users are sampled, so a change happens
   somewhere between two samples; the steady window runs from the first sample at
   peak to the last one, and only reaches past the last sample (to the end of its
   interval, or of the run) when the series never drops;
2. the planned stages of ``run.json`` (``stages``: ``{duration_s, users}``, users
   moving linearly from the previous stage's count, starting at 0) with the run's
   ``start``: the window is computed exactly from the plan;
3. neither: the whole run, with the reason in :attr:`Window.how`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from perflab.store import OVERALL, Run

#: Users within this fraction of their peak count as at peak.
DEFAULT_TOLERANCE = 0.05

#: A steady state shorter than both of these (seconds, and share of the whole run)
#: is a blip of the users series, not a hold: the whole run is analyzed instead.
MIN_STEADY_S = 10.0
MIN_STEADY_SHARE = 0.25


@dataclass(frozen=True)
class Window:
    """A span of a run to analyze.

    Attributes
    ----------
    start, end
        UTC bounds; a request belongs to the window when ``start <= ts < end``.
    how
        One sentence saying how the window was chosen, for the report.
    steady
        True when the span is the steady state, False for the whole run.
    peak_users
        The peak number of users the steady state was measured against, when known.
    """

    start: pd.Timestamp
    end: pd.Timestamp
    how: str
    steady: bool = False
    peak_users: float | None = None

    @property
    def seconds(self) -> float:
        """Length of the window in seconds."""
        return (self.end - self.start).total_seconds()

    def to_json(self) -> dict[str, Any]:
        return {
            "start": self.start.isoformat(),
            "end": self.end.isoformat(),
            "how": self.how,
            "steady": self.steady,
            "peak_users": self.peak_users,
        }


def whole_window(requests: pd.DataFrame, reason: str = "") -> Window:
    """The whole span of the requests: first start to last end (start + latency).

    ``reason`` says why the whole run is analyzed; it goes into :attr:`Window.how`.
    """
    if requests.empty:
        raise ValueError("There are no requests, so there is no window to analyze.")
    ts = pd.to_datetime(requests["ts"], utc=True)
    end = ts + pd.to_timedelta(requests["latency_ms"].fillna(0), unit="ms")
    # One microsecond past the last end so that the last request is inside.
    how = "the whole run, from the first request to the end of the last"
    return Window(
        ts.min(),
        end.max() + pd.Timedelta(microseconds=1),
        f"{how} ({reason})" if reason else how,
    )


def steady_from_users(
    users: pd.DataFrame,
    tolerance: float = DEFAULT_TOLERANCE,
    series_end: pd.Timestamp | None = None,
) -> Window | None:
    """The longest span in which a users series stays at its peak.

    Parameters
    ----------
    users
        Columns ``ts`` (UTC) and ``users``; rows without users are left out.
    tolerance
        Users at or above ``(1 - tolerance) * peak`` count as at peak.
    series_end
        Until when the last sample holds (the end of its interval or of the run); used
        only when the hold lasts to the last sample. By default the last sample's time.

    Returns
    -------
    Window or None
        The steady window, from the first sample of the longest run of samples at
        peak to its last sample (to ``series_end`` when the run never drops); ties go
        to the earliest. None when there is no usable sample or the peak is 0.
    """
    if not 0.0 <= tolerance < 1.0:
        raise ValueError(f"tolerance must be in [0, 1), not {tolerance!r}")
    series = users[["ts", "users"]].dropna()
    if series.empty:
        return None
    series = series.assign(ts=pd.to_datetime(series["ts"], utc=True)).sort_values("ts")
    ts = series["ts"].reset_index(drop=True)
    values = series["users"].to_numpy(dtype=float)
    peak = float(values.max())
    if peak <= 0:
        return None
    at_peak = values >= (1.0 - tolerance) * peak - 1e-9

    # Runs of consecutive samples at peak, as [first, last] positions.
    edges = np.diff(np.concatenate([[0], at_peak.astype(int), [0]]))
    firsts = np.flatnonzero(edges == 1)
    lasts = np.flatnonzero(edges == -1) - 1
    last_position = len(values) - 1
    end_of_series = ts.iloc[-1] if series_end is None else pd.Timestamp(series_end)

    def span(first: int, last: int) -> tuple[pd.Timestamp, pd.Timestamp]:
        end = end_of_series if last == last_position else ts.iloc[last]
        return ts.iloc[first], max(end, ts.iloc[first])

    spans = [span(f, la) for f, la in zip(firsts, lasts, strict=True)]
    best = max(range(len(spans)), key=lambda i: (spans[i][1] - spans[i][0], -i))
    start, end = spans[best]
    held = "" if len(spans) == 1 else f" (the longest of {len(spans)} holds)"
    return Window(
        start,
        end,
        f"steady state: users within {tolerance:.0%} of their peak of {peak:g}, "
        f"from the users series{held}",
        steady=True,
        peak_users=peak,
    )


def steady_from_stages(
    stages: Sequence[dict[str, float] | Any],
    run_start: pd.Timestamp | str,
    tolerance: float = DEFAULT_TOLERANCE,
) -> Window | None:
    """The longest span in which the planned users stay at their peak.

    Parameters
    ----------
    stages
        ``{"duration_s": ..., "users": ...}`` mappings (``run.json``'s ``stages``) or
        :class:`perflab.shapes.Stage` objects; users move linearly from the previous
        stage's count (0 before the first) to each stage's count.
    run_start
        When the first stage began (UTC).
    tolerance
        Users at or above ``(1 - tolerance) * peak`` count as at peak.

    Returns
    -------
    Window or None
        The steady window of the plan, computed exactly; ties go to the earliest.
        None when there are no stages or the peak is 0.
    """
    plan = [_stage(s) for s in stages]
    if not plan or max(users for _, users in plan) <= 0:
        return None
    peak = float(max(users for _, users in plan))
    level = (1.0 - tolerance) * peak

    # The part of each stage at or above the level, in seconds from the start.
    pieces: list[tuple[float, float]] = []
    offset, previous = 0.0, 0.0
    for duration, users in plan:
        part = _above(previous, users, duration, level)
        if part is not None:
            pieces.append((offset + part[0], offset + part[1]))
        offset += duration
        previous = users
    holds: list[list[float]] = []
    for begin, end in pieces:
        if holds and abs(holds[-1][1] - begin) < 1e-9:
            holds[-1][1] = end
        else:
            holds.append([begin, end])
    best = max(range(len(holds)), key=lambda i: (holds[i][1] - holds[i][0], -i))
    begin, end = holds[best]
    start = pd.Timestamp(run_start)
    start = start.tz_localize("UTC") if start.tzinfo is None else start
    held = "" if len(holds) == 1 else f" (the longest of {len(holds)} holds)"
    return Window(
        start + pd.Timedelta(seconds=begin),
        start + pd.Timedelta(seconds=end),
        f"steady state: planned users within {tolerance:.0%} of their peak of "
        f"{peak:g}, from the run's stages{held}",
        steady=True,
        peak_users=peak,
    )


def _stage(stage) -> tuple[float, float]:
    if isinstance(stage, dict):
        return float(stage["duration_s"]), float(stage["users"])
    return float(stage.duration_s), float(stage.users)


def _above(
    first: float, last: float, duration: float, level: float
) -> tuple[float, float] | None:
    """The part of a linear ramp from ``first`` to ``last`` at or above ``level``."""
    if duration <= 0:
        return None
    if first >= level and last >= level:
        return 0.0, duration
    if first < level and last < level:
        return None
    crossing = duration * (level - first) / (last - first)
    return (crossing, duration) if last >= level else (0.0, crossing)


def steady_window(
    requests: pd.DataFrame,
    users: pd.DataFrame | None = None,
    stages: Sequence[dict[str, float] | Any] | None = None,
    run_start: pd.Timestamp | str | None = None,
    tolerance: float = DEFAULT_TOLERANCE,
    whole: bool = False,
    series_end: pd.Timestamp | None = None,
) -> Window:
    """The window headline numbers are computed over.

    Parameters
    ----------
    requests
        The ``requests`` table (its span is the whole run).
    users
        A users series (``ts``, ``users``), such as the ``Overall`` rows of the
        ``intervals`` table; preferred over the stages.
    stages, run_start
        The planned stages and the run's start, used when there is no users series.
    tolerance
        Users at or above ``(1 - tolerance) * peak`` count as at peak.
    whole
        Analyze the whole run instead of the steady state.
    series_end
        Until when the last users sample holds, see :func:`steady_from_users`; by
        default the end of the whole run.

    Returns
    -------
    Window
        The steady state, clipped to the whole run; the whole run, saying why, when
        asked for, when there is no users series and no stages, when the steady
        state holds no request, or when it is shorter than both
        :data:`MIN_STEADY_S` and :data:`MIN_STEADY_SHARE` of the run (the users
        touched their peak only briefly).
    """
    whole_run = whole_window(requests)
    if whole:
        return whole_window(requests, "asked for with whole=True")
    window = None
    if users is not None and not users.empty:
        window = steady_from_users(
            users, tolerance, series_end if series_end is not None else whole_run.end
        )
    if window is None and stages and run_start is not None:
        window = steady_from_stages(stages, run_start, tolerance)
    if window is None:
        return whole_window(
            requests, "no users series and no stages to find a steady state from"
        )
    start = max(window.start, whole_run.start)
    end = min(window.end, whole_run.end)
    if end <= start or window_requests(requests, window).empty:
        return whole_window(requests, "the steady state found holds no request")
    seconds = (end - start).total_seconds()
    if seconds < MIN_STEADY_S and seconds < MIN_STEADY_SHARE * whole_run.seconds:
        return whole_window(
            requests,
            f"the users reached their peak of {window.peak_users:g} for only "
            f"{seconds:.1f} s of the run's {whole_run.seconds:.1f} s, too briefly "
            "to be a steady state",
        )
    return Window(start, end, window.how, True, window.peak_users)


def run_window(
    run: Run,
    whole: bool = False,
    tolerance: float = DEFAULT_TOLERANCE,
    requests: pd.DataFrame | None = None,
) -> Window:
    """The analysis window of a stored run (see :func:`steady_window`).

    The users series is the ``Overall`` rows of the ``intervals`` table, each holding
    until the end of its interval; without one, ``run.json``'s ``stages`` and
    ``start`` are used.

    Parameters
    ----------
    run
        The run.
    whole
        Analyze the whole run.
    tolerance
        Users at or above ``(1 - tolerance) * peak`` count as at peak.
    requests
        The run's ``requests`` table, when already read.
    """
    requests = run.table("requests") if requests is None else requests
    intervals = run.table("intervals")
    users, series_end = None, None
    if not intervals.empty and "users" in intervals:
        overall = intervals[intervals["endpoint"] == OVERALL]
        if overall["users"].notna().any():
            users = overall[["ts", "users"]]
            last = overall["ts"].max()
            step = overall["interval_s"].dropna()
            series_end = pd.Timestamp(last) + pd.Timedelta(
                seconds=float(step.iloc[-1]) if not step.empty else 0.0
            )
    return steady_window(
        requests,
        users=users,
        stages=run.meta.get("stages"),
        run_start=run.meta.get("start"),
        tolerance=tolerance,
        whole=whole,
        series_end=series_end,
    )


def window_requests(requests: pd.DataFrame, window: Window) -> pd.DataFrame:
    """The requests that started inside a window (``start <= ts < end``)."""
    ts = pd.to_datetime(requests["ts"], utc=True)
    return requests[(ts >= window.start) & (ts < window.end)]

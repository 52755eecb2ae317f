"""Coordinated omission: requests a closed-model load generator never sent.

A closed-model generator (Locust's users, k6's VU-based executors, JMeter threads)
sends a user's next request only after the previous response arrived. When the
service stalls, every user waits on one slow request and sends nothing else, so the
stall appears as a handful of slow samples instead of the many requests that would
have met it at the intended rate: the latency percentiles look far better than what
a steady stream of clients would have seen (Gil Tene's *coordinated omission*).

Detection
---------
For each user (``worker`` and ``user`` together) perflab takes the gaps between
consecutive send times (``ts``) and the user's typical gap, the median of its gaps
(think time plus a typical latency). A gap is a *stall* when all of these hold:

- it is longer than ``gap_factor`` (3) times the user's typical gap,
- it exceeds the typical gap by at least ``min_stall_ms`` (1 s),
- the request sent just before it was slow: its latency is at least
  ``latency_factor`` (5) times the p50 latency of all requests, and
- that latency explains at least half of the excess, so the user was waiting on the
  response rather than idle.

Users with fewer than :data:`MIN_GAPS` gaps are not judged (their median gap means
little). Overlapping stalls of different users form an *episode*; the finding fires
when one episode holds stalls of at least ``min_users_fraction`` (25 %) of the users
judged, at least one. A lone user waiting on one slow request is an outlier, not an
omission by the whole load.

Correction
----------
Where the interval at which a user meant to send, E, is known (given: the think time
plus the p50 latency, a constant-throughput pacing, or a k6 arrival rate; or, once a
stall is detected, estimated as the median of the users' typical gaps), perflab also
gives *corrected* percentiles in the manner of HdrHistogram's
``recordValueWithExpectedInterval``: every latency L above E adds the synthetic
latencies ``L - E, L - 2E, ...`` down to E, standing for the requests that would have
been sent every E while the user waited. Corrected numbers are labelled as such; they
estimate what an open-model client would have seen, they are not measurements.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from perflab import statistics
from perflab.errors import DataWarning
from perflab.statistics import DEFAULT_METHOD
from perflab.store import PERCENTILES

#: Users with fewer gaps between sends than this are not judged.
MIN_GAPS = 4

#: Synthetic samples the correction may add before it gives up (80 MB of floats).
MAX_SYNTHETIC = 10_000_000

CORRECTION_NOTE = (
    "Corrected for coordinated omission in the manner of HdrHistogram's "
    "recordValueWithExpectedInterval: each latency L above the expected interval E "
    "between a user's sends also counts the synthetic latencies L - E, L - 2E, ... "
    "down to E, for the requests the user would have sent while it waited. These are "
    "estimates, not measurements."
)


@dataclass
class Omission:
    """What :func:`detect_omission` found.

    Attributes
    ----------
    detected
        True when an episode of stalls covers enough of the users.
    start, end
        UTC span of the largest episode (by users), None when there is none.
    users_affected
        Users with a stall in that episode.
    users_total
        Users judged (those with at least :data:`MIN_GAPS` gaps).
    longest_stall_ms
        Longest gap between two sends of one user in that episode, in ms (NaN when
        none).
    raw
        Percentiles of the measured latencies (``p99`` -> ms).
    corrected
        Corrected percentiles (ms), or None without an expected interval.
    expected_interval_ms
        The E used for the correction, in ms, or None.
    expected_interval_source
        ``"given"``, ``"estimated"`` (the median of the users' typical gaps) or ``""``.
    method
        How the corrected numbers were made (:data:`CORRECTION_NOTE`), or why not.
    evidence
        Thresholds and measurements behind the verdict, for the findings module.
    episodes
        One row per episode: ``start``, ``end``, ``users``, ``stalls``,
        ``longest_stall_ms``, largest first.
    """

    detected: bool
    start: pd.Timestamp | None
    end: pd.Timestamp | None
    users_affected: int
    users_total: int
    longest_stall_ms: float
    raw: dict[str, float]
    corrected: dict[str, float] | None
    expected_interval_ms: float | None
    expected_interval_source: str
    method: str
    evidence: dict[str, Any] = field(default_factory=dict)
    episodes: pd.DataFrame = field(default_factory=pd.DataFrame)

    def summary(self) -> str:
        """One or two sentences for a report."""
        if not self.detected:
            reason = self.evidence.get("reason", "no stall of many users together")
            if not self.users_total:
                # nothing was judged, so nothing can be said to be absent
                return f"Coordinated omission was not evaluated: {reason}."
            return f"No coordinated omission detected: {reason}."
        text = (
            f"Coordinated omission: from {self.start:%H:%M:%S} to {self.end:%H:%M:%S} "
            f"UTC, {self.users_affected} of {self.users_total} users stopped sending "
            f"while they waited on slow responses (longest stall "
            f"{self.longest_stall_ms / 1000:.1f} s)."
        )
        if self.corrected is not None:
            text += (
                f" p99 is {self.raw.get('p99', math.nan):.0f} ms as measured and "
                f"{self.corrected.get('p99', math.nan):.0f} ms corrected for the "
                f"requests not sent (expected interval "
                f"{self.expected_interval_ms:.0f} ms, "
                f"{self.expected_interval_source})."
            )
        return text


def expected_interval_samples(
    latencies_ms: np.ndarray | pd.Series,
    expected_interval_ms: float,
    max_synthetic: int = MAX_SYNTHETIC,
) -> np.ndarray:
    """Latencies plus the synthetic ones of the expected-interval correction.

    Parameters
    ----------
    latencies_ms
        Measured latencies in ms; NaN values are left out.
    expected_interval_ms
        E, the interval in ms at which a user meant to send; must be positive.
    max_synthetic
        Most synthetic samples to add; above it a ValueError says so.

    Returns
    -------
    ndarray
        The measured latencies followed by, for each latency L > E, the values
        ``L - k * E`` for k = 1, 2, ... while they are at least E.
    """
    if not expected_interval_ms > 0:
        raise ValueError(
            f"expected_interval_ms must be positive, not {expected_interval_ms!r}"
        )
    values = np.asarray(latencies_ms, dtype=float)
    values = values[~np.isnan(values)]
    # floor(L / E) - 1 synthetic values per latency (k - 1 of them for L = k * E).
    counts = np.floor(values / expected_interval_ms + 1e-9).astype(np.int64) - 1
    counts = np.clip(counts, 0, None)
    total = int(counts.sum())
    if total > max_synthetic:
        raise ValueError(
            f"The correction would add {total:,} synthetic samples (more than "
            f"{max_synthetic:,}); the expected interval of {expected_interval_ms:g} ms "
            "is too small for these latencies."
        )
    owners = np.repeat(np.arange(values.size), counts)
    first = np.repeat(np.cumsum(counts) - counts, counts)
    step = np.arange(total) - first + 1
    synthetic = values[owners] - step * expected_interval_ms
    return np.concatenate([values, synthetic])


def corrected_percentiles(
    latencies_ms: np.ndarray | pd.Series,
    expected_interval_ms: float,
    percentiles: tuple[float, ...] = PERCENTILES,
    method: str = DEFAULT_METHOD,
) -> dict[str, float]:
    """Percentiles (ms) corrected for coordinated omission (see the module docstring).

    Parameters
    ----------
    latencies_ms
        Measured latencies in ms.
    expected_interval_ms
        The interval at which each user meant to send, in ms.
    percentiles
        Percentiles on the 0-100 scale.
    method
        Percentile method, see :func:`perflab.statistics.percentiles`.

    Returns
    -------
    dict
        Column name (``p99``) to the corrected value in ms; these are estimates.
    """
    samples = expected_interval_samples(latencies_ms, expected_interval_ms)
    return statistics.percentiles(samples, percentiles, method)


def detect_omission(
    requests: pd.DataFrame,
    expected_interval_ms: float | None = None,
    percentiles: tuple[float, ...] = PERCENTILES,
    method: str = DEFAULT_METHOD,
    gap_factor: float = 3.0,
    min_stall_ms: float = 1000.0,
    latency_factor: float = 5.0,
    min_users_fraction: float = 0.25,
    estimate_interval: bool = True,
) -> Omission:
    """Look for coordinated omission in per-request samples.

    Parameters
    ----------
    requests
        The ``requests`` table (or a window of it): ``ts`` (send time, UTC),
        ``latency_ms``, ``user`` and, when there are several load generator
        processes, ``worker``. Without ``user`` nothing can be detected, but the
        correction is still made when ``expected_interval_ms`` is given.
    expected_interval_ms
        The interval (ms) at which a user meant to send, when known.
    percentiles
        Percentiles (0-100) to report raw and corrected.
    method
        Percentile method, see :func:`perflab.statistics.percentiles`.
    gap_factor, min_stall_ms, latency_factor, min_users_fraction
        The detection thresholds described in the module docstring.
    estimate_interval
        When a stall is detected and no interval is given, estimate it as the median
        of the users' typical gaps and correct with it.

    Returns
    -------
    Omission
        The verdict, its evidence, and raw and (where possible) corrected percentiles.
    """
    latency = requests["latency_ms"].to_numpy(dtype=float)
    raw = statistics.percentiles(latency, percentiles, method)
    p50 = statistics.percentiles(latency, (50.0,), method)["p50"]
    thresholds = {
        "gap_factor": gap_factor,
        "min_stall_ms": min_stall_ms,
        "latency_factor": latency_factor,
        "min_users_fraction": min_users_fraction,
        "p50_ms": p50,
    }
    stalls, users_total, typical = _stalls(
        requests, p50, gap_factor, min_stall_ms, latency_factor
    )
    episodes = _episodes(stalls)
    required = max(1, math.ceil(min_users_fraction * users_total))
    top = episodes.iloc[0] if not episodes.empty else None
    detected = top is not None and top["users"] >= required

    # Correction: with a given interval always; estimated only once a stall is seen.
    source, interval = "", expected_interval_ms
    if interval is not None:
        source = "given"
    elif detected and estimate_interval and not math.isnan(typical):
        interval, source = typical, "estimated"
    corrected, note = None, "No expected interval is known, so nothing is corrected."
    if interval is not None:
        try:
            corrected = corrected_percentiles(latency, interval, percentiles, method)
            note = CORRECTION_NOTE
        except ValueError as exc:
            note = f"Not corrected: {exc}"
            warnings.warn(note, DataWarning, stacklevel=2)

    if users_total == 0:
        reason = "no user had enough requests with a user id to judge its send gaps"
    elif episodes.empty:
        reason = f"no user of {users_total} paused sending while waiting on a response"
    elif not detected:
        reason = (
            f"the largest stall held {int(top['users'])} of {users_total} users, "
            f"fewer than the {required} needed"
        )
    else:
        reason = f"{int(top['users'])} of {users_total} users stalled together"
    evidence = {
        "reason": reason,
        "thresholds": thresholds,
        "users_required": required,
        "stalls": len(stalls),
        "typical_gap_ms": typical,
        "episodes": episodes.head(5).to_dict("records"),
    }
    return Omission(
        detected=bool(detected),
        start=top["start"] if top is not None else None,
        end=top["end"] if top is not None else None,
        users_affected=int(top["users"]) if top is not None else 0,
        users_total=users_total,
        longest_stall_ms=float(top["longest_stall_ms"])
        if top is not None
        else math.nan,
        raw=raw,
        corrected=corrected,
        expected_interval_ms=interval,
        expected_interval_source=source,
        method=note,
        evidence=evidence,
        episodes=episodes,
    )


def _stalls(
    requests: pd.DataFrame,
    p50: float,
    gap_factor: float,
    min_stall_ms: float,
    latency_factor: float,
) -> tuple[pd.DataFrame, int, float]:
    """Stall gaps, the number of users judged and the median typical gap (ms)."""
    empty = pd.DataFrame(columns=["start", "end", "who", "gap_ms"])
    if "user" not in requests or requests["user"].isna().all():
        return empty, 0, math.nan
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(requests["ts"], utc=True),
            "latency_ms": requests["latency_ms"].astype(float),
            "who": (
                requests["worker"].astype(str)
                if "worker" in requests
                else pd.Series("", index=requests.index)
            )
            + "/"
            + requests["user"].astype(str),
        }
    )[requests["user"].notna().to_numpy()]
    frame = frame.sort_values(["who", "ts"], kind="stable")
    send_ms = (frame["ts"] - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(milliseconds=1)
    frame["gap_ms"] = send_ms.groupby(frame["who"]).shift(-1) - send_ms
    gaps = frame.dropna(subset=["gap_ms"])
    size = gaps.groupby("who")["gap_ms"].transform("size")
    gaps = gaps[size >= MIN_GAPS]
    if gaps.empty:
        return empty, 0, math.nan
    typical = gaps.groupby("who")["gap_ms"].transform("median")
    excess = gaps["gap_ms"] - typical
    stall = (
        (gaps["gap_ms"] > gap_factor * typical)
        & (excess >= min_stall_ms)
        & (gaps["latency_ms"] >= latency_factor * p50)
        & (gaps["latency_ms"] >= 0.5 * excess)
    )
    found = gaps[stall]
    stalls = pd.DataFrame(
        {
            "start": found["ts"],
            "end": found["ts"] + pd.to_timedelta(found["gap_ms"], unit="ms"),
            "who": found["who"],
            "gap_ms": found["gap_ms"],
        }
    )
    users_total = int(gaps["who"].nunique())
    median_typical = float(gaps.groupby("who")["gap_ms"].median().median())
    return stalls.reset_index(drop=True), users_total, median_typical


def _episodes(stalls: pd.DataFrame) -> pd.DataFrame:
    """Overlapping stalls merged into episodes, the one with most users first."""
    columns = ["start", "end", "users", "stalls", "longest_stall_ms"]
    if stalls.empty:
        return pd.DataFrame(columns=columns)
    stalls = stalls.sort_values("start", kind="stable")
    # A new episode starts where a stall begins after every earlier one has ended.
    reach = stalls["end"].cummax().shift(1)
    label = (stalls["start"] > reach).cumsum()
    grouped = stalls.groupby(label)
    episodes = pd.DataFrame(
        {
            "start": grouped["start"].min(),
            "end": grouped["end"].max(),
            "users": grouped["who"].nunique(),
            "stalls": grouped.size(),
            "longest_stall_ms": grouped["gap_ms"].max(),
        }
    )
    return episodes.sort_values(
        ["users", "longest_stall_ms"], ascending=False, kind="stable"
    ).reset_index(drop=True)[columns]

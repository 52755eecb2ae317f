"""Comparing two runs: did the candidate get faster, slower, or stay the same?

:func:`compare` takes a *base* run and a *candidate* run and compares them per endpoint
and overall, on what both runs share, within the steady-state window of each (see
:func:`perflab.windows.run_window`) unless asked for the whole runs.

Definitions
-----------
change
    ``candidate - base`` of a metric, in the metric's unit; the *relative change* is
    ``candidate / base - 1`` (so +0.2 is 20 % higher than the base).
metrics
    ``p50``, ``p95``, ``p99`` (nearest-rank latency percentiles, ms, of every request
    with a latency), ``throughput`` (requests that started in the window per second of
    the window) and ``error_rate`` (failed / all requests in the window).
percentile change interval and p-value
    An exact bootstrap of each run's nearest-rank percentile: resampling n latencies
    with replacement and taking the order statistic of rank ``k = ceil(q n)`` draws,
    without building the resample, the sorted sample at index
    ``floor(n U)`` with ``U ~ Beta(k, n + 1 - k)`` (the k-th smallest of n uniform
    draws). Each run is resampled independently (:data:`RESAMPLES` times), the
    interval is the percentile interval of the bootstrapped relative change, and the
    two-sided p-value is ``2 min(P*(d <= 0), P*(d >= 0))`` over the bootstrapped
    differences ``d`` (with the usual +1 correction). This costs O(resamples) per
    percentile whatever the number of requests, so no sample is ever subsampled.
throughput test
    Conditional on the total count, the candidate's count is binomial with
    probability ``t_c / (t_b + t_c)`` (window lengths ``t``) when both runs have the
    same Poisson rate; the exact binomial test and its Clopper-Pearson interval give
    the p-value and the interval of the rate ratio. Closed-loop load is usually less
    dispersed than Poisson, which makes this conservative. Throughput is compared
    only when both runs had the same peak users and think time.
error-rate test
    Fisher's exact test on the 2x2 table of failed and successful requests; the
    interval of the difference of the two rates is Newcombe's hybrid score interval
    (from two Wilson intervals).
endpoint verdict
    The two latency distributions are compared with the two-sided Mann-Whitney U test.
    Its p-values are adjusted over every endpoint and ``Overall`` with Holm's method,
    so that the chance of calling any endpoint of an A/A pair changed is at most
    ``1 - confidence``. A significant endpoint is *slower* (or *faster*) when its p50
    or p95 moved by at least the practical ``threshold`` (5 % by default) in the
    direction the test found; otherwise it is called *significant but below the
    threshold*, never a regression.
metric status
    Every metric's p-value is adjusted with Holm's method over all the metrics of the
    comparison. A metric is a *regression* (see :func:`regressions`) when it is
    significantly worse (higher latency or error rate, lower throughput) by at least
    the threshold.
"""

from __future__ import annotations

import logging
import math
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
from scipy import stats

from perflab.errors import AnalysisError
from perflab.store import OVERALL, Run
from perflab.windows import Window, run_window, window_requests

log = logging.getLogger(__name__)

#: Bootstrap resamples per percentile (cheap: each is one Beta draw per run).
RESAMPLES = 4000

#: Latency percentiles compared (0-100 scale) and their column names.
LATENCY_METRICS = {"p50": 50.0, "p95": 95.0, "p99": 99.0}

#: Every compared metric, in report order, with its unit.
METRICS = {
    "p50": "ms",
    "p95": "ms",
    "p99": "ms",
    "throughput": "requests/s",
    "error_rate": "fraction",
}

#: Verdicts of an endpoint.
FASTER, SLOWER, UNCHANGED, SMALL = (
    "faster",
    "slower",
    "no significant change",
    "below threshold",
)

DEFAULT_REPORTS = Path("reports")

_CHANGE_COLUMNS = [
    "endpoint",
    "metric",
    "unit",
    "base",
    "candidate",
    "change",
    "change_low",
    "change_high",
    "relative",
    "relative_low",
    "relative_high",
    "p_value",
    "p_adjusted",
    "significant",
    "status",
]


@dataclass
class Comparison:
    """What :func:`compare` found.

    Attributes
    ----------
    base_id, candidate_id
        The two runs' ids.
    threshold
        The practical threshold, as a fraction (0.05 is 5 %).
    confidence
        Confidence level of the intervals; ``1 - confidence`` is the significance
        level after Holm's adjustment.
    base_window, candidate_window
        The window each run was analysed over.
    differences
        Sentences saying how the two runs' loads differ; empty when they match.
    endpoints
        One row per shared endpoint and ``Overall`` (last): ``endpoint``,
        ``base_requests``, ``candidate_requests``, ``superiority`` (the probability
        that a candidate latency exceeds a base latency, ties counting half; 0.5 means
        no shift), ``p_value`` and ``p_adjusted`` (Mann-Whitney U, Holm-adjusted),
        ``p50_relative``, ``p95_relative`` (relative changes), ``verdict``
        (:data:`FASTER`, :data:`SLOWER`, :data:`UNCHANGED` or :data:`SMALL`) and
        ``summary`` (one sentence).
    changes
        One row per endpoint and metric: ``endpoint``, ``metric``, ``unit``, ``base``,
        ``candidate``, ``change`` (candidate - base) with ``change_low`` and
        ``change_high``, ``relative`` (candidate / base - 1) with ``relative_low`` and
        ``relative_high``, ``p_value``, ``p_adjusted`` (Holm), ``significant`` and
        ``status`` (``worse``, ``better``, ``below threshold``,
        ``no significant change`` or ``not compared``).
    notes
        How the numbers were computed, as sentences for the report; the first two
        say which window of the base and of the candidate run was compared.
    warnings
        Caveats about the numbers (too few samples for a tail percentile...).
    """

    base_id: str
    candidate_id: str
    threshold: float
    confidence: float
    base_window: Window
    candidate_window: Window
    differences: list[str] = field(default_factory=list)
    endpoints: pd.DataFrame = field(default_factory=pd.DataFrame)
    changes: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def alpha(self) -> float:
        """Significance level, ``1 - confidence``."""
        return 1.0 - self.confidence

    def verdict(self, endpoint: str = OVERALL) -> str:
        """The verdict of one endpoint (``Overall`` by default)."""
        row = self.endpoints[self.endpoints["endpoint"] == endpoint]
        if row.empty:
            raise KeyError(f"{endpoint!r} is not an endpoint both runs share.")
        return str(row["verdict"].iloc[0])


@dataclass(frozen=True)
class Regression:
    """A metric significantly worse than the base by at least the threshold."""

    endpoint: str
    metric: str
    base: float
    candidate: float
    relative: float
    relative_low: float
    relative_high: float
    p_adjusted: float

    def __str__(self) -> str:
        return (
            f"{self.endpoint} {self.metric}: {_value(self.base, self.metric)} -> "
            f"{_value(self.candidate, self.metric)} ({_pct(self.relative)}, "
            f"{_interval(self.relative_low, self.relative_high)}, "
            f"adjusted p = {_p(self.p_adjusted)})"
        )


# ---------------------------------------------------------------------------
# Comparing


def compare(
    base: Run,
    candidate: Run,
    threshold: float = 0.05,
    confidence: float = 0.95,
    whole: bool = False,
    resamples: int = RESAMPLES,
    seed: int = 0,
) -> Comparison:
    """Compare a candidate run with a base run, per endpoint and overall.

    Parameters
    ----------
    base, candidate
        The two runs; each needs its ``requests`` table (per-request samples).
    threshold
        Practical threshold as a fraction: a significant change smaller than this
        (relative to the base) is called out as such and is never a regression.
    confidence
        Confidence level of the intervals, in (0, 1); ``1 - confidence`` is the
        family-wise significance level after Holm's adjustment.
    whole
        Compare the whole runs instead of their steady-state windows.
    resamples
        Bootstrap resamples per percentile (see the module docstring).
    seed
        Seed of the bootstrap; the same runs and seed give the same numbers.

    Returns
    -------
    Comparison
        Verdicts per endpoint, changes per metric with intervals and p-values, the
        differences between the two loads, and notes on the method.

    Raises
    ------
    ValueError
        When ``threshold`` or ``confidence`` is out of range.
    AnalysisError
        When a run has no per-request samples or the two share no endpoint.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    if threshold < 0.0:
        raise ValueError(f"threshold must be 0 or more, not {threshold}")
    rng = np.random.default_rng(seed)

    # the two windows, and the requests inside them
    frames, windows = [], []
    for run in (base, candidate):
        requests = run.table("requests")
        if requests.empty:
            raise AnalysisError(
                f"Run {run.id} has no per-request samples (requests table), which a "
                "comparison needs; ingest it from exports that have them."
            )
        window = run_window(run, whole=whole, requests=requests)
        frames.append(window_requests(requests, window))
        windows.append(window)
    base_requests, candidate_requests = frames

    # what the runs share
    base_endpoints = set(base_requests["endpoint"].dropna())
    candidate_endpoints = set(candidate_requests["endpoint"].dropna())
    shared = sorted(base_endpoints & candidate_endpoints)
    if not shared:
        raise AnalysisError(
            f"Runs {base.id} and {candidate.id} share no endpoint in their windows, "
            "so there is nothing to compare."
        )
    differences = load_differences(base, candidate)
    differences += _endpoint_differences(base_endpoints, candidate_endpoints)
    same_load = not _load_differs(base, candidate)
    if base_endpoints != candidate_endpoints:
        # Overall must mean the same requests in both runs
        base_requests = base_requests[base_requests["endpoint"].isin(shared)]
        candidate_requests = candidate_requests[
            candidate_requests["endpoint"].isin(shared)
        ]

    # every endpoint, then Overall
    groups = [
        (
            label,
            base_requests[base_requests["endpoint"] == label],
            candidate_requests[candidate_requests["endpoint"] == label],
        )
        for label in shared
    ]
    groups.append((OVERALL, base_requests, candidate_requests))
    seconds = (windows[0].seconds, windows[1].seconds)
    rows, verdict_rows, warnings = [], [], []
    for label, b, c in groups:
        b_latency = _latencies(b)
        c_latency = _latencies(c)
        for metric, percentile in LATENCY_METRICS.items():
            rows.append(
                _percentile_change(
                    label,
                    metric,
                    percentile,
                    b_latency,
                    c_latency,
                    confidence,
                    resamples,
                    rng,
                )
            )
            for run_id, n in (
                (base.id, b_latency.size),
                (candidate.id, c_latency.size),
            ):
                if n * (1 - percentile / 100) < 10:
                    warnings.append(
                        f"{label} {metric} of run {run_id} rests on {n} requests, "
                        f"fewer than the {math.ceil(10 / (1 - percentile / 100))} "
                        "that put 10 above it; its interval is wide."
                    )
        rows.append(
            _throughput_change(label, len(b), len(c), seconds, same_load, confidence)
        )
        rows.append(_error_rate_change(label, b, c, confidence))
        verdict_rows.append(_distribution_test(label, b_latency, c_latency))

    # Holm over the metrics, then over the endpoints' distribution tests
    changes = pd.DataFrame(rows)
    changes["p_adjusted"] = holm(changes["p_value"].to_numpy(dtype=float))
    alpha = 1.0 - confidence
    changes["significant"] = changes["p_adjusted"] < alpha
    changes["status"] = [
        _status(row, threshold) for row in changes.itertuples(index=False)
    ]
    changes = changes[_CHANGE_COLUMNS]
    endpoints = pd.DataFrame(verdict_rows)
    endpoints["p_adjusted"] = holm(endpoints["p_value"].to_numpy(dtype=float))
    endpoints = _verdicts(endpoints, changes, alpha, threshold)

    notes = _method_notes(base, candidate, windows, threshold, confidence, resamples)
    log.info(
        "compared run %s with base %s on %d endpoints",
        candidate.id,
        base.id,
        len(shared),
    )
    return Comparison(
        base_id=base.id,
        candidate_id=candidate.id,
        threshold=threshold,
        confidence=confidence,
        base_window=windows[0],
        candidate_window=windows[1],
        differences=differences,
        endpoints=endpoints,
        changes=changes,
        notes=notes,
        warnings=sorted(set(warnings)),
    )


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjustment of p-values (NaN stays NaN, outside the family).

    The i-th smallest of m p-values becomes ``max_{j <= i} min(1, (m - j + 1) p_(j))``;
    rejecting where the adjusted value is below alpha keeps the family-wise error rate
    at most alpha, whatever the dependence between the tests.
    """
    p = np.asarray(p_values, dtype=float)
    adjusted = np.full(p.shape, np.nan)
    finite = np.flatnonzero(~np.isnan(p))
    if finite.size == 0:
        return adjusted
    order = finite[np.argsort(p[finite], kind="stable")]
    m = order.size
    scaled = (m - np.arange(m)) * p[order]
    adjusted[order] = np.minimum(1.0, np.maximum.accumulate(scaled))
    return adjusted


def bootstrap_percentile(
    sorted_ms: np.ndarray, percentile: float, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """Bootstrap replicates of a nearest-rank percentile, without resampling.

    Parameters
    ----------
    sorted_ms
        The latency samples, sorted ascending, in ms.
    percentile
        The percentile (0-100).
    resamples
        Number of replicates.
    rng
        Random generator.

    Returns
    -------
    ndarray
        ``resamples`` values, distributed exactly as the nearest-rank percentile of a
        resample of ``sorted_ms`` with replacement: the order statistic of rank
        ``k = max(1, ceil(q n))`` of n draws of ``floor(n U)``, U uniform, is
        ``floor(n B)`` with ``B ~ Beta(k, n + 1 - k)``.
    """
    n = sorted_ms.size
    k = max(1, math.ceil(percentile / 100.0 * n - 1e-9))
    u = rng.beta(k, n + 1 - k, size=resamples)
    index = np.minimum((u * n).astype(np.int64), n - 1)
    return sorted_ms[index]


def _latencies(requests: pd.DataFrame) -> np.ndarray:
    values = requests["latency_ms"].to_numpy(dtype=float)
    return np.sort(values[~np.isnan(values)])


def _nearest_rank(sorted_ms: np.ndarray, percentile: float) -> float:
    if sorted_ms.size == 0:
        return float("nan")
    k = max(1, math.ceil(percentile / 100.0 * sorted_ms.size - 1e-9))
    return float(sorted_ms[k - 1])


def _percentile_change(
    label, metric, percentile, b, c, confidence, resamples, rng
) -> dict:
    row = _row(
        label, metric, _nearest_rank(b, percentile), _nearest_rank(c, percentile)
    )
    if b.size == 0 or c.size == 0:
        return row
    b_star = bootstrap_percentile(b, percentile, resamples, rng)
    c_star = bootstrap_percentile(c, percentile, resamples, rng)
    tails = [50 * (1 - confidence), 50 * (1 + confidence)]
    difference = c_star - b_star
    row["change_low"], row["change_high"] = np.percentile(difference, tails)
    if np.all(b_star > 0):
        ratio = c_star / b_star - 1.0
        row["relative_low"], row["relative_high"] = np.percentile(ratio, tails)
    below = np.count_nonzero(difference <= 0)
    above = np.count_nonzero(difference >= 0)
    row["p_value"] = min(1.0, 2 * (min(below, above) + 1) / (resamples + 1))
    return row


def _throughput_change(
    label, b_count, c_count, seconds, comparable, confidence
) -> dict:
    b_seconds, c_seconds = seconds
    row = _row(label, "throughput", b_count / b_seconds, c_count / c_seconds)
    if not comparable or b_count + c_count == 0:
        return row
    share = c_seconds / (b_seconds + c_seconds)
    test = stats.binomtest(c_count, b_count + c_count, share)
    low, high = test.proportion_ci(confidence_level=confidence)
    scale = b_seconds / c_seconds
    ratio_low = low / (1 - low) * scale if low < 1 else math.inf
    ratio_high = high / (1 - high) * scale if high < 1 else math.inf
    row["relative_low"], row["relative_high"] = ratio_low - 1.0, ratio_high - 1.0
    row["change_low"] = row["base"] * (ratio_low - 1.0)
    row["change_high"] = row["base"] * (ratio_high - 1.0)
    row["p_value"] = float(test.pvalue)
    return row


def _error_rate_change(
    label, b: pd.DataFrame, c: pd.DataFrame, confidence: float
) -> dict:
    b_fail = int((~b["ok"].astype(bool)).sum())
    c_fail = int((~c["ok"].astype(bool)).sum())
    b_n, c_n = len(b), len(c)
    row = _row(
        label,
        "error_rate",
        b_fail / b_n if b_n else float("nan"),
        c_fail / c_n if c_n else float("nan"),
    )
    if b_n == 0 or c_n == 0:
        return row
    table = [[c_fail, c_n - c_fail], [b_fail, b_n - b_fail]]
    row["p_value"] = float(stats.fisher_exact(table).pvalue) if b_fail + c_fail else 1.0
    z = stats.norm.ppf(0.5 + confidence / 2)
    b_low, b_high = _wilson(b_fail, b_n, z)
    c_low, c_high = _wilson(c_fail, c_n, z)
    difference = row["candidate"] - row["base"]
    row["change_low"] = difference - math.hypot(
        row["candidate"] - c_low, b_high - row["base"]
    )
    row["change_high"] = difference + math.hypot(
        c_high - row["candidate"], row["base"] - b_low
    )
    return row


def _wilson(failures: int, n: int, z: float) -> tuple[float, float]:
    p = failures / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def _row(label: str, metric: str, base: float, candidate: float) -> dict:
    """A row of the changes table with its point values; the rest NaN until tested."""
    change = candidate - base
    if base > 0:
        relative = candidate / base - 1.0
    elif base == 0:
        relative = 0.0 if candidate == 0 else math.inf
    else:
        relative = math.nan
    return {
        "endpoint": label,
        "metric": metric,
        "unit": METRICS[metric],
        "base": base,
        "candidate": candidate,
        "change": change,
        "change_low": math.nan,
        "change_high": math.nan,
        "relative": relative,
        "relative_low": math.nan,
        "relative_high": math.nan,
        "p_value": math.nan,
    }


def _status(row, threshold: float) -> str:
    if math.isnan(row.p_value):
        return "not compared"
    if not row.significant:
        return UNCHANGED
    worse = row.change < 0 if row.metric == "throughput" else row.change > 0
    if abs(row.relative) < threshold:
        return SMALL
    return "worse" if worse else "better"


def _distribution_test(label: str, b: np.ndarray, c: np.ndarray) -> dict:
    row = {
        "endpoint": label,
        "base_requests": int(b.size),
        "candidate_requests": int(c.size),
        "superiority": math.nan,
        "p_value": math.nan,
    }
    if b.size and c.size:
        test = stats.mannwhitneyu(c, b, alternative="two-sided", method="asymptotic")
        row["superiority"] = float(test.statistic) / (b.size * c.size)
        row["p_value"] = float(test.pvalue)
    return row


def _verdicts(
    endpoints: pd.DataFrame, changes: pd.DataFrame, alpha: float, threshold: float
) -> pd.DataFrame:
    relative = changes.pivot(index="endpoint", columns="metric", values="relative")
    endpoints["p50_relative"] = endpoints["endpoint"].map(relative["p50"])
    endpoints["p95_relative"] = endpoints["endpoint"].map(relative["p95"])
    verdicts, summaries = [], []
    for row in endpoints.itertuples(index=False):
        moves = f"p50 {_pct(row.p50_relative)}, p95 {_pct(row.p95_relative)}"
        if math.isnan(row.p_adjusted) or row.p_adjusted >= alpha:
            verdict = UNCHANGED
            summary = (
                f"No significant change ({moves}; Mann-Whitney U adjusted "
                f"p = {_p(row.p_adjusted)})."
            )
        else:
            slower = row.superiority > 0.5
            sign = 1.0 if slower else -1.0
            moved = max(sign * row.p50_relative, sign * row.p95_relative)
            direction = SLOWER if slower else FASTER
            if moved >= threshold:
                verdict = direction
                summary = (
                    f"{direction.capitalize()} ({moves}; adjusted p = "
                    f"{_p(row.p_adjusted)})."
                )
            else:
                verdict = SMALL
                summary = (
                    f"Significantly {direction} but below the {threshold:.0%} "
                    f"threshold ({moves}; adjusted p = {_p(row.p_adjusted)})."
                )
        verdicts.append(verdict)
        summaries.append(summary)
    endpoints["verdict"] = verdicts
    endpoints["summary"] = summaries
    return endpoints


# ---------------------------------------------------------------------------
# What differs between the two loads


def load_differences(base: Run, candidate: Run) -> list[str]:
    """Sentences saying how the planned loads of two runs differ (users, duration,
    stages, think time, tool, scenario, environment, host); empty when they match."""
    sentences = []
    b, c = base.meta, candidate.meta
    for key, what in (
        ("tool", "load tool"),
        ("scenario", "scenario"),
        ("environment", "environment"),
        ("host", "target host"),
    ):
        if b.get(key) != c.get(key):
            sentences.append(
                f"The {what} differs: {_text(b.get(key))} in the base run, "
                f"{_text(c.get(key))} in the candidate."
            )
    b_users, c_users = _peak_users(b), _peak_users(c)
    if b_users != c_users:
        sentences.append(
            f"The base run peaked at {_text(b_users)} users and the candidate at "
            f"{_text(c_users)}; throughput is not compared, and latency differences "
            "may come from the load rather than the build."
        )
    if _durations_differ(_number(b.get("duration_s")), _number(c.get("duration_s"))):
        sentences.append(
            f"The base run lasted {_seconds(b.get('duration_s'))} and the candidate "
            f"{_seconds(c.get('duration_s'))}."
        )
    if _stages(b) != _stages(c):
        sentences.append(
            f"The stages differ: {_stage_text(b)} in the base run, {_stage_text(c)} "
            "in the candidate."
        )
    if b.get("wait_s") != c.get("wait_s"):
        sentences.append(
            f"The think time differs: {_text(b.get('wait_s'))} s in the base run, "
            f"{_text(c.get('wait_s'))} s in the candidate; throughput is not "
            "compared."
        )
    return sentences


def _durations_differ(base: float | None, candidate: float | None) -> bool:
    """Whether two run lengths differ by more than 5 % (measured lengths of runs with
    the same plan differ by the time Locust takes to stop)."""
    if base is None or candidate is None:
        return base is not candidate
    return abs(base - candidate) > 0.05 * max(base, candidate)


def _load_differs(base: Run, candidate: Run) -> bool:
    b, c = base.meta, candidate.meta
    return _peak_users(b) != _peak_users(c) or b.get("wait_s") != c.get("wait_s")


def _endpoint_differences(base: set[str], candidate: set[str]) -> list[str]:
    sentences = []
    if base - candidate:
        sentences.append(
            "Only the base run has "
            + ", ".join(f"`{e}`" for e in sorted(base - candidate))
            + "; they are left out, and Overall covers the shared endpoints only."
        )
    if candidate - base:
        sentences.append(
            "Only the candidate run has "
            + ", ".join(f"`{e}`" for e in sorted(candidate - base))
            + "; they are left out, and Overall covers the shared endpoints only."
        )
    return sentences


def _peak_users(meta: dict):
    for key in ("peak_users", "peak_users_planned"):
        if meta.get(key) is not None:
            return _number(meta[key])
    stages = _stages(meta)
    return max(users for _, users in stages) if stages else None


def _stages(meta: dict) -> list[tuple[float, float]]:
    return [
        (float(s["duration_s"]), float(s["users"])) for s in meta.get("stages") or []
    ]


def _stage_text(meta: dict) -> str:
    stages = _stages(meta)
    if not stages:
        return "none recorded"
    return ",".join(f"{d:g}s:{u:g}" for d, u in stages)


def _number(value):
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def _text(value) -> str:
    if value is None:
        return "not recorded"
    if isinstance(value, float) and value.is_integer():
        return f"{value:g}"
    if isinstance(value, list | tuple):
        return " to ".join(f"{v:g}" for v in value)
    return str(value)


def _seconds(value) -> str:
    number = _number(value)
    return "an unrecorded time" if number is None else f"{number:.3g} s"


def _method_notes(base, candidate, windows, threshold, confidence, resamples):
    notes = []
    for role, run, window in (
        ("base", base, windows[0]),
        ("candidate", candidate, windows[1]),
    ):
        notes.append(
            f"The {role} run {run.id} is compared over {window.how} "
            f"({window.seconds:.1f} s, {window.start:%H:%M:%S} to "
            f"{window.end:%H:%M:%S} UTC)."
        )
    notes += [
        "Endpoint verdicts: two-sided Mann-Whitney U test of the latency "
        "distributions, p-values Holm-adjusted over all endpoints and Overall, "
        f"significance level {1 - confidence:.2g}; a significant endpoint is "
        f"faster or slower only when its p50 or p95 moved by at least "
        f"{threshold:.0%}.",
        f"Percentile changes: {confidence:.0%} bootstrap intervals "
        f"({resamples:,} exact resamples of each run's nearest-rank percentile); "
        "throughput: exact binomial test of the two Poisson counts; error rate: "
        "Fisher's exact test with Newcombe's interval. Metric p-values are "
        "Holm-adjusted over every metric of the comparison.",
    ]
    return notes


# ---------------------------------------------------------------------------
# The gate, the report and JUnit


def regressions(comparison: Comparison) -> list[Regression]:
    """The metrics significantly worse than the base by at least the threshold.

    A metric is a regression when its Holm-adjusted p-value is below ``1 -
    confidence``, it moved in the bad direction (higher latency or error rate, lower
    throughput) and its relative change is at least ``comparison.threshold``. An
    empty list means the candidate passes the gate.
    """
    worse = comparison.changes[comparison.changes["status"] == "worse"]
    return [
        Regression(
            endpoint=row.endpoint,
            metric=row.metric,
            base=row.base,
            candidate=row.candidate,
            relative=row.relative,
            relative_low=row.relative_low,
            relative_high=row.relative_high,
            p_adjusted=row.p_adjusted,
        )
        for row in worse.itertuples(index=False)
    ]


def render_comparison(comparison: Comparison) -> str:
    """The comparison as a markdown document (differences first, then verdicts,
    changes with intervals, and how they were computed)."""
    c = comparison
    lines = [f"# Comparison: {c.candidate_id} against {c.base_id}", ""]
    lines += ["## Differences between the runs", ""]
    if c.differences:
        lines += [f"- {sentence}" for sentence in c.differences]
    else:
        lines.append("- None found: same tool, scenario, users, stages and endpoints.")
    lines.append("")

    lines += ["## Windows", ""]
    lines += [f"- {note}" for note in c.notes[:2]]
    lines.append("")

    found = regressions(c)
    lines += ["## Verdict", ""]
    if found:
        lines.append(
            f"**{len(found)} regression{'s' if len(found) > 1 else ''}** beyond the "
            f"{c.threshold:.0%} threshold:"
        )
        lines += [f"- {regression}" for regression in found]
    else:
        lines.append(
            f"No significant regression beyond the {c.threshold:.0%} threshold."
        )
    lines += ["", "| Endpoint | Verdict | Requests (base / candidate) | Detail |"]
    lines.append("| --- | --- | --- | --- |")
    for row in c.endpoints.itertuples(index=False):
        lines.append(
            f"| {row.endpoint} | {row.verdict} | {row.base_requests:,} / "
            f"{row.candidate_requests:,} | {row.summary} |"
        )
    lines.append("")

    lines += ["## Changes per endpoint", ""]
    lines.append(
        f"Change = candidate - base, with its {c.confidence:.0%} confidence interval; "
        "p is Holm-adjusted."
    )
    lines += [
        "",
        "| Endpoint | Metric | Base | Candidate | Change | Interval | Adjusted p "
        "| Status |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in c.changes.itertuples(index=False):
        if row.metric == "error_rate":
            interval = _interval_points(row.change_low, row.change_high)
            change = f"{100 * row.change:+.2f} pp"
        else:
            interval = _interval(row.relative_low, row.relative_high)
            change = _pct(row.relative)
        lines.append(
            f"| {row.endpoint} | {row.metric} | {_value(row.base, row.metric)} | "
            f"{_value(row.candidate, row.metric)} | {change} | {interval} | "
            f"{_p(row.p_adjusted)} | {row.status} |"
        )
    lines += ["", "## Method", ""]
    lines += [f"- {note}" for note in c.notes[2:]]
    if c.warnings:
        lines += ["", "## Caveats", ""]
        lines += [f"- {warning}" for warning in c.warnings]
    return "\n".join(lines) + "\n"


def comparison_dir(comparison: Comparison, reports: Path | str = DEFAULT_REPORTS):
    """The default output folder: ``reports/compare-<base>-<candidate>``."""
    return Path(reports) / f"compare-{comparison.base_id}-{comparison.candidate_id}"


def write_comparison(comparison: Comparison, out_dir: Path | str | None = None) -> Path:
    """Write ``comparison.md`` and ``changes.csv`` into ``out_dir``.

    Parameters
    ----------
    comparison
        What :func:`compare` returned.
    out_dir
        The folder; ``reports/compare-<base>-<candidate>`` by default. Created when
        missing.

    Returns
    -------
    Path
        The path of ``comparison.md``.
    """
    out_dir = Path(out_dir) if out_dir is not None else comparison_dir(comparison)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "comparison.md"
    path.write_text(render_comparison(comparison))
    comparison.changes.to_csv(out_dir / "changes.csv", index=False)
    log.info("wrote %s and %s", path, out_dir / "changes.csv")
    return path


def junit_xml(comparison: Comparison) -> str:
    """The regression gate as JUnit XML: one test case per endpoint and metric.

    A case fails when the metric is a regression (see :func:`regressions`) and is
    skipped when the metric was not compared; the class name is
    ``perflab.compare.<endpoint>``.
    """
    c = comparison
    suite = ET.Element(
        "testsuite",
        name=f"perflab compare {c.candidate_id} against {c.base_id}",
        tests=str(len(c.changes)),
        failures=str(int((c.changes["status"] == "worse").sum())),
        errors="0",
        skipped=str(int((c.changes["status"] == "not compared").sum())),
    )
    for row in c.changes.itertuples(index=False):
        case = ET.SubElement(
            suite,
            "testcase",
            classname=f"perflab.compare.{row.endpoint}",
            name=row.metric,
            time="0",
        )
        detail = (
            f"{_value(row.base, row.metric)} -> {_value(row.candidate, row.metric)} "
            f"({_pct(row.relative)}, {_interval(row.relative_low, row.relative_high)}"
            f", adjusted p = {_p(row.p_adjusted)}): {row.status}"
        )
        if row.status == "worse":
            failure = ET.SubElement(
                case,
                "failure",
                message=f"{row.endpoint} {row.metric} regressed beyond the "
                f"{c.threshold:.0%} threshold",
                type="regression",
            )
            failure.text = detail
        elif row.status == "not compared":
            ET.SubElement(case, "skipped", message=detail)
        else:
            ET.SubElement(case, "system-out").text = detail
    root = ET.Element("testsuites")
    root.append(suite)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


# ---------------------------------------------------------------------------
# Figures


def plot_changes(comparison: Comparison, metrics=("p50", "p95", "p99")):
    """Forest plot: relative change of each latency percentile per endpoint, with
    its confidence interval and the practical threshold as dashed lines."""
    from perflab.plotting import PlotFigure

    rows = comparison.changes[comparison.changes["metric"].isin(metrics)]
    labels = list(dict.fromkeys(rows["endpoint"]))
    height = 1.2 + 0.45 * len(labels) * len(metrics)
    fig = PlotFigure(figsize=(8, height), layout="constrained")
    ax = fig.subplots()
    offsets = np.linspace(-0.25, 0.25, len(metrics))
    for offset, metric in zip(offsets, metrics, strict=True):
        part = rows[rows["metric"] == metric].set_index("endpoint").loc[labels]
        y = np.arange(len(labels)) + offset
        middle = 100 * part["relative"].to_numpy(dtype=float)
        low = 100 * part["relative_low"].to_numpy(dtype=float)
        high = 100 * part["relative_high"].to_numpy(dtype=float)
        ax.errorbar(
            middle,
            y,
            xerr=[np.nan_to_num(middle - low), np.nan_to_num(high - middle)],
            fmt="o",
            capsize=3,
            label=metric,
        )
    for x in (-100 * comparison.threshold, 100 * comparison.threshold):
        ax.axvline(x, color="grey", linestyle="--", linewidth=0.8)
    ax.axvline(0, color="black", linewidth=0.8)
    ax.set_yticks(np.arange(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xlabel(
        f"change, candidate vs base (%), {comparison.confidence:.0%} interval"
    )
    ax.legend(loc="best")
    ax.set_title(f"{comparison.candidate_id} against {comparison.base_id}")
    return fig


def plot_ecdf_overlay(base: Run, candidate: Run, comparison: Comparison):
    """The latency ECDF of each shared endpoint, base and candidate overlaid, within
    each run's compared window."""
    from perflab.plotting import PlotFigure

    labels = [e for e in comparison.endpoints["endpoint"] if e != OVERALL]
    frames = [
        window_requests(base.table("requests"), comparison.base_window),
        window_requests(candidate.table("requests"), comparison.candidate_window),
    ]
    columns = min(3, len(labels))
    rows_n = math.ceil(len(labels) / columns)
    fig = PlotFigure(figsize=(4 * columns, 3 * rows_n), layout="constrained")
    axes = fig.subplots(rows_n, columns, squeeze=False)
    for ax, label in zip(axes.flat, labels, strict=False):
        for frame, name in zip(frames, ("base", "candidate"), strict=True):
            values = _latencies(frame[frame["endpoint"] == label])
            fractions = np.arange(1, values.size + 1) / max(values.size, 1)
            ax.step(values, fractions, where="post", label=name)
        ax.set_xscale("log")
        ax.set_title(label, fontsize=9)
        ax.set_xlabel("latency (ms)")
        ax.set_ylabel("fraction of requests")
        ax.axhline(0.95, color="grey", linestyle=":", linewidth=0.8)
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(labels) :]:
        ax.set_visible(False)
    return fig


# ---------------------------------------------------------------------------
# Formatting


def _pct(value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if math.isinf(value):
        return "+inf %" if value > 0 else "-inf %"
    return f"{100 * value:+.1f} %"


def _interval(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "n/a"
    return f"[{_pct(low)}, {_pct(high)}]"


def _interval_points(low: float, high: float) -> str:
    if math.isnan(low) or math.isnan(high):
        return "n/a"
    return f"[{100 * low:+.2f}, {100 * high:+.2f}] pp"


def _p(value: float) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    return "< 0.001" if value < 0.001 else f"{value:.3f}"


def _value(value: float, metric: str) -> str:
    if value is None or math.isnan(value):
        return "n/a"
    if metric == "error_rate":
        return f"{100 * value:.2f} %"
    if metric == "throughput":
        return f"{value:.1f}/s"
    return f"{value:.1f} ms"

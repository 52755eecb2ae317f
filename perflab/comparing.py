"""Comparing two runs: did the candidate get faster, slower, or stay the same?

:func:`compare` takes a *base* run and a *candidate* run and compares them per endpoint
and overall, on what both runs share, within the steady-state window of each (see
:func:`perflab.windows.run_window`) unless asked for the whole runs.

The latencies of a run are not independent draws: machine load, garbage collection and
queueing for a connection pool come in bursts, so requests close in time are slow or
fast together. Tests that treat every request as independent find a difference
between two runs of the same build (an A/A pair) far more often than their
significance level says. So the intervals and p-values below come from resampling
*time blocks* of each run, which keeps that dependence, and the tests of throughput
and error rate are widened by what the blocks show.

Definitions
-----------
change
    ``candidate - base`` of a metric, in the metric's unit; the *relative change* is
    ``candidate / base - 1`` (so +0.2 is 20 % higher than the base).
metrics
    ``p50``, ``p95``, ``p99`` (nearest-rank latency percentiles, ms, of every request
    with a latency), ``throughput`` (requests that started in the window per second of
    the window) and ``error_rate`` (failed / all requests in the window). These point
    values are exact: computed from every request, never from a grid or a resample.
time blocks
    A window of ``T`` seconds is cut into ``b`` consecutive blocks of ``T / b``
    seconds, ``b = round(T ** (2/3))`` kept within [:data:`MIN_BLOCKS`,
    :data:`MAX_BLOCKS`] = [10, 100] (see :func:`block_plan`). So a block lasts about
    the cube root of the window (2.5 s for 25 s, 4 s for a minute, 36 s for an hour;
    the ``n ** (1/3)`` order suits variance estimates), and never less than
    :data:`BLOCK_S` (1 s) unless the window is shorter than 10 s: such a window still
    gets 10 blocks, shorter than 1 s, and a caveat says its intervals may be too
    narrow. A request belongs to the block its start falls in.
block resample
    One resample of a run draws ``b`` of its blocks with replacement (the number of
    times each block is drawn is multinomial) and holds every request of the drawn
    blocks, as often as the block was drawn; its size varies with the blocks drawn.
    Each run is resampled :data:`RESAMPLES` times, independently of the other run; all
    endpoints of a run share its draws, as they share its time.
resampled percentile
    The nearest-rank percentile of a resample (rank ``k = max(1, ceil(q n*))`` of its
    ``n*`` latencies). It is computed from the per-block counts of each latency on a
    grid, never by building the resample, so the cost does not grow with the number
    of requests: the grid is the distinct latencies of both runs when there are at
    most :data:`MAX_GRID_VALUES` (16,384) of them, and the resampled percentile is
    then exact; with more, it is log-spaced bins :data:`GRID_RESOLUTION` (0.1 %) wide,
    each standing for the smallest latency in it, and the resampled percentile is at
    most 0.1 % below the exact one.
run variance
    The bootstrap variance of a run's statistic over its resamples, times ``b / (b -
    1)``: resampling ``b`` blocks gives ``(b - 1) / b`` of the unbiased variance of
    a statistic made of ``b`` blocks. A change between the runs has the standard
    error ``s = sqrt(v_base + v_candidate)`` and is referred to Student's t with
    Welch and Satterthwaite's degrees of freedom, each run's variance counting ``b -
    1`` (between ``min(b) - 1`` and ``b_base + b_candidate - 2``): with few blocks
    ``s`` is itself uncertain, and a normal reference would make the small p-values
    that survive Holm's adjustment far too small.
percentile change interval and p-value
    On the log scale: ``t = log(candidate / base) / s``, ``s`` from the run
    variances of the log of the resampled percentiles; the interval of the relative
    change is ``exp(log(candidate / base) +- t_(df) s) - 1`` and that of the change
    in ms is the base times it, and the p-value is two-sided. (On the ms scale
    instead when a percentile or a resampled one is 0.) When no resample moves
    either percentile, ``s`` is 0, the interval is the point and the p-value is 1
    for no change, else ``2 / (resamples + 1)``.
superiority
    The probability that a candidate latency exceeds a base latency, ties counting
    half (the Mann-Whitney U statistic over ``n_base n_candidate``); 0.5 means no
    shift. Its point value is exact. Its run variances come from resampling one run
    at a time against the other taken whole, on the grid (latencies in one bin
    count as ties).
endpoint verdict
    Two tests, both of which must find a difference. The *distribution test*:
    ``t = (superiority - 0.5) / s`` referred to Student's t as above, its p-value
    the larger of that one and the two-sided Mann-Whitney U test's (which assumes
    independent requests and is the valid one when there are too few requests for
    ``s``). The *location test*: the change in the mean of the log latencies (the
    log of the ratio of the geometric means; latencies below
    :data:`LOG_FLOOR_MS` count as that), its standard error from the block
    resamples (each resample's mean from per-block sums, exactly) and the run
    noise at each run's geometric mean, referred to Student's t as above. The
    endpoint's p-value is the larger of the two (an intersection-union test, valid
    at the level of each): a difference the block bootstrap finds that the run
    noise explains is no difference. The superiority alone could not carry the run
    noise: it saturates at 0 or 1, so a test of it cannot tell a shift the run
    noise explains from a larger one on a narrow distribution; the mean log grows
    with the shift. (Overall's geometric mean is that of all its requests, so one
    endpoint slower and another faster can leave it in place: Overall is then
    unchanged while its endpoints are not.) The endpoint p-values are adjusted
    over every endpoint and ``Overall`` with Holm's method, so that the chance of
    calling any endpoint of an A/A pair changed is at most ``1 - confidence`` (the
    same Holm family holds the throughput and error-rate tests; see *metric
    status*). A significant endpoint is *slower* (or *faster*) when its p50 or p95
    is itself significantly worse (or better) by at least the practical
    ``threshold`` (5 % by default; see *metric status*), so that a slower endpoint
    always has a regression to show; otherwise it is called *significant but below
    the threshold*.
throughput test
    Conditional on the total count, the candidate's count is binomial with
    probability ``t_c / (t_b + t_c)`` (window lengths ``t``) when both runs have the
    same Poisson rate; the exact binomial test and its Clopper-Pearson interval give
    the p-value and the interval of the rate ratio. Bursts make request counts more
    dispersed than Poisson's: when the per-block counts of the two runs vary more
    than Poisson counts would (pooled variance-to-mean ratio ``phi > 1``), both
    counts are divided by ``phi`` first. Closed-loop load is usually less dispersed
    than Poisson, and ``phi`` is never taken below 1, which leaves the test
    conservative. Throughput is compared only when both runs had the same peak users
    and think time.
error-rate test
    Fisher's exact test on the 2x2 table of failed and successful requests; the
    interval of the difference of the two rates is Newcombe's hybrid score interval
    (from two Wilson intervals). Failures come in bursts, so each run's failures and
    requests are first divided by its *design effect* ``d``, the variance of its
    failure share estimated from the blocks (``b / (b - 1) sum (f_j - p n_j)^2 /
    n^2``) over the variance for independent requests (``p (1 - p) / n``), taken
    no lower than 1 (Rao and Scott's adjustment for clustered binary data); the
    adjusted counts are rounded for Fisher's test.
metric status
    Throughput and error-rate p-values are adjusted in the endpoints' Holm family
    above. An endpoint's percentiles are a second tier behind its endpoint's
    test: Holm-adjusted over its three percentiles, and never more significant than
    the endpoint itself (see :func:`adjusted_p_values`). A metric is a
    *regression* (see :func:`regressions`) when it is significantly worse (higher
    latency or error rate, lower throughput) by at least the threshold.
run noise
    Blocks capture dependence within a run. They cannot see what differs between
    the conditions of two runs as a whole (the machine's state when each ran, a cold
    cache, a noisy neighbour), and on a shared 2-core machine that alone moves a
    2 ms endpoint's median by 5 to 20 % from one run to the next. So every
    percentile test and the location test (see *endpoint verdict*) add a *run
    noise* variance (:class:`RunNoise`): each run's latencies are taken
    to be scaled by ``1 + relative`` and shifted by ``absolute_ms``, one standard
    deviation, as a whole. A percentile at level ``L`` ms gets the log variance
    ``log1p(relative + absolute_ms / L) ** 2`` per run (``(relative L +
    absolute_ms) ** 2`` on the ms scale), and an endpoint's location test gets it at
    each run's geometric mean (see *endpoint verdict*). The default,
    :data:`RUN_NOISE`, was measured from
    repeated runs against the sample service on the 2-core machines perflab is
    built on (``benchmarks/real_a_a.py``); :func:`estimate_run_noise` measures it
    from repeated runs of one build anywhere, and ``RunNoise(0, 0)`` gives the
    within-run tests alone. Run-noise variance is taken as known (it adds no
    degrees of freedom to estimate).

Limitations
-----------
Blocks capture dependence within a run up to about a block's length, and the run
noise is one model for what differs between runs: a candidate run made while another
job shared the machine can still differ by more than the intervals say. Repeated runs
of the base build (:func:`estimate_run_noise`) show how far that goes on a given
machine.
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

#: Bootstrap resamples of each run (each draws the run's time blocks with replacement).
RESAMPLES = 4000

#: Shortest time block, in seconds, for windows of at least ``MIN_BLOCKS`` seconds.
BLOCK_S = 1.0

#: Fewest and most time blocks a window is cut into (see :func:`block_plan`).
MIN_BLOCKS = 10
MAX_BLOCKS = 100

#: Most distinct latencies of an endpoint (both runs) resampled exactly; beyond, bins.
MAX_GRID_VALUES = 16384

#: Relative width of the log-spaced latency bins used beyond ``MAX_GRID_VALUES``.
GRID_RESOLUTION = 0.001

#: Latencies below this (ms) count as this in the location test's logarithms.
LOG_FLOOR_MS = 0.001

#: Degrees of freedom beyond which Student's t is taken as the normal it has become.
MAX_DEGREES = 1e6

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

#: Verdicts of an endpoint (and the status of a metric that could not be tested).
FASTER, SLOWER, UNCHANGED, SMALL, NOT_COMPARED = (
    "faster",
    "slower",
    "no significant change",
    "below threshold",
    "not compared",
)

DEFAULT_REPORTS = Path("reports")


@dataclass(frozen=True)
class RunNoise:
    """How much a whole run's latencies vary from run to run of one build.

    One standard deviation of that variation scales every latency of a run by ``1 +
    relative`` and adds ``absolute_ms`` to it; see *run noise* in the module
    docstring.

    Attributes
    ----------
    relative
        The proportional part, as a fraction (0.01 is 1 %).
    absolute_ms
        The part that does not grow with latency, in ms (scheduling, timers).
    """

    relative: float
    absolute_ms: float

    def __post_init__(self):
        for name in ("relative", "absolute_ms"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ValueError(f"run noise {name} must be 0 or more, not {value}")

    def __str__(self) -> str:
        return f"{100 * self.relative:.2g} % + {self.absolute_ms:.3g} ms"

    @property
    def none(self) -> bool:
        """True when there is no run noise (within-run tests only)."""
        return self.relative == 0 and self.absolute_ms == 0

    def log_sd(self, level_ms: float) -> float:
        """Standard deviation of the log of one run's percentile at ``level_ms``."""
        return math.log1p(self.relative + self.absolute_ms / level_ms)


#: Run noise for runs of a few tens of seconds, from A/A runs of the sample service
#: on the 2-core machines perflab is built on (``benchmarks/real_a_a.py``): with
#: windows of 25 s it measured 0.5 % + 0.11 ms (a 24 ms median varied by 0.8 % from
#: run to run, a 1.9 ms one by 5 %), with windows of 10 s 1.2 to 1.8 % + 0.4 ms.
#: This is above the first, to hold A/A pairs of short runs on a busy machine, yet
#: low enough that a 12 % slower median is found in runs of 10 s (see the README's
#: Measured section).
RUN_NOISE = RunNoise(relative=0.015, absolute_ms=0.2)

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
    run_noise
        The run noise added to every latency test (:class:`RunNoise`).
    base_window, candidate_window
        The window each run was analysed over.
    differences
        Sentences saying how the two runs' loads differ; empty when they match.
    endpoints
        One row per shared endpoint and ``Overall`` (last): ``endpoint``,
        ``base_requests``, ``candidate_requests``, ``superiority`` (the probability
        that a candidate latency exceeds a base latency, ties counting half; 0.5 means
        no shift), ``distribution_p`` (the block-bootstrap test of the
        superiority), ``location`` (the ratio of the geometric means, less 1) and
        ``location_p`` (its test, with the run noise), ``p_value`` (the larger of
        the two p-values) and ``p_adjusted`` (Holm; see the module docstring),
        ``p50_relative``, ``p95_relative`` (relative changes), ``verdict``
        (:data:`FASTER`, :data:`SLOWER`, :data:`UNCHANGED`, :data:`SMALL`, or
        :data:`NOT_COMPARED` when one run has no latency for the endpoint) and
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
    run_noise: RunNoise
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
    run_noise: RunNoise = RUN_NOISE,
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
        Block-bootstrap resamples of each run (see the module docstring), at least
        100.
    seed
        Seed of the bootstrap; the same runs and seed give the same numbers.
    run_noise
        How much runs of one build differ as a whole (see *run noise* in the module
        docstring); ``RunNoise(0, 0)`` tests within-run variation alone.

    Returns
    -------
    Comparison
        Verdicts per endpoint, changes per metric with intervals and p-values, the
        differences between the two loads, and notes on the method.

    Raises
    ------
    ValueError
        When ``threshold``, ``confidence`` or ``resamples`` is out of range.
    AnalysisError
        When a run has no per-request samples or the two share no endpoint.
    """
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence must be in (0, 1), not {confidence}")
    if threshold < 0.0:
        raise ValueError(f"threshold must be 0 or more, not {threshold}")
    if resamples < 100:
        raise ValueError(f"resamples must be at least 100, not {resamples}")
    rng = np.random.default_rng(seed)

    # the two windows, the requests inside them, and the time block of each request
    frames, windows, plans = [], [], []
    for run in (base, candidate):
        inside, window, plan = _blocked_window(run, whole, "a comparison")
        frames.append(inside)
        windows.append(window)
        plans.append(plan)
    base_requests, candidate_requests = frames
    # each run's draws of blocks serve all of its endpoints
    weights = [resample_weights(plan.blocks, resamples, rng) for plan in plans]

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
    blocks = (plans[0].blocks, plans[1].blocks)
    rows, verdict_rows, warnings, binned = [], [], [], []
    for label, b, c in groups:
        b_ms, b_block = _samples(b)
        c_ms, c_block = _samples(c)
        resampled = _resample_group(b_ms, b_block, c_ms, c_block, blocks, weights)
        if not resampled.exact:
            binned.append(label)
        b_sorted, c_sorted = np.sort(b_ms), np.sort(c_ms)
        for i, (metric, percentile) in enumerate(LATENCY_METRICS.items()):
            rows.append(
                _percentile_change(
                    label,
                    metric,
                    _nearest_rank(b_sorted, percentile),
                    _nearest_rank(c_sorted, percentile),
                    resampled.base_percentiles[i],
                    resampled.candidate_percentiles[i],
                    blocks,
                    confidence,
                    run_noise,
                )
            )
            for run_id, n in ((base.id, b_ms.size), (candidate.id, c_ms.size)):
                if n * (1 - percentile / 100) < 10:
                    warnings.append(
                        f"{label} {metric} of run {run_id} rests on {n} requests, "
                        f"fewer than the {math.ceil(10 / (1 - percentile / 100))} "
                        "that put 10 above it; its interval is wide."
                    )
        rows.append(
            _throughput_change(
                label,
                np.bincount(b["block"], minlength=blocks[0]),
                np.bincount(c["block"], minlength=blocks[1]),
                seconds,
                same_load,
                confidence,
            )
        )
        rows.append(_error_rate_change(label, b, c, blocks, confidence))
        row = _distribution_test(
            label,
            b_sorted,
            c_sorted,
            (resampled.base_superiority, resampled.candidate_superiority),
            blocks,
        )
        row.update(
            _location_test((b_ms, c_ms), (b_block, c_block), blocks, weights, run_noise)
        )
        # both must find a difference (module docstring); NaN when one cannot test
        row["p_value"] = float(np.max([row["distribution_p"], row["location_p"]]))
        verdict_rows.append(row)

    # the endpoints' tests gate their percentiles (module docstring)
    changes = pd.DataFrame(rows)
    endpoints = pd.DataFrame(verdict_rows)
    changes["p_adjusted"], endpoints["p_adjusted"] = adjusted_p_values(
        changes, endpoints
    )
    alpha = 1.0 - confidence
    changes["significant"] = changes["p_adjusted"] < alpha
    changes["status"] = [
        _status(row, threshold) for row in changes.itertuples(index=False)
    ]
    changes = changes[_CHANGE_COLUMNS]
    endpoints = _verdicts(endpoints, changes, alpha, threshold)

    warnings += _bootstrap_warnings((base, candidate), windows, plans)
    notes = _method_notes(
        base,
        candidate,
        windows,
        plans,
        binned,
        threshold,
        confidence,
        resamples,
        run_noise,
    )
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
        run_noise=run_noise,
        base_window=windows[0],
        candidate_window=windows[1],
        differences=differences,
        endpoints=endpoints,
        changes=changes,
        notes=notes,
        warnings=sorted(set(warnings)),
    )


def estimate_run_noise(
    runs: list[Run],
    whole: bool = False,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[RunNoise, pd.DataFrame]:
    """Measure the run noise from repeated runs of one build under one load.

    For each endpoint all the runs share and each of its p50 and p95, the variance of
    the log percentile across the runs is split into what each run's block bootstrap
    already sees (the mean of the runs' bootstrap variances, as in :func:`compare`)
    and the rest, the variance between runs (taken as 0 when the rest is negative:
    the method of moments). Then ``relative + absolute_ms / L`` is fitted to
    ``expm1`` of each between-run standard deviation, ``L`` being the percentile's
    median level in ms, by non-negative least squares of the relative errors.

    Parameters
    ----------
    runs
        Three or more runs of the same build and load, each with per-request
        samples; more runs give a steadier estimate (ten or more is good).
    whole
        Use the whole runs instead of their steady-state windows.
    resamples
        Block-bootstrap resamples of each run for its within-run variance.
    seed
        Seed of the bootstrap.

    Returns
    -------
    tuple
        The fitted :class:`RunNoise`, and one row per endpoint and percentile:
        ``endpoint``, ``metric``, ``level_ms``, ``runs``, ``within_sd`` and
        ``between_sd`` (standard deviations of the log percentile within a run and
        between runs) and ``fitted_sd`` (what the fitted run noise gives there).

    Raises
    ------
    ValueError
        With fewer than three runs.
    AnalysisError
        When a run has no per-request samples or the runs share no endpoint.
    """
    from scipy.optimize import nnls

    if len(runs) < 3:
        raise ValueError(
            f"estimating run noise needs three or more runs of one build, not "
            f"{len(runs)}"
        )
    rng = np.random.default_rng(seed)
    samples = []
    for run in runs:
        inside, _, plan = _blocked_window(run, whole, "estimating run noise")
        weights = resample_weights(plan.blocks, resamples, rng)
        samples.append((inside, plan, weights))
    shared = set.intersection(
        *(set(inside["endpoint"].dropna()) for inside, _, _ in samples)
    )
    if not shared:
        raise AnalysisError("The runs share no endpoint in their windows.")

    metrics = {"p50": LATENCY_METRICS["p50"], "p95": LATENCY_METRICS["p95"]}
    rows = []
    for endpoint in sorted(shared):
        logs, within = {name: [] for name in metrics}, {name: [] for name in metrics}
        for inside, plan, weights in samples:
            ms, block = _samples(inside[inside["endpoint"] == endpoint])
            values, index, _ = latency_grid(ms)
            cumulative = block_counts(index, block, values.size, plan.blocks)
            ranks = resampled_ranks(cumulative, weights, list(metrics.values()))
            ordered = np.sort(ms)
            for i, (name, percentile) in enumerate(metrics.items()):
                level = _nearest_rank(ordered, percentile)
                star = _grid_values(values, ranks[i])
                star = star[~np.isnan(star)]
                if not level > 0 or star.size < 2 or not (star > 0).all():
                    continue
                logs[name].append(math.log(level))
                b = plan.blocks
                within[name].append(float(np.var(np.log(star), ddof=1)) * b / (b - 1))
        for name in metrics:
            if len(logs[name]) < 3:
                continue
            within_var = float(np.mean(within[name]))
            between_var = max(0.0, float(np.var(logs[name], ddof=1)) - within_var)
            rows.append(
                {
                    "endpoint": endpoint,
                    "metric": name,
                    "level_ms": float(np.exp(np.median(logs[name]))),
                    "runs": len(logs[name]),
                    "within_sd": math.sqrt(within_var),
                    "between_sd": math.sqrt(between_var),
                }
            )
    table = pd.DataFrame(rows)
    if table.empty:
        raise AnalysisError(
            "No endpoint has a positive p50 or p95 in three or more of the runs."
        )
    # least squares of the relative errors, so that the slower endpoints, whose
    # run noise is the smaller number, weigh as much as the fast ones
    target = np.expm1(table["between_sd"].to_numpy())
    weight = 1.0 / np.maximum(target, 1e-3)
    design = np.column_stack([np.ones(len(table)), 1.0 / table["level_ms"]])
    (relative, absolute_ms), _ = nnls(design * weight[:, None], target * weight)
    noise = RunNoise(relative=float(relative), absolute_ms=float(absolute_ms))
    table["fitted_sd"] = [noise.log_sd(level) for level in table["level_ms"]]
    return noise, table


def _blocked_window(run: Run, whole: bool, purpose: str):
    """A run's requests in its window, each with its time ``block``, the window and
    its block plan; an AnalysisError naming ``purpose`` when it has no samples."""
    requests = run.table("requests")
    if requests.empty:
        raise AnalysisError(
            f"Run {run.id} has no per-request samples (requests table), which "
            f"{purpose} needs; ingest it from exports that have them."
        )
    window = run_window(run, whole=whole, requests=requests)
    plan = block_plan(window.seconds)
    inside = window_requests(requests, window)
    return inside.assign(block=time_blocks(inside["ts"], window, plan)), window, plan


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


def adjusted_p_values(
    changes: pd.DataFrame, endpoints: pd.DataFrame
) -> tuple[np.ndarray, np.ndarray]:
    """Holm-adjusted p-values of a comparison's metrics and endpoints, in two tiers.

    The first tier is one Holm family: every endpoint's test (and Overall's)
    together with every throughput and error-rate test, except the error-rate tests
    of endpoints that failed no request in either run: those cannot reject at any
    level, and by Tarone's rule for discrete tests they are left out of the family
    (their p-value, 1, stands unadjusted). The second tier
    is each endpoint's percentiles (``p50``, ``p95``, ``p99``), Holm-adjusted among
    themselves, and tested only behind their endpoint: a percentile's adjusted
    p-value is the larger of its own and its endpoint's. So an A/A pair has a
    significant change anywhere at most at the family-wise level (every latency
    claim needs its endpoint's distribution to differ), while an endpoint that did
    move does not pay for the percentiles of all the others.

    Parameters
    ----------
    changes
        Rows with ``endpoint``, ``metric`` and ``p_value``.
    endpoints
        Rows with ``endpoint`` and ``p_value`` (the distribution tests).

    Returns
    -------
    tuple of numpy.ndarray
        The adjusted p-values of ``changes`` and of ``endpoints``, in their row
        order; NaN where the p-value is NaN.
    """
    latency = changes["metric"].isin(list(LATENCY_METRICS)).to_numpy()
    # an error rate of 0 in both runs: Fisher's test cannot reject at any level,
    # so it takes no share of the family (Tarone's rule for discrete tests)
    vacuous = (
        (changes["metric"] == "error_rate")
        & (changes["base"] == 0)
        & (changes["candidate"] == 0)
    ).to_numpy()
    tested = ~latency & ~vacuous
    first = np.concatenate(
        [
            endpoints["p_value"].to_numpy(dtype=float),
            changes.loc[tested, "p_value"].to_numpy(dtype=float),
        ]
    )
    first = holm(first)
    endpoint_adjusted = first[: len(endpoints)]
    change_adjusted = np.full(len(changes), np.nan)
    change_adjusted[tested] = first[len(endpoints) :]
    change_adjusted[vacuous] = changes.loc[vacuous, "p_value"].to_numpy(dtype=float)

    gate = dict(zip(endpoints["endpoint"], endpoint_adjusted, strict=True))
    label = changes["endpoint"].to_numpy()
    p_value = changes["p_value"].to_numpy(dtype=float)
    for endpoint in np.unique(label[latency]):
        rows = np.flatnonzero(latency & (label == endpoint))
        within = holm(p_value[rows])
        change_adjusted[rows] = np.maximum(within, gate.get(endpoint, np.nan))
    return change_adjusted, endpoint_adjusted


# ---------------------------------------------------------------------------
# The block bootstrap


@dataclass(frozen=True)
class BlockPlan:
    """How a window is cut into time blocks for the bootstrap.

    Attributes
    ----------
    blocks
        Number of consecutive blocks.
    seconds
        Length of each block, in seconds.
    """

    blocks: int
    seconds: float

    @property
    def short(self) -> bool:
        """True when the blocks are shorter than :data:`BLOCK_S` (a short window)."""
        return self.seconds < BLOCK_S - 1e-9


def block_plan(window_s: float) -> BlockPlan:
    """The time blocks of a window of ``window_s`` seconds.

    ``b = round(window_s ** (2/3))``, kept within [:data:`MIN_BLOCKS`,
    :data:`MAX_BLOCKS`], blocks of ``window_s / b`` seconds: about the cube root of
    the window, at least :data:`BLOCK_S` once the window lasts 10 s or more.

    Parameters
    ----------
    window_s
        Length of the window, in seconds (more than 0).

    Returns
    -------
    BlockPlan
        The number of blocks and their length.
    """
    if not window_s > 0:
        raise ValueError(f"window_s must be more than 0 seconds, not {window_s}")
    blocks = min(MAX_BLOCKS, max(MIN_BLOCKS, round(window_s ** (2 / 3))))
    return BlockPlan(blocks, window_s / blocks)


def time_blocks(ts: pd.Series, window: Window, plan: BlockPlan) -> np.ndarray:
    """The block (0 to ``plan.blocks - 1``) of each request start in a window."""
    offset_s = (pd.to_datetime(ts, utc=True) - window.start).dt.total_seconds()
    block = np.floor(offset_s.to_numpy(dtype=float) / plan.seconds)
    return np.clip(block, 0, plan.blocks - 1).astype(np.int64)


def resample_weights(
    blocks: int, resamples: int, rng: np.random.Generator
) -> np.ndarray:
    """How many times each block is drawn, per resample: a ``(resamples, blocks)``
    array of multinomial counts, each row summing to ``blocks``."""
    return rng.multinomial(blocks, np.full(blocks, 1.0 / blocks), size=resamples)


def latency_grid(latency_ms: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
    """The grid the bootstrap counts latencies on.

    Parameters
    ----------
    latency_ms
        Latencies, ms (any order, no NaN).

    Returns
    -------
    values : ndarray
        Grid values, ascending: the distinct latencies when there are at most
        :data:`MAX_GRID_VALUES`, else the smallest latency of each occupied
        log-spaced bin (edges ``lowest * (1 + GRID_RESOLUTION) ** i`` from the lowest
        positive latency; latencies of 0 or less share one bin).
    index : ndarray
        The grid index of each latency.
    exact : bool
        True when the grid is the distinct latencies.
    """
    values, index = np.unique(latency_ms, return_inverse=True)
    index = index.reshape(-1)
    if values.size <= MAX_GRID_VALUES:
        return values, index, True
    positive = values > 0
    key = np.full(values.size, -1, dtype=np.int64)
    lowest = values[positive][0]
    key[positive] = np.floor(
        np.log(values[positive] / lowest) / math.log1p(GRID_RESOLUTION)
    ).astype(np.int64)
    first = np.r_[True, key[1:] != key[:-1]]
    bin_of_value = np.cumsum(first) - 1
    return values[first], bin_of_value[index], False


def block_counts(index: np.ndarray, block: np.ndarray, size: int, blocks: int):
    """Cumulative counts per grid value and block: ``counts[g, j]`` is the number of
    requests of block ``j`` at grid index ``g`` or below (float, exact integers)."""
    flat = np.bincount(index * blocks + block, minlength=size * blocks)
    return np.cumsum(flat.reshape(size, blocks), axis=0).astype(float)


def resampled_ranks(
    cumulative: np.ndarray, weights: np.ndarray, percentiles
) -> np.ndarray:
    """Grid indices of the nearest-rank percentiles of block resamples.

    Parameters
    ----------
    cumulative
        ``(grid size, blocks)`` cumulative counts from :func:`block_counts`.
    weights
        ``(resamples, blocks)`` draws from :func:`resample_weights`.
    percentiles
        Percentiles (0-100).

    Returns
    -------
    ndarray
        ``(len(percentiles), resamples)`` grid indices; -1 where a resample holds no
        request. The resample of row ``r`` holds ``n* = weights[r] @ cumulative[-1]``
        requests; its percentile ``q`` is the smallest grid index whose resampled
        cumulative count reaches ``k = max(1, ceil(q n* / 100))``, found by bisection
        (``log2`` of the grid size steps of ``resamples x blocks``).
    """
    weights = np.asarray(weights, dtype=float)
    totals = weights @ cumulative[-1]
    result = np.empty((len(percentiles), totals.size), dtype=np.int64)
    steps = max(1, int(cumulative.shape[0] - 1).bit_length())
    for i, percentile in enumerate(percentiles):
        rank = np.maximum(1.0, np.ceil(percentile / 100.0 * totals - 1e-9))
        low = np.zeros(totals.size, dtype=np.int64)
        high = np.full(totals.size, cumulative.shape[0] - 1, dtype=np.int64)
        for _ in range(steps):
            middle = (low + high) // 2
            reached = np.einsum("rj,rj->r", weights, cumulative[middle]) >= rank
            high = np.where(reached, middle, high)
            low = np.where(reached, low, middle + 1)
        result[i] = np.where(totals > 0, low, -1)
    return result


def resampled_superiority(
    base_cumulative: np.ndarray,
    base_weights: np.ndarray,
    candidate_cumulative: np.ndarray,
    candidate_weights: np.ndarray,
) -> np.ndarray:
    """The superiority (candidate above base, ties half) of each pair of resamples.

    Both cumulative count arrays must be on the same grid. The pairs of requests of
    candidate block ``j`` and base block ``i`` are counted once, on the grid, into a
    ``(candidate blocks, base blocks)`` table; a resample pair's superiority is then
    ``w_c @ table @ w_b / (n*_c n*_b)`` (NaN when a resample is empty). A single
    row of weights (all ones: the run taken whole) pairs with every row of the other.
    """
    base_counts = np.diff(base_cumulative, axis=0, prepend=0.0)
    candidate_counts = np.diff(candidate_cumulative, axis=0, prepend=0.0)
    table = candidate_counts.T @ (base_cumulative - 0.5 * base_counts)
    base_weights = np.asarray(base_weights, dtype=float)
    candidate_weights = np.asarray(candidate_weights, dtype=float)
    above = ((candidate_weights @ table) * base_weights).sum(axis=1)
    pairs = (candidate_weights @ candidate_cumulative[-1]) * (
        base_weights @ base_cumulative[-1]
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(pairs > 0, above / pairs, np.nan)


def block_resample_percentiles(
    latency_ms: np.ndarray, block: np.ndarray, weights: np.ndarray, percentiles
) -> np.ndarray:
    """Nearest-rank percentiles of block resamples of one run's latencies.

    Parameters
    ----------
    latency_ms
        Latencies, ms.
    block
        The time block of each latency (0 to ``weights.shape[1] - 1``).
    weights
        ``(resamples, blocks)``: how often each block is drawn in each resample.
    percentiles
        Percentiles (0-100).

    Returns
    -------
    ndarray
        ``(len(percentiles), resamples)`` latencies, ms (NaN for an empty resample),
        exact when the latencies hold at most :data:`MAX_GRID_VALUES` distinct values.
    """
    values, index, _ = latency_grid(np.asarray(latency_ms, dtype=float))
    cumulative = block_counts(index, np.asarray(block), values.size, weights.shape[1])
    return _grid_values(values, resampled_ranks(cumulative, weights, percentiles))


@dataclass
class _Resampled:
    """Block-bootstrap replicates of one endpoint: ``(percentiles, resamples)`` arrays
    of each run's resampled percentiles, and the superiority with only the base (or
    only the candidate) resampled, the other run taken whole."""

    base_percentiles: np.ndarray
    candidate_percentiles: np.ndarray
    base_superiority: np.ndarray
    candidate_superiority: np.ndarray
    exact: bool


def _resample_group(b_ms, b_block, c_ms, c_block, blocks, weights) -> _Resampled:
    percentiles = list(LATENCY_METRICS.values())
    if b_ms.size == 0 or c_ms.size == 0:
        empty = np.full((len(percentiles), weights[0].shape[0]), np.nan)
        return _Resampled(empty, empty, empty[0], empty[0], True)
    values, index, exact = latency_grid(np.concatenate([b_ms, c_ms]))
    b_cumulative = block_counts(index[: b_ms.size], b_block, values.size, blocks[0])
    c_cumulative = block_counts(index[b_ms.size :], c_block, values.size, blocks[1])
    return _Resampled(
        _grid_values(values, resampled_ranks(b_cumulative, weights[0], percentiles)),
        _grid_values(values, resampled_ranks(c_cumulative, weights[1], percentiles)),
        resampled_superiority(
            b_cumulative, weights[0], c_cumulative, np.ones((1, blocks[1]))
        ),
        resampled_superiority(
            b_cumulative, np.ones((1, blocks[0])), c_cumulative, weights[1]
        ),
        exact,
    )


def _grid_values(values: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    return np.where(ranks >= 0, values[np.maximum(ranks, 0)], np.nan)


def _latencies(requests: pd.DataFrame) -> np.ndarray:
    values = requests["latency_ms"].to_numpy(dtype=float)
    return np.sort(values[~np.isnan(values)])


def _samples(requests: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The latencies (ms) of the requests that have one, and their time blocks."""
    values = requests["latency_ms"].to_numpy(dtype=float)
    keep = ~np.isnan(values)
    return values[keep], requests["block"].to_numpy(dtype=np.int64)[keep]


def _nearest_rank(sorted_ms: np.ndarray, percentile: float) -> float:
    if sorted_ms.size == 0:
        return float("nan")
    k = max(1, math.ceil(percentile / 100.0 * sorted_ms.size - 1e-9))
    return float(sorted_ms[k - 1])


def _superiority(b_sorted: np.ndarray, c_sorted: np.ndarray) -> float:
    """P(candidate latency > base latency) + P(equal) / 2, exact."""
    below = np.searchsorted(b_sorted, c_sorted, side="left")
    at_or_below = np.searchsorted(b_sorted, c_sorted, side="right")
    return float(
        (below.sum() + at_or_below.sum()) / 2 / (b_sorted.size * c_sorted.size)
    )


# ---------------------------------------------------------------------------
# The tests of each metric


def _percentile_change(
    label, metric, base, candidate, b_star, c_star, blocks, confidence, noise
) -> dict:
    row = _row(label, metric, base, candidate)
    b_star, c_star = b_star[~np.isnan(b_star)], c_star[~np.isnan(c_star)]
    if math.isnan(base) or math.isnan(candidate) or min(b_star.size, c_star.size) < 2:
        return row
    logs = base > 0 and candidate > 0 and (b_star > 0).all() and (c_star > 0).all()
    if logs:
        change = math.log(candidate / base)
        between = noise.log_sd(base) ** 2 + noise.log_sd(candidate) ** 2
        spread, degrees = _standard_error(
            np.log(b_star), np.log(c_star), blocks, between
        )
    else:
        change = candidate - base
        between = sum(
            (noise.relative * level + noise.absolute_ms) ** 2
            for level in (base, candidate)
        )
        spread, degrees = _standard_error(b_star, c_star, blocks, between)
    if spread > 0:
        half = stats.t.ppf(0.5 + confidence / 2, degrees) * spread
        low, high = change - half, change + half
        row["p_value"] = float(2 * stats.t.sf(abs(change) / spread, degrees))
    else:
        # no resample moved either percentile: the bootstrap cannot size the change
        low = high = change
        row["p_value"] = 1.0 if change == 0 else 2 / (b_star.size + 1)
    if logs:
        row["relative_low"], row["relative_high"] = math.expm1(low), math.expm1(high)
        row["change_low"] = base * row["relative_low"]
        row["change_high"] = base * row["relative_high"]
    else:
        row["change_low"], row["change_high"] = low, high
    return row


def _standard_error(b_star, c_star, blocks, between=0.0) -> tuple[float, float]:
    """Standard error and degrees of freedom of a difference between the runs, from
    each run's block-resampled values of its statistic and the run-noise variance
    ``between``.

    Resampling ``b`` blocks gives ``(b - 1) / b`` of the unbiased variance of a
    statistic averaged over blocks, so each run's variance is scaled by ``b / (b -
    1)``; the degrees of freedom are Welch and Satterthwaite's, each run's variance
    counting ``b - 1`` (between ``min(b) - 1`` and ``b_base + b_candidate - 2``) and
    the run noise, taken as known, counting as infinitely many (so it raises them).
    """
    parts = [
        float(np.var(values, ddof=1)) * b / (b - 1) if values.size > 1 else 0.0
        for values, b in zip((b_star, c_star), blocks, strict=True)
    ]
    total = sum(parts) + between
    if total <= 0:
        return 0.0, float(min(blocks) - 1)
    estimated = sum(part**2 / (b - 1) for part, b in zip(parts, blocks, strict=True))
    degrees = total**2 / estimated if estimated > 0 else MAX_DEGREES
    return math.sqrt(total), min(degrees, MAX_DEGREES)


def _throughput_change(
    label, b_per_block, c_per_block, seconds, comparable, confidence
) -> dict:
    b_seconds, c_seconds = seconds
    b_count, c_count = int(b_per_block.sum()), int(c_per_block.sum())
    row = _row(label, "throughput", b_count / b_seconds, c_count / c_seconds)
    if not comparable or b_count + c_count == 0:
        return row
    phi = _count_dispersion(b_per_block, c_per_block)
    b_count, c_count = round(b_count / phi), round(c_count / phi)
    if b_count + c_count == 0:
        row["p_value"] = 1.0
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


def _count_dispersion(*per_block: np.ndarray) -> float:
    """Pooled variance-to-mean ratio of per-block request counts, at least 1."""
    squares = sum(float(((n - n.mean()) ** 2).sum()) for n in per_block if n.size > 1)
    expected = sum((n.size - 1) * float(n.mean()) for n in per_block if n.size > 1)
    return max(1.0, squares / expected) if expected > 0 else 1.0


def _error_rate_change(label, b, c, blocks, confidence: float) -> dict:
    counts = []
    for frame, size in ((b, blocks[0]), (c, blocks[1])):
        failed = (~frame["ok"].astype(bool)).to_numpy(dtype=float)
        per_block = np.bincount(frame["block"], minlength=size).astype(float)
        failed_per_block = np.bincount(frame["block"], failed, minlength=size)
        counts.append((int(failed.sum()), len(frame), failed_per_block, per_block))
    (b_fail, b_n, *b_blocks), (c_fail, c_n, *c_blocks) = counts
    row = _row(
        label,
        "error_rate",
        b_fail / b_n if b_n else float("nan"),
        c_fail / c_n if c_n else float("nan"),
    )
    if b_n == 0 or c_n == 0:
        return row
    b_effect, c_effect = design_effect(*b_blocks), design_effect(*c_blocks)
    b_fail_eff, b_n_eff = round(b_fail / b_effect), max(1, round(b_n / b_effect))
    c_fail_eff, c_n_eff = round(c_fail / c_effect), max(1, round(c_n / c_effect))
    table = [[c_fail_eff, c_n_eff - c_fail_eff], [b_fail_eff, b_n_eff - b_fail_eff]]
    row["p_value"] = (
        float(stats.fisher_exact(table).pvalue) if b_fail_eff + c_fail_eff else 1.0
    )
    z = stats.norm.ppf(0.5 + confidence / 2)
    b_low, b_high = _wilson(row["base"], b_n / b_effect, z)
    c_low, c_high = _wilson(row["candidate"], c_n / c_effect, z)
    difference = row["candidate"] - row["base"]
    row["change_low"] = difference - math.hypot(
        row["candidate"] - c_low, b_high - row["base"]
    )
    row["change_high"] = difference + math.hypot(
        c_high - row["candidate"], row["base"] - b_low
    )
    return row


def design_effect(failed_per_block: np.ndarray, requests_per_block: np.ndarray):
    """How much more a run's failure share varies than for independent requests.

    ``d = b / (b - 1) sum_j (f_j - p n_j)^2 / (n p (1 - p))`` over the ``b`` blocks
    that hold requests (``f_j`` failures of ``n_j`` requests, ``p = f / n``): the
    variance of ``p`` from the blocks over the binomial variance ``p (1 - p) / n``.
    It is never taken below 1, and is 1 when there are fewer than two such blocks
    or ``p`` is 0 or 1.
    """
    keep = requests_per_block > 0
    f, n = failed_per_block[keep], requests_per_block[keep]
    b, total = f.size, n.sum()
    p = f.sum() / total if total else 0.0
    if b < 2 or p <= 0.0 or p >= 1.0:
        return 1.0
    variance = b / (b - 1) * float(((f - p * n) ** 2).sum())
    return max(1.0, variance / (total * p * (1 - p)))


def _wilson(p: float, n: float, z: float) -> tuple[float, float]:
    """Wilson's score interval of a proportion ``p`` from ``n`` (possibly effective,
    non-integer) trials."""
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
        return NOT_COMPARED
    if not row.significant:
        return UNCHANGED
    worse = row.change < 0 if row.metric == "throughput" else row.change > 0
    if abs(row.relative) < threshold:
        return SMALL
    return "worse" if worse else "better"


def _distribution_test(label, b_sorted, c_sorted, resampled, blocks) -> dict:
    row = {
        "endpoint": label,
        "base_requests": int(b_sorted.size),
        "candidate_requests": int(c_sorted.size),
        "superiority": math.nan,
        "distribution_p": math.nan,
    }
    if b_sorted.size == 0 or c_sorted.size == 0:
        return row
    superiority = _superiority(b_sorted, c_sorted)
    independent = stats.mannwhitneyu(
        c_sorted, b_sorted, alternative="two-sided", method="asymptotic"
    ).pvalue
    b_star, c_star = (values[~np.isnan(values)] for values in resampled)
    spread, degrees = _standard_error(b_star, c_star, blocks)
    if spread > 0:
        blocked = 2 * stats.t.sf(abs(superiority - 0.5) / spread, degrees)
    else:
        # no resample moved the superiority: only the Mann-Whitney test can speak
        blocked = 0.0
    row["superiority"] = superiority
    row["distribution_p"] = float(max(blocked, independent))
    return row


def _location_test(latencies, blocks_of, blocks, weights, noise) -> dict:
    """The relative change in the geometric mean latency and its p-value."""
    row = {"location": math.nan, "location_p": math.nan}
    if min(ms.size for ms in latencies) == 0:
        return row
    means, stars = [], []
    runs = zip(latencies, blocks_of, blocks, weights, strict=True)
    for ms, block, size, draws in runs:
        logs = np.log(np.maximum(ms, LOG_FLOOR_MS))
        sums = np.bincount(block, logs, minlength=size)
        counts = np.bincount(block, minlength=size).astype(float)
        totals = draws @ counts
        with np.errstate(invalid="ignore", divide="ignore"):
            star = (draws @ sums) / totals
        means.append(float(logs.mean()))
        stars.append(star[totals > 0])
    change = means[1] - means[0]
    between = sum(noise.log_sd(math.exp(mean)) ** 2 for mean in means)
    spread, degrees = _standard_error(*stars, blocks, between)
    if spread > 0:
        p_value = float(2 * stats.t.sf(abs(change) / spread, degrees))
    else:
        # no resample moved either mean and there is no run noise
        p_value = 1.0 if change == 0 else 2 / (len(stars[0]) + 1)
    row["location"] = math.expm1(change)
    row["location_p"] = p_value
    return row


def _verdicts(
    endpoints: pd.DataFrame, changes: pd.DataFrame, alpha: float, threshold: float
) -> pd.DataFrame:
    relative = changes.pivot(index="endpoint", columns="metric", values="relative")
    endpoints["p50_relative"] = endpoints["endpoint"].map(relative["p50"])
    endpoints["p95_relative"] = endpoints["endpoint"].map(relative["p95"])
    central = changes[changes["metric"].isin(["p50", "p95"])]
    moved = {
        status: set(central.loc[central["status"] == status, "endpoint"])
        for status in ("worse", "better")
    }
    verdicts, summaries = [], []
    for row in endpoints.itertuples(index=False):
        moves = f"p50 {_pct(row.p50_relative)}, p95 {_pct(row.p95_relative)}"
        if math.isnan(row.p_adjusted):
            verdict = NOT_COMPARED
            summary = (
                "Not compared: one of the runs has no latency for it "
                f"({row.base_requests:,} / {row.candidate_requests:,} requests with "
                "one)."
            )
        elif row.p_adjusted >= alpha:
            verdict = UNCHANGED
            summary = (
                f"No significant change ({moves}; adjusted p = {_p(row.p_adjusted)})."
            )
        else:
            slower = row.superiority > 0.5
            direction = SLOWER if slower else FASTER
            if row.endpoint in moved["worse" if slower else "better"]:
                verdict = direction
                summary = (
                    f"{direction.capitalize()} ({moves}; adjusted p = "
                    f"{_p(row.p_adjusted)})."
                )
            else:
                verdict = SMALL
                summary = (
                    f"Significantly {direction} but below the {threshold:.0%} "
                    f"threshold: neither p50 nor p95 is significantly {direction} "
                    f"by that much ({moves}; adjusted p = {_p(row.p_adjusted)})."
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
    if b.get("pace_s") != c.get("pace_s"):
        sentences.append(
            f"The pacing differs: a task every {_text(b.get('pace_s'))} s per user "
            f"in the base run, {_text(c.get('pace_s'))} s in the candidate; "
            "throughput is not compared."
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
    return (
        _peak_users(b) != _peak_users(c)
        or b.get("wait_s") != c.get("wait_s")
        or b.get("pace_s") != c.get("pace_s")
    )


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


def _method_notes(
    base, candidate, windows, plans, binned, threshold, confidence, resamples, noise
):
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
    b_plan, c_plan = plans
    if binned:
        grid = (
            "exactly, except for "
            + ", ".join(binned)
            + f", whose latencies hold more than {MAX_GRID_VALUES:,} distinct values "
            f"and were counted in log-spaced bins {GRID_RESOLUTION:.1%} wide (there "
            f"a resampled percentile is at most {GRID_RESOLUTION:.1%} below the "
            "exact one)"
        )
    else:
        grid = "exactly"
    notes += [
        "Bootstrap: each run's window is cut into consecutive time blocks (the "
        f"base's into {b_plan.blocks} blocks of {b_plan.seconds:.2f} s, the "
        f"candidate's into {c_plan.blocks} blocks of {c_plan.seconds:.2f} s), and "
        f"each of {resamples:,} resamples of a run draws that many blocks with "
        "replacement, the same draw for all its endpoints, so that requests slowed "
        "together by a burst stay together; the two runs are resampled "
        f"independently, and the resampled percentiles are computed {grid}. Each "
        "run's bootstrap variance is scaled by b / (b - 1), and changes are "
        "referred to Student's t with Welch-Satterthwaite degrees of freedom (from "
        f"{min(b_plan.blocks, c_plan.blocks) - 1} to "
        f"{b_plan.blocks + c_plan.blocks - 2}). Point values are exact.",
        "Endpoint verdicts: the superiority (the chance that a candidate latency "
        "exceeds a base latency) tested against 0.5 with that standard error, the "
        "p-value being the larger of that test's and the two-sided Mann-Whitney U "
        "test's, and no smaller than that of the location test (the change in "
        "mean log latency, with the same standard error plus the run noise); "
        "p-values Holm-adjusted over all endpoints and Overall together "
        "with the throughput and error-rate tests, "
        f"significance level {1 - confidence:.2g}; a significant endpoint is faster "
        "or slower only when its p50 or p95 is itself a significant change of at "
        f"least {threshold:.0%} that way.",
        f"Percentile changes: {confidence:.0%} t intervals of the log ratio of the "
        "percentiles, with two-sided p-values; throughput: exact binomial test of "
        "the two counts, divided by their dispersion across blocks when above "
        "Poisson's; error rate: Fisher's exact test with Newcombe's interval, each "
        "run's counts divided by its design effect across blocks when above 1. "
        "An endpoint's percentile p-values are Holm-adjusted over its three "
        "percentiles and are never below its endpoint's adjusted p-value, so a "
        "percentile is significant only where its endpoint's distribution is.",
    ]
    if noise.none:
        notes.append(
            "Run noise: none added, so the tests see only the variation within each "
            "run; what differs between the conditions of the two runs (the "
            "machine's state, a cold cache) can make them differ by more than "
            "these intervals say."
        )
    else:
        notes.append(
            f"Run noise: each latency test adds the variance of runs of one build "
            f"differing as a whole by {noise} (one standard deviation per run: "
            f"latencies scaled by {1 + noise.relative:g} and shifted by "
            f"{noise.absolute_ms:g} ms), which the blocks inside a run cannot see. "
            "Dependence longer than a block and runs made under other conditions "
            "(another job on the machine) are still not captured."
        )
    return notes


def _bootstrap_warnings(runs, windows, plans) -> list[str]:
    warnings = []
    for run, window, plan in zip(runs, windows, plans, strict=True):
        if plan.short:
            warnings.append(
                f"The window of run {run.id} lasts {window.seconds:.1f} s, so its "
                f"{plan.blocks} bootstrap blocks last {plan.seconds:.2f} s, under "
                f"{BLOCK_S:g} s: slower swings of latency are not captured and its "
                "intervals may be too narrow; hold the load for at least "
                f"{MIN_BLOCKS * BLOCK_S:g} s."
            )
    return warnings


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
        skipped=str(int((c.changes["status"] == NOT_COMPARED).sum())),
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
        elif row.status == NOT_COMPARED:
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

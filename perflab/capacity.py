"""Capacity: throughput against users, the Universal Scalability Law, and targets.

A *step-load* run (``perflab run --shape steps:START:STEP:COUNT:HOLD``, see
:func:`perflab.shapes.parse_steps`) holds the users at a few levels in turn.
:func:`step_throughput` measures the steady throughput and latency of each level,
:func:`fit_usl` fits the Universal Scalability Law to throughput against users, and
:func:`users_at_target` says at how many users a p95 latency target breaks.

Definitions
-----------
Universal Scalability Law (USL, Gunther)
    ``X(N) = lambda N / (1 + sigma (N - 1) + kappa N (N - 1))``: the throughput ``X``
    (requests/s) of ``N`` concurrent users, where ``lambda`` is the throughput of one
    user (requests/s), ``sigma`` (0 to 1) the contention (the serialised share of the
    work) and ``kappa`` (0 or more) the coherency delay (the cost of keeping the
    workers in step, which makes throughput fall past a peak).
peak
    With ``kappa > 0`` throughput is highest at ``N* = sqrt((1 - sigma) / kappa)``
    users; with ``kappa = 0`` it never falls, and only approaches ``lambda / sigma``
    as users grow, which is reported as the peak throughput with no peak users.
Little's law (closed system)
    ``N = X (R + Z)``: with ``N`` users, each waiting a think time ``Z`` (s) between
    requests, the mean response time is ``R = N / X - Z`` (s).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import optimize, stats

from perflab.errors import AnalysisError
from perflab.statistics import percentiles
from perflab.store import OVERALL, Run
from perflab.targets import Targets

log = logging.getLogger(__name__)

#: A fitted coherency term ``kappa N (N - 1)`` smaller than this at the most users
#: measured is taken as 0 (least squares leaves values like 1e-18 at the bound).
NEGLIGIBLE = 1e-9

#: Seconds at the start of each step left out while the new users settle.
DEFAULT_SETTLE_S = 1.0


@dataclass(frozen=True)
class USLFit:
    """A Universal Scalability Law fit (see the module docstring).

    Attributes
    ----------
    lam, sigma, kappa
        The fitted parameters: ``lam`` in requests/s per user, ``sigma`` and
        ``kappa`` without unit.
    lam_interval, sigma_interval, kappa_interval
        Their confidence intervals, ``(low, high)``, from the covariance of the
        least-squares fit (Student t with ``n - 3`` degrees of freedom); ``sigma`` and
        ``kappa`` are clipped at 0, their bound.
    confidence
        Confidence level of the intervals.
    r_squared
        ``1 - SS_residual / SS_total`` of the throughput.
    peak_users
        ``N*``, the users at which throughput peaks; None when ``kappa`` is 0
        (throughput never falls).
    peak_throughput
        ``X(N*)`` in requests/s, or the asymptote ``lambda / sigma`` when there is no
        peak (infinite when ``sigma`` is 0 too).
    points
        Number of (users, throughput) points fitted.
    note
        One sentence on the peak, for the report.
    """

    lam: float
    sigma: float
    kappa: float
    lam_interval: tuple[float, float]
    sigma_interval: tuple[float, float]
    kappa_interval: tuple[float, float]
    confidence: float
    r_squared: float
    peak_users: float | None
    peak_throughput: float
    points: int
    note: str

    def throughput(self, users: float | np.ndarray) -> float | np.ndarray:
        """Predicted throughput ``X(N)`` in requests/s."""
        return usl(np.asarray(users, dtype=float), self.lam, self.sigma, self.kappa)

    def response_time_s(
        self, users: float | np.ndarray, think_time_s: float = 0.0
    ) -> float | np.ndarray:
        """Predicted mean response time ``R = N / X(N) - Z``, in seconds (Little's law
        for a closed system with think time ``Z``)."""
        n = np.asarray(users, dtype=float)
        return n / self.throughput(n) - think_time_s

    def users_at_response_time(
        self, response_time_s: float, think_time_s: float = 0.0
    ) -> float:
        """Users at which the predicted mean response time reaches a value.

        Solves ``N / X(N) - Z = R``, that is
        ``kappa N^2 + (sigma - kappa) N + 1 - sigma - lambda (R + Z) = 0``; infinite
        when the response time never gets there (``sigma = kappa = 0``).
        """
        a = self.kappa
        b = self.sigma - self.kappa
        c = 1.0 - self.sigma - self.lam * (response_time_s + think_time_s)
        if a > 0:
            root = math.sqrt(b * b - 4 * a * c)
            # the positive root, in the form without cancellation for either sign of b
            return -2 * c / (b + root) if b >= 0 else (-b + root) / (2 * a)
        if b > 0:
            return -c / b
        return math.inf

    def to_frame(self) -> pd.DataFrame:
        """The parameters as a table: ``parameter``, ``value``, ``low``, ``high``."""
        return pd.DataFrame(
            [
                ("lambda (requests/s per user)", self.lam, *self.lam_interval),
                ("sigma (contention)", self.sigma, *self.sigma_interval),
                ("kappa (coherency)", self.kappa, *self.kappa_interval),
            ],
            columns=["parameter", "value", "low", "high"],
        )


def usl(users: np.ndarray, lam: float, sigma: float, kappa: float) -> np.ndarray:
    """The USL throughput ``lam N / (1 + sigma (N - 1) + kappa N (N - 1))``."""
    n = np.asarray(users, dtype=float)
    return lam * n / (1.0 + sigma * (n - 1.0) + kappa * n * (n - 1.0))


def fit_usl(
    users: Sequence[float] | np.ndarray,
    throughput: Sequence[float] | np.ndarray,
    confidence: float = 0.95,
) -> USLFit:
    """Fit the Universal Scalability Law to measured throughput against users.

    Parameters
    ----------
    users
        Concurrent users of each measurement (at least 1).
    throughput
        Throughput at those users, in requests/s.
    confidence
        Confidence level of the parameter intervals.

    Returns
    -------
    USLFit
        Parameters with intervals, R², and the predicted peak.

    Raises
    ------
    AnalysisError
        With fewer than 4 points, fewer than 3 distinct user counts, or when the fit
        does not converge.
    """
    n = np.asarray(users, dtype=float)
    x = np.asarray(throughput, dtype=float)
    keep = np.isfinite(n) & np.isfinite(x) & (n >= 1)
    n, x = n[keep], x[keep]
    if n.size < 4 or np.unique(n).size < 3:
        raise AnalysisError(
            f"A USL fit needs at least 4 points at 3 or more user counts; got "
            f"{n.size} points at {np.unique(n).size}. Run a step load with more steps."
        )

    # start from the throughput per user at the fewest users
    lowest = n == n.min()
    lam0 = float(np.mean(x[lowest] / n[lowest]))
    try:
        params, covariance = optimize.curve_fit(
            usl,
            n,
            x,
            p0=[lam0, 0.05, 0.001],
            bounds=([0.0, 0.0, 0.0], [np.inf, 1.0, np.inf]),
            maxfev=20000,
        )
    except (RuntimeError, ValueError) as exc:
        raise AnalysisError(f"The USL fit did not converge: {exc}.") from exc
    lam, sigma, kappa = (float(v) for v in params)
    if kappa * n.max() * (n.max() - 1) < NEGLIGIBLE:
        # below rounding noise over the measured users: a peak from it is meaningless
        kappa = 0.0

    # intervals from the covariance; t quantile with n - 3 degrees of freedom
    dof = max(n.size - 3, 1)
    t = stats.t.ppf(0.5 + confidence / 2, dof)
    errors = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    intervals = [
        (value - t * error, value + t * error)
        for value, error in zip(params, errors, strict=True)
    ]
    intervals[1] = (max(0.0, intervals[1][0]), intervals[1][1])
    intervals[2] = (max(0.0, intervals[2][0]), intervals[2][1])

    residual = x - usl(n, lam, sigma, kappa)
    total = float(np.sum((x - x.mean()) ** 2))
    r_squared = 1.0 - float(np.sum(residual**2)) / total if total > 0 else math.nan

    if kappa > 0 and sigma < 1:
        peak_users = math.sqrt((1.0 - sigma) / kappa)
        peak = float(usl(peak_users, lam, sigma, kappa))
        note = (
            f"Throughput peaks at {peak:.1f} requests/s with {peak_users:.1f} users "
            "and falls beyond (kappa > 0)."
        )
    else:
        peak_users = None
        peak = lam / sigma if sigma > 0 else math.inf
        note = (
            "kappa is 0: throughput never falls, and approaches "
            f"{peak:.1f} requests/s (lambda / sigma) as users grow; there is no peak "
            "user count."
            if sigma > 0
            else "sigma and kappa are 0: throughput grows linearly with users, with "
            "no limit in the measured range."
        )
    log.info("USL fit on %d points: %s", n.size, note)
    return USLFit(
        lam=lam,
        sigma=sigma,
        kappa=kappa,
        lam_interval=intervals[0],
        sigma_interval=intervals[1],
        kappa_interval=intervals[2],
        confidence=confidence,
        r_squared=r_squared,
        peak_users=peak_users,
        peak_throughput=peak,
        points=int(n.size),
        note=note,
    )


def step_throughput(
    run: Run, settle_s: float = DEFAULT_SETTLE_S, min_hold_s: float = 2.0
) -> pd.DataFrame:
    """Steady throughput and latency at each held users level of a step-load run.

    A *step* is a stretch of consecutive intervals of the ``Overall`` users series
    (``intervals`` table) with the same number of users. Its first ``settle_s``
    seconds are left out, while the new users start, and so are its last two
    intervals: users are sampled once a second and an interval carries the last
    sample taken before it starts, so the next ramp may have begun up to a sample
    before the last interval labelled with this step, and the whole of that
    interval may be under the next step's users. What remains, when at least
    ``min_hold_s`` long, is measured from the per-request samples.

    Parameters
    ----------
    run
        A run with ``requests`` and ``intervals`` tables.
    settle_s
        Seconds left out at the start of each step.
    min_hold_s
        Shortest measured part of a step, in seconds; shorter stretches (the ramps
        between steps) are not steps.

    Returns
    -------
    DataFrame
        One row per step and endpoint, ``Overall`` included: ``users``,
        ``endpoint``, ``start``, ``end`` (the measured part, UTC), ``seconds``,
        ``requests`` (that started in it), ``failures``, ``throughput``
        (requests / seconds), ``error_rate``, ``mean_ms``, ``p50``, ``p95``, ``p99``
        (nearest rank, ms). Sorted by users, ``Overall`` last in each step.

    Raises
    ------
    AnalysisError
        When the run has no requests or no users series.
    """
    requests = run.table("requests")
    intervals = run.table("intervals")
    overall = intervals[intervals["endpoint"] == OVERALL].sort_values("ts")
    if requests.empty or overall.empty or overall["users"].isna().all():
        raise AnalysisError(
            f"Run {run.id} needs per-request samples and a users series (intervals "
            "table) to measure throughput per step."
        )
    requests = requests.assign(ts=pd.to_datetime(requests["ts"], utc=True))

    rows = []
    for users, start, end, last_s in _held_levels(overall):
        start = start + pd.Timedelta(seconds=settle_s)
        end = end - pd.Timedelta(seconds=2 * last_s)
        seconds = (end - start).total_seconds()
        if seconds < min_hold_s:
            continue
        inside = requests[(requests["ts"] >= start) & (requests["ts"] < end)]
        groups = [(label, g) for label, g in inside.groupby("endpoint", sort=True)]
        groups.append((OVERALL, inside))
        for label, group in groups:
            latency = group["latency_ms"].to_numpy(dtype=float)
            failures = int((~group["ok"].astype(bool)).sum())
            rows.append(
                {
                    "users": users,
                    "endpoint": label,
                    "start": start,
                    "end": end,
                    "seconds": seconds,
                    "requests": len(group),
                    "failures": failures,
                    "throughput": len(group) / seconds,
                    "error_rate": failures / len(group) if len(group) else math.nan,
                    "mean_ms": float(np.nanmean(latency)) if latency.size else math.nan,
                    **percentiles(latency, (50.0, 95.0, 99.0)),
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "users",
            "endpoint",
            "start",
            "end",
            "seconds",
            "requests",
            "failures",
            "throughput",
            "error_rate",
            "mean_ms",
            "p50",
            "p95",
            "p99",
        ],
    )


def _held_levels(overall: pd.DataFrame):
    """(users, start, end, last interval's seconds) of each stretch of equal users."""
    ts = pd.to_datetime(overall["ts"], utc=True).reset_index(drop=True)
    users = overall["users"].reset_index(drop=True)
    step = overall["interval_s"].fillna(1.0).reset_index(drop=True)
    levels = []
    first = 0
    for i in range(1, len(users) + 1):
        if i < len(users) and users[i] == users[first]:
            continue
        level = users[first]
        if pd.notna(level) and level > 0:
            last_s = float(step[i - 1])
            end = ts[i - 1] + pd.Timedelta(seconds=last_s)
            levels.append((float(level), ts[first], end, last_s))
        first = i
    return levels


def p95_targets(targets: Targets, endpoints) -> dict[str, tuple[float, str]]:
    """The p95 target of each endpoint label, from a targets file.

    An endpoint takes the tightest ``p95_ms`` maximum among the endpoint targets that
    concern it (see :meth:`perflab.targets.Target.endpoints_in`); ``Overall`` takes
    the tightest system-wide ``p95_ms``. Endpoints no target concerns are left out.

    Returns
    -------
    dict
        endpoint label -> (target in ms, the target's name and ``file:line``).
    """
    found: dict[str, tuple[float, str]] = {}
    labels = [label for label in endpoints if label != OVERALL]
    for target in targets:
        if target.metric != "p95_ms" or target.direction != "max":
            continue
        concerned = (
            [OVERALL] if target.scope == "system" else target.endpoints_in(labels)
        )
        for label in concerned:
            if label not in found or target.limit < found[label][0]:
                found[label] = (target.limit, f"{target.name} ({target.source})")
    return found


def users_at_target(
    steps: pd.DataFrame,
    p95_target_ms: float | None = None,
    fit: USLFit | None = None,
    think_time_s: float = 0.0,
    targets: Targets | None = None,
) -> pd.DataFrame:
    """The users at which each endpoint's p95 latency target would break.

    Each endpoint is held to its own p95 target from ``targets`` (see
    :func:`p95_targets`); ``p95_target_ms``, when given, is the target of the
    endpoints that file sets none for (and of all of them when ``targets`` is None).
    Two methods, both reported:

    ``measured``
        Linear interpolation of the measured p95 against users (from
        :func:`step_throughput`) between the last step under the target and the first
        step over it. NaN, with a note, when no step is over the target (it holds at
        least up to the most users measured) or the first is already over it.
    ``usl``
        Only for ``Overall`` and when a fit is given: the users at which the USL's
        predicted *mean* response time ``N / X(N) - Z`` (Little's law) reaches the
        target. The mean is below the p95, so the p95 target breaks at fewer users
        than this: read it as an upper bound.

    Parameters
    ----------
    steps
        What :func:`step_throughput` returned.
    p95_target_ms
        The p95 target, in ms, of endpoints without one in ``targets``.
    fit
        A USL fit of the ``Overall`` throughput, for the ``usl`` method.
    think_time_s
        Think time ``Z`` between a user's requests, in seconds, for Little's law.
    targets
        A targets file's thresholds (:func:`perflab.targets.load_targets`).

    Returns
    -------
    DataFrame
        ``endpoint``, ``method``, ``target_ms`` (the p95 target used), ``target``
        (where it was set), ``users`` (float; NaN when not found), ``note``. An
        endpoint with no target at all has one ``measured`` row saying so.
    """
    labels = sorted(set(steps["endpoint"]))
    per_endpoint = p95_targets(targets, labels) if targets is not None else {}
    if p95_target_ms is not None:
        for label in labels:
            per_endpoint.setdefault(label, (float(p95_target_ms), "p95_target_ms"))

    rows = []
    for label, group in steps.groupby("endpoint", sort=True):
        if label not in per_endpoint:
            rows.append(
                {
                    "endpoint": label,
                    "method": "measured",
                    "target_ms": math.nan,
                    "target": None,
                    "users": math.nan,
                    "note": "No p95 target is set for this endpoint.",
                }
            )
            continue
        target_ms, where = per_endpoint[label]
        group = group.sort_values("users")
        users = group["users"].to_numpy(dtype=float)
        p95 = group["p95"].to_numpy(dtype=float)
        over = np.flatnonzero(p95 > target_ms)
        if over.size == 0:
            found = math.nan
            note = (
                f"p95 stays under {target_ms:g} ms up to the {users.max():g} "
                "users measured."
            )
        elif over[0] == 0:
            found = math.nan
            note = (
                f"p95 is already {p95[0]:.1f} ms, over {target_ms:g} ms, at the "
                f"fewest users measured ({users[0]:g})."
            )
        else:
            i = over[0]
            found = float(
                np.interp(target_ms, [p95[i - 1], p95[i]], [users[i - 1], users[i]])
            )
            note = (
                f"Interpolated between {users[i - 1]:g} users (p95 {p95[i - 1]:.1f} "
                f"ms) and {users[i]:g} users (p95 {p95[i]:.1f} ms)."
            )
        rows.append(
            {
                "endpoint": label,
                "method": "measured",
                "target_ms": target_ms,
                "target": where,
                "users": found,
                "note": note,
            }
        )
    if fit is not None and OVERALL in per_endpoint:
        target_ms, where = per_endpoint[OVERALL]
        found = fit.users_at_response_time(target_ms / 1000.0, think_time_s)
        rows.append(
            {
                "endpoint": OVERALL,
                "method": "usl",
                "target_ms": target_ms,
                "target": where,
                "users": found,
                "note": (
                    f"USL mean response time N / X(N) - Z reaches {target_ms:g} ms "
                    f"(Z = {think_time_s:g} s); an upper bound for the p95 target."
                ),
            }
        )
    order = {label: i for i, label in enumerate(labels)}
    order[OVERALL] = len(order) + 1
    columns = ["endpoint", "method", "target_ms", "target", "users", "note"]
    frame = pd.DataFrame(rows, columns=columns)
    return frame.sort_values(
        ["endpoint", "method"],
        key=lambda c: c.map(order) if c.name == "endpoint" else c,
    ).reset_index(drop=True)


def plot_usl(fit: USLFit, steps: pd.DataFrame, ax=None):
    """Measured throughput per step (points) and the USL fit (line) on one figure,
    with the peak or asymptote marked."""
    from perflab.plotting import PlotFigure

    overall = steps[steps["endpoint"] == OVERALL]
    if ax is None:
        fig = PlotFigure(figsize=(7, 4.5), layout="constrained")
        ax = fig.subplots()
    else:
        fig = ax.figure
    top = max(overall["users"].max() * 1.5, (fit.peak_users or 0) * 1.2)
    grid = np.linspace(1, top, 200)
    ax.plot(
        grid,
        fit.throughput(grid),
        label=(
            f"USL fit: λ={fit.lam:.1f}/s, σ={fit.sigma:.3f}, κ={fit.kappa:.4f}, "
            f"R²={fit.r_squared:.3f}"
        ),
    )
    ax.scatter(
        overall["users"],
        overall["throughput"],
        color="black",
        zorder=3,
        label="measured (steady part of each step)",
    )
    if math.isfinite(fit.peak_throughput):
        ax.axhline(
            fit.peak_throughput,
            color="grey",
            linestyle="--",
            linewidth=0.8,
            label=f"predicted peak {fit.peak_throughput:.1f}/s",
        )
    if fit.peak_users is not None:
        ax.axvline(fit.peak_users, color="grey", linestyle=":", linewidth=0.8)
    ax.set_xlabel("users")
    ax.set_ylabel("throughput (requests/s)")
    ax.set_ylim(bottom=0)
    ax.legend(fontsize=8, loc="lower right")
    return fig

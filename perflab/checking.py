"""Checking a run against its targets: the CI gate behind ``perflab check``.

:func:`check_run` measures every target of a :class:`~perflab.targets.Targets` on a
run and gives one row per target: the measured value with its confidence interval,
the threshold, the margin, and a verdict:

``pass``
    the value meets the threshold;
``fail``
    it does not;
``not evaluable``
    the run cannot say: the endpoint is absent from the run, the metric was not
    measured (no resources of that kind), or there are no samples in the window.
    The reason is given; a target is never passed silently.

How each metric is measured
---------------------------
Over the steady-state window by default (:func:`perflab.windows.run_window`), or the
whole run with ``whole=True``; the window used is named in the result.

latency percentiles (``p95_ms``...)
    From the requests of the matching endpoints in the window, nearest rank, with
    the distribution-free 95 % confidence interval of
    :func:`perflab.statistics.percentile_intervals`. A percentile with too few
    samples (:func:`perflab.statistics.too_few_samples`) is still judged, with a
    caveat in its ``note``. For a run with only the tool's aggregate endpoints
    table, the tool's number over the whole run, with "no interval: aggregate".
``throughput_rps``
    Successful requests of the matching endpoints per second of the window. A
    minimum rate tests what the service can sustain, so a run that never offered
    that much load cannot fail it: when the rate falls short and the run's users
    spent most of the window thinking rather than waiting on responses (by Little's
    law, mean requests in flight = the sum of latencies / the window's length, below
    :data:`BUSY_SHARE` of the users), the load generator set the rate, and the
    target is *not evaluable* with the rate reached and a way to offer more load.
    When users were mostly waiting on the service, or their number is unknown, a
    rate below the target fails.
``error_rate_percent``
    Failed / all requests, in percent.
``db_connections``, ``db_pool_usage_percent``, ``redis_memory_percent``,
``load_generator_cpu_percent``
    The peak of the resource samples inside the window (see
    :mod:`perflab.targets` for the series each reads).
``cache_hit_ratio_percent``
    Redis hits / (hits + misses) over the window, from the per-second rates.

The margin is the headroom on the good side of the threshold (negative when
failing), in the metric's unit and in percent of the threshold.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from perflab import statistics
from perflab.store import OVERALL, Run, open_run
from perflab.targets import LATENCY_KEYS, Target, Targets, load_targets
from perflab.windows import Window, run_window, window_requests

PASS, FAIL, NOT_EVALUABLE = "pass", "fail", "not evaluable"
VERDICTS = (PASS, FAIL, NOT_EVALUABLE)
#: The verdict of a whole check none of whose targets could be evaluated.
INCONCLUSIVE = "inconclusive"

COLUMNS = [
    "target",
    "scope",
    "metric",
    "endpoints",
    "value",
    "low",
    "high",
    "interval",
    "samples",
    "comparison",
    "threshold",
    "margin",
    "margin_percent",
    "verdict",
    "reason",
    "note",
    "source",
]

#: Units shown after values of each metric.
UNITS = {
    "throughput_rps": "rps",
    "error_rate_percent": "%",
    "db_connections": "",
    "db_pool_usage_percent": "%",
    "cache_hit_ratio_percent": "%",
    "redis_memory_percent": "%",
    "load_generator_cpu_percent": "%",
}

#: A shortfall in throughput counts against the service only when the users spent
#: at least this share of the window waiting on responses (see the module docs).
BUSY_SHARE = 0.5

POOL_IN_USE = "perflab_db_pool_in_use"
POOL_SIZE = "perflab_db_pool_size"
#: The sample service's high-water mark of connections in use since it started.
POOL_IN_USE_MAX = "perflab_db_pool_in_use_max"


@dataclass
class CheckResult:
    """What :func:`check_run` returns: one row per target, and the window used.

    Attributes
    ----------
    rows
        One row per target, columns :data:`COLUMNS`: ``target`` (name), ``scope``,
        ``metric``, ``endpoints`` (the run's endpoint labels measured), ``value``,
        ``low`` and ``high`` (confidence interval, NaN when none), ``interval``
        (how the interval was made, or why there is none), ``samples``,
        ``comparison`` (``<`` or ``>=``), ``threshold``, ``margin`` (headroom in
        the metric's unit; negative when failing), ``margin_percent`` (of the
        threshold), ``verdict``, ``reason`` (why not evaluable, or the failure in
        words), ``note`` (caveats), ``source`` (file:line of the threshold).
    run_id
        The run checked.
    window
        The window measured, or None when the run has no requests.
    window_how
        One sentence saying which window that is.
    sources
        The targets files.
    """

    rows: pd.DataFrame
    run_id: str
    window: Window | None
    window_how: str
    sources: list[str] = field(default_factory=list)

    def to_frame(self) -> pd.DataFrame:
        """The rows as a DataFrame (a copy)."""
        return self.rows.copy()

    @property
    def failed(self) -> bool:
        """Whether any target failed; ``perflab check`` then exits non-zero."""
        return bool((self.rows["verdict"] == FAIL).any())

    @property
    def failures(self) -> pd.DataFrame:
        """The rows of the failed targets."""
        return self.rows[self.rows["verdict"] == FAIL].reset_index(drop=True)

    @property
    def not_evaluable(self) -> pd.DataFrame:
        """The rows of the targets the run cannot judge, with the reason."""
        return self.rows[self.rows["verdict"] == NOT_EVALUABLE].reset_index(drop=True)

    def counts(self) -> dict[str, int]:
        """How many targets passed, failed and were not evaluable."""
        counts = self.rows["verdict"].value_counts()
        return {verdict: int(counts.get(verdict, 0)) for verdict in VERDICTS}

    def verdict(self) -> str:
        """The check as one word: ``fail`` when a target failed, ``inconclusive``
        when none could be evaluated, else ``pass``."""
        counts = self.counts()
        if counts[FAIL]:
            return FAIL
        return PASS if counts[PASS] else INCONCLUSIVE

    def record(self, run: Run) -> None:
        """Keep this check in the run's ``run.json`` under ``check`` (its verdict,
        counts, targets and window), where the run catalog reads it.

        ``run.json`` is read again first, so what another process wrote to it since
        ``run`` was opened (a notebook's warnings) is kept.
        """
        fresh = open_run(run.path)
        fresh.meta["check"] = {
            "verdict": self.verdict(),
            **self.counts(),
            "targets": list(self.sources),
            "window": self.window_how,
        }
        fresh.save()
        run.meta = fresh.meta

    def summary(self) -> str:
        """One sentence: the counts of each verdict and the window."""
        c = self.counts()
        return (
            f"{c[PASS]} passed, {c[FAIL]} failed, {c[NOT_EVALUABLE]} not evaluable "
            f"of {len(self.rows)} targets; window: {self.window_how}."
        )

    def _cells(self, row) -> dict[str, str]:
        unit = _unit(row.metric)
        measured = "—" if _nan(row.value) else _fmt(row.value, unit)
        if not _nan(row.value) and (not _nan(row.low) or not _nan(row.high)):
            low = "—" if _nan(row.low) else _fmt(row.low, "")
            high = "—" if _nan(row.high) else _fmt(row.high, "")
            measured += f" [{low}, {high}]"
        elif not _nan(row.value) and row.interval:
            measured += f" ({row.interval})"
        margin = "—"
        if not _nan(row.margin):
            sign = "+" if row.margin >= 0 else "-"
            margin = f"{sign}{_fmt(abs(row.margin), unit)}"
            margin += f" ({row.margin_percent:+.0f}%)"
        return {
            "verdict": row.verdict,
            "target": row.target,
            "measured": measured,
            "threshold": f"{row.comparison} {_fmt(row.threshold, unit)}",
            "margin": margin,
            "reason": row.reason or row.note,
        }

    def to_markdown(self) -> str:
        """A markdown table of every target, for the report."""
        header = ["Verdict", "Target", "Measured [95% CI]", "Threshold", "Margin"]
        header.append("Notes")
        lines = [
            f"Window: {self.window_how}.",
            "",
            "| " + " | ".join(header) + " |",
            "| --- | --- | ---: | ---: | ---: | --- |",
        ]
        marks = {PASS: "✅ pass", FAIL: "❌ fail", NOT_EVALUABLE: "⚪ not evaluable"}
        for row in self.rows.itertuples(index=False):
            cells = self._cells(row)
            cells["verdict"] = marks[row.verdict]
            values = [str(v).replace("|", "\\|") for v in cells.values()]
            lines.append("| " + " | ".join(values) + " |")
        lines += ["", self.summary()]
        return "\n".join(lines) + "\n"

    def to_text(self, width: int = 48) -> str:
        """A plain-text table for the terminal, failures first.

        Parameters
        ----------
        width
            Longest shown target name and reason, in characters.
        """
        order = {FAIL: 0, NOT_EVALUABLE: 1, PASS: 2}
        rows = sorted(self.rows.itertuples(index=False), key=lambda r: order[r.verdict])
        table = [["VERDICT", "TARGET", "MEASURED [95% CI]", "THRESHOLD", "MARGIN"]]
        reasons = [""]
        for row in rows:
            cells = self._cells(row)
            table.append(
                [
                    row.verdict.upper(),
                    _cut(cells["target"], width),
                    cells["measured"],
                    cells["threshold"],
                    cells["margin"],
                ]
            )
            reasons.append(_cut(cells["reason"] or "", width * 2))
        widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
        lines = []
        for cells, reason in zip(table, reasons, strict=True):
            line = "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True))
            lines.append(line.rstrip())
            if reason:
                lines.append(" " * (widths[0] + 2) + reason)
        lines += ["", f"Run {self.run_id}: {self.summary()}"]
        return "\n".join(lines) + "\n"

    def to_junit_xml(self) -> str:
        """The result as JUnit XML: one testcase per target.

        A failed target is a ``<failure>`` with its message; a target that is not
        evaluable is ``<skipped>`` with the reason. The ``testsuites`` and
        ``testsuite`` elements carry ``tests``, ``failures``, ``errors`` (always 0)
        and ``skipped`` counts.
        """
        counts = self.counts()
        attributes = {
            "name": f"perflab check {self.run_id}",
            "tests": str(len(self.rows)),
            "failures": str(counts[FAIL]),
            "errors": "0",
            "skipped": str(counts[NOT_EVALUABLE]),
            "time": "0",
        }
        suites = ET.Element("testsuites", attributes)
        suite = ET.SubElement(suites, "testsuite", attributes)
        properties = ET.SubElement(suite, "properties")
        for name, value in (
            ("run", self.run_id),
            ("window", self.window_how),
            ("targets", ", ".join(self.sources)),
        ):
            ET.SubElement(properties, "property", {"name": name, "value": value})
        for row in self.rows.itertuples(index=False):
            case = ET.SubElement(
                suite,
                "testcase",
                {
                    "classname": f"perflab.targets.{row.scope}",
                    "name": row.target,
                    "time": "0",
                },
            )
            cells = self._cells(row)
            text = (
                f"{row.target}: measured {cells['measured']}, threshold "
                f"{cells['threshold']}, margin {cells['margin']}."
            )
            if row.note:
                text += f" {row.note}"
            if row.verdict == FAIL:
                failure = ET.SubElement(
                    case, "failure", {"message": row.reason, "type": "threshold"}
                )
                failure.text = text + f" Threshold from {row.source}."
            elif row.verdict == NOT_EVALUABLE:
                ET.SubElement(case, "skipped", {"message": row.reason})
            else:
                ET.SubElement(case, "system-out").text = text
        ET.indent(suites)
        body = ET.tostring(suites, encoding="unicode")
        return '<?xml version="1.0" encoding="UTF-8"?>\n' + body + "\n"


def _nan(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _unit(metric: str) -> str:
    return "ms" if metric.endswith("_ms") else UNITS.get(metric, "")


def _fmt(value: float, unit: str) -> str:
    text = f"{value:,.1f}" if abs(value) < 1000 else f"{value:,.0f}"
    if unit == "%":
        return text + "%"
    return f"{text} {unit}" if unit else text


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


# -- measuring ---------------------------------------------------------------------


@dataclass
class _Measure:
    value: float = math.nan
    low: float = math.nan
    high: float = math.nan
    interval: str = ""
    samples: int | None = None
    endpoints: str = ""
    reason: str = ""  # set when not evaluable
    note: str = ""


class _Context:
    """What a run offers for measuring: its window, requests and resources."""

    def __init__(self, run: Run, window: Window | None, whole: bool) -> None:
        self.run = run
        requests = run.table("requests") if run.has("requests") else None
        self.requests = None
        self.labels: list[str] = []
        self.endpoints = None
        if requests is not None and not requests.empty:
            if window is None:
                window = run_window(run, whole=whole, requests=requests)
            self.requests = window_requests(requests, window)
            self.labels = sorted(set(requests["endpoint"].dropna()))
        elif run.has("endpoints"):
            self.endpoints = run.table("endpoints")
            self.labels = sorted(set(self.endpoints["endpoint"].dropna()) - {OVERALL})
        self.window = window
        if window is not None:
            self.how = window.how
        elif self.endpoints is not None:
            self.how = (
                "the whole run, as the tool summarised it (no per-request samples "
                "to find a steady state in)"
            )
        else:
            self.how = "none: the run has no requests"
        self.resources = run.table("resources") if run.has("resources") else None
        if self.resources is not None and not self.resources.empty:
            self.resources = self.resources.assign(
                ts=pd.to_datetime(self.resources["ts"], utc=True)
            )
            if window is not None:
                inside = (self.resources["ts"] >= window.start) & (
                    self.resources["ts"] < window.end
                )
                self.resources = self.resources[inside]


def _from_requests(target: Target, requests: pd.DataFrame, seconds: float):
    measure = _Measure(samples=len(requests))
    if requests.empty:
        measure.reason = "no request of it started inside the window"
        return measure
    metric = target.metric
    if metric in LATENCY_KEYS:
        percentile = _percentile(metric)
        table = statistics.percentile_intervals(
            requests["latency_ms"], [percentile], warn=False
        )
        bounds = table.iloc[0]
        measure.value = float(bounds["value"])
        measure.low, measure.high = float(bounds["low"]), float(bounds["high"])
        measure.samples = int(bounds["n"])
        measure.interval = "95% distribution-free interval from the samples"
        measure.note = " ".join(statistics.sample_size_messages(table))
    elif metric == "throughput_rps":
        ok = int(requests["ok"].astype(bool).sum())
        measure.value = ok / seconds
        measure.samples = ok
        measure.interval = f"{ok:,} successful requests over {seconds:,.1f} s"
    elif metric == "error_rate_percent":
        failed = int((~requests["ok"].astype(bool)).sum())
        measure.value = 100.0 * failed / len(requests)
        measure.interval = f"{failed:,} failed of {len(requests):,}"
    return measure


def _percentile(metric: str) -> float:
    column = metric.removesuffix("_ms")
    return float(column[1:].replace("_", "."))


def _from_aggregate(target: Target, rows: pd.DataFrame) -> _Measure:
    measure = _Measure(interval="no interval: aggregate")
    if len(rows) != 1:
        measure.reason = (
            f"{len(rows)} endpoints of the tool's aggregate table match it, and "
            "their percentiles cannot be combined without samples"
        )
        return measure
    row = rows.iloc[0]
    measure.samples = int(row["requests"]) if not pd.isna(row["requests"]) else None
    metric = target.metric
    if metric in LATENCY_KEYS:
        column = metric.removesuffix("_ms")
        value = row.get(column, math.nan)
        if value is None or pd.isna(value):
            measure.reason = f"the tool's aggregate table has no {column}"
            return measure
        measure.value = float(value)
        measure.note = "The tool's own percentile over the whole run."
    elif pd.isna(row["failures"]) or not row["requests"]:
        # both rate metrics need the failures among a known number of requests
        measure.reason = (
            "the tool's aggregate table has no failure count"
            if pd.isna(row["failures"])
            else "the tool's aggregate table counts no requests"
        )
    elif metric == "throughput_rps":
        share = 1 - row["failures"] / row["requests"]
        measure.value = float(row["throughput"]) * share
        measure.note = "The tool's throughput times its success share."
    elif metric == "error_rate_percent":
        measure.value = 100.0 * float(row["failures"]) / float(row["requests"])
    return measure


def _resource(ctx: _Context, source: str | None, metric: str) -> pd.Series:
    frame = ctx.resources
    if frame is None or frame.empty:
        return pd.Series(dtype=float)
    rows = frame[frame["metric"] == metric]
    if source is not None:
        rows = rows[rows["source"] == source]
    return rows.set_index("ts")["value"].dropna().sort_index()


def _peak(ctx: _Context, source: str | None, metric: str, what: str) -> _Measure:
    series = _resource(ctx, source, metric)
    if series.empty:
        return _Measure(
            reason=f"metric absent: no {source or 'any source'} {metric} samples "
            f"in the window ({what} was not measured)"
        )
    return _Measure(
        value=float(series.max()),
        samples=len(series),
        interval=f"peak of {len(series)} samples",
    )


def _system(target: Target, ctx: _Context) -> _Measure:
    metric = target.metric
    if metric in ("p95_ms", "p99_ms", "error_rate_percent"):
        if ctx.requests is not None:
            seconds = ctx.window.seconds if ctx.window is not None else math.nan
            measure = _from_requests(target, ctx.requests, seconds)
            measure.endpoints = "all"
            return measure
        if ctx.endpoints is not None:
            rows = ctx.endpoints[ctx.endpoints["endpoint"] == OVERALL]
            measure = _from_aggregate(target, rows)
            measure.endpoints = "all"
            return measure
        return _Measure(reason="the run has neither requests nor an endpoints table")
    if metric == "db_connections":
        return _peak(ctx, "postgres", "connections", "PostgreSQL")
    if metric == "redis_memory_percent":
        return _peak(ctx, "redis", "memory_used_percent", "Redis memory use")
    if metric == "load_generator_cpu_percent":
        measure = _peak(ctx, "load_generator", "cpu_percent_busiest", "")
        if measure.reason:
            measure = _peak(ctx, "load_generator", "cpu_percent", "load generator CPU")
        return measure
    if metric == "db_pool_usage_percent":
        in_use = _resource(ctx, None, POOL_IN_USE)
        size = _resource(ctx, None, POOL_SIZE)
        if in_use.empty or size.empty:
            return _Measure(
                reason=f"metric absent: no {POOL_IN_USE} and {POOL_SIZE} samples in "
                "the window (the service's /metrics was not probed)"
            )
        joined = pd.concat([in_use, size], axis=1, keys=["in_use", "size"]).dropna()
        joined = joined[joined["size"] > 0]
        usage = 100.0 * joined["in_use"] / joined["size"]
        measure = _Measure(
            value=float(usage.max()),
            samples=len(usage),
            interval=f"peak of {len(usage)} samples",
        )
        # Samples once a second miss short bursts; the service's high-water mark
        # (most connections lent at once since it started) sees them, and when it
        # rose inside the window its last value was reached inside the window.
        most = _resource(ctx, None, POOL_IN_USE_MAX)
        if len(most) >= 2 and most.iloc[-1] > most.iloc[0] and not usage.empty:
            burst = 100.0 * float(most.iloc[-1]) / float(joined["size"].max())
            if burst > measure.value:
                measure.value = burst
                measure.interval = (
                    f"peak from {POOL_IN_USE_MAX}, which rose inside the window; "
                    f"{len(usage)} samples of {POOL_IN_USE} peaked lower"
                )
        return measure
    if metric == "cache_hit_ratio_percent":
        hits = _resource(ctx, "redis", "hits_per_s")
        misses = _resource(ctx, "redis", "misses_per_s")
        lookups = float(hits.sum() + misses.sum())
        if hits.empty or misses.empty:
            return _Measure(
                reason="metric absent: no redis hits_per_s and misses_per_s samples "
                "in the window (Redis was not probed)"
            )
        if lookups <= 0:
            return _Measure(reason="Redis served no lookup inside the window")
        return _Measure(
            value=100.0 * float(hits.sum()) / lookups,
            samples=len(hits),
            interval=f"hits / lookups over {len(hits)} samples",
        )
    return _Measure(reason=f"perflab cannot measure {metric}")


def _endpoint(target: Target, ctx: _Context) -> _Measure:
    labels = target.endpoints_in(ctx.labels)
    if not labels:
        how = f"match {target.match!r}" if target.match else f"{target.endpoint!r}"
        shown = ", ".join(ctx.labels[:6]) + (" ..." if len(ctx.labels) > 6 else "")
        return _Measure(
            reason=f"endpoint absent: no endpoint of the run matches {how} "
            f"(the run has {shown or 'no endpoints'})"
        )
    if ctx.requests is not None:
        rows = ctx.requests[ctx.requests["endpoint"].isin(labels)]
        measure = _from_requests(target, rows, ctx.window.seconds)
        if target.metric == "throughput_rps" and not target.passes(measure.value):
            _unoffered_rate(target, measure, ctx)
    else:
        rows = ctx.endpoints[ctx.endpoints["endpoint"].isin(labels)]
        measure = _from_aggregate(target, rows)
    measure.endpoints = ", ".join(labels)
    return measure


def _unoffered_rate(target: Target, measure: _Measure, ctx: _Context) -> None:
    """Make a throughput shortfall not evaluable when the users, not the service,
    set the rate: they spent most of the window thinking (see the module docs)."""
    users = ctx.window.peak_users if ctx.window is not None else None
    if not users:
        users = ctx.run.meta.get("peak_users_planned")
    if not users or ctx.requests is None or ctx.window.seconds <= 0:
        return
    latency_s = float(np.nansum(ctx.requests["latency_ms"].to_numpy(float))) / 1000
    in_flight = latency_s / ctx.window.seconds
    busy = in_flight / float(users)
    if busy >= BUSY_SHARE:
        measure.note = (
            f"{measure.note} The {users:g} users spent {busy:.0%} of the window "
            "waiting on responses: the service, not the load, set this rate."
        )
        return
    measure.reason = (
        f"the run offered too little load to test it: {measure.value:,.1f} rps "
        f"reached while its {users:g} users spent only {busy:.0%} of the window "
        f"waiting on responses ({in_flight:,.2f} requests in flight on average), so "
        "their think time, not the service, set the rate; offer more load (more "
        "users, shorter think time, or a step load with perflab run --shape "
        "steps:...) to test it"
    )


def check_run(
    run: Run,
    targets: Targets | None = None,
    window: Window | None = None,
    whole: bool = False,
) -> CheckResult:
    """Check a run against targets.

    Parameters
    ----------
    run
        The run.
    targets
        The targets; the plan's (:func:`perflab.targets.load_targets`) when None.
    window
        The window to measure; by default the steady state
        (:func:`perflab.windows.run_window`).
    whole
        Measure over the whole run instead of the steady state.

    Returns
    -------
    CheckResult
        One row per target with its verdict; see the module documentation for how
        each metric is measured.
    """
    targets = load_targets() if targets is None else targets
    ctx = _Context(run, window, whole)
    rows = []
    for target in targets:
        if target.scope == "endpoint":
            measure = _endpoint(target, ctx)
        else:
            measure = _system(target, ctx)
        rows.append(_row(target, measure))
    frame = pd.DataFrame(rows, columns=COLUMNS)
    return CheckResult(frame, run.id, ctx.window, ctx.how, list(targets.sources))


def _row(target: Target, measure: _Measure) -> dict[str, Any]:
    value = measure.value
    if not measure.reason and (value is None or not np.isfinite(value)):
        measure.reason = "no value could be measured"
    if measure.reason:
        verdict, margin, share = NOT_EVALUABLE, math.nan, math.nan
        reason = measure.reason[0].upper() + measure.reason[1:] + "."
    else:
        margin = target.margin(value)
        share = 100.0 * margin / target.limit
        verdict = PASS if target.passes(value) else FAIL
        reason = ""
        if verdict == FAIL:
            unit = _unit(target.metric)
            reason = (
                f"{target.name} is {_fmt(value, unit)}, not {target.comparison} "
                f"{_fmt(target.limit, unit)}."
            )
            if target.metric == "throughput_rps":
                reason += (
                    " The endpoint must sustain that rate; the run did not show it "
                    "(it may not have offered that much load)."
                )
    note = measure.note
    if (
        verdict != NOT_EVALUABLE
        and not _nan(measure.low)
        and not _nan(measure.high)
        and measure.low <= target.limit <= measure.high
    ):
        extra = (
            "The threshold lies inside the confidence interval: the verdict could "
            "change in a rerun."
        )
        note = f"{note} {extra}"
    return {
        "target": target.name,
        "scope": target.scope,
        "metric": target.metric,
        "endpoints": measure.endpoints,
        "value": value,
        "low": measure.low,
        "high": measure.high,
        "interval": measure.interval,
        "samples": measure.samples,
        "comparison": target.comparison,
        "threshold": target.limit,
        "margin": margin,
        "margin_percent": share,
        "verdict": verdict,
        "reason": reason,
        "note": re.sub(r"\s+", " ", note).strip(),
        "source": target.source,
    }

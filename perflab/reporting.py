"""The markdown report of a run, in the layout of the load-testing plan.

:func:`render_markdown` writes the plan's "Report Format" section filled with the run's
numbers: the header fields, ``### Results``, ``### Targets``, ``### Resource Usage``,
``### Bottlenecks Identified`` and ``### Recommendations``, followed by an endpoint
table and ``### Notes`` (percentile method, window, where each table's numbers came
from, the run's caveats).

Headline numbers (Results, the endpoint table, and the level findings of
:func:`perflab.findings.find`) come from the *window*: by default the
steady state of :func:`perflab.windows.run_window`, without ramp-up and ramp-down;
``whole=True`` analyses the whole run. Total Requests always counts the whole run (the
rows of ``requests.parquet``), and the window's own count is given beside it.

Percentiles computed from per-request samples are shown with their distribution-free
95 % confidence interval (:func:`perflab.statistics.percentile_intervals`), and a
percentile resting on too few samples says so next to the number and in Notes. Where
only a tool's aggregate exists, its percentiles are shown as the tool gave them (made
consistent by :func:`perflab.statistics.tidy_tool_percentiles`, each change listed
under Notes) with the tool's resolution and no interval. Anything not measured is
written "not measured", never invented.
"""

from __future__ import annotations

import importlib
import logging
import math
import re
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from perflab import omission, plotting, statistics, windows
from perflab.errors import PerflabError
from perflab.findings import (
    BUSIEST_CPU_METRIC,
    CPU_METRIC,
    DB_CONNECTIONS,
    MEMORY_METRIC,
    REDIS_MEMORY,
    FindingsResult,
    find,
)
from perflab.omission import Omission
from perflab.store import OVERALL, TABLES, Run, percentile_column
from perflab.windows import Window

log = logging.getLogger(__name__)

NOT_MEASURED = "not measured"
NO_SAMPLES = "n/a (no samples)"

#: Headings of the report, in order; the plan's layout with Targets after Results.
HEADINGS = (
    "## Load Test Results",
    "### Results",
    "### Targets",
    "### Resource Usage",
    "### Bottlenecks Identified",
    "### Recommendations",
    "### Endpoints",
    "### Notes",
)

#: Percentiles (0-100) of the Results section.
RESULT_PERCENTILES = (95.0, 99.0)

#: Percentiles (0-100) of the endpoint table.
TABLE_PERCENTILES = (50.0, 95.0, 99.0, 99.9)

#: Confidence level of the intervals shown beside each percentile.
CONFIDENCE = statistics.DEFAULT_CONFIDENCE

OMISSION_KIND = "coordinated_omission"

OMISSION_ADVICE = (
    "The measured tail latencies understate what clients sending at a steady rate "
    "would have seen: read the corrected percentiles, and repeat the test with an "
    "open workload (a constant arrival rate, such as Locust's constant_throughput "
    "wait time or k6's arrival-rate executors) to measure them."
)


# -- number formats -------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _ms_number(value: float) -> str:
    return f"{value:.1f}" if abs(value) < 100 else f"{value:,.0f}"


def format_ms(value: float | None, missing: str = NO_SAMPLES) -> str:
    """Latency in ms: one decimal below 100 ms, none above (``87.5 ms``, ``142 ms``)."""
    if _missing(value):
        return missing
    return f"{_ms_number(value)} ms"


def format_interval(
    low: float | None, high: float | None, confidence: float = CONFIDENCE
) -> str:
    """A percentile's confidence interval: ``95 % CI 138–147 ms``.

    A bound no sample can give (too few samples beyond it) is written as lying
    beyond the smallest or largest latency seen; with neither, ``no 95 % CI``.
    """
    level = f"{100 * confidence:g} % CI"
    if _missing(low) and _missing(high):
        return f"no {level}: too few samples for either bound"
    if _missing(low):
        return f"{level} from below the smallest latency seen to {format_ms(high)}"
    if _missing(high):
        return f"{level} from {format_ms(low)} to beyond the largest latency seen"
    return f"{level} {_ms_number(low)}–{format_ms(high)}"


def format_count(value: float | None) -> str:
    """A count with thousands separators (``500,000``)."""
    return NOT_MEASURED if _missing(value) else f"{int(value):,}"


def format_percent(fraction: float | None, decimals: int = 2) -> str:
    """A 0-1 fraction as a percentage (``0.995`` -> ``99.50%``)."""
    return NOT_MEASURED if _missing(fraction) else f"{100 * fraction:.{decimals}f}%"


def format_rate(value: float | None) -> str:
    """Requests per second (``833 req/s``, ``29.4 req/s``)."""
    if _missing(value):
        return NOT_MEASURED
    return f"{value:,.0f} req/s" if value >= 100 else f"{value:.1f} req/s"


def format_mb(value: float) -> str:
    """Memory given in MB: ``512 MB``, or ``1.25 GB`` from 1024 MB up."""
    return f"{value / 1024:.2f} GB" if value >= 1024 else f"{value:,.0f} MB"


def format_duration(seconds: float | None) -> str:
    """A duration: ``45 s``, ``10 minutes``, ``12 min 30 s``, ``1 h 5 min``."""
    if _missing(seconds):
        return NOT_MEASURED
    seconds = round(float(seconds))
    if seconds < 120:
        return f"{seconds} s"
    minutes, rest = divmod(seconds, 60)
    if minutes < 120:
        return f"{minutes} minutes" if rest == 0 else f"{minutes} min {rest} s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min"


def _format_cpu(value: float) -> str:
    return f"{value:.0f}%" if value >= 10 else f"{value:.1f}%"


def _percentile_name(percentile: float) -> str:
    return f"p{percentile:g}"


def _utc(ts: Any) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _clock(ts: Any) -> str:
    return _utc(ts).strftime("%H:%M:%S")


def too_few_text(percentile: float, n: int) -> str:
    """The caveat shown beside a percentile resting on too few samples.

    ``p99.9 from 500 requests: too few samples to mean anything (at least 10,000
    needed)``; see :func:`perflab.statistics.too_few_samples`.
    """
    return (
        f"{_percentile_name(percentile)} from {n:,} requests: too few samples to mean "
        f"anything (at least {statistics.min_samples(percentile):,} needed)"
    )


# -- the window -----------------------------------------------------------------------


def select_window(
    run: Run, whole: bool = False, requests: pd.DataFrame | None = None
) -> tuple[Window | None, pd.DataFrame]:
    """The analysis window of a run and the requests that started inside it.

    Parameters
    ----------
    run
        The run.
    whole
        Analyse the whole run instead of the steady state (see
        :func:`perflab.windows.run_window`).
    requests
        The run's ``requests`` table, when already read.

    Returns
    -------
    tuple
        ``(window, requests)``: the :class:`~perflab.windows.Window` and the rows of
        ``requests`` with ``window.start <= ts < window.end``. The window is None, and
        the requests empty, when the run has no per-request samples (an aggregate-only
        import): a tool's aggregate covers its whole run and cannot be cut.
    """
    requests = run.table("requests") if requests is None else requests
    if requests.empty:
        return None, requests
    window = windows.run_window(run, whole=whole, requests=requests)
    return window, windows.window_requests(requests, window)


def describe_window(window: Window | None, analysed: int, total: int) -> str:
    """The window as one line for the report.

    Parameters
    ----------
    window
        The window, or None when the run has no per-request samples.
    analysed, total
        Requests inside the window and in the whole run.

    Returns
    -------
    str
        For example ``steady state 20:13:45–20:14:30 UTC (users held at 20),
        ramp-up and ramp-down left out: 9,870 requests of 12,345``.
    """
    if window is None:
        return (
            "the whole run: the tool's aggregate covers all of it, and no steady "
            "state can be cut from an aggregate"
        )
    span = f"{_clock(window.start)}–{_clock(window.end)} UTC"
    counted = f"{analysed:,} requests of {total:,}"
    if window.steady:
        held = (
            f" (users held at {window.peak_users:g})"
            if window.peak_users is not None
            else ""
        )
        return f"steady state {span}{held}, ramp-up and ramp-down left out: {counted}"
    reason = _REASON.search(window.how)
    why = f" ({reason.group(1)})" if reason else ""
    return f"the whole run {span}, ramp-up and ramp-down included{why}: {counted}"


#: The reason windows.whole_window puts in brackets at the end of Window.how.
_REASON = re.compile(r"\(([^()]*)\)$")


@dataclass
class _Analysis:
    """What one report is computed from, read and cut once."""

    run: Run
    whole: bool
    method: str
    requests: pd.DataFrame
    window: Window | None
    in_window: pd.DataFrame

    @property
    def has_samples(self) -> bool:
        return self.run.has("requests")


def _analysis(run: Run, whole: bool, method: str) -> _Analysis:
    requests = run.table("requests")
    window, in_window = select_window(run, whole, requests)
    return _Analysis(run, whole, method, requests, window, in_window)


# -- numbers -----------------------------------------------------------------------


def results_summary(
    run: Run, method: str = statistics.DEFAULT_METHOD, whole: bool = False
) -> dict:
    """The numbers of the report's Results section, unformatted.

    Parameters
    ----------
    run
        The run.
    method
        Percentile method (see :mod:`perflab.statistics`), used when the run has
        per-request samples.
    whole
        Analyse the whole run instead of its steady state.

    Returns
    -------
    dict
        ``source`` (``"requests"``, ``"endpoints"`` or None when nothing was
        measured), ``provenance`` (``"exact"`` or ``"aggregate"``), ``method``,
        ``window`` (the :class:`~perflab.windows.Window`, None without samples),
        ``run_requests`` (requests of the whole run), ``requests`` (requests in the
        window), ``failures``, ``success_rate`` (0-1), ``window_s`` (length of the
        window in seconds), ``throughput`` (window requests per second of the
        window), ``latency_samples`` (window requests with a latency), and for p95
        and p99: ``p95`` (ms), ``p95_low`` and ``p95_high`` (ms, the 95 %
        confidence interval; None for a tool's aggregate or a bound no sample can
        give), ``p95_too_few`` (:func:`perflab.statistics.too_few_samples`) and
        ``p95_adjusted`` (a tool's value changed by
        :func:`perflab.statistics.tidy_tool_percentiles`). Values that cannot be
        computed are None.
    """
    return _results_summary(_analysis(run, whole, method))


def _results_summary(analysis: _Analysis) -> dict:
    keys = [
        "window",
        "run_requests",
        "requests",
        "failures",
        "success_rate",
        "window_s",
        "throughput",
        "latency_samples",
    ]
    for percentile in RESULT_PERCENTILES:
        column = percentile_column(percentile)
        keys += [column, f"{column}_low", f"{column}_high"]
    empty = dict.fromkeys(keys)
    for percentile in RESULT_PERCENTILES:
        column = percentile_column(percentile)
        empty[f"{column}_too_few"] = False
        empty[f"{column}_adjusted"] = False

    if analysis.has_samples:
        data = analysis.in_window
        total = len(data)
        failures = int((~data["ok"].astype(bool)).sum())
        bounds = statistics.percentile_intervals(
            data["latency_ms"].to_numpy(dtype=float),
            RESULT_PERCENTILES,
            CONFIDENCE,
            analysis.method,
            warn=False,
        )
        samples = int(bounds["n"].iloc[0])
        seconds = analysis.window.seconds if analysis.window is not None else None
        summary = {
            **empty,
            "source": "requests",
            "provenance": "exact",
            "method": analysis.method,
            "window": analysis.window,
            "run_requests": len(analysis.requests),
            "requests": total,
            "failures": failures,
            "success_rate": (total - failures) / total if total else None,
            "window_s": seconds,
            "throughput": total / seconds if total and seconds else None,
            "latency_samples": samples,
        }
        for row in bounds.itertuples():
            if samples:
                summary[row.column] = float(row.value)
                summary[f"{row.column}_low"] = _value(row.low)
                summary[f"{row.column}_high"] = _value(row.high)
                summary[f"{row.column}_too_few"] = bool(row.too_few)
        return summary

    table = _tool_table(analysis.run)
    rows = table[table["endpoint"] == OVERALL] if table is not None else None
    if rows is None or rows.empty:
        return {**empty, "source": None, "provenance": None, "method": None}
    overall = rows.iloc[0].to_dict()
    info = analysis.run.provenance("endpoints")
    total = _value(overall.get("requests"))
    failures = _value(overall.get("failures"))
    summary = {
        **empty,
        "source": "endpoints",
        "provenance": info.provenance if info else "aggregate",
        "method": None,
        "run_requests": None if total is None else int(total),
        "requests": None if total is None else int(total),
        "failures": None if failures is None else int(failures),
        "success_rate": (total - failures) / total
        if total and failures is not None
        else None,
        "throughput": _value(overall.get("throughput")),
    }
    adjusted = table.attrs.get("adjusted", set())
    for percentile in RESULT_PERCENTILES:
        column = percentile_column(percentile)
        summary[column] = _value(overall.get(column))
        summary[f"{column}_too_few"] = bool(
            total and statistics.too_few_samples(int(total), percentile)
        )
        summary[f"{column}_adjusted"] = (OVERALL, column) in adjusted
    return summary


def _value(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


_PERCENTILE_COLUMN = re.compile(r"p\d+(_\d+)?")


def _tool_table(run: Run) -> pd.DataFrame | None:
    """The endpoints table, with a tool's percentiles made consistent.

    ``attrs["changes"]`` lists what :func:`perflab.statistics.tidy_tool_percentiles`
    changed, ``attrs["adjusted"]`` the ``(endpoint, column)`` cells it changed and
    ``attrs["resolution"]`` the tool's resolution note (aggregate tables only).
    """
    if not run.has("endpoints"):
        return None
    table = run.table("endpoints")
    info = run.provenance("endpoints")
    if info is not None and info.provenance == "exact":
        table.attrs.update(changes=[], adjusted=set(), resolution="")
        return table
    tidy = statistics.tidy_tool_percentiles(table, run.meta.get("tool"), warn=False)
    adjusted = set()
    for column in tidy.columns:
        if _PERCENTILE_COLUMN.fullmatch(str(column)) and column in table:
            before = table[column].astype(float)
            after = tidy[column]
            changed = ~((before == after) | (before.isna() & after.isna()))
            for label in tidy.loc[changed, "endpoint"]:
                adjusted.add((label, column))
    tidy.attrs["adjusted"] = adjusted
    return tidy


def resource_summary(run: Run) -> dict[str, dict | None]:
    """Average and peak of the resources the report names, or None when not measured.

    Resources are summarised over the whole run: the target's memory and the
    database's connections at the end of a ramp belong to the story too.

    Returns
    -------
    dict
        ``api_cpu`` (target ``cpu_percent``, percent of one core), ``api_memory``
        (target ``rss_mb``), ``db_connections`` (postgres ``connections``),
        ``redis_memory`` (redis ``used_memory_mb``), ``load_generator_cpu`` (sum
        over its processes) and ``load_generator_cpu_busiest`` (busiest process); each
        ``{"mean", "peak", "peak_ts", "samples"}`` or None.
    """
    series = {
        "api_cpu": ("target", CPU_METRIC),
        "api_memory": ("target", MEMORY_METRIC),
        "db_connections": DB_CONNECTIONS,
        "redis_memory": REDIS_MEMORY,
        "load_generator_cpu": ("load_generator", CPU_METRIC),
        "load_generator_cpu_busiest": ("load_generator", BUSIEST_CPU_METRIC),
    }
    resources = run.table("resources") if run.has("resources") else None
    summary: dict[str, dict | None] = {}
    for key, (source, metric) in series.items():
        summary[key] = None
        if resources is None:
            continue
        rows = resources[
            (resources["source"] == source) & (resources["metric"] == metric)
        ].dropna(subset=["value"])
        if rows.empty:
            continue
        peak = rows.loc[rows["value"].idxmax()]
        summary[key] = {
            "mean": float(rows["value"].mean()),
            "peak": float(peak["value"]),
            "peak_ts": pd.Timestamp(peak["ts"]),
            "samples": len(rows),
        }
    return summary


def endpoint_summary(
    run: Run,
    method: str = statistics.DEFAULT_METHOD,
    formatted: bool = False,
    whole: bool = False,
) -> pd.DataFrame:
    """Per-endpoint requests, error rate and latency percentiles, ``Overall`` last.

    Computed from the per-request samples of the window when the run has them (by
    ``method``, with confidence intervals), else read from the endpoints table
    (which may be a tool's aggregate, then made consistent by
    :func:`perflab.statistics.tidy_tool_percentiles` and given no interval).

    Parameters
    ----------
    run
        The run.
    method
        Percentile method for samples.
    formatted
        Return display strings instead of numbers: ``"142 (138–147)"`` in a column
        ``p95 ms (95 % CI)``, a percentile resting on too few samples followed by
        ``too few samples``, and a tool's percentile changed by perflab followed by
        ``adjusted``.
    whole
        Analyse the whole run instead of its steady state.

    Returns
    -------
    DataFrame
        Columns ``endpoint``, ``requests``, ``failures``, ``error_rate`` (0-1),
        ``p50``, ``p95``, ``p99``, ``p99_9``, ``max_ms`` (ms), then ``p50_low``,
        ``p50_high``... (ms, the 95 % confidence interval, NaN for a tool's aggregate
        or a bound no sample can give); empty when nothing was measured.
        ``attrs["provenance"]`` is ``"exact"`` or ``"aggregate"``,
        ``attrs["changes"]`` lists the changes made to a tool's percentiles.
    """
    return _endpoint_summary(_analysis(run, whole, method), formatted)


def _endpoint_columns() -> list[str]:
    columns = [percentile_column(p) for p in TABLE_PERCENTILES]
    bounds = [f"{c}_{side}" for c in columns for side in ("low", "high")]
    return ["endpoint", "requests", "failures", "error_rate", *columns, "max_ms"] + (
        bounds
    )


def _endpoint_numbers(analysis: _Analysis) -> pd.DataFrame:
    columns = _endpoint_columns()
    run = analysis.run
    attrs: dict[str, Any] = {
        "provenance": "exact",
        "changes": [],
        "adjusted": set(),
        "intervals": False,
    }
    if analysis.has_samples and not analysis.in_window.empty:
        attrs["intervals"] = True
        table = statistics.endpoint_table(
            analysis.in_window,
            method=analysis.method,
            seconds=analysis.window.seconds,
            intervals=True,
            confidence=CONFIDENCE,
            percentiles=TABLE_PERCENTILES,
        )
    elif not analysis.has_samples and run.has("endpoints"):
        table = _tool_table(run)
        info = run.provenance("endpoints")
        attrs.update(
            provenance=info.provenance if info else "aggregate",
            changes=table.attrs.get("changes", []),
            adjusted=table.attrs.get("adjusted", set()),
        )
    else:
        table = pd.DataFrame(columns=columns)
    table = table.reindex(columns=columns)
    is_overall = table["endpoint"] == OVERALL
    table = pd.concat(
        [table[~is_overall].sort_values("endpoint"), table[is_overall]]
    ).reset_index(drop=True)
    table["error_rate"] = [
        f / r if r and not pd.isna(f) else float("nan")
        for f, r in zip(table["failures"], table["requests"], strict=True)
    ]
    table.attrs.update(attrs)
    return table


def _endpoint_summary(analysis: _Analysis, formatted: bool) -> pd.DataFrame:
    table = _endpoint_numbers(analysis)
    return _format_endpoints(table) if formatted else table


def _format_endpoints(table: pd.DataFrame) -> pd.DataFrame:
    with_ci = table.attrs["intervals"]
    if with_ci:
        note = f" ({100 * CONFIDENCE:g} % CI)"
    elif table.attrs["provenance"] == "aggregate":
        note = " (tool's, no CI)"
    else:
        note = " (no CI: no samples)"
    shown = pd.DataFrame({"endpoint": table["endpoint"]})
    shown["requests"] = [format_count(v) for v in table["requests"]]
    shown["error rate"] = [format_percent(_value(v)) for v in table["error_rate"]]
    for percentile in TABLE_PERCENTILES:
        column = percentile_column(percentile)
        header = f"{_percentile_name(percentile)} ms{note}"
        cells = []
        for row in table.itertuples(index=False):
            row = row._asdict()
            cell = _cell(
                _value(row[column]),
                _value(row[f"{column}_low"]),
                _value(row[f"{column}_high"]),
                with_ci,
            )
            n = _value(row["requests"])
            if (
                cell != NO_SAMPLES
                and n
                and statistics.too_few_samples(int(n), percentile)
            ):
                cell += ", too few samples"
            if (row["endpoint"], column) in table.attrs["adjusted"]:
                cell += ", adjusted"
            cells.append(cell)
        shown[header] = cells
    shown["max ms"] = [
        _ms_number(v) if not _missing(_value(v)) else NO_SAMPLES
        for v in table["max_ms"]
    ]
    shown.attrs.update(table.attrs)
    return shown


def _cell(value: float | None, low: float | None, high: float | None, with_ci: bool):
    if value is None:
        return NO_SAMPLES
    text = _ms_number(value)
    if not with_ci:
        return text
    low_text = "below min" if low is None else _ms_number(low)
    high_text = "above max" if high is None else _ms_number(high)
    return f"{text} ({low_text}–{high_text})"


# -- findings, coordinated omission and targets -----------------------------------


def run_findings(
    run: Run, whole: bool = False, window: Window | None = None
) -> FindingsResult:
    """:func:`perflab.findings.find` over the analysis window.

    Parameters
    ----------
    run
        The run.
    whole
        Analyse the whole run instead of its steady state.
    window
        The window, when already known (see :func:`select_window`).

    Returns
    -------
    FindingsResult
        The findings, with default thresholds.
    """
    return find(run, window=window, whole=whole)


def _findings_scope() -> str:
    return (
        "endpoint levels (slow endpoints, error rates, outliers, Little's law) over "
        "the same window as Results; changes over time (saturation, bursts, "
        "resources) over the whole run, each with its own time range"
    )


def detect_window_omission(
    run: Run,
    whole: bool = False,
    method: str = statistics.DEFAULT_METHOD,
    requests: pd.DataFrame | None = None,
) -> Omission | None:
    """:func:`perflab.omission.detect_omission` on the requests of the window, with
    ``run.json``'s ``expected_interval_ms`` (the intended interval between a user's
    requests, when the run was paced or it was given at ingest) as the expected
    interval of the correction.

    Parameters
    ----------
    run
        The run.
    whole
        Look at the whole run instead of its steady state.
    method
        Percentile method of the raw and corrected percentiles.
    requests
        The requests inside the window, when already cut (see
        :func:`select_window`).

    Returns
    -------
    Omission or None
        The verdict; None when the run has no per-request samples in the window.
    """
    if requests is None:
        _, requests = select_window(run, whole)
    if requests.empty:
        return None
    # A failed correction is explained by Omission.method, which the report shows.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", category=UserWarning)
        return omission.detect_omission(
            requests,
            expected_interval_ms=run.meta.get("expected_interval_ms"),
            method=method,
        )


def targets_markdown(
    run: Run, whole: bool = False, window: Window | None = None
) -> str:
    """The targets table of :mod:`perflab.checking`, or why there is none.

    Parameters
    ----------
    run
        The run.
    whole
        Check the whole run instead of its steady state.
    window
        The window, when already known.

    Returns
    -------
    str
        ``CheckResult.to_markdown()`` of ``checking.check_run(run, window=...,
        whole=...)`` with the default targets; a sentence saying the targets were
        not checked when the checker is not installed or could not run.
    """
    try:
        checking = importlib.import_module("perflab.checking")
    except ImportError as exc:
        log.info("targets not checked: %s", exc)
        return "Not checked: this perflab has no targets checker (perflab.checking)."
    check_run = getattr(checking, "check_run", None)
    if check_run is None:
        return "Not checked: perflab.checking has no check_run."
    try:
        result = check_run(run, window=window, whole=whole)
    except PerflabError as exc:
        return f"Not checked: {exc}"
    return result.to_markdown().strip()


# -- the report --------------------------------------------------------------------


def render_markdown(
    run: Run,
    findings: FindingsResult | None = None,
    method: str = statistics.DEFAULT_METHOD,
    whole: bool = False,
) -> str:
    """The run's report as markdown, in the layout of the plan's "Report Format".

    Parameters
    ----------
    run
        The run to report on.
    findings
        Findings to list; by default :func:`run_findings` (``findings.find`` with its
        default thresholds, over the window where it takes one).
    method
        Percentile method for numbers computed from samples.
    whole
        Analyse the whole run, ramp-up and ramp-down included, instead of the
        steady state of :func:`perflab.windows.run_window`.

    Returns
    -------
    str
        The markdown text, ending with a newline.
    """
    analysis = _analysis(run, whole, method)
    scope = None
    if findings is None:
        findings = run_findings(run, whole, analysis.window)
        scope = _findings_scope()
    results = _results_summary(analysis)
    numbers = _endpoint_numbers(analysis)
    found = detect_window_omission(run, whole, method, analysis.in_window)
    detected = found if found is not None and found.detected else None
    # findings.find may report coordinated omission itself: then it is not listed
    # twice, only its corrected percentiles are added under the finding
    shown = None if findings.of_kind(OMISSION_KIND) else detected

    lines: list[str] = []
    lines += _header(run)
    lines += ["", "### Results", ""] + _results(run, results)
    lines += ["", "### Targets", ""] + [targets_markdown(run, whole, analysis.window)]
    lines += ["", "### Resource Usage", ""] + _resources(resource_summary(run))
    lines += ["", "### Bottlenecks Identified", ""] + _bottlenecks(
        findings, shown, detected
    )
    lines += ["", "### Recommendations", ""] + _recommendations(findings, shown)
    lines += ["", "### Endpoints", ""] + _endpoint_lines(_format_endpoints(numbers))
    lines += ["", "### Notes", ""] + _notes(analysis, results, numbers, found, scope)
    return "\n".join(lines) + "\n"


def write_report(
    run: Run,
    out_dir: Path | str,
    findings: FindingsResult | None = None,
    method: str = statistics.DEFAULT_METHOD,
    whole: bool = False,
) -> Path:
    """Write ``report.md`` for a run into ``out_dir`` (created) and return its path.

    The arguments are those of :func:`render_markdown`.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.md"
    text = render_markdown(run, findings, method, whole=whole)
    path.write_text(text, encoding="utf-8")
    log.info("wrote report %s for run %s", path, run.id)
    return path


def write_figures(run: Run, out_dir: Path | str, whole: bool = False) -> list[Path]:
    """Save the key figures of a run as PNG files in ``out_dir/figures``.

    Latency distributions (histogram, cumulative distribution, percentile plot) use
    the requests of the window; series over time show the whole run with the window
    shaded. Every figure colours an endpoint the same way. Figures whose data the
    run lacks are not written.

    Parameters
    ----------
    run
        The run.
    out_dir
        The report folder; figures go to its ``figures/``.
    whole
        Use the whole run instead of its steady state.

    Returns
    -------
    list of Path
        The files written, in the order of the report.
    """
    folder = Path(out_dir) / "figures"
    written = []
    figures = []
    requests = run.table("requests")
    intervals = run.table("intervals")
    labels = set(requests["endpoint"].dropna()) | set(intervals["endpoint"].dropna())
    colors = plotting.endpoint_colors(labels)
    if run.has("requests"):
        window, inside = select_window(run, whole, requests)
        figures += [
            (
                "latency_histogram",
                lambda: plotting.latency_histogram(inside, colors=colors),
            ),
            ("latency_ecdf", lambda: plotting.latency_ecdf(inside, colors=colors)),
            (
                "latency_percentiles",
                lambda: plotting.percentile_plot(inside, colors=colors),
            ),
        ]
    else:
        window = None
    if run.has("intervals"):
        figures += [
            (
                "percentiles_over_time",
                lambda: plotting.percentiles_over_time(
                    intervals, colors=colors, window=window
                ),
            ),
            (
                "throughput_over_time",
                lambda: plotting.throughput_over_time(
                    intervals, colors=colors, window=window
                ),
            ),
        ]
    if run.has("resources"):
        resources = run.table("resources")
        figures += [("resource_usage", lambda: plotting.resource_usage(resources))]
    for name, make in figures:
        written.append(plotting.save_figure(make(), folder / f"{name}.png"))
    return written


def _header(run: Run) -> list[str]:
    meta = run.meta
    start = meta.get("start")
    date = NOT_MEASURED
    if start:
        ts = _utc(start)
        date = f"{ts:%Y-%m-%d} ({ts:%H:%M} UTC)"
    duration = meta.get("duration_s")
    if duration is None and start and meta.get("end"):
        duration = (_utc(meta["end"]) - _utc(start)).total_seconds()
    peak = meta.get("peak_users")
    # two trailing spaces: a markdown line break, so each field keeps its own line
    return [
        "## Load Test Results",
        "",
        f"**Date**: {date}  ",
        f"**Environment**: {meta.get('environment') or 'not given'}  ",
        f"**Duration**: {format_duration(duration)}  ",
        f"**Peak Users**: {format_count(peak)}",
    ]


RESULT_LABELS = (
    "Total Requests",
    "Window Analysed",
    "Success Rate",
    "Throughput",
    "Latency p95",
    "Latency p99",
)


def _results(run: Run, results: dict) -> list[str]:
    if results["source"] is None:
        return [f"- **{label}**: {NOT_MEASURED}" for label in RESULT_LABELS]

    total = results["requests"]
    failures = results["failures"]
    if results["source"] == "requests":
        run_total = results["run_requests"]
        window = describe_window(results["window"], total, run_total)
        if results["window"] is None:
            window = "n/a (no requests)"
        samples = results["latency_samples"]
        over = (
            f"over all {samples:,} requests of the window"
            if samples == total
            else f"over the {samples:,} of {total:,} requests of the window with a "
            "latency"
        )
        method = results["method"]
        latency = [
            _sample_latency(results, p, f"{method} {over}", samples)
            for p in RESULT_PERCENTILES
        ]
        throughput = format_rate(results["throughput"])
        if not total:
            throughput = "n/a (no requests)"
        elif results["window_s"]:
            throughput += (
                f" ({format_count(total)} requests over the window's "
                f"{results['window_s']:,.1f} s)"
            )
        count_line = format_count(run_total)
    else:
        info = run.provenance("endpoints")
        tool = _tool_name(run)
        how = (
            f"{tool}'s aggregate percentile from the endpoints table, not computed "
            "from samples; no interval: the tool's aggregate; see Notes"
            if results["provenance"] == "aggregate"
            else "from the endpoints table; no per-request samples, so no interval"
        )
        latency = [_tool_latency(results, p, how) for p in RESULT_PERCENTILES]
        throughput = format_rate(results["throughput"])
        count_note = " (from the endpoints table)"
        if info and info.provenance == "aggregate":
            count_note = f" ({tool}'s aggregate count)"
        count_line = format_count(total) + count_note
        window = _summary_window(results)

    success = format_percent(results["success_rate"])
    if total == 0:
        success = "n/a (no requests)"
    if results["success_rate"] is not None and failures is not None:
        success += f" ({failures:,} failed)"
    return [
        f"- **Total Requests**: {count_line}",
        f"- **Window Analysed**: {window}",
        f"- **Success Rate**: {success}",
        f"- **Throughput**: {throughput}",
        f"- **Latency p95**: {latency[0]}",
        f"- **Latency p99**: {latency[1]}",
    ]


def _summary_window(results: dict) -> str:
    """The window of a run known only from its endpoints table."""
    if results["provenance"] == "aggregate":
        return describe_window(None, 0, 0)
    return (
        "the whole run: the endpoints table covers all of it, and without "
        "per-request samples no steady state can be cut from it"
    )


def _sample_latency(results: dict, percentile: float, how: str, n: int) -> str:
    column = percentile_column(percentile)
    value = results[column]
    if value is None:
        return NO_SAMPLES
    interval = format_interval(results[f"{column}_low"], results[f"{column}_high"])
    text = f"{format_ms(value)} ({interval}, {how})"
    if results[f"{column}_too_few"]:
        text += f"; **warning: {too_few_text(percentile, n)}**"
    return text


def _tool_latency(results: dict, percentile: float, how: str) -> str:
    column = percentile_column(percentile)
    value = results[column]
    if value is None:
        return NOT_MEASURED
    text = f"{format_ms(value)} ({how})"
    if results[f"{column}_adjusted"]:
        text += "; **changed by perflab to make the tool's percentiles consistent**"
    if results[f"{column}_too_few"]:
        text += f"; **warning: {too_few_text(percentile, results['requests'])}**"
    return text


def _resources(summary: dict[str, dict | None]) -> list[str]:
    def line(label: str, key: str, fmt) -> str:
        item = summary[key]
        if item is None:
            return f"- **{label}**: {NOT_MEASURED}"
        return (
            f"- **{label}**: {fmt(item['mean'])} average, {fmt(item['peak'])} peak "
            f"(at {_clock(item['peak_ts'])} UTC)"
        )

    return [
        line("API CPU", "api_cpu", _format_cpu),
        line("API Memory", "api_memory", format_mb),
        line("DB Connections", "db_connections", lambda v: f"{v:,.0f}"),
        line("Redis Memory", "redis_memory", format_mb),
    ]


def _time_range(finding) -> str:
    if finding.start is None:
        return ""
    if finding.end is None or finding.end == finding.start:
        return f" At {_clock(finding.start)} UTC."
    return f" From {_clock(finding.start)} to {_clock(finding.end)} UTC."


def omission_lines(found: Omission) -> list[str]:
    """A detected coordinated omission for Bottlenecks Identified, as markdown.

    The first line is the item's text; the next ones, when the percentiles could be
    corrected, list them labelled "corrected for coordinated omission" beside the
    measured ones.
    """
    text = f"**Coordinated omission** (warning). {found.summary()}"
    if found.corrected is None:
        return [text + f" {found.method}"]
    return [text, f"   - {_corrected_text(found)}"]


def _corrected_text(found: Omission) -> str:
    """The corrected percentiles beside the measured ones, with the interval used."""
    pairs = []
    for percentile in (50.0, 95.0, 99.0, 99.9):
        column = percentile_column(percentile)
        if column in found.corrected and column in found.raw:
            pairs.append(
                f"{_percentile_name(percentile)} {format_ms(found.corrected[column])} "
                f"(measured {format_ms(found.raw[column])})"
            )
    return (
        "Latency corrected for coordinated omission (estimates, not measurements; "
        f"expected interval {format_ms(found.expected_interval_ms)}, "
        f"{found.expected_interval_source}): {', '.join(pairs)}."
    )


def _bottlenecks(
    findings: FindingsResult, found: Omission | None, detected: Omission | None
) -> list[str]:
    problems = [f for f in findings.findings if f.severity != "info"]
    lines = []
    for i, finding in enumerate(problems, start=1):
        lines.append(
            f"{i}. **{finding.title}** ({finding.severity}). {finding.summary}"
            f"{_time_range(finding)}"
        )
        if finding.kind == OMISSION_KIND and detected is not None:
            lines += omission_lines(detected)[1:]
    if found is not None:
        first, *rest = omission_lines(found)
        lines += [f"{len(problems) + 1}. {first}", *rest]
    if not lines and findings.not_evaluated:
        lines = ["None found by the checks that could be made (see below)."]
    elif not lines:
        lines = ["None: no evaluated check crossed its threshold."]
    facts = [f for f in findings.findings if f.severity == "info"]
    if facts:
        lines += [""] + [f"- {f.title}: {f.summary}" for f in facts]
    if findings.not_evaluated:
        lines += [""] + [f"- Not evaluated: {note}" for note in findings.not_evaluated]
    return lines


def _recommendations(findings: FindingsResult, found: Omission | None) -> list[str]:
    advice: list[str] = []
    for finding in findings.findings:
        if finding.severity != "info" and finding.recommendation:
            if finding.recommendation not in advice:
                advice.append(finding.recommendation)
    if found is not None:
        advice.append(OMISSION_ADVICE)
    if not advice:
        return ["None: no evaluated check crossed its threshold."]
    return [f"{i}. {text}" for i, text in enumerate(advice, start=1)]


def _endpoint_lines(table: pd.DataFrame) -> list[str]:
    if table.empty:
        return [f"Per-endpoint numbers: {NOT_MEASURED}."]
    header = list(table.columns)
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
    ]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
    lines.append("")
    if table.attrs.get("intervals"):
        lines.append(
            f"Latencies in ms over the window, each with its {100 * CONFIDENCE:g} % "
            'confidence interval in brackets ("below min" or "above max": too few '
            'samples for that bound); "too few samples": fewer than '
            f"{statistics.MIN_TAIL_SAMPLES} requests lie above that percentile, so it "
            "may move a lot between runs."
        )
    elif table.attrs.get("provenance") == "aggregate":
        lines.append(
            "Latencies in ms as the tool reported them, for its whole run: no "
            'confidence interval can be given for a tool\'s aggregate; "adjusted": '
            'changed by perflab to make the percentiles consistent (see Notes); "too '
            f'few samples": fewer than {statistics.MIN_TAIL_SAMPLES} requests lie '
            "above that percentile."
        )
    else:
        lines.append(
            "Latencies in ms from the endpoints table, for the whole run: without "
            'per-request samples no confidence interval can be given; "too few '
            f'samples": fewer than {statistics.MIN_TAIL_SAMPLES} requests lie above '
            "that percentile."
        )
    return lines


_EXACT = {
    "requests": "one row per request",
    "intervals": "computed from per-request samples",
    "endpoints": "computed from per-request samples",
    "errors": "computed from per-request samples",
    "resources": "sampled measurements",
}

_TOOL_NAMES = {"locust": "Locust", "jmeter": "JMeter", "gatling": "Gatling"}


def _tool_name(run: Run) -> str:
    tool = run.meta.get("tool")
    return _TOOL_NAMES.get(tool, tool) if tool else "the tool"


def _notes(
    analysis: _Analysis,
    results: dict,
    numbers: pd.DataFrame,
    found: Omission | None,
    scope: str | None,
) -> list[str]:
    run = analysis.run
    meta = run.meta
    tool_name = _tool_name(run)
    version = meta.get("tool_version")
    lines = [
        f"- Run `{run.id}`: {tool_name}{' ' + version if version else ''}, scenario "
        f"{meta.get('scenario') or 'not recorded'}, target "
        f"{meta.get('host') or 'not recorded'}, status "
        f"{meta.get('status', 'not recorded')}.",
    ]
    lines += _window_notes(analysis, results)
    lines += _percentile_notes(analysis, results, numbers)
    lines += _omission_notes(found)
    if scope is not None:
        lines.append(f"- Findings: computed over {scope}.")

    for name in TABLES:
        info = run.provenance(name) if run.has(name) else None
        if not run.has(name):
            text = "absent (not measured)"
        elif info is None:
            text = "present, provenance not recorded"
        elif info.provenance == "exact":
            text = f"{info.rows:,} rows, exact ({_EXACT[name]})"
        else:
            text = f"{info.rows:,} rows, {tool_name}'s aggregate, not exact"
        if info is not None and info.note:
            text += f": {info.note.rstrip('.')}"
        lines.append(f"- Table `{name}`: {text}.")

    locust_count = meta.get("locust_aggregated_requests")
    if meta.get("in_flight_at_stop"):
        # perflab run's own account of Locust's count against the recorder's
        lines.append(f"- {meta['in_flight_at_stop']}")
    elif locust_count is not None:
        recorded = results["run_requests"] if results["source"] == "requests" else None
        text = f"- Locust's own Aggregated row counts {format_count(locust_count)} "
        text += (
            f"requests; the recorder wrote {format_count(recorded)}."
            if recorded is not None
            else "requests."
        )
        lines.append(text)

    summary = resource_summary(run)
    for key, what in (
        ("load_generator_cpu", "all its processes together"),
        ("load_generator_cpu_busiest", "its busiest process"),
    ):
        item = summary[key]
        if item is not None:
            lines.append(
                f"- Load generator CPU, {what}: {_format_cpu(item['mean'])} average, "
                f"{_format_cpu(item['peak'])} peak (100% is one core)."
            )
    lines.append(
        "- API CPU and memory are the target process's `cpu_percent` (percent of one "
        "core) and `rss_mb` over the whole run; DB Connections would come from "
        "postgres `connections` and Redis Memory from redis `used_memory_mb`."
    )
    for warning in meta.get("warnings") or []:
        lines.append(f"- Warning: {warning}")
    return lines


def _window_notes(analysis: _Analysis, results: dict) -> list[str]:
    window = results["window"]
    if results["source"] == "requests" and window is not None:
        text = (
            f"- Window analysed: "
            f"{describe_window(window, results['requests'], results['run_requests'])}"
            f"; chosen as {window.how}. Total Requests counts the whole run; the "
            "other Results, the endpoint table and the coordinated-omission check "
            "count only the requests that started in the window."
        )
        if window.steady:
            text += (
                " Pass `whole=True` (to `render_markdown`, `write_report` or "
                "`analyze`) to analyse the whole run."
            )
        return [text]
    if results["source"] == "endpoints":
        return [f"- Window analysed: {_summary_window(results)}."]
    if results["source"] == "requests":
        return ["- Window analysed: none, the run recorded no request."]
    return []


def _percentile_notes(
    analysis: _Analysis, results: dict, numbers: pd.DataFrame
) -> list[str]:
    lines = []
    method = analysis.method
    if results["source"] == "requests":
        lines.append(
            f"- Percentiles: method `{method}`, "
            f"{statistics.METHOD_DESCRIPTIONS[method]}, computed from every request's "
            "latency in the window."
        )
        lines.append(
            f"- Confidence intervals ({100 * CONFIDENCE:g} % CI): distribution-free "
            "intervals between two of the window's sorted latencies, which hold the "
            f"true percentile with probability at least {100 * CONFIDENCE:g} % "
            "whatever the latency distribution (binomial order statistics, see "
            "`perflab.statistics`). Where too few samples lie beyond one end, that "
            "bound is missing: the true value may lie beyond the latencies seen."
        )
    elif results["source"] == "endpoints":
        lines.append(
            "- Percentiles: taken from the endpoints table; perflab did not compute "
            "them from samples, so their method and precision are the tool's, and "
            "no confidence interval can be given (no interval: the tool's "
            "aggregate)."
        )
        if results["provenance"] == "aggregate":
            resolution = statistics.resolution_note(analysis.run.meta.get("tool"))
            lines.append(f"- Resolution of the tool's percentiles: {resolution}")
        for change in numbers.attrs.get("changes", []):
            lines.append(
                "- Warning: the tool's percentiles contradicted each other and "
                "perflab changed them (each held within the endpoint's min and max, "
                f"then raised to the largest lower percentile): {change}."
            )
    if not numbers.empty:
        columns = ["endpoint", "requests"] + [
            percentile_column(p) for p in TABLE_PERCENTILES
        ]
        for message in statistics.sample_size_warnings(
            numbers[columns], TABLE_PERCENTILES, warn=False
        ):
            lines.append(f"- Warning: {message}")
    return lines


def _omission_notes(found: Omission | None) -> list[str]:
    if found is None:
        return [
            "- Coordinated omission: not evaluated, the window has no per-request "
            "samples."
        ]
    if found.detected:
        return [
            f"- Coordinated omission ({found.evidence.get('reason', 'detected')}): "
            f"{found.method}"
        ]
    lines = [f"- {found.summary()}"]
    if found.corrected is not None:
        # an intended interval was known: the correction applies all the same
        lines.append(f"- {_corrected_text(found)} {found.method}")
    return lines

"""The markdown report of a run, in the layout of the load-testing plan.

:func:`render_markdown` writes the plan's "Report Format" section filled with the run's
numbers: the header fields, ``### Results``, ``### Resource Usage``, ``### Bottlenecks
Identified`` and ``### Recommendations``, followed by an endpoint table and
``### Notes`` (percentile method, window, where each table's numbers came from, the
run's caveats). Totals and percentiles are computed from the per-request samples
whenever the run has them; a tool's aggregate is used only when it has not, and the
report says so. Anything not measured is written "not measured", never invented.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd

from perflab import plotting, statistics
from perflab.findings import (
    BUSIEST_CPU_METRIC,
    CPU_METRIC,
    DB_CONNECTIONS,
    MEMORY_METRIC,
    REDIS_MEMORY,
    FindingsResult,
    find,
)
from perflab.store import OVERALL, TABLES, Run

log = logging.getLogger(__name__)

NOT_MEASURED = "not measured"
NO_SAMPLES = "n/a (no samples)"

#: Headings of the report, in order; the first five are the plan's layout.
HEADINGS = (
    "## Load Test Results",
    "### Results",
    "### Resource Usage",
    "### Bottlenecks Identified",
    "### Recommendations",
    "### Endpoints",
    "### Notes",
)


# -- number formats -------------------------------------------------------------------


def _missing(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def format_ms(value: float | None, missing: str = NO_SAMPLES) -> str:
    """Latency in ms: one decimal below 100 ms, none above (``87.5 ms``, ``142 ms``)."""
    if _missing(value):
        return missing
    return f"{value:.1f} ms" if abs(value) < 100 else f"{value:,.0f} ms"


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


def _utc(ts: Any) -> pd.Timestamp:
    ts = pd.Timestamp(ts)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def _clock(ts: Any) -> str:
    return _utc(ts).strftime("%H:%M:%S")


# -- numbers -----------------------------------------------------------------------


def results_summary(run: Run, method: str = statistics.DEFAULT_METHOD) -> dict:
    """The numbers of the report's Results section, unformatted.

    Parameters
    ----------
    run
        The run.
    method
        Percentile method (see :mod:`perflab.statistics`), used when the run has
        per-request samples.

    Returns
    -------
    dict
        ``source`` (``"requests"``, ``"endpoints"`` or None when nothing was
        measured), ``provenance`` (``"exact"`` or ``"aggregate"``), ``requests``
        (count), ``failures``, ``success_rate`` (0-1), ``window_s`` (seconds from the
        first request start to the last request end), ``throughput`` (requests per
        second over that window), ``latency_samples`` (requests with a latency),
        ``p95`` and ``p99`` (ms). Values that cannot be computed are None.
    """
    empty = dict.fromkeys(
        [
            "requests",
            "failures",
            "success_rate",
            "window_s",
            "throughput",
            "latency_samples",
            "p95",
            "p99",
        ]
    )
    if run.has("requests"):
        requests = run.table("requests", columns=["ts", "latency_ms", "ok"])
        total = len(requests)
        failures = int((~requests["ok"].astype(bool)).sum())
        latency = requests["latency_ms"].to_numpy(dtype=float)
        values = statistics.percentiles(latency, (95.0, 99.0), method)
        samples = int((~pd.isna(latency)).sum())
        window = statistics.window_seconds(requests) if total else None
        return {
            **empty,
            "source": "requests",
            "provenance": "exact",
            "method": method,
            "requests": total,
            "failures": failures,
            "success_rate": (total - failures) / total if total else None,
            "window_s": window,
            "throughput": total / window if total else None,
            "latency_samples": samples,
            "p95": values["p95"] if samples else None,
            "p99": values["p99"] if samples else None,
        }

    overall = _overall_row(run)
    if overall is None:
        return {**empty, "source": None, "provenance": None, "method": None}
    info = run.provenance("endpoints")
    total = _value(overall.get("requests"))
    failures = _value(overall.get("failures"))
    throughput = _value(overall.get("throughput"))
    return {
        **empty,
        "source": "endpoints",
        "provenance": info.provenance if info else "aggregate",
        "method": None,
        "requests": None if total is None else int(total),
        "failures": None if failures is None else int(failures),
        "success_rate": (total - failures) / total
        if total and failures is not None
        else None,
        "throughput": throughput,
        "p95": _value(overall.get("p95")),
        "p99": _value(overall.get("p99")),
    }


def _value(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def _overall_row(run: Run) -> dict | None:
    if not run.has("endpoints"):
        return None
    endpoints = run.table("endpoints")
    rows = endpoints[endpoints["endpoint"] == OVERALL]
    return None if rows.empty else rows.iloc[0].to_dict()


def resource_summary(run: Run) -> dict[str, dict | None]:
    """Average and peak of the resources the report names, or None when not measured.

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
    run: Run, method: str = statistics.DEFAULT_METHOD, formatted: bool = False
) -> pd.DataFrame:
    """Per-endpoint requests, error rate and latency percentiles, ``Overall`` last.

    Computed from the per-request samples when the run has them (by ``method``),
    else read from the endpoints table (which may be a tool's aggregate).

    Parameters
    ----------
    run
        The run.
    method
        Percentile method for samples.
    formatted
        Return display strings (``"142 ms"``, ``"0.50%"``) instead of numbers.

    Returns
    -------
    DataFrame
        Columns ``endpoint``, ``requests``, ``failures``, ``error_rate`` (0-1),
        ``p50``, ``p95``, ``p99``, ``max_ms`` (ms); empty when nothing was measured.
    """
    columns = [
        "endpoint",
        "requests",
        "failures",
        "error_rate",
        "p50",
        "p95",
        "p99",
        "max_ms",
    ]
    if run.has("requests"):
        table = statistics.endpoint_table(run.table("requests"), method=method)
    elif run.has("endpoints"):
        table = run.table("endpoints")
    else:
        return pd.DataFrame(columns=columns)
    table = table.reindex(columns=columns)
    is_overall = table["endpoint"] == OVERALL
    table = pd.concat(
        [table[~is_overall].sort_values("endpoint"), table[is_overall]]
    ).reset_index(drop=True)
    table["error_rate"] = [
        f / r if r and not pd.isna(f) else float("nan")
        for f, r in zip(table["failures"], table["requests"], strict=True)
    ]
    if not formatted:
        return table
    shown = pd.DataFrame({"endpoint": table["endpoint"]})
    shown["requests"] = [format_count(v) for v in table["requests"]]
    shown["error rate"] = [format_percent(_value(v)) for v in table["error_rate"]]
    for column in ("p50", "p95", "p99", "max_ms"):
        name = "max" if column == "max_ms" else column
        shown[name] = [format_ms(_value(v)) for v in table[column]]
    return shown


# -- the report --------------------------------------------------------------------


def render_markdown(
    run: Run,
    findings: FindingsResult | None = None,
    method: str = statistics.DEFAULT_METHOD,
) -> str:
    """The run's report as markdown, in the layout of the plan's "Report Format".

    Parameters
    ----------
    run
        The run to report on; its whole window is analysed.
    findings
        Findings to list; by default :func:`perflab.findings.find` with its default
        thresholds.
    method
        Percentile method for numbers computed from samples.

    Returns
    -------
    str
        The markdown text, ending with a newline.
    """
    findings = find(run) if findings is None else findings
    results = results_summary(run, method)
    lines: list[str] = []
    lines += _header(run)
    lines += ["", "### Results", ""] + _results(run, results)
    lines += ["", "### Resource Usage", ""] + _resources(resource_summary(run))
    lines += ["", "### Bottlenecks Identified", ""] + _bottlenecks(findings)
    lines += ["", "### Recommendations", ""] + _recommendations(findings)
    lines += ["", "### Endpoints", ""] + _endpoint_lines(run, method)
    lines += ["", "### Notes", ""] + _notes(run, results, method)
    return "\n".join(lines) + "\n"


def write_report(
    run: Run,
    out_dir: Path | str,
    findings: FindingsResult | None = None,
    method: str = statistics.DEFAULT_METHOD,
) -> Path:
    """Write ``report.md`` for a run into ``out_dir`` (created) and return its path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    path = out_dir / "report.md"
    path.write_text(render_markdown(run, findings, method), encoding="utf-8")
    log.info("wrote report %s for run %s", path, run.id)
    return path


def write_figures(run: Run, out_dir: Path | str) -> list[Path]:
    """Save the key figures of a run as PNG files in ``out_dir/figures``.

    Figures whose data the run lacks are not written.

    Returns
    -------
    list of Path
        The files written, in the order of the report.
    """
    folder = Path(out_dir) / "figures"
    written = []
    figures = []
    if run.has("requests"):
        requests = run.table("requests")
        figures += [
            ("latency_histogram", lambda: plotting.latency_histogram(requests)),
            ("latency_ecdf", lambda: plotting.latency_ecdf(requests)),
        ]
    if run.has("intervals"):
        intervals = run.table("intervals")
        figures += [
            (
                "percentiles_over_time",
                lambda: plotting.percentiles_over_time(intervals),
            ),
            ("throughput_over_time", lambda: plotting.throughput_over_time(intervals)),
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
        f"**Environment**: {meta.get('environment') or NOT_MEASURED}  ",
        f"**Duration**: {format_duration(duration)}  ",
        f"**Peak Users**: {format_count(peak)}",
    ]


def _results(run: Run, results: dict) -> list[str]:
    if results["source"] is None:
        return [
            f"- **{label}**: {NOT_MEASURED}"
            for label in (
                "Total Requests",
                "Success Rate",
                "Throughput",
                "Latency p95",
                "Latency p99",
            )
        ]

    total = results["requests"]
    failures = results["failures"]
    if results["source"] == "requests":
        samples = results["latency_samples"]
        over = (
            f"over all {samples:,} requests"
            if samples == total
            else f"over the {samples:,} of {total:,} requests with a latency"
        )
        how = f"({results['method']} {over})"
        throughput = format_rate(results["throughput"])
        if not total:
            throughput = "n/a (no requests)"
        elif results["window_s"]:
            throughput += (
                f" ({format_count(total)} requests over "
                f"{results['window_s']:,.1f} s, first request start to last end)"
            )
        count_note = ""
    else:
        info = run.provenance("endpoints")
        tool = _tool_name(run)
        how = (
            f"({tool}'s aggregate percentile from the endpoints table, not computed "
            "from samples; see Notes)"
            if results["provenance"] == "aggregate"
            else "(from the endpoints table; no per-request samples)"
        )
        throughput = format_rate(results["throughput"])
        count_note = " (from the endpoints table)"
        if info and info.provenance == "aggregate":
            count_note = f" ({tool}'s aggregate count)"

    success = format_percent(results["success_rate"])
    if total == 0:
        success = "n/a (no requests)"
    if results["success_rate"] is not None and failures is not None:
        success += f" ({failures:,} failed)"
    return [
        f"- **Total Requests**: {format_count(total)}{count_note}",
        f"- **Success Rate**: {success}",
        f"- **Throughput**: {throughput}",
        f"- **Latency p95**: {_latency(results['p95'], how)}",
        f"- **Latency p99**: {_latency(results['p99'], how)}",
    ]


def _latency(value: float | None, how: str) -> str:
    return NO_SAMPLES if value is None else f"{format_ms(value)} {how}"


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


def _bottlenecks(findings: FindingsResult) -> list[str]:
    problems = [f for f in findings.findings if f.severity != "info"]
    lines = [
        f"{i}. **{f.title}** ({f.severity}). {f.summary}{_time_range(f)}"
        for i, f in enumerate(problems, start=1)
    ]
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


def _recommendations(findings: FindingsResult) -> list[str]:
    advice: list[str] = []
    for finding in findings.findings:
        if finding.severity != "info" and finding.recommendation:
            if finding.recommendation not in advice:
                advice.append(finding.recommendation)
    if not advice:
        return ["None: no evaluated check crossed its threshold."]
    return [f"{i}. {text}" for i, text in enumerate(advice, start=1)]


def _endpoint_lines(run: Run, method: str) -> list[str]:
    table = endpoint_summary(run, method, formatted=True)
    if table.empty:
        return [f"Per-endpoint numbers: {NOT_MEASURED}."]
    header = list(table.columns)
    lines = [
        "| " + " | ".join(header) + " |",
        "| " + " | ".join(["---"] + ["---:"] * (len(header) - 1)) + " |",
    ]
    for row in table.itertuples(index=False):
        lines.append("| " + " | ".join(str(v) for v in row) + " |")
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


def _notes(run: Run, results: dict, method: str) -> list[str]:
    meta = run.meta
    tool_name = _tool_name(run)
    version = meta.get("tool_version")
    lines = [
        f"- Run `{run.id}`: {tool_name}{' ' + version if version else ''}, scenario "
        f"{meta.get('scenario') or 'not recorded'}, target "
        f"{meta.get('host') or 'not recorded'}, status "
        f"{meta.get('status', 'not recorded')}.",
    ]
    if results["source"] == "requests":
        lines.append(
            f"- Percentiles: method `{method}`, "
            f"{statistics.METHOD_DESCRIPTIONS[method]}, computed from every request's "
            "latency."
        )
    elif results["source"] == "endpoints":
        lines.append(
            "- Percentiles: taken from the endpoints table; perflab did not compute "
            "them from samples, so their method and precision are the tool's."
        )
    start, end = meta.get("start"), meta.get("end")
    span = f" ({start} to {end})" if start and end else ""
    lines.append(
        f"- Window analysed: the whole run{span}; ramp-up and ramp-down are included."
    )

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
    if locust_count is not None:
        recorded = results["requests"] if results["source"] == "requests" else None
        text = f"- Locust's own Aggregated row counts {format_count(locust_count)} "
        text += (
            f"requests; the recorder wrote {format_count(recorded)}."
            if recorded is not None
            else "requests."
        )
        if meta.get("in_flight_at_stop"):
            text += f" {meta['in_flight_at_stop']}"
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
        "core) and `rss_mb`; DB Connections would come from postgres `connections` "
        "and Redis Memory from redis `used_memory_mb`."
    )
    for warning in meta.get("warnings") or []:
        lines.append(f"- Warning: {warning}")
    return lines

"""Read Locust's exports: the ``--csv`` file sets of every generation, and ``--json``.

Formats
-------
``locust-csv``
    The files one ``locust --csv <prefix>`` run writes, recognised by their header row
    (never by their name) and grouped by their common prefix:

    ``<prefix>_stats.csv``
        whole-run aggregates per endpoint and an ``Aggregated`` row (0.13 and later);
    ``<prefix>_requests.csv`` and ``<prefix>_distribution.csv``
        the same before 0.13: counts and times in one file, percentiles in the other,
        whose ``Name`` holds ``"METHOD path"`` in one field;
    ``<prefix>_stats_history.csv``
        one row per second (every two seconds in 0.13-0.14) with cumulative counts, the
        user count, the recent request rate and response-time percentiles; only the
        ``Aggregated`` row unless ``--csv-full-history`` was given;
    ``<prefix>_failures.csv`` and ``<prefix>_exceptions.csv``
        error kinds with their counts, and exceptions raised in user code.
``locust-json``
    The list ``locust --json`` prints (``--json-file`` saves): one serialized
    ``StatsEntry`` per endpoint, with the raw response-time histogram
    (``response_times``: rounded milliseconds to count) and per-second request and
    failure counts.

Columns are found by their header name; the many spellings Locust used over the years
(``# requests``, ``Request Count``, ``Total Request Count`` ...) are normalised to one
internal set by :data:`_ALIASES`.

Precision
---------
Locust never keeps per-request samples. Before counting a response time into its
histogram it rounds it (``bucket_response_time`` in ``locust/stats.py``; the same rule
in every version since 0.x): below 100 ms to the whole millisecond, from 100 ms to the
nearest 10 ms, from 1,000 ms to the nearest 100 ms and from 10,000 ms to the nearest
1,000 ms, so to about two significant digits. Every percentile and median it reports
comes from that histogram; min, max and mean come from the unrounded times. A
percentile can therefore lie a little above the max or below the min, which this reader
reports as a :class:`~perflab.errors.PrecisionWarning` and leaves as imported.

Runs without requests
---------------------
When no file of the set holds a request (a header-only file given on its own, a
stats file whose rows count 0 requests, exceptions alone), a
:class:`~perflab.errors.DataWarning` names each file and says the run has no request
data. A header-only file beside files with data is normal (a run without failures
writes its failures file with the header alone) and is not reported.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import logging
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from perflab.errors import DataWarning, InputError, PrecisionWarning
from perflab.ingest.base import Ingested, RequestSink, read_text
from perflab.store import OVERALL, PERCENTILES, endpoint_label, percentile_column

log = logging.getLogger(__name__)

FORMATS = ("locust-csv", "locust-json")

#: What the percentile and median columns of a Locust export are made of.
ROUNDING_NOTE = (
    "Locust rounds each response time before counting it into a histogram: below "
    "100 ms to the whole ms, 100-999 ms to the nearest 10 ms, 1,000-9,999 ms to the "
    "nearest 100 ms, 10,000 ms and above to the nearest 1,000 ms (about two "
    "significant digits); its percentiles and median are read from that histogram, "
    "so they are only that exact, while min, max and mean come from the unrounded "
    "times."
)

# -- header names ----------------------------------------------------------------------

#: Normalised header text (lower case, single spaces) to the internal column name.
_ALIASES = {
    "type": "method",
    "method": "method",
    "name": "name",
    "timestamp": "timestamp",
    "user count": "users",
    "request count": "requests",
    "# requests": "requests",
    "# reqs": "requests",
    "total request count": "requests",
    "failure count": "failures",
    "# failures": "failures",
    "# fails": "failures",
    "total failure count": "failures",
    "median response time": "median",
    "total median response time": "median",
    "average response time": "mean",
    "total average response time": "mean",
    "min response time": "min",
    "total min response time": "min",
    "max response time": "max",
    "total max response time": "max",
    "average content size": "bytes",
    "total average content size": "bytes",
    "requests/s": "rps",
    "failures/s": "fps",
    "requests failed/s": "fps",
    "error": "error",
    "occurrences": "occurrences",
    "first seen": "first_seen",
    "last seen": "last_seen",
    "count": "count",
    "message": "message",
    "traceback": "traceback",
    "nodes": "nodes",
}

_TEXT_COLUMNS = {
    "method",
    "name",
    "error",
    "first_seen",
    "last_seen",
    "message",
    "traceback",
    "nodes",
}

#: Columns that hold whole counts: a row whose count is not a number is dropped.
_COUNT_COLUMNS = {"requests", "failures", "occurrences", "count", "timestamp", "users"}

#: Cell texts Locust writes for "no value".
_MISSING = {"", "n/a", "nan", "none", "null"}

_PERCENT = re.compile(r"(\d+(?:\.\d+)?)\s*%?")

#: The file name endings Locust gives each kind of file; the rest is the run's prefix.
_SUFFIXES = {
    "stats": ("_stats.csv", "_requests.csv"),
    "distribution": ("_distribution.csv",),
    "history": ("_stats_history.csv",),
    "failures": ("_failures.csv",),
    "exceptions": ("_exceptions.csv",),
}

#: The label of the totals row: "Aggregated" since 0.13, "Total" before.
_TOTAL_NAMES = {"aggregated", "total", "none total", "none aggregated"}

_STATUS = re.compile(
    r"HTTPError\(\s*['\"]?(\d{3})\b"
    r"|HTTPError:\s*(\d{3})\b"
    r"|\b(\d{3}) (?:Client|Server) Error"
)


def _column_key(header: str) -> str | None:
    """Internal name of a header cell: ``"# requests"`` -> ``"requests"``.

    Percentile headers become ``"pct:<percent>"``: ``"99.9%"`` -> ``"pct:99.9"``;
    Locust 0.13-0.14 wrote ``"99.999"`` without its percent sign.
    """
    text = re.sub(r"\s+", " ", header.strip().strip('"').strip()).lower()
    if text in _ALIASES:
        return _ALIASES[text]
    match = _PERCENT.fullmatch(text)
    if match:
        return f"pct:{float(match.group(1)):g}"
    return None


def _kind(keys: Iterable[str | None]) -> str | None:
    """Which Locust file a header row belongs to, or None."""
    have = {k for k in keys if k}
    pcts = sum(1 for k in have if k.startswith("pct:"))
    if {"count", "message", "traceback", "nodes"} <= have:
        return "exceptions"
    if {"method", "name", "error", "occurrences"} <= have:
        return "failures"
    if {"timestamp", "name", "requests", "rps"} <= have:
        return "history"
    if {"name", "requests", "mean", "max"} <= have:
        return "stats"
    if {"name", "requests"} <= have and pcts >= 3 and len(have) == pcts + 2:
        return "distribution"
    return None


# -- sniffing --------------------------------------------------------------------------


def sniff(path: Path, head: bytes) -> str | None:
    """Recognise a Locust export from its first bytes.

    Parameters
    ----------
    path
        The file (unused: files are recognised by content, never by name).
    head
        The first bytes of the file, already un-gzipped.

    Returns
    -------
    str or None
        ``"locust-csv"`` when the first line is the header of one of Locust's CSV
        files, ``"locust-json"`` for the output of ``locust --json``, else None.
    """
    text = _decode_head(head)
    stripped = text.lstrip()
    if stripped.startswith("["):
        if '"response_times"' in text and '"num_requests"' in text:
            return "locust-json"
        return None
    first = stripped.splitlines()[0] if stripped else ""
    try:
        header = next(csv.reader([first]))
    except (csv.Error, StopIteration):
        return None
    return "locust-csv" if _kind(map(_column_key, header)) else None


def _decode_head(head: bytes) -> str:
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return head.decode("utf-16", errors="ignore")
    if head.startswith(codecs.BOM_UTF8):
        head = head[len(codecs.BOM_UTF8) :]
    # The header row is ASCII in every generation; names further down may not be.
    return head.decode("latin-1")


# -- reading ---------------------------------------------------------------------------


def read(
    files: Sequence[Path], sink: RequestSink, encoding: str | None, fmt: str
) -> Ingested:
    """Read the files of one Locust run.

    Parameters
    ----------
    files
        Files of one run, all of format ``fmt``: CSV files sharing one prefix, or one
        JSON file.
    sink
        Receives nothing: Locust exports hold no per-request samples.
    encoding
        Text encoding; detected per file when None (see
        :func:`perflab.ingest.base.detect_encoding`, which also recognises the GBK
        files Locust writes on a Chinese-locale Windows).
    fmt
        ``"locust-csv"`` or ``"locust-json"``.

    Returns
    -------
    Ingested
        ``endpoints`` (one row per endpoint plus ``Overall``), ``intervals`` (from the
        history file or the JSON's per-second counts), ``errors`` (from the failures
        file) and ``meta`` with ``start``, ``end``, ``duration_s``, ``peak_users``,
        ``users_series``, ``csv_full_history``, ``history_percentiles`` and
        ``exceptions``.

    Raises
    ------
    InputError
        A file is not a Locust export, cannot be decoded, or the files belong to more
        than one run.
    """
    del sink  # nothing per request in these exports
    if fmt == "locust-json":
        return _read_json(list(files), encoding)
    if fmt != "locust-csv":
        raise InputError(f"The Locust reader reads {FORMATS}, not {fmt!r}.")
    return _read_csv_set(list(files), encoding)


@dataclass
class _Table:
    """One Locust CSV file: its kind, columns and the rows that parsed."""

    path: Path
    kind: str
    header: list[str]
    keys: list[str | None]
    quoted: bool
    rows: list[dict[str, Any]] = field(default_factory=list)
    #: Columns where some cell has a decimal point (Locust 1.2+ writes full floats).
    decimals: set[str] = field(default_factory=set)

    @property
    def percents(self) -> list[float]:
        return sorted(float(k[4:]) for k in self.keys if k and k.startswith("pct:"))

    @property
    def prefix(self) -> str:
        name = self.path.name
        if name.endswith(".gz"):
            name = name[:-3]
        for suffix in _SUFFIXES[self.kind]:
            if name.endswith(suffix):
                return name[: -len(suffix)]
        return Path(name).stem


def _read_csv_set(files: list[Path], encoding: str | None) -> Ingested:
    result = Ingested(tool="locust", fmt="locust-csv", files=list(files))
    tables = [_parse_csv(path, encoding, result) for path in files]

    prefixes = sorted({t.prefix for t in tables})
    if len(prefixes) > 1:
        listing = ", ".join(t.path.name for t in tables)
        raise InputError(
            f"The files given ({listing}) belong to {len(prefixes)} different Locust "
            f"runs (prefixes {', '.join(repr(p) for p in prefixes)}). Ingest one run "
            "at a time, or give the files of one run the prefix Locust gives them "
            "(<prefix>_stats.csv, <prefix>_stats_history.csv, <prefix>_failures.csv)."
        )
    by_kind: dict[str, _Table] = {}
    for table in tables:
        if table.kind in by_kind:
            raise InputError(
                f"Two {table.kind} files were given for one run ({table.path.name} and "
                f"{by_kind[table.kind].path.name}); ingest one run at a time."
            )
        by_kind[table.kind] = table

    result.tool_version = _guess_version(by_kind)
    history = by_kind.get("history")
    if history is not None:
        _read_history(history, result)
    result.meta["csv_full_history"] = (
        None if history is None else result.meta.pop("_full_history")
    )
    if "stats" in by_kind or "distribution" in by_kind:
        _read_stats(by_kind.get("stats"), by_kind.get("distribution"), result)
    elif history is not None:
        _endpoints_from_history(history, result)
    if "failures" in by_kind:
        _read_failures(by_kind["failures"], result)
    if "exceptions" in by_kind:
        _read_exceptions(by_kind["exceptions"], result)
    _warn_without_requests(tables, result)
    log.info(
        "read Locust %s export: %s",
        result.tool_version,
        ", ".join(t.path.name for t in tables),
    )
    return result


def _has_requests(result: Ingested) -> bool:
    """Whether any table read holds request data: a request or failure counted."""
    for frame in (result.endpoints, result.intervals):
        if frame is not None and "requests" in frame and frame["requests"].gt(0).any():
            return True
    return result.errors is not None and not result.errors.empty


def _warn_without_requests(tables: list[_Table], result: Ingested) -> None:
    """Warn, naming each file, when the whole set holds no request data.

    A header-only file beside files with data is normal (a run without failures
    writes a failures file with its header alone), so nothing is said then.
    """
    if _has_requests(result):
        return
    for table in tables:
        if not table.rows:
            todo = (
                "Ingest the run's _stats.csv or _stats_history.csv with it."
                if table.kind in ("failures", "exceptions")
                else "Locust writes a row as soon as the run starts, so the file was "
                "probably cut short or the run stopped at once."
            )
            result.warn(
                f"{table.path}: the file holds no requests (a header only, no data "
                "rows), and no other file given holds any: the run has no request "
                f"data to analyse. {todo}",
                DataWarning,
            )
        elif table.kind == "exceptions":
            result.warn(
                f"{table.path}: the file lists {len(table.rows)} exceptions raised in "
                "user code but no requests, and no other file given holds any: the "
                "run has no request data to analyse. Ingest the run's _stats.csv or "
                "_stats_history.csv with it.",
                DataWarning,
            )
        else:
            rows = len(table.rows)
            where = "its one row" if rows == 1 else f"any of its {rows} rows"
            result.warn(
                f"{table.path}: the run holds 0 requests: Locust counted no request "
                f"in {where}, so there are no "
                "latencies, error rates or throughput to analyse. Check that the "
                "users reached the host (a wrong --host, or a run stopped before "
                "its first request).",
                DataWarning,
            )


def _parse_csv(path: Path, encoding: str | None, result: Ingested) -> _Table:
    text, _ = read_text(path, encoding)
    if not text.strip():
        raise InputError("The file is empty; it holds no Locust results.", path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise InputError(
            f"The header row cannot be read as CSV ({exc}).", path, 1
        ) from exc
    keys = [_column_key(cell) for cell in header]
    kind = _kind(keys)
    if kind is None:
        raise InputError(
            "This CSV file is not a Locust export: its header row "
            f"({', '.join(header[:6])}{', ...' if len(header) > 6 else ''}) is not "
            "the header of a Locust _stats, _stats_history, _failures, _exceptions, "
            "_requests or _distribution file. Name its format with --format if it is "
            "another tool's.",
            path,
            1,
        )
    table = _Table(path, kind, header, keys, quoted=text.lstrip().startswith('"'))

    problems: list[str] = []
    records = list(_records(reader, path, problems))
    for index, (line, cells) in enumerate(records):
        last = index == len(records) - 1
        if len(cells) != len(keys):
            cut = last and len(cells) < len(keys)
            problems.append(
                f"line {line}: {len(cells)} fields where the header has {len(keys)}"
                + (
                    " (the last line is cut short: the file looks truncated)"
                    if cut
                    else ""
                )
            )
            continue
        row, problem = _convert(cells, keys, header)
        if problem:
            problems.append(f"line {line}: {problem}")
            continue
        table.decimals.update(
            k for k, c in zip(keys, cells, strict=True) if k and "." in c
        )
        table.rows.append(row)
    if problems:
        shown = "; ".join(problems[:5]) + ("; ..." if len(problems) > 5 else "")
        result.warn(
            f"{path}: dropped {len(problems)} malformed row"
            f"{'s' if len(problems) != 1 else ''} ({shown}); the numbers from this "
            "file are missing those rows.",
            DataWarning,
        )
    return table


def _records(reader, path: Path, problems: list[str]):
    """``(line, cells)`` of each non-blank CSV record; unreadable ones are noted."""
    while True:
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            problems.append(f"line {reader.line_num}: {exc}")
            continue
        if not cells or all(not c.strip() for c in cells):
            continue
        yield reader.line_num, cells


def _convert(
    cells: list[str], keys: list[str | None], header: list[str]
) -> tuple[dict[str, Any], str | None]:
    row: dict[str, Any] = {}
    for cell, key, title in zip(cells, keys, header, strict=True):
        if key is None or key in row:
            continue
        if key in _TEXT_COLUMNS:
            row[key] = cell
            continue
        value = cell.strip()
        if value.lower() in _MISSING:
            if key in _COUNT_COLUMNS:
                return row, f"no value in {title!r}"
            row[key] = math.nan
            continue
        try:
            number = float(value)
        except ValueError:
            return row, f"{value[:40]!r} is not a number in {title!r}"
        if key in _COUNT_COLUMNS and not number.is_integer():
            return row, f"{value!r} is not a whole count in {title!r}"
        row[key] = number
    return row, None


# -- versions --------------------------------------------------------------------------


def _guess_version(by_kind: dict[str, _Table]) -> str | None:
    """Best guess of the Locust version from the header generation, ending in ?."""
    stats = by_kind.get("stats")
    if stats is not None:
        if "median" in stats.keys and not stats.percents:
            return "0.x?"
        if "pct:99.999" in stats.keys and _old_names(stats):
            return "0.13-0.14?"
        if "pct:99.999" in stats.keys:
            return "1.0?" if stats.quoted else "1.x?"
        return "2.x?"
    if "distribution" in by_kind:
        return "0.x?"
    history = by_kind.get("history")
    if history is not None:
        if "users" not in history.keys:
            return "0.13-0.14?"
        if history.quoted:
            return "1.0-1.1?"
        return "1.x?" if "pct:99.999" in history.keys else "2.x?"
    failures = by_kind.get("failures")
    if failures is not None:
        if "first_seen" in failures.keys:
            return "2.x?"
        return "0.x-1.0?" if failures.quoted else "1.x-2.x?"
    return "1.x-2.x?" if "exceptions" in by_kind else None


def _old_names(table: _Table) -> bool:
    """Whether the header has the pre-1.0 spellings (``# requests``)."""
    return any(cell.strip().lower() == "# requests" for cell in table.header)


# -- endpoints -------------------------------------------------------------------------

_PCT_KEYS = {f"pct:{p:g}": percentile_column(p) for p in PERCENTILES}

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


def _method(text: Any) -> str | None:
    """The request method or type; None for Locust's empty or ``"None"`` type."""
    if not isinstance(text, str):
        return None
    text = text.strip()
    return None if text.lower() in ("", "none") else text


def _is_total(method: str | None, name: str) -> bool:
    return method is None and name.strip().lower() in _TOTAL_NAMES


def _endpoint_row(method: str | None, name: str, row: dict[str, Any]) -> dict[str, Any]:
    total = _is_total(method, name)
    requests = row.get("requests", math.nan)
    failures = row.get("failures", math.nan)
    served = isinstance(requests, float) and requests > 0
    out = {
        "endpoint": OVERALL if total else endpoint_label(method, name),
        "method": None if total else method,
        "name": OVERALL if total else name,
        "requests": requests,
        "failures": failures,
        "error_rate": failures / requests if served else math.nan,
        "throughput": row.get("rps", math.nan),
        # With no request Locust writes 0 for the times; that is no measurement.
        "mean_ms": row.get("mean", math.nan) if served else math.nan,
        "min_ms": row.get("min", math.nan) if served else math.nan,
        "max_ms": row.get("max", math.nan) if served else math.nan,
        "bytes_mean": row.get("bytes", math.nan) if served else math.nan,
    }
    for key, column in _PCT_KEYS.items():
        out[column] = row.get(key, math.nan) if served else math.nan
    if "pct:50" not in row and served:
        out["p50"] = row.get("median", math.nan)
    return out


def _endpoint_frame(rows: list[dict[str, Any]]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=_ENDPOINT_COLUMNS)
    for column in ("requests", "failures"):
        frame[column] = pd.array(frame[column], dtype="Float64").astype("Int64")
    overall = frame["endpoint"] == OVERALL
    return pd.concat([frame[~overall], frame[overall]], ignore_index=True)


def _read_stats(
    stats: _Table | None, distribution: _Table | None, result: Ingested
) -> None:
    rows: dict[str, dict[str, Any]] = {}
    sources = []
    if stats is not None:
        sources.append(stats.path.name)
        for row in stats.rows:
            out = _endpoint_row(_method(row.get("method")), row["name"], row)
            rows[out["endpoint"]] = out
    if distribution is not None:
        sources.append(distribution.path.name)
        _merge_distribution(distribution, rows, result)

    frame = _endpoint_frame(list(rows.values()))
    tables = [t for t in (stats, distribution) if t is not None]
    for table in tables:
        _check_percentiles(frame, table, result)
    # A header-only file in a set without data is warned about as holding no
    # requests (see _warn_without_requests).
    history_rows = result.intervals is not None and not result.intervals.empty
    if OVERALL not in set(frame["endpoint"]) and (
        history_rows or any(t.rows for t in tables)
    ):
        result.warn(
            f"{tables[0].path}: there is no Aggregated/Total row, so the endpoints "
            "table has no Overall row.",
            DataWarning,
        )
    result.endpoints = frame
    note = (
        f"Locust's own whole-run aggregates from {' and '.join(sources)}. "
        + ROUNDING_NOTE
        + " Percentiles are Locust's (rank floor(q*n)+1 over the rounded histogram); "
        "p50 is Locust's median column where the file has no 50% column; "
        "throughput is Locust's Requests/s (requests over the time from the start of "
        "the run, or the last reset of the statistics, to the last request)."
    )
    if stats is not None and _guess_version({"stats": stats}) in ("0.x?", "0.13-0.14?"):
        note += " Files of this generation write mean, min and max as whole ms."
    result.provenance["endpoints"] = ("aggregate", note)


def _merge_distribution(
    table: _Table, rows: dict[str, dict[str, Any]], result: Ingested
) -> None:
    """Add the 0.x ``_distribution.csv`` percentiles to the ``_requests.csv`` rows."""
    known = {(r["method"], r["name"]): label for label, r in rows.items()}
    for row in table.rows:
        text = row["name"].strip()
        if text.lower() in _TOTAL_NAMES:
            method, name = None, "Total"
        else:
            method, name = _split_label(text, known)
        out = _endpoint_row(method, name, row)
        label = out["endpoint"]
        if label not in rows:
            rows[label] = out
            continue
        target = rows[label]
        if target["requests"] != out["requests"]:
            result.warn(
                f"{table.path}: {label} has {out['requests']:.0f} requests here but "
                f"{target['requests']:.0f} in the requests file; the two files may not "
                "come from the same moment of the run.",
                DataWarning,
            )
        for column in _PCT_KEYS.values():
            if not math.isnan(out[column]):
                target[column] = out[column]


def _split_label(text: str, known: dict) -> tuple[str | None, str]:
    """``"GET /path"`` -> ``("GET", "/path")``, preferring a pair the stats file has."""
    for method, name in known:
        if endpoint_label(method, name) == text:
            return method, name
    method, _, name = text.partition(" ")
    if name and re.fullmatch(r"[A-Za-z_-]+", method):
        return method, name
    return None, text


def _check_percentiles(frame: pd.DataFrame, table: _Table, result: Ingested) -> None:
    """Warn where an imported percentile lies above the max, below the min, or the
    percentiles decrease; values are left as Locust wrote them."""
    columns = [percentile_column(p) for p in PERCENTILES]
    above, below, unordered = [], [], []
    for row in frame.itertuples(index=False):
        values = np.array([getattr(row, c) for c in columns], dtype=float)
        present = values[~np.isnan(values)]
        if present.size == 0:
            continue
        if not math.isnan(row.max_ms) and (present > row.max_ms).any():
            above.append(row.endpoint)
        if not math.isnan(row.min_ms) and (present < row.min_ms).any():
            below.append(row.endpoint)
        if (np.diff(present) < 0).any():
            unordered.append(row.endpoint)
    rounding = (
        "Locust rounds response times to about two significant digits before "
        "computing percentiles, so they are that coarse"
    )
    odd = (
        "Locust's own percentiles always increase, so the file may have been edited "
        "or its columns mixed up"
    )
    for names, what, why in (
        (above, "above the max response time", rounding),
        (below, "below the min response time", rounding),
        (unordered, "not increasing from p50 to p99.9", odd),
    ):
        if names:
            listed = ", ".join(names[:8]) + (
                f" and {len(names) - 8} more" if len(names) > 8 else ""
            )
            result.warn(
                f"{table.path}: Locust's percentiles are {what} for {listed}. {why}; "
                "they are kept as the file has them.",
                PrecisionWarning,
            )


# -- history ---------------------------------------------------------------------------


def _read_history(table: _Table, result: Ingested) -> None:
    frame = pd.DataFrame(table.rows)
    if frame.empty:
        result.meta["_full_history"] = None
        result.meta["history_percentiles"] = None
        result.intervals = pd.DataFrame(columns=["ts", "endpoint"])
        result.provenance["intervals"] = (
            "aggregate",
            f"{table.path.name} holds no rows.",
        )
        return
    methods = [_method(m) for m in frame.get("method", [None] * len(frame))]
    frame["endpoint"] = [
        OVERALL if _is_total(m, n) else endpoint_label(m, n)
        for m, n in zip(methods, frame["name"], strict=True)
    ]
    frame["_order"] = range(len(frame))
    result.meta["_full_history"] = bool((frame["endpoint"] != OVERALL).any())

    # Users over time, and the run's span, from every row.
    times = pd.to_datetime(frame["timestamp"].astype("int64"), unit="s", utc=True)
    frame["_time"] = times
    result.meta["start"] = times.min()
    result.meta["end"] = times.max()
    result.meta["duration_s"] = float((times.max() - times.min()).total_seconds())
    if "users" in frame:
        overall = frame[frame["endpoint"] == OVERALL]
        series = overall[["_time", "users"]].rename(columns={"_time": "ts"})
        result.meta["users_series"] = series.reset_index(drop=True)
        result.meta["peak_users"] = int(frame["users"].max())

    pct_keys = [k for k in table.keys if k and k.startswith("pct:")]
    zeroed = _blank_zero_percentiles(frame, pct_keys)
    scope = _percentile_scope(frame, table)
    result.meta["history_percentiles"] = scope
    precise_mean = "mean" in table.decimals

    parts = [
        _history_series(group, precise_mean)
        for _, group in frame.groupby("endpoint", sort=True)
    ]
    resets = sum(p.attrs.get("resets", 0) for p in parts)
    intervals = pd.concat(parts, ignore_index=True)
    intervals = intervals.sort_values(["endpoint", "ts"], kind="stable")
    result.intervals = intervals.reset_index(drop=True)

    if zeroed:
        result.warn(
            f"{table.path}: {zeroed} row{'s' if zeroed != 1 else ''} with every "
            "percentile 0, which is how Locust writes 'no response times in the "
            "recent window' (or none cached for that endpoint); read as missing, "
            "not as 0 ms.",
            DataWarning,
        )
    if resets:
        result.warn(
            f"{table.path}: the cumulative request count went down {resets} time(s): "
            "Locust's statistics were reset during the run; per-interval counts "
            "restart from the reset.",
            DataWarning,
        )
    if scope == "current":
        scope_text = (
            "The percentiles are Locust's 'current' ones, over a sliding window of "
            "about the last 10 s (CURRENT_RESPONSE_TIME_PERCENTILE_WINDOW), not over "
            "each interval alone"
            + (
                " (Locust 0.13-0.14 always writes these)."
                if "users" not in table.keys
                else "; this file shows it: its 100% column falls below the run's "
                "max so far."
            )
        )
    elif scope == "cumulative":
        scope_text = (
            "The percentiles are over the whole run up to each row (Locust 1.2 and "
            "later write these, except with --csv-full-history from late 2021 on, "
            "locust PR #1873), not over each interval: every 100% value equals the "
            "run's max so far."
        )
    else:
        scope_text = (
            "Whether the percentiles cover the last ~10 s (Locust 0.13-1.1, and "
            "versions from late 2021 with --csv-full-history) or the whole run up to "
            "each row (Locust 1.2 and later otherwise) could not be told from this "
            "file."
        )
    note = (
        f"From Locust's {table.path.name}. ts is the start of the interval that ends "
        "at the row's Timestamp (the previous row's); interval_s is the step between "
        "timestamps; requests and failures are differences of the cumulative "
        "counts; throughput is Locust's Requests/s, a rate averaged over the 10 s "
        "ending about 2 s before the row, not this interval's count over its "
        "length; users is "
        "the User Count at the row; "
        + (
            "mean_ms is derived from the cumulative mean and count; "
            if precise_mean
            else "mean_ms is missing: this file writes the cumulative mean as whole "
            "ms, too coarse to derive an interval's mean; "
        )
        + "max_ms is missing (only the run's max so far is written). "
        + scope_text
        + " "
        + ROUNDING_NOTE
    )
    result.provenance["intervals"] = ("aggregate", note)


def _blank_zero_percentiles(frame: pd.DataFrame, pct_keys: list[str]) -> int:
    """Set to NaN the rows whose percentiles are all 0 while requests were made."""
    if not pct_keys:
        return 0
    values = frame[pct_keys].astype(float)
    zero = (values == 0).all(axis=1) & (frame["requests"] > 0)
    frame.loc[zero, pct_keys] = math.nan
    return int(zero.sum())


def _percentile_scope(frame: pd.DataFrame, table: _Table) -> str:
    """``"current"``, ``"cumulative"`` or ``"unknown"``: what the history's percentiles
    cover, told by comparing the 100% column with the run's max so far."""
    if "users" not in table.keys:
        return "current"  # 0.13-0.14: get_current_response_time_percentile
    if "pct:100" not in frame or "max" not in frame:
        return "unknown"
    rows = frame[frame["pct:100"].notna() & (frame["requests"] > 0)]
    if rows.empty:
        return "unknown"
    bucket = rows["max"].map(_bucket)
    if (rows["pct:100"] < bucket).any():
        return "current"
    return "cumulative"


def _bucket(ms: float) -> float:
    """Locust's rounding of one response time (``bucket_response_time``)."""
    if ms < 100:
        return float(round(ms))
    if ms < 1000:
        return float(round(ms, -1))
    if ms < 10000:
        return float(round(ms, -2))
    return float(round(ms, -3))


def _history_series(group: pd.DataFrame, precise_mean: bool) -> pd.DataFrame:
    """Intervals of one endpoint from its cumulative history rows."""
    group = group.sort_values(["_time", "_order"], kind="stable")
    group = group.drop_duplicates("_time", keep="last")
    times = group["_time"]
    seconds = group["timestamp"].to_numpy(dtype=float)
    steps = np.diff(seconds)
    typical = float(np.median(steps[steps > 0])) if (steps > 0).any() else math.nan
    step = np.concatenate([[typical], steps])

    count = group["requests"].to_numpy(dtype=float)
    failed = (
        group["failures"].to_numpy(dtype=float)
        if "failures" in group
        else np.full(len(group), math.nan)
    )
    previous = np.concatenate([[0.0], count[:-1]])
    previous_failed = np.concatenate([[0.0], failed[:-1]])
    reset = count < previous
    previous[reset] = 0.0
    previous_failed[reset] = 0.0
    requests = count - previous
    failures = failed - previous_failed

    mean = np.full(len(group), math.nan)
    if precise_mean and "mean" in group:
        total = group["mean"].to_numpy(dtype=float) * count
        previous_total = np.concatenate([[0.0], total[:-1]])
        previous_total[reset] = 0.0
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = np.where(requests > 0, (total - previous_total) / requests, math.nan)

    start = times - pd.to_timedelta(np.nan_to_num(step, nan=0.0), unit="s")
    out = pd.DataFrame(
        {
            "ts": start.to_numpy(),
            "interval_s": step,
            "endpoint": group["endpoint"].to_numpy(),
            "requests": pd.array(requests, dtype="Float64").astype("Int64"),
            "failures": pd.array(failures, dtype="Float64").astype("Int64"),
            "throughput": group["rps"].to_numpy(dtype=float),
            "users": group["users"].to_numpy(dtype=float)
            if "users" in group
            else math.nan,
            "mean_ms": mean,
            "max_ms": math.nan,
        }
    )
    for key, column in _PCT_KEYS.items():
        out[column] = group[key].to_numpy(dtype=float) if key in group else math.nan
    out["ts"] = pd.to_datetime(out["ts"], utc=True)
    out.attrs["resets"] = int(reset.sum())
    return out


def _endpoints_from_history(table: _Table, result: Ingested) -> None:
    """Endpoints from the last history row of each endpoint, when no stats file was
    given: the cumulative totals there are the run's totals at that moment."""
    if not table.rows:
        return
    frame = pd.DataFrame(table.rows)
    frame["_method"] = [_method(m) for m in frame.get("method", [None] * len(frame))]
    scope = result.meta.get("history_percentiles")
    first, last = frame["timestamp"].min(), frame["timestamp"].max()
    rows = []
    for _, group in frame.groupby(["_method", "name"], dropna=False, sort=False):
        row = dict(group.iloc[-1])
        if scope != "cumulative":
            row = {k: v for k, v in row.items() if not str(k).startswith("pct:")}
        span = last - first
        row["rps"] = row["requests"] / span if span > 0 else math.nan
        method = row.pop("_method")
        rows.append(
            _endpoint_row(None if pd.isna(method) else method, row["name"], row)
        )
    frame = _endpoint_frame(rows)
    _check_percentiles(frame, table, result)
    result.endpoints = frame
    result.provenance["endpoints"] = (
        "aggregate",
        f"From the last row of each endpoint in Locust's {table.path.name} (no "
        "_stats.csv was given): its cumulative counts, mean, min, max and median; "
        "throughput is requests over the span of the history's timestamps; "
        + (
            "percentiles are the whole-run ones of that row. "
            if scope == "cumulative"
            else "p50 is the whole-run median; other percentiles are missing because "
            "the history's percentiles cover a recent window, or may. "
        )
        + ROUNDING_NOTE,
    )


# -- failures and exceptions -----------------------------------------------------------


def status_from_error(error: str) -> int | None:
    """The HTTP status an error text names (``"404 Client Error ..."``), or None."""
    match = _STATUS.search(error or "")
    if not match:
        return None
    return int(next(g for g in match.groups() if g))


def _read_failures(table: _Table, result: Ingested) -> None:
    rows = []
    for row in table.rows:
        method = _method(row.get("method"))
        name = row["name"]
        rows.append(
            {
                "endpoint": endpoint_label(method, name),
                "method": method,
                "name": name,
                "status": status_from_error(row["error"]),
                "error": row["error"],
                "count": int(row["occurrences"]),
            }
        )
    columns = ["endpoint", "method", "name", "status", "error", "count"]
    frame = pd.DataFrame(rows, columns=columns)
    frame["status"] = pd.array(frame["status"], dtype="Int64")
    frame["count"] = pd.array(frame["count"], dtype="Int64")
    result.errors = frame.sort_values(
        ["count", "endpoint"], ascending=[False, True], kind="stable"
    ).reset_index(drop=True)
    result.provenance["errors"] = (
        "aggregate",
        f"Locust's own error counts from {table.path.name}; status is parsed from the "
        "error text where it names one (e.g. '404 Client Error'), else missing.",
    )


def _read_exceptions(table: _Table, result: Ingested) -> None:
    result.meta["exceptions"] = [
        {
            "count": int(row["count"]),
            "message": row["message"],
            "traceback": row["traceback"],
            "nodes": row["nodes"],
        }
        for row in table.rows
    ]


# -- JSON ------------------------------------------------------------------------------

_JSON_KEYS = ("name", "method", "num_requests", "num_failures", "response_times")


def _read_json(files: list[Path], encoding: str | None) -> Ingested:
    if len(files) != 1:
        raise InputError(
            f"{len(files)} Locust JSON files were given; each is a whole run. Ingest "
            "one at a time."
        )
    path = files[0]
    text, _ = read_text(path, encoding)
    try:
        entries = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"The file is not valid JSON ({exc.msg}, column {exc.colno}); a Locust "
            "--json export is one JSON list.",
            path,
            exc.lineno,
        ) from exc
    if not isinstance(entries, list) or not all(
        isinstance(e, dict) and all(k in e for k in _JSON_KEYS) for e in entries
    ):
        raise InputError(
            "This JSON file is not the output of locust --json: that is a list of "
            f"objects with {', '.join(_JSON_KEYS)}.",
            path,
        )
    try:
        return _json_result(path, entries)
    except (TypeError, ValueError, AttributeError) as exc:
        raise InputError(
            f"An entry of this Locust JSON file has a value of the wrong type ({exc}); "
            "the file may have been edited or cut short.",
            path,
        ) from exc


def _json_result(path: Path, entries: list[dict[str, Any]]) -> Ingested:
    result = Ingested(
        tool="locust", fmt="locust-json", tool_version="2.x?", files=[path]
    )
    result.meta["csv_full_history"] = None
    starts = [e["start_time"] for e in entries if e.get("start_time")]
    ends = [
        e["last_request_timestamp"] for e in entries if e.get("last_request_timestamp")
    ]
    span = max(ends) - min(starts) if starts and ends else math.nan
    if starts and ends:
        result.meta["start"] = pd.Timestamp(min(starts), unit="s", tz="UTC")
        result.meta["end"] = pd.Timestamp(max(ends), unit="s", tz="UTC")
        result.meta["duration_s"] = round(span, 3)

    if not any(e["num_requests"] for e in entries):
        where = "its one entry" if len(entries) == 1 else f"its {len(entries)} entries"
        result.warn(
            f"{path}: the run holds 0 requests: none of {where} counts a request, "
            "so there are no latencies, error rates or throughput to analyse.",
            DataWarning,
        )
    rows = [_json_endpoint(e, e.get("method"), e["name"], span) for e in entries]
    if entries:
        rows.append(_json_endpoint(_merge_entries(entries), None, "Aggregated", span))
    result.endpoints = _endpoint_frame(rows)
    result.provenance["endpoints"] = (
        "aggregate",
        f"Computed by perflab from Locust's serialized statistics in {path.name}: "
        "counts, mean, min and max as Locust kept them; percentiles by nearest rank "
        "over Locust's rounded response-time histogram (Locust's own CSV uses rank "
        "floor(q*n)+1, so may differ by one bucket); throughput is requests over the "
        "time from the first entry's start to the last request. " + ROUNDING_NOTE,
    )
    result.intervals = _json_intervals(entries)
    result.provenance["intervals"] = (
        "aggregate",
        f"Per-second request and failure counts from {path.name} "
        "(num_reqs_per_sec, num_fail_per_sec), counted in the second Locust logged "
        "each request, which is when it completed; no latency per interval.",
    )
    return result


def _merge_entries(entries: list[dict[str, Any]]) -> dict[str, Any]:
    histogram: dict[str, int] = {}
    for entry in entries:
        for key, count in entry["response_times"].items():
            histogram[key] = histogram.get(key, 0) + count
    mins = [
        e["min_response_time"]
        for e in entries
        if e.get("min_response_time") is not None
    ]
    return {
        "num_requests": sum(e["num_requests"] for e in entries),
        "num_none_requests": sum(e.get("num_none_requests", 0) for e in entries),
        "num_failures": sum(e["num_failures"] for e in entries),
        "total_response_time": sum(e.get("total_response_time", 0) for e in entries),
        "max_response_time": max(e.get("max_response_time", 0) for e in entries),
        "min_response_time": min(mins) if mins else None,
        "total_content_length": sum(e.get("total_content_length", 0) for e in entries),
        "response_times": histogram,
    }


def histogram_percentiles(
    histogram: dict[Any, int], percentiles: Sequence[float] = PERCENTILES
) -> dict[str, float]:
    """Nearest-rank percentiles of a ``{response time: count}`` histogram.

    Parameters
    ----------
    histogram
        Locust's ``response_times``: rounded response time in ms (a number, or its
        text as JSON keys are) to the number of requests.
    percentiles
        Percentiles on the 0-100 scale.

    Returns
    -------
    dict
        Column name (``p95``) to the smallest response time with at least q of the
        requests at or below it (rank ``ceil(q * n)``, at least 1), as
        :func:`perflab.statistics.percentiles` defines nearest rank; NaN when empty.
    """
    names = [percentile_column(p) for p in percentiles]
    items = sorted((float(k), int(v)) for k, v in histogram.items() if int(v) > 0)
    if not items:
        return dict.fromkeys(names, math.nan)
    values = np.array([v for v, _ in items])
    cumulative = np.cumsum([c for _, c in items])
    total = cumulative[-1]
    out = {}
    for name, p in zip(names, percentiles, strict=True):
        rank = max(1, math.ceil(round(p / 100.0 * total, 9)))
        out[name] = float(values[np.searchsorted(cumulative, rank)])
    return out


def _json_endpoint(
    entry: dict[str, Any], method: str | None, name: str, span: float
) -> dict[str, Any]:
    requests = float(entry["num_requests"])
    timed = requests - entry.get("num_none_requests", 0)
    row = {
        "requests": requests,
        "failures": float(entry["num_failures"]),
        "rps": requests / span if span and span > 0 else math.nan,
        "mean": entry.get("total_response_time", 0) / timed if timed > 0 else math.nan,
        "min": entry.get("min_response_time"),
        "max": entry.get("max_response_time") if timed > 0 else math.nan,
        "bytes": entry.get("total_content_length", 0) / requests
        if requests
        else math.nan,
    }
    row["min"] = math.nan if row["min"] is None else float(row["min"])
    out = _endpoint_row(_method(method), name, row)
    out.update(histogram_percentiles(entry["response_times"]) if timed > 0 else {})
    return out


def _json_intervals(entries: list[dict[str, Any]]) -> pd.DataFrame:
    rows = []
    overall: dict[int, list[int]] = {}
    for entry in entries:
        label = endpoint_label(_method(entry.get("method")), entry["name"])
        per_second = entry.get("num_reqs_per_sec") or {}
        failed = entry.get("num_fail_per_sec") or {}
        for second in sorted({*map(int, per_second), *map(int, failed)}):
            count = int(per_second.get(str(second), per_second.get(second, 0)))
            fails = int(failed.get(str(second), failed.get(second, 0)))
            rows.append((second, label, count, fails))
            total = overall.setdefault(second, [0, 0])
            total[0] += count
            total[1] += fails
    if overall:
        for second in range(min(overall), max(overall) + 1):
            count, fails = overall.get(second, (0, 0))
            rows.append((second, OVERALL, count, fails))
    frame = pd.DataFrame(rows, columns=["second", "endpoint", "requests", "failures"])
    frame.insert(0, "ts", pd.to_datetime(frame.pop("second"), unit="s", utc=True))
    frame.insert(1, "interval_s", 1.0)
    frame["throughput"] = frame["requests"].astype(float)
    frame["requests"] = frame["requests"].astype("Int64")
    frame["failures"] = frame["failures"].astype("Int64")
    return frame.sort_values(["endpoint", "ts"], kind="stable").reset_index(drop=True)


__all__ = [
    "FORMATS",
    "ROUNDING_NOTE",
    "histogram_percentiles",
    "read",
    "read_text",
    "sniff",
    "status_from_error",
]

"""Read k6's exports: ``--out csv``, ``--out json`` and the end-of-test summaries.

Formats
-------
``k6-csv``
    ``k6 run --out csv=results.csv`` (optionally gzipped): one row per metric sample,
    columns found by header name (the column set changed between k6 versions), every
    ``timeFormat`` (unix seconds, milli, micro or nanoseconds, RFC 3339).
``k6-json``
    ``k6 run --out json=results.json`` (optionally gzipped): one JSON object per line,
    ``Metric`` lines describing a metric, ``Point`` lines holding one sample.
``k6-summary``
    ``--summary-export`` (the legacy flat shape) or the JSON that ``handleSummary``
    receives (``metrics.<name>.values``). Aggregates only, no per-request samples.

How samples become requests
---------------------------
Every HTTP request makes k6 emit one sample per ``http_req_*`` metric, all with the
same tags and the same timestamp, one after the other. A request is the
``http_req_duration`` sample joined with its tags:

* ``latency_ms`` is ``http_req_duration`` (sending + waiting + receiving, in ms; the
  time spent waiting for and opening a connection is not in it).
* k6 stamps the samples with the time the request *finished*. ``ts`` (request start)
  is that time minus ``http_req_duration``, i.e. the moment k6 began sending the
  request, so ``ts + latency_ms`` is k6's own timestamp exactly.
* ``ok`` is the ``expected_response`` tag when k6 recorded it; else the value of the
  ``http_req_failed`` sample that follows the request's samples (1 means failed);
  else k6's default rule (status 200-399 and no error).
* ``status`` is null when there was no response (k6 writes ``0``), ``error`` is the
  ``error`` tag (or ``k6 error code N`` for a network error without a message),
  ``user`` is the ``vu`` tag or metadata when k6 recorded it, ``bytes`` is null: k6
  counts ``data_received`` per iteration, not per request.
* Requests of ``setup()`` and ``teardown()`` (group ``::setup`` / ``::teardown``) are
  left out of the requests and counted in ``run.json`` as
  ``setup_teardown_requests``.
* Whole-second timestamps (CSV ``timeFormat`` unix or rfc3339) are k6's times cut
  down to the second: a :class:`~perflab.errors.PrecisionWarning` says so, and
  ``run.json`` records ``timestamp_resolution_s``. When all requests end within one
  second, the run's end is widened to the end of that second (the latest the
  timestamps allow), ``duration_s`` is taken from it, ``requests_span_s`` keeps the
  requests' own span, and the warning says that a throughput over that span is
  not meaningful.

Reading large files
-------------------
A single, plain UTF-8 CSV is read by DuckDB (:func:`read_fast`): it parses the file
in parallel, and the pairing of samples into requests, the rules above and the
run's metadata are SQL over the wanted samples. Anything it does not cover (see
:func:`read_fast`) goes to the streaming reader. The 5,000,000-row, 716 MB CSV of
``benchmarks/ingest_speed.py`` (455,000 requests) ingests in about 2 s on two cores,
peaking at 0.6 GiB of resident memory.

The streaming reader streams both per-sample formats in blocks of
:data:`_CSV_BLOCK_BYTES` through Arrow's CSV reader (for JSON lines, only to split
lines); only the ``http_req_duration``, ``http_req_failed``, ``vus`` and ``checks``
samples are converted, JSON lines by Arrow's JSON parser. Memory stays bounded
whatever the file size: reading a 5-million-row, 880 MB CSV peaked at 0.55 GB of
resident memory, the whole ``perflab ingest`` at 0.65 GB. Larger blocks are hardly
faster, and Arrow's allocator then holds far more memory (0.7 GB for the parser
alone at 16 MB).

Large files show a progress bar on stderr when it is a terminal.

Limitations
-----------
A malformed JSON line is noticed when it is cut short (it does not end with ``}``) or
when it holds one of the samples read; a corrupted line of another metric that still
ends with ``}`` is ignored unnoticed, as the metric is not read anyway. JSON lines are
expected as k6 writes them (compact, ``"metric"`` first or last).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.json as pajson

from perflab.errors import InputError, PrecisionWarning
from perflab.ingest.base import (
    GZIP_MAGIC,
    Ingested,
    RequestSink,
    detect_encoding,
    execute,
    open_binary,
    plain_encoding,
    progress_bar,
    read_text,
    sql_path,
)
from perflab.store import (
    OVERALL,
    PERCENTILES,
    endpoint_label,
    percentile_column,
)

log = logging.getLogger(__name__)

FORMATS = ("k6-csv", "k6-json", "k6-summary")

DURATION = "http_req_duration"
FAILED = "http_req_failed"
VUS = "vus"
CHECKS = "checks"
_WANTED = (DURATION, FAILED, VUS, CHECKS)

#: Tags a request row is built from (CSV columns of the same names).
_TAGS = (
    "method",
    "name",
    "url",
    "status",
    "expected_response",
    "error",
    "error_code",
    "group",
    "scenario",
    "check",
    "vu",
)
_CSV_HEAD = ("metric_name", "timestamp", "metric_value")

_CSV_BLOCK_BYTES = 4 * 2**20

#: How k6 computes the statistics in its summaries (metrics/sink.go, TrendSink.P).
SUMMARY_NOTE = (
    "k6's own end-of-test summary: trend percentiles are k6's, computed over all "
    "samples by linear interpolation between closest ranks (numpy's 'linear'), "
    "while perflab's exact tables use nearest rank; only the statistics k6 was asked "
    "for (summaryTrendStats) are present, and request counts include setup() and "
    "teardown() requests."
)

#: k6's name of each statistic a summary row takes ("p(99.9)" for p99_9).
_SUMMARY_STATS = {
    "mean_ms": "avg",
    "min_ms": "min",
    "max_ms": "max",
    **{percentile_column(p): "med" if p == 50 else f"p({p:g})" for p in PERCENTILES},
}
_ENDPOINT_COLUMNS = [
    "endpoint",
    "method",
    "name",
    "requests",
    "failures",
    "error_rate",
    "throughput",
    *_SUMMARY_STATS,
    "bytes_mean",
]

_SUMMARY_KEYS = re.compile(
    r'"(root_group|http_req_duration|http_reqs|iteration_duration|iterations|'
    r'vus_max|data_received|data_sent)"\s*:'
)


# -- detection ------------------------------------------------------------------------


def sniff(path: Path, head: bytes) -> str | None:
    """The k6 format of a file from its first bytes, or None when it is not k6's.

    Parameters
    ----------
    path
        The file (unused beyond messages; the content decides).
    head
        The first bytes of the file, already un-gzipped.

    Returns
    -------
    str or None
        ``"k6-csv"``, ``"k6-json"``, ``"k6-summary"`` or None.
    """
    text = head.decode("utf-8", errors="replace").lstrip("\ufeff \t\r\n")
    first_line = text.split("\n", 1)[0].rstrip("\r")
    if first_line.startswith("metric_name,"):
        header = next(csv.reader([first_line]), [])
        return "k6-csv" if tuple(header[:3]) == _CSV_HEAD else None
    if not text.startswith("{"):
        return None
    try:
        first = json.loads(first_line)
    except ValueError:
        first = None
    if isinstance(first, dict) and first.get("type") in ("Metric", "Point"):
        if "metric" in first and isinstance(first.get("data"), dict):
            return "k6-json"
    if isinstance(first, dict):
        metrics = first.get("metrics")
        if isinstance(metrics, dict) and (
            "root_group" in first or any(_is_k6_metric(k) for k in metrics)
        ):
            return "k6-summary"
        return None
    if re.search(r'"metrics"\s*:\s*\{', text) and _SUMMARY_KEYS.search(text):
        return "k6-summary"
    return None


def _is_k6_metric(name: str) -> bool:
    base = name.split("{", 1)[0]
    return base.startswith(("http_req", "iteration")) or base in (
        "vus",
        "vus_max",
        "data_received",
        "data_sent",
        "checks",
        "iterations",
    )


# -- entry point ----------------------------------------------------------------------


def read(
    files: list[Path], sink: RequestSink, encoding: str | None, fmt: str
) -> Ingested:
    """Read k6 exports of one format.

    Parameters
    ----------
    files
        The files, in the order given; several CSV or JSON files are read as one run.
    sink
        Receives the per-request rows (CSV and JSON only).
    encoding
        Text encoding; detected when None (k6 itself always writes UTF-8).
    fmt
        One of :data:`FORMATS`.

    Returns
    -------
    Ingested
        For CSV and JSON: metadata (``start``, ``end``, ``duration_s``,
        ``peak_users``, ``users_series``, ``scenarios``, ``host``, ``thresholds``,
        ``setup_teardown_requests``); the tables are derived from the requests. For a
        summary: an ``endpoints`` table of k6's aggregates, plus ``thresholds`` and
        ``checks``.

    Raises
    ------
    InputError
        When a file is empty, is not a k6 export of format ``fmt``, or holds no
        samples.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {FORMATS}, not {fmt!r}")
    result = Ingested(tool="k6", fmt=fmt, files=list(files))
    for path in files:
        if path.stat().st_size == 0:
            raise InputError("The file is empty; it holds no k6 results.", path)
    if fmt == "k6-summary":
        if len(files) > 1:
            raise InputError(
                "Several k6 summaries were given; a summary's aggregates cannot be "
                "merged with another's. Ingest each summary on its own.",
                files[0],
            )
        _read_summary(files[0], result, encoding)
        return result

    collector = _Collector(sink)
    for path in files:
        if fmt == "k6-csv":
            _read_csv(path, collector, result, encoding)
        else:
            _read_json(path, collector, result, encoding)
        collector.end_file()
    collector.finish(result)
    return result


# -- requests from samples ------------------------------------------------------------


class _Collector:
    """Turns batches of samples (in file order) into request rows and run metadata.

    A batch is a DataFrame with the columns ``line``, ``metric``, ``time`` (UTC),
    ``value`` and the tag columns of :data:`_TAGS`, holding only the metrics of
    :data:`_WANTED`, in the order they were written.
    """

    def __init__(self, sink: RequestSink):
        self.sink = sink
        self.requests = 0
        self.setup_teardown = 0
        self.by_rule: Counter[str] = Counter()
        self.start: pd.Timestamp | None = None
        self.end: pd.Timestamp | None = None
        self.users: list[pd.DataFrame] = []
        self.scenarios: set[str] = set()
        self.origins: Counter[str] = Counter()
        self.thresholds: list[dict[str, Any]] = []
        self.checks: dict[tuple[str, str], list[int]] = {}
        #: The files whose samples' times are whole seconds (timeFormat unix or
        #: rfc3339), by name
        self.whole_second_files: list[str] = []
        self._carry: pd.DataFrame | None = None

    def add(self, batch: pd.DataFrame) -> None:
        """Take one batch of samples."""
        if batch.empty:
            return
        metric = batch["metric"]
        users = batch[metric == VUS]
        if not users.empty:
            self.users.append(
                pd.DataFrame({"ts": users["time"], "users": users["value"]})
            )
            self._widen(users["time"].min(), users["time"].max())
        checks = batch[metric == CHECKS]
        if not checks.empty:
            self._count_checks(checks)
        samples = batch[(metric != VUS) & (metric != CHECKS)]
        if self._carry is not None:
            samples = pd.concat([self._carry, samples], ignore_index=True)
            self._carry = None
        if samples.empty:
            return
        # The request's http_req_failed sample comes after its http_req_duration;
        # keep a trailing duration sample back until its partner has been read.
        if samples["metric"].iloc[-1] == DURATION:
            self._carry = samples.iloc[-1:]
            samples = samples.iloc[:-1]
        self._emit(samples)

    def _count_checks(self, checks: pd.DataFrame) -> None:
        passed = checks["value"].to_numpy() != 0
        keys = zip(
            checks["group"].fillna("").astype(str),
            checks["check"].fillna("").astype(str),
            strict=True,
        )
        for key, ok in zip(keys, passed, strict=True):
            counts = self.checks.setdefault(key, [0, 0])
            counts[0 if ok else 1] += 1

    def end_file(self) -> None:
        """Emit what was held back: samples never pair across files."""
        if self._carry is not None:
            carry, self._carry = self._carry, None
            self._emit(carry)

    def _emit(self, samples: pd.DataFrame) -> None:
        if samples.empty:
            return
        is_duration = (samples["metric"] == DURATION).to_numpy()
        values = samples["value"].to_numpy(dtype=float)
        next_is_failed = np.zeros(len(samples), dtype=bool)
        next_is_failed[:-1] = ~is_duration[1:]
        # k6 stamps every sample of one request with the same time.
        times = samples["time"].array.asi8
        next_is_failed[:-1] &= times[1:] == times[:-1]
        next_value = np.full(len(samples), np.nan)
        next_value[:-1] = values[1:]
        failed_value = np.where(next_is_failed, next_value, np.nan)[is_duration]
        frame = samples[is_duration].reset_index(drop=True)
        if frame.empty:
            return

        group = frame["group"].fillna("")
        apart = group.isin(["::setup", "::teardown"]) | group.str.startswith(
            ("::setup::", "::teardown::")
        )
        if apart.any():
            self.setup_teardown += int(apart.sum())
            keep = ~apart.to_numpy()
            frame = frame[keep].reset_index(drop=True)
            failed_value = failed_value[keep]
            if frame.empty:
                return

        requests = self._requests(frame, failed_value)
        self.sink.append(requests)
        self.requests += len(requests)
        self._widen(requests["ts"].min(), frame["time"].max())
        self.scenarios.update(
            s for s in frame["scenario"].dropna().unique() if isinstance(s, str) and s
        )
        # In order of first appearance, as the fast path counts them: of origins
        # seen equally often, the first one is the run's host.
        for url, count in frame["url"].dropna().value_counts(sort=False).items():
            origin = _origin(url)
            if origin:
                self.origins[origin] += int(count)

    def _requests(self, frame: pd.DataFrame, failed_value: np.ndarray) -> pd.DataFrame:
        end = frame["time"]
        latency_ms = frame["value"].astype(float)
        ts = end - pd.to_timedelta(np.round(latency_ms.to_numpy() * 1e6), unit="ns")

        status = pd.to_numeric(frame["status"], errors="coerce")
        status = status.where(status > 0).astype("Int32")
        name = _text(frame["name"]).fillna(_text(frame["url"])).fillna("unknown")
        method = _text(frame["method"])
        endpoint = (method + " " + name).fillna(name)

        error = _text(frame["error"])
        code = _text(frame["error_code"])
        no_message = error.isna() & code.notna() & status.isna().to_numpy()
        error = error.where(~no_message, "k6 error code " + code)

        expected = _text(frame["expected_response"]).str.lower()
        by_tag = expected.isin(["true", "false"]).to_numpy()
        by_failed = ~by_tag & ~np.isnan(failed_value)
        by_status = ~by_tag & ~by_failed
        status_ok = (
            status.between(200, 399).fillna(False).to_numpy(dtype=bool)
            & error.isna().to_numpy()
        )
        ok = np.where(
            by_tag,
            (expected == "true").to_numpy(dtype=bool),
            np.where(by_failed, failed_value == 0, status_ok),
        )
        self.by_rule.update(
            {
                "expected_response": int(by_tag.sum()),
                "http_req_failed": int(by_failed.sum()),
                "status": int(by_status.sum()),
            }
        )

        # bytes and worker are left out: the run store fills them with nulls.
        return pd.DataFrame(
            {
                "ts": ts,
                "endpoint": endpoint,
                "method": method,
                "name": name,
                "status": status,
                "latency_ms": latency_ms,
                "ok": ok.astype(bool),
                "error": error,
                "user": pd.to_numeric(frame["vu"], errors="coerce").astype("Int64"),
            }
        )

    def _widen(self, first: pd.Timestamp, last: pd.Timestamp) -> None:
        if pd.isna(first) or pd.isna(last):
            return
        self.start = first if self.start is None else min(self.start, first)
        self.end = last if self.end is None else max(self.end, last)

    def _widen_to_resolution(self, result: Ingested) -> str | None:
        """Widen the run's span to whole seconds when the requests fit in one.

        k6 cuts a whole-second time down to its second, and stamps a sample when
        its request ends: every request stamped second S ended within [S, S + 1).
        When the requests' own times span less than that second, their span says
        nothing about the run's length (three requests within 7 ms would be
        413 requests/s), so the run's end is taken to the end of the last second
        stamped, the latest end the timestamps allow. Returns what was done, for
        the warning about the whole-second timestamps, or None.
        """
        if self.start is None or self.end is None or self.requests == 0:
            return None
        measured = (self.end - self.start).total_seconds()
        if measured >= 1.0 or self.end != self.end.floor("s"):
            return None
        meta = result.meta
        meta["end"] = self.end + pd.Timedelta(seconds=1)
        meta["duration_s"] = round((meta["end"] - self.start).total_seconds(), 3)
        meta["requests_span_s"] = round(measured, 6)
        widened = meta["duration_s"]
        own = self.requests / max(measured, 1e-3)
        return (
            f"All {self.requests} request(s) end within one second "
            f"({self.end:%Y-%m-%d %H:%M:%S} UTC), so their own times span only "
            f"{measured:.3f} s, less than the timestamps' 1 s resolution: the run's "
            "end was widened to the end of that second, and its duration in "
            f"run.json is {widened:.3f} s instead of {measured:.3f} s. Throughput "
            f"over the requests' own span ({own:,.0f} requests/s) is not "
            "meaningful; over the widened span it is "
            f"{self.requests / widened:.3g} requests/s, a lower bound no more exact "
            "than the 1 s timestamps."
        )

    def finish(self, result: Ingested) -> None:
        """Fill the result's metadata and issue the run-wide warnings."""
        meta = result.meta
        if self.start is not None and self.end is not None:
            meta["start"] = self.start
            meta["end"] = self.end
            meta["duration_s"] = round((self.end - self.start).total_seconds(), 3)
        widening = None
        if self.whole_second_files:
            meta["timestamp_resolution_s"] = 1.0
            widening = self._widen_to_resolution(result)
        for i, name in enumerate(self.whole_second_files):
            message = _whole_seconds_message(name)
            if widening is not None and i == len(self.whole_second_files) - 1:
                message += " " + widening
            result.warn(message, PrecisionWarning)
        if self.users:
            series = pd.concat(self.users, ignore_index=True)
            series = series.sort_values("ts", kind="stable")
            meta["users_series"] = series.reset_index(drop=True)
            meta["peak_users"] = int(series["users"].max())
        if self.scenarios:
            meta["scenarios"] = sorted(self.scenarios)
            meta["scenario"] = ", ".join(meta["scenarios"])
        if self.origins:
            meta["host"] = self.origins.most_common(1)[0][0]
        unique = {(t["metric"], t["expression"]): t for t in self.thresholds}
        meta["thresholds"] = list(unique.values())
        meta["checks"] = [
            {
                "name": name,
                "path": f"{group}::{name}",
                "group": group,
                "passes": passes,
                "fails": fails,
            }
            for (group, name), (passes, fails) in sorted(self.checks.items())
        ]
        meta["setup_teardown_requests"] = self.setup_teardown
        meta["success_rule"] = {k: v for k, v in self.by_rule.items() if v}

        if self.setup_teardown:
            result.warn(
                f"{self.setup_teardown} request(s) made in k6's setup() or teardown() "
                "(group ::setup or ::teardown) were left out of the requests; they "
                "are not part of the load."
            )
        if self.by_rule["status"]:
            result.warn(
                f"k6 recorded neither the expected_response tag nor http_req_failed "
                f"for {self.by_rule['status']} request(s); they were counted as "
                "failed when their status was outside 200-399 or they had an error "
                "(k6's default rule), which may differ from the test's own "
                "responseCallback."
            )
        if self.requests == 0:
            result.warn(
                "The k6 export holds no http_req_duration samples, so there are no "
                "HTTP requests to analyse."
            )
        log.info(
            "k6: %d requests (%d setup/teardown left out)",
            self.requests,
            self.setup_teardown,
        )


def _whole_seconds_message(name: str) -> str:
    return (
        f"{name}: k6 wrote whole-second timestamps (timeFormat unix or rfc3339), so "
        "request start times are only accurate to about 1 s; use --out csv with "
        "timeFormat=unix_micro for finer series."
    )


def _text(column: pd.Series) -> pd.Series:
    """A tag column as text, empty text made missing (k6 writes absent tags empty)."""
    column = column.astype("str")
    return column.where(column != "")


def _origin(url: Any) -> str | None:
    if not isinstance(url, str) or "://" not in url:
        return None
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}" if parts.netloc else None


# -- bad lines ------------------------------------------------------------------------


class _BadLines:
    """Line numbers of one file's lines that could not be used."""

    def __init__(self, path: Path):
        self.path = path
        self.lines: list[int] = []
        self.last_line: int | None = None

    def add(self, lines) -> None:
        self.lines.extend(int(n) for n in lines)

    def report(self, result: Ingested) -> None:
        if not self.lines:
            return
        lines = sorted(set(self.lines))
        shown = ", ".join(str(n) for n in lines[:5])
        more = f" and {len(lines) - 5} more" if len(lines) > 5 else ""
        cut = ""
        if self.last_line is not None and lines[-1] == self.last_line:
            cut = " (the last line is cut off: k6 was probably stopped while writing)"
        result.warn(
            f"{self.path.name}: {len(lines)} malformed line(s) skipped (line "
            f"{shown}{more}){cut}; their samples are left out."
        )


# -- CSV ------------------------------------------------------------------------------


class _CountingReader(io.RawIOBase):
    """A binary stream that counts newlines and remembers its last byte."""

    def __init__(self, handle, progress=None):
        self.handle = handle
        self.progress = progress
        self.newlines = 0
        self.last_byte = b""

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        data = self.handle.read(size)
        if data:
            self.newlines += data.count(b"\n")
            self.last_byte = data[-1:]
            if self.progress is not None:
                raw = getattr(self.handle, "fileobj", None) or self.handle
                self.progress.update(raw.tell() - self.progress.n)
        return data

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


def _csv_header(path: Path, encoding: str) -> list[str]:
    with open_binary(path) as handle:
        line = handle.readline(1 << 20)
    text = line.decode(encoding, errors="replace").lstrip("\ufeff").rstrip("\r\n")
    return next(csv.reader([text]), [])


def _read_csv(
    path: Path, collector: _Collector, result: Ingested, encoding: str | None
) -> None:
    encoding = encoding or detect_encoding(path)
    header = _csv_header(path, encoding)
    missing = [c for c in _CSV_HEAD if c not in header]
    if missing:
        raise InputError(
            f"This is not a k6 CSV export: the header lacks {', '.join(missing)} "
            "(k6 --out csv writes metric_name,timestamp,metric_value first).",
            path,
        )
    if len(set(header)) != len(header):
        raise InputError("The CSV header names a column twice.", path, line=1)
    wanted = [c for c in (*_CSV_HEAD, *_TAGS, "metadata") if c in header]

    bad = _BadLines(path)
    skipped: list[int] = []

    def on_invalid(row) -> str:
        skipped.append(row.number if row.number is not None else -1)
        return "skip"

    progress = progress_bar(path)
    seconds_only = False
    rows_seen = 0
    try:
        with open_binary(path) as handle:
            counting = _CountingReader(handle, progress)
            reader = pacsv.open_csv(
                counting,
                read_options=pacsv.ReadOptions(
                    use_threads=False,
                    block_size=_CSV_BLOCK_BYTES,
                    encoding=_arrow_encoding(encoding),
                ),
                parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
                convert_options=pacsv.ConvertOptions(
                    include_columns=wanted,
                    column_types=dict.fromkeys(wanted, pa.string()),
                    strings_can_be_null=False,
                ),
            )
            for batch, last in _with_last(reader):
                first_row = rows_seen
                rows_seen += batch.num_rows
                if last and counting.last_byte not in (b"\n", b""):
                    total_lines = counting.newlines + 1
                    if total_lines not in skipped and batch.num_rows:
                        # A last line without its newline may be cut anywhere.
                        batch = batch.slice(0, batch.num_rows - 1)
                        bad.add([total_lines])
                    bad.last_line = total_lines
                else:
                    bad.last_line = counting.newlines
                frame, seconds = _csv_batch(batch, first_row, skipped, bad)
                seconds_only = seconds_only or seconds
                collector.add(frame)
    except pa.ArrowInvalid as exc:
        raise InputError(
            f"The k6 CSV export could not be parsed ({exc}). Check that the file is "
            "a complete k6 --out csv export.",
            path,
        ) from exc
    finally:
        if progress is not None:
            progress.close()

    if rows_seen == 0 and not skipped:
        raise InputError(
            "The k6 CSV export has a header but no samples; k6 probably stopped "
            "before its first flush.",
            path,
        )
    bad.add(n for n in skipped if n > 0)
    bad.report(result)
    if seconds_only:
        collector.whole_second_files.append(path.name)
    log.info("read %s (%d CSV rows)", path, rows_seen)


def _with_last(reader) -> Iterator[tuple[pa.RecordBatch, bool]]:
    """The batches of a reader, each with whether it is the last one."""
    previous = None
    for batch in reader:
        if previous is not None:
            yield previous, False
        previous = batch
    if previous is not None:
        yield previous, True


def _csv_batch(
    batch: pa.RecordBatch, first_row: int, skipped: list[int], bad: _BadLines
) -> tuple[pd.DataFrame, bool]:
    """The wanted samples of one CSV batch, with parsed times and values."""
    index = pa.array(np.arange(first_row, first_row + batch.num_rows))
    table = pa.Table.from_batches([batch]).append_column("_row", index)
    mask = pc.is_in(table["metric_name"], value_set=pa.array(_WANTED))
    table = table.filter(mask)
    if table.num_rows == 0:
        return _empty_samples(), False
    if "metadata" in table.column_names:
        # k6 0.4x moved the vu tag into the metadata column: "vu=3&iter=7".
        found = pc.extract_regex(table["metadata"], r"(?:^|&)vu=(?P<vu>\d+)")
        vu = pc.struct_field(found, "vu")
        if "vu" in table.column_names:
            vu = pc.if_else(pc.equal(table["vu"], ""), vu, table["vu"])
            table = table.drop_columns(["vu"])
        table = table.drop_columns(["metadata"]).append_column("vu", vu)
    try:
        number = pc.cast(table["metric_value"], pa.float64())
    except pa.ArrowInvalid:
        number = None
    frame = table.to_pandas()

    times, seconds = _csv_times(frame["timestamp"])
    if number is not None:
        values = pd.Series(number.to_numpy(), index=frame.index)
    else:
        values = pd.to_numeric(frame["metric_value"], errors="coerce")
    broken = (times.isna() | values.isna()).to_numpy()
    if broken.any():
        bad.add(_physical_line(r, skipped) for r in frame["_row"][broken])

    out = pd.DataFrame(
        {
            "line": frame["_row"],
            "metric": frame["metric_name"],
            "time": times,
            "value": values,
        }
    )
    for tag in _TAGS:
        out[tag] = frame[tag] if tag in frame else None
    return out[~broken].reset_index(drop=True), seconds


def _csv_times(text: pd.Series) -> tuple[pd.Series, bool]:
    """k6 CSV timestamps as UTC; also whether they have whole-second resolution.

    Digits are unix time in seconds, milli-, micro- or nanoseconds (told apart by
    magnitude: k6 runs after 2001); anything else is RFC 3339 with its offset.
    """
    text = text.astype(str)
    digits = text.str.fullmatch(r"\d{1,19}").fillna(False).to_numpy(dtype=bool)
    result = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns, UTC]")
    seconds = False
    if digits.any():
        number = text[digits].astype("int64").to_numpy()
        scale = np.select(
            [number < 10**11, number < 10**14, number < 10**17],
            [10**9, 10**6, 10**3],
            default=1,
        )
        result[digits] = pd.to_datetime(number * scale, unit="ns", utc=True)
        seconds = bool((scale == 10**9).any())
    if not digits.all():
        rest = text[~digits]
        parsed = pd.to_datetime(rest, format="ISO8601", utc=True, errors="coerce")
        result[~digits] = parsed.dt.as_unit("ns")
        seconds = seconds or bool(
            (~rest.str.contains(".", regex=False) & parsed.notna()).any()
        )
    return result, seconds


def _physical_line(row: int, skipped: list[int], first_line: int = 2) -> int:
    """The file line of a parsed row (0-based), given the lines the parser skipped.

    ``first_line`` is the line of row 0 when nothing was skipped: 2 below a header.
    """
    line = row + first_line
    for number in sorted(n for n in skipped if n > 0):
        if number <= line:
            line += 1
    return line


def _empty_samples() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "line": pd.Series(dtype="int64"),
            "metric": pd.Series(dtype=object),
            "time": pd.Series(dtype="datetime64[ns, UTC]"),
            "value": pd.Series(dtype=float),
            **{tag: pd.Series(dtype=object) for tag in _TAGS},
        }
    )


# -- JSON lines -----------------------------------------------------------------------


def _read_json(
    path: Path, collector: _Collector, result: Ingested, encoding: str | None
) -> None:
    encoding = encoding or detect_encoding(path)
    bad = _BadLines(path)
    state = {"k6_lines": 0, "lines": 0}
    skipped: list[int] = []

    def on_invalid(row) -> str:
        skipped.append(row.number if row.number is not None else -1)
        return "skip"

    # Arrow's CSV reader, with a delimiter JSON never holds unescaped, splits the
    # file into lines quickly and in bounded memory; each line stays raw bytes.
    progress = progress_bar(path)
    try:
        with open_binary(path) as handle:
            reader = pacsv.open_csv(
                _CountingReader(handle, progress),
                read_options=pacsv.ReadOptions(
                    column_names=["line"],
                    block_size=_CSV_BLOCK_BYTES,
                    use_threads=False,
                    encoding=_arrow_encoding(encoding),
                ),
                parse_options=pacsv.ParseOptions(
                    delimiter="\x01",
                    quote_char=False,
                    escape_char=False,
                    ignore_empty_lines=False,
                    invalid_row_handler=on_invalid,
                ),
                convert_options=pacsv.ConvertOptions(
                    column_types={"line": pa.binary()}
                ),
            )
            for batch in reader:
                first = state["lines"] + 1
                state["lines"] += batch.num_rows
                frame = _json_batch(batch.column(0), first, collector, bad, state)
                collector.add(frame)
    except (pa.ArrowInvalid, UnicodeDecodeError) as exc:
        raise InputError(
            f"The file could not be read as {encoding} text ({exc}); give its "
            "encoding with --encoding.",
            path,
        ) from exc
    finally:
        if progress is not None:
            progress.close()

    if state["k6_lines"] == 0:
        raise InputError(
            "This is not a k6 JSON export: no line is a k6 Metric or Point object "
            '({"type":"Point","metric":...,"data":{...}}).',
            path,
        )
    if skipped:
        # Numbers so far count parsed rows; the parser skipped whole lines.
        bad.lines = [_physical_line(n - 1, skipped, 1) for n in bad.lines]
    bad.add(n for n in skipped if n > 0)
    bad.last_line = state["lines"] + len(skipped)
    bad.report(result)
    log.info("read %s (%d lines)", path, bad.last_line)


def _arrow_encoding(encoding: str) -> str:
    plain = encoding.replace("-", "").replace("_", "").lower()
    return "utf8" if plain in ("utf8", "utf8sig") else encoding


def _json_schema() -> pa.Schema:
    tags = pa.struct([(tag, pa.string()) for tag in _TAGS])
    data = pa.struct(
        [
            ("time", pa.string()),
            ("value", pa.float64()),
            ("tags", tags),
            ("metadata", pa.struct([("vu", pa.string())])),
        ]
    )
    return pa.schema([("metric", pa.string()), ("type", pa.string()), ("data", data)])


def _json_batch(
    lines: pa.Array, first: int, collector: _Collector, bad: _BadLines, state: dict
) -> pd.DataFrame:
    """The wanted samples of a block of JSON lines (first line number ``first``)."""
    # k6 writes compact JSON, one object a line: a Point line starts or (before
    # k6 0.3x) ends with its metric name, a Metric line starts with its type.
    ended = pc.ends_with(lines, "}").to_numpy(zero_copy_only=False)
    for index in np.flatnonzero(~ended):
        text = lines[int(index)].as_py().strip()
        if text:
            try:
                json.loads(text)
            except ValueError:
                bad.add([index + first])
                continue
            ended[index] = True  # valid JSON with trailing blanks
    is_metric = pc.starts_with(lines, '{"type":"Metric"').to_numpy(zero_copy_only=False)
    for index in np.flatnonzero(is_metric & ended):
        try:
            obj = json.loads(lines[int(index)].as_py())
        except ValueError:
            bad.add([index + first])
            continue
        if isinstance(obj, dict) and obj.get("type") == "Metric":
            state["k6_lines"] += 1
            collector.thresholds.extend(_metric_thresholds(obj))

    point = np.zeros(len(lines), dtype=bool)
    for name in _WANTED:
        point |= pc.starts_with(lines, f'{{"metric":"{name}"').to_numpy(
            zero_copy_only=False
        )
        point |= pc.ends_with(lines, f'"metric":"{name}"}}').to_numpy(
            zero_copy_only=False
        )
    wanted = pa.array(point & ended & ~is_metric)
    index = np.flatnonzero(wanted.to_numpy(zero_copy_only=False))
    if index.size == 0:
        return _empty_samples()
    selected = lines.filter(wanted)
    joined = pc.binary_join_element_wise(
        selected, pa.scalar(b"", pa.binary()), pa.scalar(b"\n", pa.binary())
    )
    size = int(np.frombuffer(joined.buffers()[1], np.int32)[len(joined)])
    blob = pa.BufferReader(joined.buffers()[2].slice(0, size))
    try:
        table = pajson.read_json(
            blob,
            read_options=pajson.ReadOptions(use_threads=False, block_size=1 << 26),
            parse_options=pajson.ParseOptions(
                explicit_schema=_json_schema(), unexpected_field_behavior="ignore"
            ),
        )
    except pa.ArrowInvalid:
        # Some line is not valid JSON or has an unexpected shape: go line by line.
        return _json_lines_slowly(selected, index + first, bad, state)

    flat = table.flatten().flatten()
    vu = pc.coalesce(flat["data.tags.vu"], flat["data.metadata.vu"])
    flat = flat.drop_columns(["data.tags.vu", "data.metadata.vu"])
    flat = flat.append_column("vu", vu).append_column("line", pa.array(index + first))
    frame = flat.to_pandas()
    frame.columns = [c.rpartition(".")[2] for c in frame.columns]
    frame = frame.rename(columns={"type": "kind"})
    frame = frame[(frame["kind"] == "Point").to_numpy()].drop(columns="kind")
    state["k6_lines"] += len(frame)
    missing = (frame["time"].isna() | frame["value"].isna()).to_numpy()
    if missing.any():
        bad.add(frame["line"][missing])
        frame = frame[~missing]
    return _json_times(frame.reset_index(drop=True), bad)


def _json_lines_slowly(
    lines: pa.Array, numbers: np.ndarray, bad: _BadLines, state: dict
) -> pd.DataFrame:
    columns = _json_columns()
    for line, lineno in zip(lines.to_pylist(), numbers, strict=True):
        try:
            obj = json.loads(line)
        except ValueError:
            bad.add([lineno])
            continue
        if not isinstance(obj, dict) or obj.get("type") != "Point":
            continue
        state["k6_lines"] += 1
        if not _add_point(columns, int(lineno), obj.get("metric"), obj.get("data")):
            bad.add([lineno])
    if not columns["line"]:
        return _empty_samples()
    frame = pd.DataFrame(columns)
    frame["value"] = frame["value"].astype(float)
    return _json_times(frame, bad)


def _json_columns() -> dict[str, list]:
    return {"line": [], "metric": [], "time": [], "value": [], **{t: [] for t in _TAGS}}


def _add_point(columns: dict[str, list], lineno: int, metric: str, data: Any) -> bool:
    if not isinstance(data, dict):
        return False
    time, value = data.get("time"), data.get("value")
    if not isinstance(time, str) or not isinstance(value, int | float):
        return False
    tags = data.get("tags") or {}
    extra = data.get("metadata") or {}
    columns["line"].append(lineno)
    columns["metric"].append(metric)
    columns["time"].append(time)
    columns["value"].append(value)
    for tag in _TAGS:
        found = tags.get(tag)
        if found is None and tag == "vu":
            found = extra.get("vu")
        columns[tag].append(found)
    return True


def _json_times(frame: pd.DataFrame, bad: _BadLines) -> pd.DataFrame:
    """Parse the ``time`` column (RFC 3339 with any offset) to UTC nanoseconds."""
    if frame.empty:
        return _empty_samples()
    times = pd.to_datetime(frame["time"], format="ISO8601", utc=True, errors="coerce")
    frame["time"] = times.dt.as_unit("ns")
    broken = frame["time"].isna().to_numpy()
    if broken.any():
        bad.add(frame["line"][broken])
        frame = frame[~broken].reset_index(drop=True)
    return frame


def _metric_thresholds(obj: dict) -> list[dict[str, Any]]:
    """Thresholds declared on a ``Metric`` line (their outcome is not recorded)."""
    data = obj.get("data")
    if not isinstance(data, dict):
        return []
    name = data.get("name") or obj.get("metric")
    declared = data.get("thresholds") or []
    if isinstance(declared, dict):
        declared = declared.get("thresholds") or declared.get("Thresholds") or []
    found = []
    for item in declared if isinstance(declared, list) else []:
        if isinstance(item, dict):
            item = item.get("threshold") or item.get("source") or item.get("Source")
        if isinstance(item, str) and item:
            found.append({"metric": name, "expression": item, "ok": None})
    return found


# -- summaries ------------------------------------------------------------------------


def _read_summary(path: Path, result: Ingested, encoding: str | None) -> None:
    text, _ = read_text(path, encoding)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"The k6 summary is not valid JSON ({exc.msg}, column {exc.colno}); it "
            "may have been cut off.",
            path,
            line=exc.lineno,
        ) from exc
    metrics = data.get("metrics") if isinstance(data, dict) else None
    if not isinstance(metrics, dict):
        raise InputError(
            "This is not a k6 summary: there is no top-level 'metrics' object.", path
        )
    modern = any(
        isinstance(m, dict) and isinstance(m.get("values"), dict)
        for m in metrics.values()
    )
    shape = "handleSummary" if modern else "summary-export"

    def stats(name: str) -> dict[str, Any]:
        metric = metrics.get(name)
        if not isinstance(metric, dict):
            return {}
        values = metric.get("values") if modern else metric
        return values if isinstance(values, dict) else {}

    meta = result.meta
    meta["k6_summary_shape"] = shape
    meta["thresholds"] = _summary_thresholds(metrics)
    meta["checks"] = _summary_checks(data.get("root_group"))
    vus = stats("vus")
    if "max" in vus:
        meta["peak_users"] = int(vus["max"])
    reqs = stats("http_reqs")
    state = data.get("state") if isinstance(data.get("state"), dict) else {}
    if isinstance(state.get("testRunDurationMs"), int | float):
        meta["duration_s"] = round(state["testRunDurationMs"] / 1000, 3)
    elif reqs.get("count") and reqs.get("rate"):
        # k6 computes each counter's rate as count / test duration.
        meta["duration_s"] = round(reqs["count"] / reqs["rate"], 3)
    for name, key in (("data_received", "received"), ("data_sent", "sent")):
        if "count" in stats(name):
            meta[f"data_{key}_bytes"] = int(stats(name)["count"])

    rows = []
    if stats(DURATION):
        rows.append(_summary_row(OVERALL, None, OVERALL, stats, ""))
    for key in sorted(metrics):
        selector = _submetric(key, DURATION)
        if selector is None or not ({"name", "url"} & set(selector)):
            continue
        if set(selector) - {"name", "url", "method"}:
            continue
        name = selector.get("name") or selector["url"]
        method = selector.get("method")
        suffix = key[len(DURATION) :]
        rows.append(
            _summary_row(endpoint_label(method, name), method, name, stats, suffix)
        )
    if rows:
        result.endpoints = pd.DataFrame(rows, columns=_ENDPOINT_COLUMNS)
        result.provenance["endpoints"] = ("aggregate", SUMMARY_NOTE)
    else:
        result.warn(
            f"{path.name}: the k6 summary has no http_req_duration metric, so there "
            "are no HTTP latency figures."
        )
    result.warn(
        f"{path.name}: a k6 summary holds only k6's aggregates: the percentiles are "
        "k6's (linear interpolation over all samples, not perflab's nearest rank), "
        "and there are no per-request samples, intervals or error kinds.",
        PrecisionWarning,
    )
    log.info("read %s (k6 %s, %d endpoint rows)", path, shape, len(rows))


def _summary_row(endpoint, method, name, stats, suffix: str) -> dict[str, Any]:
    trend = stats(DURATION + suffix)
    reqs = stats("http_reqs" + suffix)
    failed = stats(FAILED + suffix)
    requests = reqs.get("count", trend.get("count"))
    # In the http_req_failed rate a "pass" is a sample of value 1: a failed request.
    failures = failed.get("passes")
    rate = failed.get("rate", failed.get("value"))
    if requests is not None and failures is not None and requests:
        rate = failures / requests
    row = {
        "endpoint": endpoint,
        "method": method,
        "name": name,
        "requests": int(requests) if requests is not None else None,
        "failures": int(failures) if failures is not None else None,
        "error_rate": rate,
        "throughput": reqs.get("rate"),
        "bytes_mean": None,
    }
    for column, key in _SUMMARY_STATS.items():
        row[column] = trend.get(key)
    return row


def _submetric(key: str, parent: str) -> dict[str, str] | None:
    """The tags of a sub-metric key: ``http_req_duration{name:/x,method:GET}``."""
    if not (key.startswith(parent + "{") and key.endswith("}")):
        return None
    tags = {}
    for part in key[len(parent) + 1 : -1].split(","):
        tag, sep, value = part.partition(":")
        if not sep:
            return None
        tags[tag.strip()] = value.strip()
    return tags


def _summary_thresholds(metrics: dict) -> list[dict[str, Any]]:
    found = []
    for name, metric in metrics.items():
        declared = metric.get("thresholds") if isinstance(metric, dict) else None
        if not isinstance(declared, dict):
            continue
        for expression, outcome in declared.items():
            if isinstance(outcome, dict):
                ok = outcome.get("ok")
            elif isinstance(outcome, bool):
                # The legacy --summary-export writes true for a threshold that
                # FAILED (grafana/k6#1498, grafana/k6-docs#30).
                ok = not outcome
            else:
                ok = None
            found.append({"metric": name, "expression": expression, "ok": ok})
    return found


def _summary_checks(group: Any, parent: str = "") -> list[dict[str, Any]]:
    """Every check of the group tree, depth first: name, path, passes, fails."""
    if not isinstance(group, dict):
        return []
    checks = group.get("checks") or []
    groups = group.get("groups") or []
    if isinstance(checks, dict):
        checks = list(checks.values())
    if isinstance(groups, dict):
        groups = list(groups.values())
    found = []
    for check in checks:
        if isinstance(check, dict):
            found.append(
                {
                    "name": check.get("name"),
                    "path": check.get("path"),
                    "group": group.get("path", parent),
                    "passes": check.get("passes"),
                    "fails": check.get("fails"),
                }
            )
    for child in groups:
        found.extend(_summary_checks(child, group.get("path", parent)))
    return found


# -- the DuckDB fast path for CSV -----------------------------------------------------

#: The metrics the fast path keeps from a CSV, as an SQL list.
_WANTED_SQL = ", ".join(f"'{name}'" for name in _WANTED)
_SETUP_SQL = (
    "coalesce(\"group\" IN ('::setup', '::teardown') "
    "OR starts_with(\"group\", '::setup::') "
    "OR starts_with(\"group\", '::teardown::'), false)"
)


def read_fast(
    files: list[Path],
    target: Path,
    encoding: str | None,
    fmt: str,
    con: duckdb.DuckDBPyConnection,
    sources: dict[Path, Path] | None = None,
) -> Ingested | None:
    """Read one well-formed k6 CSV with DuckDB; None when it needs :func:`read`.

    DuckDB parses the file in parallel, keeps the samples of :data:`_WANTED` in
    file order and turns them into request rows in SQL with the same rules as the
    streaming reader (see the module docstring). The rows stay in DuckDB:
    ``meta["requests_source"]`` names the relation holding them (with their order
    as ``file_row_number``), ``meta["requests_select"]`` the canonical ``requests``
    columns made from it, and ``meta["request_rows"]`` counts them; ``target`` is
    not written.

    The file is handed back to the streaming reader, which reports malformed lines
    by number, when it is not one plain UTF-8 CSV ending in a newline (several files,
    gzip, another encoding, a last line possibly cut off), when DuckDB meets a
    field it cannot read as k6 writes it (a row with the wrong number of fields, a
    timestamp that is not an integer, a value that is not a number), when a wanted
    sample has an empty, negative or NaN timestamp or value, or when it holds no
    wanted sample.

    DuckDB reads an integer more leniently than the streaming reader does: a
    timestamp written with blanks around it or a ``+`` sign (never written by k6)
    is taken as its number, where the streaming reader reports the line.

    ``sources`` may map the file to an identical one to read instead (the
    original of a copy still being made); the result and its messages name the
    file of ``files``.
    """
    if fmt != "k6-csv" or len(files) != 1:
        return None
    path = files[0]
    source = (sources or {}).get(path, path)
    refusal = _fast_refusal(source, encoding)
    if refusal is not None:
        log.info("%s: %s; read by the streaming reader", path, refusal)
        return None
    progress = progress_bar(source, path.name)
    try:
        return _read_csv_fast(path, source, con, progress)
    except duckdb.Error as exc:
        log.info(
            "%s: DuckDB could not read it (%s); read by the streaming reader",
            path,
            str(exc).splitlines()[0],
        )
        return None
    finally:
        if progress is not None:
            progress.close()


def _fast_refusal(path: Path, encoding: str | None) -> str | None:
    """Why a CSV is not for the fast path, or None when it is."""
    if path.stat().st_size == 0:
        return "the file is empty"
    with open(path, "rb") as handle:
        if handle.read(2) == GZIP_MAGIC:
            return "the file is gzipped (its last line cannot be checked cheaply)"
        handle.seek(-1, io.SEEK_END)
        if handle.read(1) != b"\n":
            return "the last line does not end with a newline"
    if encoding is not None and _arrow_encoding(encoding) != "utf8":
        return f"the encoding is {encoding}"
    found = plain_encoding(path)
    if found != "utf-8":
        return f"the text encoding is {found or 'not UTF-8'}"
    header = _csv_header(path, "utf-8")
    if any(c not in header for c in _CSV_HEAD) or len(set(header)) != len(header):
        return "the header is not k6's"
    if any(not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", c) for c in header):
        return "the header has unusual column names"
    return None


#: Whether a sample's unix time is in whole seconds, told apart by magnitude as
#: :func:`_csv_times` does.
_WHOLE_SECONDS_SQL = "stamp < 100000000000"

#: Unix time in seconds, milli-, micro- or nanoseconds as nanoseconds.
_TIME_NS_SQL = f"""stamp * CASE WHEN {_WHOLE_SECONDS_SQL} THEN 1000000000
                         WHEN stamp < 100000000000000 THEN 1000000
                         WHEN stamp < 100000000000000000 THEN 1000
                         ELSE 1 END"""

#: The canonical requests columns from the k6_rows relation.
_REQUESTS_SELECT = (
    "ts, CASE WHEN method IS NULL THEN name ELSE method || ' ' || name END "
    "AS endpoint, method, name, status, latency_ms, NULL::BIGINT AS bytes, ok, "
    'error, NULL::VARCHAR AS worker, "user"'
)


def _read_csv_fast(
    path: Path, source: Path, con: duckdb.DuckDBPyConnection, progress
) -> Ingested | None:
    header = _csv_header(source, "utf-8")
    types = {c: "VARCHAR" for c in header}
    types["timestamp"] = "BIGINT"
    types["metric_value"] = "DOUBLE"
    columns = ", ".join(f"'{c}': '{t}'" for c, t in types.items())
    tags = [t for t in _TAGS if t in header]
    extra = ["metadata"] if "metadata" in header else []

    # 1. Parse the file in parallel and keep the wanted samples. With insertion
    #    order preserved the table's rowid is the file order; numbering the rows
    #    with a window function instead would make the whole scan single-threaded.
    #    A tag is kept only for the samples that use it (the request's tags for
    #    its duration sample, group and check for checks): strings make most of
    #    the table's cost.
    vu = '"vu"' if "vu" in tags else "NULL"
    if extra:
        found = r"""NULLIF(regexp_extract(metadata, '(?:^|&)vu=(\d+)', 1), '')"""
        vu = f"coalesce(NULLIF({vu}, ''), {found})" if "vu" in tags else found

    #: the samples that use each tag: the request's duration, unless named here
    users = {"group": f"'{DURATION}', '{CHECKS}'", "check": f"'{CHECKS}'"}

    def tag(name: str, sql: str | None = None) -> str:
        if name not in tags and sql is None:
            return f'NULL::VARCHAR AS "{name}"'
        value = sql or f'"{name}"'
        metrics = users.get(name, f"'{DURATION}'")
        return f'CASE WHEN metric_name IN ({metrics}) THEN {value} END AS "{name}"'

    tag_columns = ", ".join(tag(t) for t in _TAGS if t != "vu")
    vu = tag("vu", vu)
    execute(
        con,
        f"""CREATE OR REPLACE TEMP TABLE k6_samples AS
        SELECT metric_name AS metric, timestamp AS stamp, metric_value AS value,
               {tag_columns}, {vu}
        FROM read_csv({sql_path(source)}, header = true,
            auto_detect = false, delim = ',', quote = '"', escape = '"',
            columns = {{{columns}}}, strict_mode = true, null_padding = false)
        WHERE metric_name IN ({_WANTED_SQL})""",
        progress,
        share=0.9,
    )
    # One pass over the samples for what decides the way on: whether they are
    # all well-formed, whether every request has k6's expected_response tag
    # (which then decides, see below) and whether the times are whole seconds.
    count, broken, expected, whole_seconds = con.execute(
        f"""SELECT count(*),
                  count(*) FILTER (WHERE stamp IS NULL OR stamp < 0
                                   OR value IS NULL OR isnan(value)),
                  coalesce(bool_and(coalesce(lower(expected_response)
                                             IN ('true', 'false'), false))
                               FILTER (WHERE metric = '{DURATION}'), false),
                  coalesce(bool_or({_WHOLE_SECONDS_SQL}), false)
           FROM k6_samples"""
    ).fetchall()[0]
    if count == 0 or broken:
        # the streaming reader reports the malformed lines by number
        why = f"{broken} malformed samples" if broken else "no sample is read"
        log.info("%s: %s; read by the streaming reader", path, why)
        return None
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW k6_timed AS
        SELECT rowid AS row, * EXCLUDE (stamp), {_TIME_NS_SQL} AS time_ns
        FROM k6_samples"""
    ).fetchall()

    # 2. Requests: a duration sample with the failed sample that follows it. When
    #    every request has the expected_response tag, the pairing (a sort of the
    #    samples in file order) is left out and the requests are a view: the two
    #    queries that read them, for the run's metadata and for requests.parquet,
    #    then compute only the columns each needs, faster than storing them all
    #    once. Paired requests are stored, so that the sort is made only once.
    if expected:
        paired = f"""SELECT *, NULL::DOUBLE AS failed_value
            FROM k6_timed WHERE metric = '{DURATION}'"""
    else:
        paired = f"""WITH pairs AS (
                -- narrow, so that DuckDB's single sort for the window stays cheap
                SELECT row, metric,
                       CASE WHEN lead(metric) OVER w = '{FAILED}'
                             AND lead(time_ns) OVER w = time_ns
                            THEN lead(value) OVER w END AS failed_value
                FROM k6_timed
                WHERE metric IN ('{DURATION}', '{FAILED}')
                WINDOW w AS (ORDER BY row)
            )
            SELECT s.*, p.failed_value
            FROM k6_timed s JOIN pairs p USING (row)
            WHERE p.metric = '{DURATION}'"""
    con.execute(
        f"""CREATE OR REPLACE TEMP {"VIEW" if expected else "TABLE"} k6_requests AS
        WITH paired AS (
            {paired}
        ), typed AS (
            SELECT *,
                   time_ns - CAST(round_even(value * 1e6, 0) AS BIGINT) AS start_ns,
                   CASE WHEN TRY_CAST(status AS DOUBLE) > 0
                        THEN CAST(TRY_CAST(status AS DOUBLE) AS INTEGER) END AS code,
                   coalesce(name, url, 'unknown') AS label,
                   lower(expected_response) AS expected
            FROM paired
        ), failing AS (
            SELECT *,
                   coalesce(error, CASE WHEN error_code IS NOT NULL AND code IS NULL
                                        THEN 'k6 error code ' || error_code END)
                       AS problem
            FROM typed
        )
        SELECT row, time_ns, start_ns, {_SETUP_SQL} AS apart, scenario, url,
               make_timestamptz(start_ns // 1000) AS ts, method, label AS name,
               code AS status, value AS latency_ms,
               CASE WHEN expected IN ('true', 'false') THEN expected = 'true'
                    WHEN failed_value IS NOT NULL THEN failed_value = 0
                    ELSE coalesce(code BETWEEN 200 AND 399, false)
                         AND problem IS NULL END AS ok,
               CASE WHEN expected IN ('true', 'false') THEN '{_RULES[0]}'
                    WHEN failed_value IS NOT NULL THEN '{_RULES[1]}'
                    ELSE '{_RULES[2]}' END AS rule,
               problem AS error, TRY_CAST(vu AS BIGINT) AS "user"
        FROM failing"""
    ).fetchall()
    con.execute(
        """CREATE OR REPLACE TEMP VIEW k6_rows AS
        SELECT ts, method, name, status, latency_ms, ok, error, "user",
               row AS file_row_number
        FROM k6_requests WHERE NOT apart"""
    ).fetchall()
    if progress is not None:
        progress.update(progress.total - progress.n)
    result = Ingested(tool="k6", fmt="k6-csv", files=[path])
    _fast_meta(con, result, [path.name] if whole_seconds else [])
    log.info("read %s with DuckDB (%d wanted samples)", path, count)
    return result


#: The rules that decide whether a request succeeded, in the order of the module
#: docstring: the expected_response tag, the http_req_failed sample, the status.
_RULES = ("expected_response", "http_req_failed", "status")


def _fast_meta(
    con: duckdb.DuckDBPyConnection,
    result: Ingested,
    whole_second_files: list[str] | None = None,
) -> None:
    """The run metadata and warnings of :meth:`_Collector.finish`, from SQL.

    ``whole_second_files`` names the files whose samples' times are whole seconds.
    The requests (``k6_requests``, often a view that computes its columns anew
    on each read) are read twice: for the counts, the span and the scenarios in
    one query, per URL for the origins in another.
    """
    rules = ", ".join(
        f"count(*) FILTER (WHERE NOT apart AND rule = '{rule}')" for rule in _RULES
    )
    (requests, apart, start_ns, end_ns, scenarios, *by_rule) = con.execute(
        f"""SELECT count(*) FILTER (WHERE NOT apart), count(*) FILTER (WHERE apart),
                  min(start_ns) FILTER (WHERE NOT apart),
                  max(time_ns) FILTER (WHERE NOT apart),
                  list(DISTINCT scenario) FILTER (WHERE NOT apart AND scenario <> ''),
                  {rules}
           FROM k6_requests"""
    ).fetchall()[0]
    collector = _Collector(sink=None)
    collector.whole_second_files = list(whole_second_files or [])
    collector.requests = requests
    collector.setup_teardown = apart
    collector.by_rule.update(dict(zip(_RULES, by_rule, strict=True)))
    if requests:
        collector._widen(_ns(start_ns), _ns(end_ns))

    users = con.sql(
        f"SELECT time_ns, value FROM k6_timed WHERE metric = '{VUS}' "
        "ORDER BY time_ns, row"
    ).fetchnumpy()
    if len(users["time_ns"]):
        series = pd.DataFrame(
            {
                "ts": pd.to_datetime(users["time_ns"], unit="ns", utc=True),
                "users": np.asarray(users["value"], dtype=float),
            }
        )
        collector.users.append(series)
        collector._widen(series["ts"].iloc[0], series["ts"].iloc[-1])

    collector.scenarios.update(scenarios or ())
    # Origins by the URL's scheme and authority, in order of first appearance;
    # the pattern is matched once per distinct URL, not once per request.
    for prefix, n in con.execute(
        r"""WITH urls AS (
                SELECT url, count(*) AS n, min(row) AS first
                FROM k6_requests WHERE NOT apart AND url IS NOT NULL
                GROUP BY url
            )
            SELECT regexp_extract(url, '^[^/?#]*(//[^/?#]*)?') AS prefix, sum(n)
            FROM urls GROUP BY prefix ORDER BY min(first)"""
    ).fetchall():
        origin = _origin(prefix)
        if origin:
            collector.origins[origin] += int(n)
    for group, check, passes, fails in con.execute(
        f"""SELECT coalesce("group", ''), coalesce("check", ''),
                  count(*) FILTER (WHERE value <> 0), count(*) FILTER (WHERE value = 0)
           FROM k6_timed WHERE metric = '{CHECKS}' GROUP BY ALL"""
    ).fetchall():
        collector.checks[(group, check)] = [passes, fails]
    result.meta["request_rows"] = requests
    result.meta["requests_source"] = "k6_rows"
    result.meta["requests_select"] = _REQUESTS_SELECT
    collector.finish(result)


def _ns(value: int) -> pd.Timestamp:
    return pd.Timestamp(int(value), unit="ns", tz="UTC")

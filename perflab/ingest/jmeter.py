"""Reader for JMeter result files (JTL): CSV with or without a header, and XML.

What is read, and how
---------------------
CSV JTL
    Any delimiter JMeter can be set to write
    (``jmeter.save.saveservice.default_delimiter``: comma, tab, ``;``, ``|``). With a
    header line, the columns are found by name. Without one, the file must have one of
    JMeter's default column sets, told apart by their number (:data:`DEFAULT_COLUMNS`):
    12 columns before JMeter 3.0, 16 in 3.1 to 4.x, 17 (with ``URL``) since 5.0. A
    single UTF-8 file whose samples the rules below cover plainly is read by DuckDB
    in parallel (:func:`read_fast`); any other is streamed in blocks by
    ``pyarrow.csv``. Either way quoted fields holding delimiters, quotes or line
    breaks are read as JMeter wrote them, memory stays bounded whatever the file
    size, and a large file shows a progress bar on stderr when it is a terminal.
XML JTL
    ``<testResults>`` with ``<httpSample>`` and ``<sample>`` elements, streamed with
    :func:`xml.etree.ElementTree.iterparse`. A file cut off before its closing tag is
    read up to the cut.

Decisions
---------
Timestamps
    ``timeStamp`` (``ts`` in XML) is the sample's *start*: JMeter has written start
    times since 2.1.x (``sampleresult.timestamp.start=true`` in ``jmeter.properties``).
    Epoch milliseconds are UTC. Formatted timestamps (``timestamp_format``, for example
    ``yyyy/MM/dd HH:mm:ss.SSS``) carry no zone: they are the local time of the JMeter
    machine, are read as UTC, and a :class:`~perflab.errors.DataWarning` says so. A
    timestamp of 0, which JMeter writes for a sample that failed before it started, has
    no place on the time line: such samples are left out with a warning that counts
    them.
Sub-results
    A sampler that follows redirects or fetches embedded resources records its parts as
    sub-results. In XML they are nested inside their parent; only top-level samples are
    read. In CSV they are separate rows written right after their parent by the same
    thread, labelled ``<parent label>-0``, ``-1`` ..., and starting inside the parent's
    time span; those rows are left out. Either way each request is counted once, by
    its parent, and a warning says how many sub-results were left out.
Transaction controllers
    A transaction controller's sample (response message ``Number of samples in
    transaction ...``) is not an HTTP request: its time is the sum of the requests
    inside it, which are recorded on their own. It is left out and counted in a
    warning. In XML, when the controller generates a parent sample, the samples nested
    inside it are read in its place.
Failures
    ``ok`` is JMeter's ``success``. ``status`` is the HTTP response code, or null when
    there was none (``Non HTTP response code: <exception>``). ``error`` is set for
    failures only: the failure message when there is one, else the response message;
    for a non-HTTP failure it is ``<exception>: <message>``, for example
    ``java.net.SocketTimeoutException: Read timed out``.
Endpoints and users
    JTL files do not record the HTTP method (XML does when ``samplerData`` is saved),
    so the endpoint is the sampler label alone. Thread names become ``user`` numbers
    1, 2, ... in order of first appearance. ``allThreads`` (``na``) gives the users
    series (the highest value seen in each second) and the peak users.
Aggregated rows
    A row whose ``SampleCount`` (``sc`` in XML) is above 1 stands for that many
    samples (JMeter's statistical sample sender writes such rows). Requests are rows
    of per-request data, so none are invented: each such row is one request, and a
    warning names the file and the first such line, with the number of rows, the
    samples they stand for and the failures their ``ErrorCount`` (``ec``) gives.
Malformed input
    A row with the wrong number of fields, a non-numeric elapsed time or an unreadable
    timestamp (a truncated last line among them) is skipped, with a warning naming the
    file, the lines and how many rows were dropped. In XML, a sample with a missing or
    non-numeric ``ts``, ``t`` or ``s`` attribute is skipped the same way; the lines are
    found by a second pass with :mod:`xml.parsers.expat`, which tells where each
    element starts.
"""

from __future__ import annotations

import csv
import gzip
import io
import logging
import re
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from xml.parsers import expat

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv

from perflab.errors import InputError
from perflab.ingest.base import (
    GZIP_MAGIC,
    Ingested,
    RequestSink,
    detect_encoding,
    execute,
    plain_encoding,
    progress_bar,
    sql_path,
)

log = logging.getLogger(__name__)

FORMATS = ("jmeter-csv", "jmeter-xml")

#: JMeter's default CSV columns, by their number, for files written without a header.
DEFAULT_COLUMNS: dict[int, tuple[str, ...]] = {
    # JMeter 2.x (before 3.0)
    12: (
        "timeStamp",
        "elapsed",
        "label",
        "responseCode",
        "responseMessage",
        "threadName",
        "dataType",
        "success",
        "bytes",
        "grpThreads",
        "allThreads",
        "Latency",
    ),
    # JMeter 3.1 to 4.x
    16: (
        "timeStamp",
        "elapsed",
        "label",
        "responseCode",
        "responseMessage",
        "threadName",
        "dataType",
        "success",
        "failureMessage",
        "bytes",
        "sentBytes",
        "grpThreads",
        "allThreads",
        "Latency",
        "IdleTime",
        "Connect",
    ),
    # JMeter 5.x
    17: (
        "timeStamp",
        "elapsed",
        "label",
        "responseCode",
        "responseMessage",
        "threadName",
        "dataType",
        "success",
        "failureMessage",
        "bytes",
        "sentBytes",
        "grpThreads",
        "allThreads",
        "URL",
        "Latency",
        "IdleTime",
        "Connect",
    ),
}

#: Columns the reader uses when the file has them (``timeStamp`` and ``elapsed`` are
#: required).
USED_COLUMNS = (
    "timeStamp",
    "elapsed",
    "label",
    "responseCode",
    "responseMessage",
    "threadName",
    "success",
    "failureMessage",
    "bytes",
    "allThreads",
    "SampleCount",
    "ErrorCount",
)

#: Lines of skipped or aggregated samples a warning lists at most.
_SHOWN_LINES = 10

_DELIMITERS = (",", "\t", ";", "|")
_BLOCK_BYTES = 4 * 1024 * 1024
_XML_CHUNK_SAMPLES = 100_000
_TRANSACTION = "Number of samples in transaction"
_NON_HTTP_CODE = "Non HTTP response code: "
_NON_HTTP_MESSAGE = "Non HTTP response message: "
_EPOCH_MS = re.compile(r"^\d{9,14}$")
_DATE_LIKE = re.compile(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}[ T]\d{1,2}:\d{2}")
_ZONE = r"(?:Z|[+-]\d{2}:?\d{2})$"
_SUFFIX = re.compile(r"\d+(?:-\d+)*")

# strptime formats tried, in order, on formatted timestamps; "ISO8601" covers the
# dash-separated forms with or without a zone.
_TIME_FORMATS = (
    "ISO8601",
    "%Y/%m/%d %H:%M:%S.%f",
    "%Y/%m/%d %H:%M:%S",
    "%m/%d/%Y %H:%M:%S.%f",
    "%m/%d/%Y %H:%M:%S",
    "%m/%d/%y %H:%M:%S",
    "%d/%m/%Y %H:%M:%S.%f",
    "%d/%m/%Y %H:%M:%S",
    "%d.%m.%Y %H:%M:%S.%f",
    "%d.%m.%Y %H:%M:%S",
)


# -- detection -------------------------------------------------------------------------


def sniff(path: Path, head: bytes) -> str | None:
    """``jmeter-xml`` or ``jmeter-csv`` when a file's first bytes are a JTL, else None.

    Recognised from content only: a ``<testResults`` element; a CSV header with
    ``timeStamp`` and ``elapsed``; or a headerless line shaped like one of JMeter's
    default column sets (epoch-millisecond or formatted timestamp, integer elapsed
    time, ``true``/``false`` in the success column).

    Parameters
    ----------
    path
        The file (not read; detection uses ``head`` only).
    head
        The file's first bytes, already un-gzipped.

    Returns
    -------
    str or None
        The format name, or None when the file is not a JTL.
    """
    text = _decode_head(head)
    stripped = text.lstrip()
    if stripped.startswith("<"):
        return "jmeter-xml" if "<testResults" in stripped[:4096] else None
    first = _first_record(text)
    if first is None:
        return None
    return "jmeter-csv" if _csv_layout(first) is not None else None


def _decode_head(head: bytes) -> str:
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):
        return head.decode("utf-16", "replace")
    return head.decode("utf-8", "replace").lstrip("\ufeff")


def _first_record(text: str) -> str | None:
    """The first non-blank line of a file's head, None when there is none."""
    for line in text.splitlines():
        if line.strip():
            return line
    return None


@dataclass(frozen=True)
class _Layout:
    """How a CSV JTL is laid out: delimiter, column names, and whether a header is."""

    delimiter: str
    names: tuple[str, ...]
    header: bool


def _csv_layout(first: str) -> _Layout | None:
    """The layout of a CSV JTL from its first line, or None when it is not a JTL."""
    for delimiter in _DELIMITERS:
        fields = _split(first, delimiter)
        if len(fields) < 2:
            continue
        if "timeStamp" in fields and "elapsed" in fields:
            return _Layout(delimiter, tuple(fields), header=True)
        names = DEFAULT_COLUMNS.get(len(fields))
        if (
            names is not None
            and _looks_like_time(fields[0])
            and fields[1].strip().lstrip("-").isdigit()
            and fields[7].strip().lower() in ("true", "false")
        ):
            return _Layout(delimiter, names, header=False)
    return None


def _split(line: str, delimiter: str) -> list[str]:
    try:
        return next(csv.reader([line], delimiter=delimiter), [])
    except csv.Error:
        return []


def _looks_like_time(value: str) -> bool:
    value = value.strip()
    return bool(_EPOCH_MS.match(value) or _DATE_LIKE.match(value))


# -- reading ---------------------------------------------------------------------------


def read(
    files: list[Path], sink: RequestSink, encoding: str | None, fmt: str
) -> Ingested:
    """Read JTL files of one format into ``sink``; see the module docstring.

    Parameters
    ----------
    files
        The JTL files (plain or gzipped).
    sink
        Receives the canonical request rows in chunks.
    encoding
        Text encoding of CSV files; detected when None. XML files declare their own.
    fmt
        ``"jmeter-csv"`` or ``"jmeter-xml"``.

    Returns
    -------
    Ingested
        ``meta`` holds ``start``, ``end`` (UTC), ``duration_s``, ``peak_users`` and
        ``users_series`` (DataFrame ``ts``, ``users``) when ``allThreads`` was saved,
        ``threads`` (distinct thread names), and the counts of samples left out.

    Raises
    ------
    InputError
        When a file is empty, is not a JTL of the format, or no file holds a sample.
    """
    result = Ingested(tool="jmeter", fmt=fmt, files=list(files))
    state = _State()
    for path in files:
        if fmt == "jmeter-xml":
            _read_xml(path, sink, state, result)
        else:
            _read_csv(path, sink, encoding, state, result)
    state.report(result)
    return result


@dataclass
class _Aggregated:
    """A file's rows that stand for several samples each (``SampleCount`` > 1)."""

    path: Path
    rows: int = 0
    samples: int = 0
    errors: int = 0
    errors_missing: int = 0  # of those rows, the ones without an ErrorCount
    has_error_count: bool = False
    first_line: int | None = None

    def count(self, rows: pa.Table) -> None:
        """Count the rows of a block of kept samples whose SampleCount is above 1."""
        if "SampleCount" not in rows.column_names:
            return
        counts = _integers(_column(rows, "SampleCount"))
        many = pc.fill_null(pc.greater(counts, 1), False)
        found = pc.sum(many).as_py() or 0
        if not found:
            return
        self.rows += found
        self.samples += pc.sum(counts.filter(many)).as_py()
        if "ErrorCount" in rows.column_names:
            self.has_error_count = True
            errors = _integers(_column(rows, "ErrorCount")).filter(many)
            self.errors += pc.sum(errors).as_py() or 0
            self.errors_missing += errors.null_count

    def message(self) -> str:
        where = ""
        if self.first_line is not None:
            first = "at" if self.rows == 1 else "the first at"
            where = f" ({first} line {self.first_line})"
        if not self.has_error_count or self.errors_missing == self.rows:
            errors = "no ErrorCount tells how many of their samples failed"
        else:
            failures = "failure" if self.errors == 1 else "failures"
            errors = f"ErrorCount gives {self.errors} {failures} among them"
            if self.errors_missing:
                errors += f", {self.errors_missing} of the rows having no ErrorCount"
        rows = (
            f"1 row stands for {self.samples} samples by JMeter's SampleCount{where} "
            "and was counted as one request"
            if self.rows == 1
            else f"{self.rows} rows stand for {self.samples} samples by JMeter's "
            f"SampleCount{where} and were counted as one request each"
        )
        return (
            f"{self.path}: {rows} ({errors}), so request counts and error rates "
            "are for rows, not samples. JMeter writes such rows in its Statistical "
            "remote batch mode "
            "(mode=Statistical); run with another mode, such as the default "
            "StrippedBatch, to have one row per request."
        )


@dataclass
class _State:
    """What is carried from one block of samples to the next, across files."""

    threads: dict[str, int] = field(default_factory=dict)
    users: pd.Series | None = None  # highest allThreads per second
    start: pd.Timestamp | None = None
    end: pd.Timestamp | None = None
    samples: int = 0
    subresults: int = 0
    transactions: int = 0
    no_start: int = 0
    no_start_errors: dict[str, int] = field(default_factory=dict)
    local_time: bool = False
    # Per file, rows standing for several samples (SampleCount > 1); pending
    # gathers the current file's
    aggregated: list[_Aggregated] = field(default_factory=list)
    pending: _Aggregated = field(default_factory=lambda: _Aggregated(Path()))
    # Per thread, the last top-level CSV sample: thread, p_label, p_start, p_end
    # (ms), p_pos (-1: before the current block).
    parents: pd.DataFrame | None = None

    def user_ids(self, names: pa.Array) -> pa.Array:
        """Stable user numbers for thread names, 1, 2, ... by first appearance."""
        encoded = names.dictionary_encode()
        ids = []
        for name in encoded.dictionary.to_pylist():
            if name not in self.threads:
                self.threads[name] = len(self.threads) + 1
            ids.append(self.threads[name])
        return pc.take(pa.array(ids, pa.int64()), encoded.indices)

    def add_users(self, ts: pd.Series, users: pd.Series) -> None:
        valid = users.notna()
        if not valid.any():
            return
        per_second = users[valid].groupby(ts[valid].dt.floor("s")).max()
        if self.users is None:
            self.users = per_second
        else:
            both = pd.concat([self.users, per_second])
            self.users = both.groupby(level=0).max()

    def add_span(self, ts: pd.Series, latency_ms: pd.Series) -> None:
        if ts.empty:
            return
        first = ts.min()
        last = (ts + pd.to_timedelta(latency_ms, unit="ms")).max()
        self.start = first if self.start is None else min(self.start, first)
        self.end = last if self.end is None else max(self.end, last)

    def report(self, result: Ingested) -> None:
        """Put the run's metadata and the caveats about left-out samples in result."""
        files = ", ".join(str(p) for p in result.files)
        if self.samples == 0:
            raise InputError(
                "None of the JMeter files holds a sample that could be read; there is "
                "nothing to analyse.",
                files if len(result.files) != 1 else result.files[0],
            )
        meta = result.meta
        meta["start"], meta["end"] = self.start, self.end
        meta["duration_s"] = round((self.end - self.start).total_seconds(), 3)
        meta["threads"] = len(self.threads)
        if self.users is not None and not self.users.empty:
            series = self.users.sort_index()
            meta["users_series"] = pd.DataFrame(
                {"ts": series.index, "users": series.to_numpy(dtype=float)}
            )
            meta["peak_users"] = int(series.max())
        meta["subresults_left_out"] = self.subresults
        meta["transactions_left_out"] = self.transactions
        meta["samples_without_start_left_out"] = self.no_start
        if self.aggregated:
            meta["rows_with_sample_count"] = sum(a.rows for a in self.aggregated)
            meta["samples_in_those_rows"] = sum(a.samples for a in self.aggregated)

        if self.local_time:
            result.warn(
                f"{files}: the timestamps are formatted without a time zone, so they "
                "are the local time of the JMeter machine; they were read as UTC. "
                "If that machine was not on UTC, the run's times are shifted by its "
                "offset (durations and latencies are not affected)."
            )
        if self.subresults:
            result.warn(
                f"{files}: {self.subresults} sub-results (redirect steps or embedded "
                "resources recorded under a parent sample, labelled like "
                "'HTTP Request-0') were left out so that each request is counted once, "
                "by its parent."
            )
        if self.transactions:
            result.warn(
                f"{files}: {self.transactions} transaction controller samples "
                f"('{_TRANSACTION} ...') were left out: they are not HTTP requests, "
                "and the requests inside them are counted on their own."
            )
        if self.no_start:
            kinds = "; ".join(
                f"{count} x {error!r}" for error, count in self.no_start_errors.items()
            )
            result.warn(
                f"{files}: {self.no_start} samples with timestamp 0 (samples JMeter "
                "could not start) were left out, since they have no place in time; "
                f"they were failures: {kinds}."
            )
        for aggregated in self.aggregated:
            result.warn(aggregated.message())


def _open_raw(path: Path) -> tuple[io.BufferedReader, io.RawIOBase]:
    """The file's bytes (un-gzipped) and the underlying file, for progress."""
    raw = open(path, "rb")  # noqa: SIM115 - closed by the caller
    magic = raw.read(2)
    raw.seek(0)
    if magic == GZIP_MAGIC:
        return gzip.GzipFile(fileobj=raw, mode="rb"), raw
    return raw, raw


# -- CSV -------------------------------------------------------------------------------


def _read_csv(
    path: Path,
    sink: RequestSink,
    encoding: str | None,
    state: _State,
    result: Ingested,
) -> None:
    encoding = encoding or detect_encoding(path)
    layout = _file_layout(path, encoding)
    missing = {"timeStamp", "elapsed"} - set(layout.names)
    if missing:
        raise InputError(
            f"The JTL has no {' or '.join(sorted(missing))} column, so its samples "
            "cannot be placed in time; save it with JMeter's default columns.",
            path,
        )

    bad_rows = 0
    headers_repeated = 0
    kept_before = state.samples

    def on_invalid(row) -> str:
        nonlocal bad_rows
        bad_rows += 1
        return "skip"

    columns = [name for name in layout.names if name in USED_COLUMNS]
    read_options = pacsv.ReadOptions(
        column_names=list(layout.names),
        skip_rows=1 if layout.header else 0,
        block_size=_BLOCK_BYTES,
        use_threads=False,
        encoding="utf8" if encoding in ("utf-8", "utf-8-sig") else encoding,
    )
    parse_options = pacsv.ParseOptions(
        delimiter=layout.delimiter,
        newlines_in_values=True,
        invalid_row_handler=on_invalid,
    )
    convert_options = pacsv.ConvertOptions(
        column_types=dict.fromkeys(columns, pa.string()),
        include_columns=columns,
        strings_can_be_null=False,
        quoted_strings_can_be_null=False,
    )
    clock = _Clock()
    stream, raw = _open_raw(path)
    bar = progress_bar(path)
    try:
        reader = pacsv.open_csv(stream, read_options, parse_options, convert_options)
        for batch in reader:
            table = pa.Table.from_batches([batch])
            repeated = pc.equal(table["timeStamp"], "timeStamp")
            if pc.any(repeated).as_py():
                headers_repeated += pc.sum(repeated).as_py()
                table = table.filter(pc.invert(repeated))
            requests, dropped = _canonical(table, clock, state, subresult_rows=True)
            bad_rows += dropped
            sink.append(requests)
            if bar is not None:
                bar.update(raw.tell() - bar.n)
    except pa.ArrowInvalid as exc:
        raise InputError(
            f"The file could not be read as a {layout.delimiter!r}-delimited JTL "
            f"({exc}).",
            path,
        ) from exc
    finally:
        if bar is not None:
            bar.close()
        stream.close()
        raw.close()

    state.local_time |= clock.local
    _file_aggregated(
        path, state, lambda: _first_aggregated_line(path, encoding, layout)
    )
    if headers_repeated:
        result.warn(
            f"{path}: {headers_repeated} repeated header lines (files appended to one "
            "another) were skipped."
        )
    if bad_rows:
        lines = _malformed_lines(path, encoding, layout, clock.fmt)
        shown = ", ".join(str(n) for n in lines[:10])
        more = f" and {len(lines) - 10} more" if len(lines) > 10 else ""
        where = f" at line {shown}{more}" if lines else ""
        result.warn(
            f"{path}: {bad_rows} malformed rows (wrong number of fields, non-numeric "
            f"elapsed time or unreadable timestamp, as in a truncated last line) "
            f"were skipped{where}."
        )
    if state.samples == kept_before:
        result.warn(f"{path}: the file holds no sample that could be read.")
    log.info("read %s (%d samples)", path, state.samples - kept_before)


def _file_aggregated(
    path: Path, state: _State, first_line: Callable[[], int | None]
) -> None:
    """Keep the count of one file's rows with a SampleCount above 1, when any."""
    found, state.pending = state.pending, _Aggregated(path)
    if found.rows:
        found.path = path
        found.first_line = first_line()
        state.aggregated.append(found)


_INTEGER = re.compile(r"-?\d{1,18}")


def _first_aggregated_line(path: Path, encoding: str, layout: _Layout) -> int | None:
    """The line of a CSV JTL's first sample with a SampleCount above 1, or None.

    A second pass with the csv module, stopping at that line: rows of the wrong
    width, repeated headers, transaction controller samples and samples with
    timestamp 0 are passed over, as the reader leaves them out.
    """
    names = layout.names
    width = len(names)
    at = names.index("SampleCount")
    message_at = names.index("responseMessage") if "responseMessage" in names else None
    stamp_at = names.index("timeStamp")
    for line, record in _csv_records(path, encoding, layout):
        if len(record) != width or record[stamp_at].strip() in ("0", "timeStamp"):
            continue
        if message_at is not None and record[message_at].startswith(_TRANSACTION):
            continue
        count = record[at].strip()
        if _INTEGER.fullmatch(count) and int(count) > 1:
            return line
    return None


def _csv_records(path: Path, encoding: str, layout: _Layout):
    """A CSV JTL's records after its header, with the line each starts on.

    For the second passes that find lines the DuckDB reader cannot tell; a record
    the csv module or the codec cannot read ends the pass (logged), as it ends the
    reader.
    """
    stream, raw = _open_raw(path)
    try:
        text = io.TextIOWrapper(stream, encoding=encoding, newline="")
        reader = csv.reader(text, delimiter=layout.delimiter)
        if layout.header:
            next(reader, None)
        start_line = reader.line_num + 1
        for record in reader:
            line, start_line = start_line, reader.line_num + 1
            yield line, record
    except (csv.Error, UnicodeDecodeError) as exc:
        log.info("%s: second pass stopped (%s)", path, exc)
    finally:
        stream.close()
        raw.close()


def _file_layout(path: Path, encoding: str) -> _Layout:
    stream, raw = _open_raw(path)
    try:
        head = stream.read(65536)
    finally:
        stream.close()
        raw.close()
    if not head.strip():
        raise InputError("The file is empty; it holds no JMeter samples.", path)
    try:
        text = head.decode(encoding, "replace").lstrip("\ufeff")
    except LookupError as exc:
        raise InputError(f"Unknown text encoding {encoding!r}.", path) from exc
    first = _first_record(text)
    layout = _csv_layout(first) if first is not None else None
    if layout is None:
        raise InputError(
            "This is not a JMeter CSV result file: its first line is neither a JTL "
            "header (timeStamp, elapsed, ...) nor a sample in one of JMeter's default "
            f"column sets ({', '.join(map(str, DEFAULT_COLUMNS))} columns). Add the "
            "header line if its columns were customised.",
            path,
        )
    return layout


def _malformed_lines(
    path: Path, encoding: str, layout: _Layout, time_format: str | None
) -> list[int]:
    """Line numbers of the rows the fast reader dropped, found by a second pass."""
    width = len(layout.names)
    lines: list[int] = []
    clock = _Clock()
    clock.fmt = time_format
    stamps: list[str] = []  # timestamps to check in bulk, with their lines
    stamp_lines: list[int] = []

    def check_stamps() -> None:
        readable = clock.parse(pa.array(stamps, pa.string())).is_valid().to_pylist()
        lines.extend(n for n, ok in zip(stamp_lines, readable, strict=True) if not ok)
        stamps.clear()
        stamp_lines.clear()

    for line, record in _csv_records(path, encoding, layout):
        if not record:
            continue
        if len(record) != width:
            lines.append(line)
            continue
        row = dict(zip(layout.names, record, strict=True))
        stamp = row["timeStamp"].strip()
        if stamp == "timeStamp":
            continue
        success = row.get("success", "true").strip().lower()
        if not row["elapsed"].strip().lstrip("-").isdigit() or success not in (
            "true",
            "false",
        ):
            lines.append(line)
            continue
        stamps.append(stamp)
        stamp_lines.append(line)
        if len(stamps) >= 100_000:
            check_stamps()
    if stamps:
        check_stamps()
    return sorted(lines)


class _Clock:
    """Turns JTL timestamps (epoch ms or formatted) into UTC, remembering the format."""

    def __init__(self) -> None:
        self.fmt: str | None = None  # "ms" or a to_datetime format
        self.local = False

    def parse(self, values: pa.Array) -> pa.Array:
        """UTC timestamps (microseconds); null where a value cannot be read."""
        values = pc.utf8_trim_whitespace(values)
        if self.fmt is None:
            self.fmt = self._guess(values)
        if self.fmt == "ms":
            return pc.cast(_integers(values), pa.timestamp("ms", tz="UTC")).cast(_TS)
        parsed = pd.to_datetime(
            values.to_pandas(), format=self.fmt, utc=True, errors="coerce"
        )
        return pa.array(parsed, type=_TS, from_pandas=True)

    def parses(self, value: str) -> bool:
        return self.parse(pa.array([value])).is_valid().to_pylist()[0]

    def _guess(self, values: pa.Array) -> str:
        sample = pd.Series(values.to_pandas())
        sample = sample[sample != ""].head(200)
        if sample.empty or sample.str.fullmatch(r"-?\d+").mean() > 0.5:
            return "ms"
        for fmt in _TIME_FORMATS:
            parsed = pd.to_datetime(sample, format=fmt, utc=True, errors="coerce")
            if parsed.notna().all():
                self.local = not bool(sample.str.contains(_ZONE).all())
                return fmt
        return "ms"  # every value unreadable: the rows are reported as malformed


_TS = pa.timestamp("us", tz="UTC")
_NULL_TEXT = pa.scalar(None, pa.string())
_INT64 = pa.int64()


def _integers(values: pa.Array, kind: pa.DataType = _INT64) -> pa.Array:
    """Integers from text; null where the text is not an integer."""
    values = pc.utf8_trim_whitespace(values)
    whole = pc.match_substring_regex(values, r"^-?\d{1,18}$")
    return pc.cast(pc.if_else(whole, values, _NULL_TEXT), kind)


def _column(table: pa.Table, name: str) -> pa.Array:
    """A text column as one array; empty strings when the file lacks it."""
    if name in table.column_names:
        return table[name].combine_chunks().fill_null("")
    return pa.nulls(table.num_rows, pa.string()).fill_null("")


def _canonical(
    table: pa.Table, clock: _Clock, state: _State, subresult_rows: bool
) -> tuple[pd.DataFrame, int]:
    """Canonical request rows from a block of JTL samples (all columns text).

    Returns the rows and the number of malformed samples dropped.
    """
    # What the rows say, in JTL terms
    ts = clock.parse(_column(table, "timeStamp"))
    elapsed = _integers(_column(table, "elapsed"))
    if "success" in table.column_names:
        success = pc.ascii_lower(pc.utf8_trim_whitespace(_column(table, "success")))
    else:
        success = pa.array(["true"] * table.num_rows)
    valid = pc.and_(
        pc.and_(ts.is_valid(), elapsed.is_valid()),
        pc.is_in(success, pa.array(["true", "false"])),
    )
    dropped = table.num_rows - pc.sum(valid).as_py() if table.num_rows else 0
    label = _column(table, "label")
    message = _column(table, "responseMessage")
    start_ms = pc.cast(pc.cast(ts, pa.timestamp("ms", tz="UTC")), pa.int64())

    # Samples JMeter could not start carry timestamp 0
    no_start = pc.and_(valid, pc.equal(start_ms, 0)).fill_null(False)
    if pc.any(no_start).as_py():
        failed = table.filter(no_start)
        errors = _errors(failed, pc.equal(success.filter(no_start), "true"))
        state.no_start += failed.num_rows
        for error in errors.fill_null("(no message)").to_pylist():
            state.no_start_errors[error] = state.no_start_errors.get(error, 0) + 1
    keep = pc.and_(valid, pc.invert(no_start)).fill_null(False)

    transaction = pc.and_(keep, pc.starts_with(message, _TRANSACTION))
    state.transactions += pc.sum(transaction).as_py() or 0
    keep = pc.and_(keep, pc.invert(transaction))

    if subresult_rows:
        child = _subresults(table, label, start_ms, elapsed, keep, state)
        state.subresults += pc.sum(child).as_py() or 0
        keep = pc.and_(keep, pc.invert(child))

    # The canonical rows
    rows = table.filter(keep)
    state.pending.count(rows)
    label = label.filter(keep)
    ok = pc.equal(success.filter(keep), "true")
    code = pc.utf8_trim_whitespace(_column(rows, "responseCode"))
    status = pc.if_else(pc.match_substring_regex(code, r"^\d{1,3}$"), code, _NULL_TEXT)
    if "method" in rows.column_names:
        method = _column(rows, "method")
        method = pc.if_else(pc.equal(method, ""), _NULL_TEXT, method)
        endpoint = pc.if_else(
            method.is_valid(), pc.binary_join_element_wise(method, label, " "), label
        )
    else:
        method = pa.nulls(rows.num_rows, pa.string())
        endpoint = label
    out = pa.table(
        {
            "ts": ts.filter(keep),
            "endpoint": endpoint,
            "method": method,
            "name": label,
            "status": pc.cast(status, pa.int32()),
            "latency_ms": pc.cast(elapsed.filter(keep), pa.float64()),
            "bytes": _integers(_column(rows, "bytes")),
            "ok": ok,
            "error": _errors(rows, ok),
            "worker": pa.nulls(rows.num_rows, pa.string()),
            "user": state.user_ids(_column(rows, "threadName")),
        }
    )
    frame = out.to_pandas(types_mapper=_PANDAS_TYPES.get)

    state.samples += len(frame)
    state.add_span(frame["ts"], frame["latency_ms"])
    if "allThreads" in rows.column_names:
        users = _integers(_column(rows, "allThreads")).to_pandas()
        state.add_users(frame["ts"], users)
    return frame, dropped


_PANDAS_TYPES = {pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}


def _errors(rows: pa.Table, ok: pa.Array) -> pa.Array:
    """The error text of each failed sample; null for successes.

    The failure message when there is one, else the response message; for a sample
    with no HTTP response, ``<exception>: <message>``.
    """
    failure = pc.utf8_trim_whitespace(_column(rows, "failureMessage"))
    message = _column(rows, "responseMessage")
    code = _column(rows, "responseCode")
    text = pc.if_else(pc.equal(failure, ""), message, failure)

    non_http = pc.and_(pc.starts_with(code, _NON_HTTP_CODE), pc.equal(failure, ""))
    if pc.any(non_http).as_py():
        exception = pc.utf8_slice_codeunits(code, len(_NON_HTTP_CODE))
        has_prefix = pc.starts_with(message, _NON_HTTP_MESSAGE)
        detail = pc.if_else(
            has_prefix,
            pc.utf8_slice_codeunits(message, len(_NON_HTTP_MESSAGE)),
            message,
        )
        combined = pc.if_else(
            pc.equal(pc.utf8_trim_whitespace(detail), ""),
            exception,
            pc.binary_join_element_wise(exception, detail, ": "),
        )
        text = pc.if_else(non_http, combined, text)

    blank = pc.equal(pc.utf8_trim_whitespace(text), "")
    return pc.if_else(pc.or_(ok, blank), _NULL_TEXT, text)


def _subresults(
    table: pa.Table,
    label: pa.Array,
    start_ms: pa.Array,
    elapsed: pa.Array,
    keep: pa.Array,
    state: _State,
) -> pa.Array:
    """Which rows are sub-results of a sample their thread wrote before them.

    A sub-result is labelled ``<parent label>-<n>`` (``-<n>-<m>`` when nested), comes
    after its parent in the same thread with only other sub-results of that parent in
    between, and starts within the parent's time span. ``state.parents`` carries each
    thread's last top-level sample from one block to the next.
    """
    thread = _column(table, "threadName")
    end_ms = pc.add(start_ms, elapsed)
    candidate = pc.and_(keep, pc.match_substring_regex(label, r"-\d+$"))
    plain = pc.and_(keep, pc.invert(candidate))  # top-level for sure
    columns = ["p_label", "p_start", "p_end", "p_pos"]
    rows = np.flatnonzero(candidate.to_numpy(zero_copy_only=False))
    child = np.zeros(table.num_rows, dtype=bool)
    top: dict[str, tuple] = {}  # thread -> its last top-level candidate row

    if rows.size:
        frame = pd.DataFrame(
            {
                "thread": thread.to_pandas(),
                "p_label": label.to_pandas(),
                "p_start": start_ms.to_pandas(),
                "p_end": end_ms.to_pandas(),
                "p_pos": np.arange(table.num_rows, dtype=float),
            }
        )
        # For every row, the thread's last plain top-level row before it (or carried)
        parents = frame.copy()
        parents.loc[~plain.to_numpy(zero_copy_only=False), columns] = None
        if state.parents is not None:
            parents = pd.concat([state.parents, parents], ignore_index=True)
        filled = parents.groupby("thread", sort=False)[columns].ffill()
        filled = filled.iloc[len(parents) - len(frame) :]
        found = list(zip(*(filled[c].tolist() for c in columns), strict=True))

        # A parent whose own label ends in "-<n>" is a candidate too: walk the
        # candidates in order, remembering the ones that turned out top-level.
        names, threads = frame["p_label"].tolist(), frame["thread"].tolist()
        starts, ends = frame["p_start"].tolist(), frame["p_end"].tolist()
        for i in rows.tolist():
            name, started = names[i], starts[i]
            parent = found[i]
            latest = top.get(threads[i])
            if latest is not None and not (parent[3] >= latest[3]):
                parent = latest
            owner = parent[0]
            if (
                isinstance(owner, str)
                and name.startswith(owner + "-")
                and _SUFFIX.fullmatch(name, len(owner) + 1)
                and parent[1] <= started <= parent[2]
            ):
                child[i] = True
            else:
                top[threads[i]] = (name, started, ends[i], float(i))

    # Remember each thread's last top-level row for the next block
    positions = pa.array(np.arange(table.num_rows, dtype=float))
    last = (
        pa.table([thread, label, start_ms, end_ms, positions], ["thread", *columns])
        .filter(plain)
        .group_by("thread", use_threads=False)
        .aggregate([(c, "last") for c in columns])
        .to_pandas()
        .set_index("thread")
        .set_axis(columns, axis=1)
    )
    if top:
        tops = pd.DataFrame.from_dict(top, orient="index", columns=columns)
        last = pd.concat([last, tops]).sort_values("p_pos")
        last = last[~last.index.duplicated(keep="last")]
    if not last.empty:
        last["p_pos"] = -1.0  # before every row of the next block
        if state.parents is not None:
            last = last.combine_first(state.parents.set_index("thread"))
        state.parents = last.rename_axis("thread").reset_index()
    return pa.array(child)


# -- XML -------------------------------------------------------------------------------

_SAMPLE_TAGS = ("httpSample", "sample")
_XML_FIELDS = {
    "ts": "timeStamp",
    "t": "elapsed",
    "lb": "label",
    "rc": "responseCode",
    "rm": "responseMessage",
    "tn": "threadName",
    "s": "success",
    "by": "bytes",
    "na": "allThreads",
    "sc": "SampleCount",
    "ec": "ErrorCount",
}


def _read_xml(path: Path, sink: RequestSink, state: _State, result: Ingested) -> None:
    stream, raw = _open_raw(path)
    bar = progress_bar(path)
    clock = _Clock()
    clock.fmt = "ms"
    kept_before = state.samples
    dropped = 0
    buffer: list[dict[str, str]] = []
    seen_root = False
    try:
        try:
            for sample in _xml_samples(stream, path, state):
                if sample is None:
                    seen_root = True
                    continue
                buffer.append(sample)
                if len(buffer) >= _XML_CHUNK_SAMPLES:
                    dropped += _flush_xml(buffer, clock, state, sink)
                    if bar is not None:
                        bar.update(raw.tell() - bar.n)
        except ET.ParseError as exc:
            line = exc.position[0]
            if not seen_root:
                raise InputError(
                    f"This is not a JMeter XML result file ({exc}).", path, line
                ) from exc
            result.warn(
                f"{path}:{line}: the XML ends or breaks before its closing "
                f"</testResults> tag ({exc}); the samples before line {line} were "
                "read, an incomplete last sample was left out."
            )
        dropped += _flush_xml(buffer, clock, state, sink)
    finally:
        if bar is not None:
            bar.close()
        stream.close()
        raw.close()
    if not seen_root:
        raise InputError("This is not a JMeter XML result file.", path)
    if dropped:
        lines = _xml_sample_lines(path, _unreadable_sample, _SHOWN_LINES)
        shown = ", ".join(str(n) for n in lines)
        more = f" and {dropped - len(lines)} more" if dropped > len(lines) else ""
        where = f", at line {shown}{more}" if lines else ""
        result.warn(
            f"{path}: {dropped} samples with a missing or non-numeric ts, t or s "
            f"attribute were skipped{where}; they are not in the request counts. "
            "JMeter writes all three on every sample: the file may have been edited "
            "or written by another tool."
        )
    _file_aggregated(
        path,
        state,
        lambda: next(iter(_xml_sample_lines(path, _aggregated_sample, 1)), None),
    )
    if state.samples == kept_before:
        result.warn(f"{path}: the file holds no sample that could be read.")
    log.info("read %s (%d samples)", path, state.samples - kept_before)


class _Enough(Exception):
    """Stops a second pass over an XML file once it has found what it looks for."""


def _xml_sample_lines(
    path: Path, wanted: Callable[[dict[str, str]], bool], limit: int
) -> list[int]:
    """The lines where the first ``limit`` samples ``wanted`` picks start.

    A second pass over an XML JTL with :mod:`xml.parsers.expat`, whose handlers
    know the line each element starts at (``iterparse`` does not tell it). The
    samples are those :func:`_xml_samples` reads: the top-level ones, a
    transaction controller's parent replaced by the samples nested inside it.
    ``wanted`` gets a sample's attributes. The pass stops at the first XML error,
    as the reading does.
    """
    lines: list[int] = []
    parser = expat.ParserCreate()
    depth = 0
    # Open sample elements, outermost first: (depth, attributes, line, children)
    open_samples: list[tuple[int, dict[str, str], int, list]] = []

    def visit(node: tuple[int, dict[str, str], int, list]) -> None:
        _, attributes, line, children = node
        if attributes.get("rm", "").startswith(_TRANSACTION) and children:
            for child in children:
                visit(child)
            return
        if wanted(attributes):
            lines.append(line)
            if len(lines) >= limit:
                raise _Enough

    def start(tag: str, attributes: dict[str, str]) -> None:
        nonlocal depth
        depth += 1
        if tag not in _SAMPLE_TAGS:
            return
        if depth == 2 or (open_samples and open_samples[-1][0] == depth - 1):
            node = (depth, attributes, parser.CurrentLineNumber, [])
            if open_samples:
                open_samples[-1][3].append(node)
            open_samples.append(node)

    def end(tag: str) -> None:
        nonlocal depth
        if open_samples and open_samples[-1][0] == depth:
            node = open_samples.pop()
            if not open_samples:
                visit(node)
        depth -= 1

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    stream, raw = _open_raw(path)
    try:
        parser.ParseFile(stream)
    except _Enough:
        pass
    except expat.ExpatError as exc:
        log.info("%s: second pass stopped (%s)", path, exc)
    finally:
        stream.close()
        raw.close()
    return lines


def _readable_sample(attributes: dict[str, str]) -> bool:
    """Whether an XML sample has the numeric ts and t and the s the reader needs."""
    return (
        _INTEGER.fullmatch(attributes.get("ts", "").strip()) is not None
        and _INTEGER.fullmatch(attributes.get("t", "").strip()) is not None
        and attributes.get("s", "").strip().lower() in ("true", "false")
    )


def _unreadable_sample(attributes: dict[str, str]) -> bool:
    return not _readable_sample(attributes)


def _aggregated_sample(attributes: dict[str, str]) -> bool:
    """Whether an XML sample is read and stands for several (``sc`` above 1)."""
    count = attributes.get("sc", "").strip()
    return (
        _readable_sample(attributes)
        and int(attributes["ts"]) != 0
        and _INTEGER.fullmatch(count) is not None
        and int(count) > 1
    )


def _flush_xml(
    buffer: list[dict[str, str]], clock: _Clock, state: _State, sink: RequestSink
) -> int:
    if not buffer:
        return 0
    table = pa.Table.from_pylist(buffer)
    buffer.clear()
    requests, dropped = _canonical(table, clock, state, subresult_rows=False)
    sink.append(requests)
    return dropped


def _xml_samples(stream, path: Path, state: _State) -> Iterator[dict[str, str] | None]:
    """The top-level samples of an XML JTL as CSV-named fields, streamed.

    Yields None once the ``<testResults>`` root is met. A transaction controller's
    parent sample is replaced by the samples nested inside it.
    """
    depth = 0
    root = None
    for event, elem in ET.iterparse(stream, events=("start", "end")):
        if event == "start":
            depth += 1
            if depth == 1:
                if elem.tag != "testResults":
                    raise InputError(
                        f"The XML root is <{elem.tag}>, not JMeter's <testResults>.",
                        path,
                    )
                root = elem
                yield None
            continue
        depth -= 1
        if depth == 1 and elem.tag in _SAMPLE_TAGS:
            yield from _xml_top(elem, state)
            root.clear()


def _xml_top(elem: ET.Element, state: _State) -> Iterator[dict[str, str]]:
    """One top-level sample's fields; its nested sub-results are counted, not read."""
    if elem.get("rm", "").startswith(_TRANSACTION):
        children = [c for c in elem if c.tag in _SAMPLE_TAGS]
        if children:
            for child in children:
                yield from _xml_top(child, state)
            return
    attributes = elem.attrib
    fields = {name: attributes.get(attr, "") for attr, name in _XML_FIELDS.items()}
    method, failures = "", []
    for child in elem:
        tag = child.tag
        if tag in _SAMPLE_TAGS:
            state.subresults += sum(1 for d in child.iter() if d.tag in _SAMPLE_TAGS)
        elif tag == "method":
            method = (child.text or "").strip()
        elif tag == "assertionResult":
            text = (child.findtext("failureMessage") or "").strip()
            flags = (child.findtext("failure"), child.findtext("error"))
            if text and "true" in flags:
                failures.append(text)
    fields["method"] = method
    fields["failureMessage"] = "; ".join(failures)
    yield fields


# -- the DuckDB fast path for CSV ------------------------------------------------------

#: Unicode white space, as Arrow's utf8_trim_whitespace trims it, for RE2.
_WS = r"[\t\n\x0b\x0c\r\x{85}\p{Z}]"
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def read_fast(
    files: list[Path],
    target: Path,
    encoding: str | None,
    fmt: str,
    con: duckdb.DuckDBPyConnection,
    sources: dict[Path, Path] | None = None,
) -> Ingested | None:
    """Read one well-formed CSV JTL with DuckDB; None when it needs :func:`read`.

    DuckDB parses the file in parallel into ``target`` (Parquet, in file order,
    one row per sample, with what the rules of the module docstring need), and
    the request rows are made from it in SQL: ``meta["requests_source"]`` names the
    relation holding them (users numbered in order of first appearance),
    ``meta["requests_select"]`` the canonical ``requests`` columns made from it,
    and ``meta["request_rows"]`` counts them.

    The file is handed back to the streaming reader, which reports malformed rows
    by line and applies the rules SQL does not cover, when it is not one UTF-8 file,
    has a ``method`` column, when DuckDB cannot read a row (wrong number of fields,
    a timestamp, elapsed time, byte count or thread count that is not an integer,
    a repeated header line), when a sample has an empty ``timeStamp`` or
    ``elapsed``, a ``success`` other than ``true``/``false``, a timestamp of 0 or
    a response code with blanks around it or that reads as a number other than
    one to three digits, when a label ends in ``-<n>`` (a possible sub-result), or
    when no sample is left.

    DuckDB reads an integer more leniently than the streaming reader does: a
    ``+`` sign (never written by JMeter) is accepted, where the streaming reader
    reports the row.

    ``sources`` may map the file to an identical one to read instead (the
    original of a copy still being made); the result and its messages name the
    file of ``files``.
    """
    if fmt != "jmeter-csv" or len(files) != 1:
        return None
    path = files[0]
    source = (sources or {}).get(path, path)
    refusal = _fast_refusal(source, encoding)
    if isinstance(refusal, str):
        log.info("%s: %s; read by the streaming reader", path, refusal)
        return None
    bar = progress_bar(source, path.name)
    try:
        return _read_csv_fast(path, source, refusal, target, con, bar)
    except duckdb.Error as exc:
        log.info(
            "%s: DuckDB could not read it (%s); read by the streaming reader",
            path,
            str(exc).splitlines()[0],
        )
        return None
    finally:
        if bar is not None:
            bar.close()


def _fast_refusal(path: Path, encoding: str | None) -> str | _Layout:
    """Why a JTL is not for the fast path, else its layout."""
    if path.stat().st_size == 0:
        return "the file is empty"
    if encoding is not None and encoding.replace("-", "").lower() != "utf8":
        return f"the encoding is {encoding}"
    found = plain_encoding(path)
    if found != "utf-8":
        return f"the text encoding is {found or 'not UTF-8'}"
    layout = _file_layout(path, found)
    names = layout.names
    if not {"timeStamp", "elapsed"} <= set(names) or "method" in names:
        return "the columns are not the ones the fast path reads"
    if len(set(names)) != len(names) or not all(_NAME.fullmatch(n) for n in names):
        return "the header has unusual column names"
    return layout


_NUMBERED = re.compile(r"-[0-9]+\Z")


def _fast_code(code: str) -> bool:
    """Whether the fast path reads a response code as the streaming reader does.

    It takes a code of one to three characters as an integer when DuckDB can
    read it as one, so such a code must be plain digits; the streaming reader
    trims blanks around a code, the fast path does not.
    """
    if code != code.strip():
        return False
    return len(code) > 3 or code == "" or re.fullmatch("[0-9]{1,3}", code) is not None


#: The canonical requests columns from the jtl_requests relation.
_REQUESTS_SELECT = (
    "ts, name AS endpoint, NULL::VARCHAR AS method, name, status, "
    "CAST(elapsed AS DOUBLE) AS latency_ms, bytes, ok, error, "
    'NULL::VARCHAR AS worker, "user"'
)


def _read_csv_fast(
    path: Path,
    source: Path,
    layout: _Layout,
    target: Path,
    con: duckdb.DuckDBPyConnection,
    bar,
) -> Ingested | None:
    types = dict.fromkeys(layout.names, "VARCHAR")
    for name in ("timeStamp", "elapsed", "bytes", "allThreads"):
        if name in types:
            types[name] = "BIGINT"
    columns = ", ".join(f"'{c}': '{t}'" for c, t in types.items())
    delimiter = layout.delimiter.replace("\t", "\\t")

    def text(name: str) -> str:
        return f"coalesce(\"{name}\", '')" if name in types else "''"

    def number(name: str) -> str:
        return f'"{name}"' if name in types else "NULL::BIGINT"

    def trim(sql: str) -> str:
        return f"regexp_replace({sql}, '^{_WS}+|{_WS}+$', '', 'g')"

    def integer(name: str) -> str:
        # as _integers reads one: null unless an optionally negative integer
        value = trim(text(name))
        return (
            f"CASE WHEN regexp_full_match({value}, '-?[0-9]{{1,18}}') "
            f"THEN CAST({value} AS BIGINT) END"
        )

    counted = "SampleCount" in types
    counts = (
        f", {integer('SampleCount')} AS sample_count, "
        f"{integer('ErrorCount')} AS error_count"
        if counted
        else ""
    )
    kept_counts = ", sample_count, error_count" if counted else ""

    success = text("success") if "success" in types else "'true'"
    failure = trim(text("failureMessage"))
    code, message = text("responseCode"), text("responseMessage")
    non_http = f"(starts_with({code}, '{_NON_HTTP_CODE}') AND {failure} = '')"
    detail = (
        f"CASE WHEN starts_with({message}, '{_NON_HTTP_MESSAGE}') "
        f"THEN substr({message}, {len(_NON_HTTP_MESSAGE) + 1}) ELSE {message} END"
    )
    exception = f"substr({code}, {len(_NON_HTTP_CODE) + 1})"
    error_text = (
        f"CASE WHEN {non_http} THEN CASE WHEN {trim(detail)} = '' "
        f"THEN {exception} ELSE {exception} || ': ' || {detail} END "
        f"WHEN {failure} = '' THEN {message} ELSE {failure} END"
    )

    # 1. Parse the file in parallel into one row per sample, in file order. Only
    #    what differs from row to row is computed here; what depends on a response
    #    code or a label alone is checked once per distinct value below.
    execute(
        con,
        f"""COPY (
        WITH raw AS (
            SELECT * FROM read_csv({sql_path(source)},
                header = {str(layout.header).lower()}, auto_detect = false,
                delim = '{delimiter}', quote = '"', escape = '"',
                columns = {{{columns}}}, strict_mode = true, null_padding = false)
        ), rows AS (
            SELECT "timeStamp" AS ts_ms, elapsed, {text("label")} AS label,
                   {code} AS code, {success} AS success,
                   CASE WHEN {success} = 'false' THEN {error_text} END AS problem,
                   {text("threadName")} AS thread, {number("bytes")} AS bytes,
                   {number("allThreads")} AS all_threads,
                   starts_with({message}, '{_TRANSACTION}') AS transaction{counts}
            FROM raw
        )
        SELECT ts_ms, elapsed, label, code,
               CASE WHEN length(code) <= 3 THEN TRY_CAST(code AS INTEGER) END
                   AS status,
               success = 'true' AS ok, success NOT IN ('true', 'false') AS odd,
               thread, bytes, all_threads, transaction,
               CASE WHEN regexp_full_match(problem, '{_WS}*') THEN NULL
                    ELSE problem END AS error{kept_counts}
        FROM rows
        ) TO {sql_path(target)} (FORMAT parquet, COMPRESSION uncompressed)""",
        bar,
        share=0.9,
    )
    con.execute(
        "CREATE OR REPLACE TEMP VIEW jtl_rows AS SELECT * "
        f"FROM read_parquet({sql_path(target)}, file_row_number = true)"
    ).fetchall()

    # 2. Whether the rules here cover every sample (one scan, grouped by response
    #    code and by label); the run's span.
    found = con.sql(
        """SELECT grouping(code) AS no_code, grouping(label) AS no_label, code, label,
                  count(*) FILTER (WHERE ts_ms IS NULL OR elapsed IS NULL
                                   OR ts_ms = 0 OR odd) AS unusual,
                  count(*) FILTER (WHERE transaction) AS transactions,
                  count(*) FILTER (WHERE NOT transaction) AS kept,
                  min(ts_ms) FILTER (WHERE NOT transaction) AS start_ms,
                  max(ts_ms + elapsed) FILTER (WHERE NOT transaction) AS end_ms
           FROM jtl_rows
           GROUP BY GROUPING SETS ((code), (label), ())"""
    ).fetchall()
    codes = [row[2] for row in found if not row[0]]
    labels = [row[3] for row in found if not row[1]]
    _, _, _, _, unusual, transactions, kept, start_ms, end_ms = next(
        row for row in found if row[0] and row[1]
    )
    why = None
    if unusual:
        why = f"{unusual} samples without a time, or with timestamp 0 or odd success"
    elif not kept:
        why = "no sample is an HTTP request"
    elif any(not _fast_code(code) for code in codes):
        why = "a response code is not written as JMeter writes them"
    elif any(_NUMBERED.search(label) for label in labels):
        # perhaps sub-results: the streaming reader tells them apart
        why = "a label ends in -<number>"
    if why is not None:
        log.info("%s: %s; read by the streaming reader", path, why)
        return None

    # 3. Users numbered by first appearance; the users series.
    con.execute(
        """CREATE OR REPLACE TEMP TABLE jtl_users AS
        SELECT thread, row_number() OVER (ORDER BY first) AS "user"
        FROM (SELECT thread, min(file_row_number) AS first FROM jtl_rows
              WHERE NOT transaction GROUP BY thread)"""
    ).fetchall()
    threads = con.execute("SELECT count(*) FROM jtl_users").fetchall()[0][0]
    con.execute(
        """CREATE OR REPLACE TEMP VIEW jtl_requests AS
        SELECT make_timestamptz(r.ts_ms * 1000) AS ts, r.label AS name, r.status,
               r.elapsed, r.bytes, r.ok, r.error, u."user",
               r.file_row_number
        FROM jtl_rows r JOIN jtl_users u USING (thread)
        WHERE NOT r.transaction"""
    ).fetchall()
    per_second = con.sql(
        """SELECT (ts_ms // 1000) * 1000 AS second, max(all_threads) AS users
           FROM jtl_rows WHERE NOT transaction AND all_threads IS NOT NULL
           GROUP BY second ORDER BY second"""
    ).fetchnumpy()

    state = _State()
    state.samples = kept
    state.transactions = transactions
    state.threads = dict.fromkeys(range(threads), 0)  # only their number is used
    state.start = pd.Timestamp(int(start_ms), unit="ms", tz="UTC")
    state.end = pd.Timestamp(int(end_ms), unit="ms", tz="UTC")
    if len(per_second["second"]):
        index = pd.to_datetime(np.asarray(per_second["second"]), unit="ms", utc=True)
        state.users = pd.Series(np.asarray(per_second["users"]), index=index)
    if counted:
        rows, samples, errors, missing = con.execute(
            """SELECT count(*), sum(sample_count), sum(error_count),
                      count(*) FILTER (WHERE error_count IS NULL)
               FROM jtl_rows WHERE NOT transaction AND sample_count > 1"""
        ).fetchall()[0]
        if rows:
            has_errors = "ErrorCount" in types
            state.aggregated.append(
                _Aggregated(
                    path,
                    rows=rows,
                    samples=int(samples),
                    errors=int(errors or 0),
                    errors_missing=missing if has_errors else 0,
                    has_error_count=has_errors,
                    first_line=_first_aggregated_line(source, "utf-8", layout),
                )
            )
    result = Ingested(tool="jmeter", fmt="jmeter-csv", files=[path])
    state.report(result)
    result.meta["request_rows"] = kept
    result.meta["requests_source"] = "jtl_requests"
    result.meta["requests_select"] = _REQUESTS_SELECT
    if bar is not None:
        bar.update(bar.total - bar.n)
    log.info("read %s with DuckDB (%d samples)", path, kept)
    return result

"""What every export reader shares: its result, the request sink, text decoding.

A reader turns one tool's files into an :class:`Ingested`: the canonical tables it can
fill (see :mod:`perflab.store`), the run's metadata and the caveats met on the way.
Per-request rows go through a :class:`RequestSink`, which writes them to Parquet in
chunks so a file larger than memory can be streamed. Tables the reader leaves empty are
derived from the requests afterwards by :mod:`perflab.ingest`.
"""

from __future__ import annotations

import codecs
import gzip
import io
import logging
import os
import sys
import threading
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow.parquet as pq

from perflab.errors import DataWarning, InputError
from perflab.store import SCHEMAS, to_arrow

log = logging.getLogger(__name__)


@dataclass
class Ingested:
    """What a reader made of a set of files.

    Attributes
    ----------
    tool, tool_version
        The load generator (``locust``, ``k6``, ``jmeter``, ``gatling``) and its version
        when the files tell it (else a best guess ending in ``?``, or None).
    fmt
        The export format read, for example ``locust-csv`` or ``k6-json``.
    files
        The files the reader consumed; they are copied to the run's ``raw/`` untouched.
    intervals, endpoints, errors, resources
        Canonical tables the tool itself provides (None when absent). Leave a table None
        when it should be derived from the requests.
    provenance
        Per table, ``(provenance, note)``: ``("aggregate", "Locust rounds ...")``.
    meta
        Fields for ``run.json``: ``start``, ``end`` (UTC timestamps), ``duration_s``,
        ``peak_users``, ``scenario``, ``host``, ``stages``, ``thresholds`` ...
    warnings
        Caveats to show in the report (each one has also been issued as a warning).
    """

    tool: str
    fmt: str
    tool_version: str | None = None
    files: list[Path] = field(default_factory=list)
    intervals: pd.DataFrame | None = None
    endpoints: pd.DataFrame | None = None
    errors: pd.DataFrame | None = None
    resources: pd.DataFrame | None = None
    provenance: dict[str, tuple[str, str]] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def warn(self, message: str, category: type[Warning] = DataWarning) -> None:
        """Issue a caveat as a warning and keep it for run.json and the report."""
        warnings.warn(message, category, stacklevel=2)
        if message not in self.warnings:
            self.warnings.append(message)


class RequestSink:
    """Collects per-request rows and writes them to a Parquet file in chunks.

    Readers call :meth:`append` with DataFrames holding the canonical ``requests``
    columns (timestamps as UTC, latency in milliseconds). Rows are buffered and written
    every ``chunk_rows`` rows, so memory stays bounded whatever the file size.
    """

    def __init__(self, path: Path, chunk_rows: int = 500_000):
        self.path = Path(path)
        self.chunk_rows = chunk_rows
        self.rows = 0
        self._pending: list[pd.DataFrame] = []
        self._pending_rows = 0
        self._writer: pq.ParquetWriter | None = None

    def append(self, frame: pd.DataFrame) -> None:
        if frame.empty:
            return
        self._pending.append(frame)
        self._pending_rows += len(frame)
        if self._pending_rows >= self.chunk_rows:
            self.flush()

    def flush(self) -> None:
        if not self._pending:
            return
        chunk = pd.concat(self._pending, ignore_index=True)
        self._pending, self._pending_rows = [], 0
        table = to_arrow("requests", chunk)
        if self._writer is None:
            self._writer = pq.ParquetWriter(
                self.path, SCHEMAS["requests"], compression="zstd"
            )
        self._writer.write_table(table)
        self.rows += table.num_rows

    def close(self) -> int:
        """Write what is pending and close the file; returns the number of rows."""
        self.flush()
        if self._writer is not None:
            self._writer.close()
            self._writer = None
        return self.rows


# -- DuckDB ---------------------------------------------------------------------------

#: Memory DuckDB may hold for its own work (sorts and aggregates spill beyond it), so
#: that a whole ingest stays within 1 GiB of resident memory with Python, pandas and
#: Arrow beside it.
DUCKDB_MEMORY_LIMIT = "500MB"

#: Files larger than this show a progress bar on a terminal.
PROGRESS_BYTES = 50 * 2**20


def duckdb_connection(workdir: Path) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection set up for ingesting.

    Its memory is capped at :data:`DUCKDB_MEMORY_LIMIT`; work that does not fit
    spills to ``workdir/.duckdb-tmp`` (the caller removes it). Times are UTC, and
    insertion order is preserved, which the fast paths rely on: a query without
    ``ORDER BY`` over one CSV file yields its rows in file order.
    """
    con = duckdb.connect(config={"threads": os.cpu_count() or 1})
    con.execute(f"SET memory_limit = '{DUCKDB_MEMORY_LIMIT}'")
    con.execute(f"SET temp_directory = '{_sql_text(workdir / '.duckdb-tmp')}'")
    con.execute("SET TimeZone = 'UTC'")
    con.execute("SET preserve_insertion_order = true")
    con.execute("SET enable_progress_bar = true")
    con.execute("SET enable_progress_bar_print = false")
    return con


def _sql_text(value: Path | str) -> str:
    return str(value).replace("'", "''")


def sql_path(path: Path | str) -> str:
    """A file path as a quoted SQL string literal."""
    return f"'{_sql_text(path)}'"


def progress_bar(path: Path, desc: str | None = None):
    """A tqdm bar on stderr counting a file's bytes, or None.

    Only for files larger than :data:`PROGRESS_BYTES` and only when stderr is a
    terminal.
    """
    size = path.stat().st_size
    if size < PROGRESS_BYTES or not sys.stderr.isatty():
        return None
    from tqdm import tqdm

    return tqdm(
        total=size,
        unit="B",
        unit_scale=True,
        desc=desc or path.name,
        file=sys.stderr,
        leave=False,
    )


def execute(
    con: duckdb.DuckDBPyConnection, sql: str, progress=None, share: float = 1.0
) -> None:
    """Run one statement; advance ``progress`` by ``share`` of its total meanwhile.

    DuckDB reports a running query's progress (0-100 %); the statement runs on a
    worker thread while this thread moves the bar. Interrupting (Ctrl-C) stops the
    query.
    """
    began = time.perf_counter()
    if progress is None:
        con.execute(sql).fetchall()
        log.debug("DuckDB %.2f s: %s", time.perf_counter() - began, sql[:60])
        return
    failure: list[BaseException] = []

    def work() -> None:
        try:
            con.execute(sql).fetchall()
        except BaseException as exc:  # handed to the calling thread
            failure.append(exc)

    begin = progress.n
    span = progress.total * share
    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    try:
        while worker.is_alive():
            worker.join(0.1)
            done = con.query_progress()
            if done >= 0:
                progress.update(max(begin + span * done / 100 - progress.n, 0))
    except KeyboardInterrupt:
        con.interrupt()
        worker.join()
        raise
    progress.update(max(begin + span - progress.n, 0))
    if failure:
        raise failure[0]
    log.debug("DuckDB %.2f s: %s", time.perf_counter() - began, sql[:60])


# -- reading text ---------------------------------------------------------------------

GZIP_MAGIC = b"\x1f\x8b"


def open_binary(path: Path):
    """Open a file for reading bytes, transparently un-gzipping it."""
    with open(path, "rb") as probe:
        magic = probe.read(2)
    if magic == GZIP_MAGIC:
        return gzip.open(path, "rb")
    return open(path, "rb")


def head_bytes(path: Path, size: int = 65536) -> bytes:
    """The first bytes of a file (after un-gzipping), for format detection."""
    with open_binary(path) as handle:
        return handle.read(size)


def detect_encoding(path: Path, sample_size: int = 1 << 20) -> str:
    """Guess a text file's encoding: UTF-8 (with or without BOM) first, else detect.

    Returns a Python codec name. ``utf-8-sig`` is returned for a UTF-8 BOM so that the
    BOM never reaches the first column name.
    """
    with open_binary(path) as handle:
        sample = handle.read(sample_size)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    if sample.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    try:
        sample.decode("utf-8")
        return "utf-8"
    except UnicodeDecodeError as exc:
        # A multi-byte character cut by the end of the sample is not an error.
        if exc.start >= len(sample) - 3 and len(sample) == sample_size:
            return "utf-8"
    from charset_normalizer import from_bytes

    best = from_bytes(sample).best()
    if best is None:
        raise InputError(
            "The file's text encoding could not be recognised; give it with "
            "--encoding (for example --encoding gbk or --encoding latin-1).",
            path,
        )
    encoding = best.encoding
    log.info("%s: detected text encoding %s", path, encoding)
    return encoding


def open_text(path: Path, encoding: str | None = None) -> io.TextIOBase:
    """Open a (possibly gzipped) text file with a given or detected encoding.

    Undecodable bytes raise an :class:`InputError` when read, never turn into ``?``.
    """
    encoding = encoding or detect_encoding(path)
    return io.TextIOWrapper(open_binary(path), encoding=encoding, newline="")


def read_text(path: Path, encoding: str | None = None) -> tuple[str, str]:
    """Read a whole text file; returns ``(text, encoding used)``."""
    encoding = encoding or detect_encoding(path)
    try:
        with open_text(path, encoding) as handle:
            return handle.read(), encoding
    except UnicodeDecodeError as exc:
        raise InputError(
            f"The file is not valid {encoding} text (byte {exc.start}); give its "
            "encoding with --encoding.",
            path,
        ) from exc

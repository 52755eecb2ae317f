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
import unicodedata
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


def progress_bar(path: Path, desc: str | None = None, total: int | None = None):
    """A tqdm bar on stderr for work on a large file, or None.

    Parameters
    ----------
    path
        The file; its size decides whether a bar is shown.
    desc
        The bar's label; the file name when None.
    total
        What the bar counts to: the file's size in bytes when None (then the bar
        shows bytes), else a number of steps.

    Returns
    -------
    tqdm or None
        None for files smaller than :data:`PROGRESS_BYTES`, and when stderr is not
        a terminal: a log file or a pipe gets no carriage-return animation.
    """
    size = path.stat().st_size
    if size < PROGRESS_BYTES or not _stderr_is_terminal():
        return None
    from tqdm import tqdm

    if total is None:
        return tqdm(
            total=size,
            unit="B",
            unit_scale=True,
            desc=desc or path.name,
            file=sys.stderr,
            leave=False,
        )
    return tqdm(
        total=total,
        desc=desc or path.name,
        file=sys.stderr,
        leave=False,
        bar_format="{desc}: {percentage:3.0f}%|{bar}| [{elapsed}<{remaining}]",
    )


def _stderr_is_terminal() -> bool:
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):  # replaced or closed stderr
        return False


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
    """Guess a text file's encoding from its first ``sample_size`` bytes.

    UTF-8 (with or without BOM) and UTF-16 with a BOM are recognised first;
    anything else is guessed by ``charset_normalizer``, with one correction.
    Load generators write their files in the code page of the machine they run on,
    and on a Chinese-locale Windows that is GBK. A few Chinese names are too little
    text for the detector, which then guesses a Western single-byte code page, Big5
    (which shares GBK's byte ranges) or a Korean or Japanese one. When the bytes are
    valid GB18030 (a superset of GBK) and every non-ASCII character they decode to
    is a CJK one, GB18030 is used instead, unless the detector's own reading looks
    like the language it names (see :func:`_looks_like`). Give the encoding
    (``--encoding``) for Big5 or for Japanese written in kanji only.

    Returns a Python codec name: ``utf-8-sig`` for a UTF-8 BOM, so that the BOM
    never reaches the first column name.

    Raises
    ------
    InputError
        When no encoding fits the bytes.
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
    detected = best.encoding if best is not None else None
    encoding = _prefer_gb18030(sample, detected)
    if encoding is None:
        raise InputError(
            "The file's text encoding could not be recognised; give it with "
            "--encoding (for example --encoding gbk or --encoding latin-1).",
            path,
        )
    if encoding != detected:
        log.info("%s: reading as %s rather than %s", path, encoding, detected)
    else:
        log.info("%s: detected text encoding %s", path, encoding)
    return encoding


#: Codec names (prefixes) of the Japanese and Korean encodings.
_EAST_ASIAN = ("shift", "euc", "cp932", "cp949", "iso2022", "johab")
_KOREAN = ("cp949", "euc_kr", "iso2022_kr", "johab")


def _prefer_gb18030(sample: bytes, detected: str | None) -> str | None:
    """GB18030 where it reads ``sample`` better than the detector's guess."""
    name = codecs.lookup(detected).name if detected else ""
    if name.startswith(("utf", "gb18030")):
        return detected
    if name.startswith(_EAST_ASIAN) and _looks_like(sample, detected):
        return detected
    # Not final: a character cut by the end of the sample is not an error.
    try:
        text = codecs.getincrementaldecoder("gb18030")().decode(sample, final=False)
    except UnicodeDecodeError:
        return detected
    wide = [c for c in text if ord(c) > 127]
    if wide and all(_is_cjk(c) for c in wide):
        return "gb18030"
    return detected


def _looks_like(sample: bytes, encoding: str) -> bool:
    """Whether a Japanese or Korean reading of the bytes looks like that language.

    Korean text is written in Hangul, rarely mixed with Chinese characters; Japanese
    text has kana, and hardly ever the half-width katakana that Chinese GBK bytes
    turn into when read as Shift JIS. Chinese GBK bytes read as a Korean code page
    give a mix of Hangul and Chinese characters, read as EUC-JP they give Chinese
    characters without kana.
    """
    text = sample.decode(encoding, errors="ignore")
    names = [unicodedata.name(c, "") for c in text if ord(c) > 127]
    han = any(n.startswith("CJK UNIFIED") for n in names)
    if codecs.lookup(encoding).name.startswith(_KOREAN):
        return any(n.startswith("HANGUL") for n in names) and not han
    kana = any(n.startswith(("HIRAGANA", "KATAKANA")) for n in names)
    return kana and not any(n.startswith("HALFWIDTH KATAKANA") for n in names)


def _is_cjk(char: str) -> bool:
    name = unicodedata.name(char, "")
    return name.startswith(
        ("CJK ", "FULLWIDTH ", "IDEOGRAPHIC ", "HIRAGANA ", "KATAKANA ")
    )


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

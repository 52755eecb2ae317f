"""Ingest: turn load-test exports into a run in the run store.

``ingest(paths)`` finds the files (folders are expanded), detects each file's format
from its content, copies the files into a new run's ``raw/`` untouched, reads them with
the format's reader, and writes the canonical tables. Tables the tool does not provide
are derived from the per-request samples when there are any. The copy is made on a
thread while a fast path reads the files given (see :func:`ingest_into`); a
streaming reader reads the copies once they are complete.

A reader is a module in this package with three names:

``FORMATS``
    the names of the formats it reads, for example ``("k6-csv", "k6-json")``;
    ``--format`` takes them.
``sniff(path, head) -> str | None``
    the format of a file, from its first bytes (already un-gzipped), or None when the
    file is not one of this reader's formats.
``read(files, sink, encoding, fmt) -> Ingested``
    read files of format ``fmt``; per-request rows go to ``sink`` (a
    :class:`RequestSink`); ``encoding`` is None unless the user gave one.
"""

from __future__ import annotations

import importlib
import logging
import os
import shutil
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from perflab import statistics
from perflab.errors import DataWarning, InputError, PrecisionWarning
from perflab.ingest.base import (
    Ingested,
    RequestSink,
    duckdb_connection,
    execute,
    head_bytes,
    progress_bar,
    sql_path,
)
from perflab.store import (
    DEFAULT_STORE,
    OVERALL,
    PERCENTILES,
    SCHEMAS,
    TABLES,
    Run,
    TableInfo,
    create_run,
    iso,
    open_run,
    percentile_column,
)

log = logging.getLogger(__name__)

# Order matters: the first reader whose sniff() accepts a file wins, so the more
# specific formats come first.
_READER_MODULES = ("recorded", "locust", "k6", "jmeter", "gatling")

RECORDED = "perflab-run"

_SKIPPED_SUFFIXES = {".parquet", ".html", ".md", ".ipynb", ".png", ".svg", ".py"}


def readers() -> dict[str, ModuleType]:
    """The available readers by format name."""
    found = {}
    for name in _READER_MODULES:
        try:
            module = importlib.import_module(f"perflab.ingest.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"perflab.ingest.{name}":
                raise
            continue
        for fmt in module.FORMATS:
            found[fmt] = module
    return found


def expand(paths: Iterable[Path | str]) -> list[Path]:
    """Files named directly, plus the files inside named folders (not recursive)."""
    files: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            files.extend(
                p
                for p in sorted(path.iterdir())
                if p.is_file()
                and not p.name.startswith(".")
                and p.suffix not in _SKIPPED_SUFFIXES
                and p.name != "run.json"
            )
        elif path.is_file():
            files.append(path)
        else:
            raise InputError("No such file or folder.", path)
    return files


def detect(path: Path, modules: dict[str, ModuleType] | None = None) -> str | None:
    """The format of one file, from its content, or None when no reader claims it."""
    modules = modules or readers()
    if path.stat().st_size == 0:
        raise InputError("The file is empty; it holds no load-test results.", path)
    head = head_bytes(path)
    for module in dict.fromkeys(modules.values()):
        found = module.sniff(path, head)
        if found is not None:
            return found
    return None


def ingest(
    paths: Sequence[Path | str],
    store: Path | str = DEFAULT_STORE,
    fmt: str | None = None,
    encoding: str | None = None,
    run_id: str | None = None,
    **meta,
) -> Run:
    """Ingest exports into a new run and return it.

    Parameters
    ----------
    paths
        Files and folders; a folder contributes the files directly inside it.
    store
        The run store folder.
    fmt
        Force a format (see :func:`readers`) instead of detecting it.
    encoding
        Text encoding of the files; detected when not given.
    run_id
        Id of the new run; generated when not given.
    meta
        Extra ``run.json`` fields, such as ``environment``.

    Raises
    ------
    InputError
        When a file is empty or not a load-test export, or files of several unrelated
        formats were given together.
    """
    modules = readers()
    if fmt is not None and fmt not in modules:
        raise InputError(f"Unknown format {fmt!r}; known formats: {sorted(modules)}.")
    if len(paths) == 1 and (Path(paths[0]) / "run.json").is_file():
        return reingest(Path(paths[0]), encoding=encoding)
    files = expand(paths)
    if not files:
        raise InputError(
            "No files to ingest were found.", paths[0] if len(paths) == 1 else None
        )
    explicit = {Path(p) for p in paths if Path(p).is_file()}

    by_format: dict[str, list[Path]] = {}
    for path in files:
        found = fmt or detect(path, modules)
        if found is None:
            if path in explicit:
                raise InputError(
                    "This is not a load-test export perflab can read (Locust CSV or "
                    "JSON, k6 CSV/JSON/summary, JMeter JTL, Gatling simulation.log). "
                    "If it is one, name its format with --format; formats: "
                    f"{', '.join(sorted(modules))}.",
                    path,
                )
            log.warning("%s: not a load-test export; left out", path)
            continue
        by_format.setdefault(found, []).append(path)
    if not by_format:
        raise InputError(
            "None of the files is a load-test export perflab can read.", files[0]
        )
    if RECORDED in by_format:
        # A perflab run's raw folder also holds Locust's own exports: read them all.
        by_format = {RECORDED: [p for group in by_format.values() for p in group]}
    if len(by_format) > 1:
        listing = "; ".join(
            f"{name}: {', '.join(p.name for p in group)}"
            for name, group in sorted(by_format.items())
        )
        raise InputError(
            "The files given hold several export formats that do not belong to one "
            f"run ({listing}). Ingest each set on its own."
        )
    ((found_fmt, group),) = by_format.items()

    run = create_run(store, run_id=run_id, label=found_fmt, **meta)
    copy = _RawCopy(group, run.raw)
    try:
        ingest_into(run, found_fmt, copy.targets, encoding=encoding, copy=copy)
    except InputError as exc:
        copy.join()
        _remove_unfinished(run)
        # the readers name the copies in raw/, which are gone with the run
        raise _as_given(exc, copy.sources) from None
    except BaseException:
        copy.join()
        _remove_unfinished(run)
        raise
    return run


def _remove_unfinished(run: Run) -> None:
    shutil.rmtree(run.path, ignore_errors=True)
    log.info("removed the unfinished run %s", run.path)


def _as_given(exc: InputError, originals: dict[Path, Path]) -> InputError:
    """The same error, naming the files the user gave instead of their copies."""
    message = exc.message
    for copy, original in originals.items():
        message = message.replace(str(copy), str(original))
    path = originals.get(exc.path, exc.path) if exc.path is not None else None
    return InputError(message, path, exc.line)


def reingest(path: Path, encoding: str | None = None) -> Run:
    """Ingest a run folder again from its ``raw/`` files, replacing its tables."""
    run = open_run(path)
    files = expand([run.raw])
    if not files:
        raise InputError(
            "The run's raw/ folder is empty; there is nothing to ingest.", run.raw
        )
    fmt = run.meta.get("format") or RECORDED
    if fmt not in readers():
        raise InputError(
            f"run.json names an unknown format {fmt!r}.", run.path / "run.json"
        )
    for name in TABLES:
        run.table_path(name).unlink(missing_ok=True)
    run.meta["tables"] = {}
    ingest_into(run, fmt, files, encoding=encoding)
    return run


class _RawCopy:
    """Copies the files given into a run's ``raw/`` on a thread, byte for byte.

    Copying a large export takes a good part of a second (more while the disk is
    busy writing back), time the kernel spends in ``sendfile`` without holding
    the GIL; meanwhile a fast path reads the originals. ``targets`` are the
    copies, in the order of the files (a name already taken gets ``-1``, ``-2``
    ...), and ``sources`` maps each copy to its original.
    """

    def __init__(self, files: list[Path], raw: Path):
        self.targets: list[Path] = []
        for path in files:
            target = raw / path.name
            suffix = 1
            while target.exists() or target in self.targets:
                target = raw / f"{path.stem}-{suffix}{path.suffix}"
                suffix += 1
            self.targets.append(target)
        self.sources = dict(zip(self.targets, files, strict=True))
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._copy, daemon=True)
        self._thread.start()

    def _copy(self) -> None:
        try:
            for target, source in self.sources.items():
                shutil.copy2(source, target)
        except BaseException as exc:  # raised by wait(), on the ingesting thread
            self._failure = exc

    def join(self) -> None:
        """Wait until the copying ends, however it ends."""
        self._thread.join()

    def wait(self) -> None:
        """Wait until the copies are complete; raise what made copying fail."""
        self.join()
        if self._failure is not None:
            raise self._failure


def ingest_into(
    run: Run,
    fmt: str,
    files: list[Path],
    encoding: str | None = None,
    copy: _RawCopy | None = None,
) -> Ingested:
    """Read files in ``run.raw`` with one reader and write the run's tables.

    A reader may offer a fast path,
    ``read_fast(files, target, encoding, fmt, con, sources)``, that lets DuckDB
    parse and transform a well-formed file; it returns None when the files need
    the careful streaming reader (malformed rows, rules SQL does not cover), which
    then reads them as usual. Either way the request rows are then sorted and the
    derived tables aggregated by DuckDB (:func:`write_tables`).

    ``copy``, when the files are still being copied into ``raw/``, gives the
    fast path the originals to read (``sources``: copy to original; it names the
    copies all the same), and is waited for before a streaming reader reads the
    copies and before returning.

    A file larger than :data:`~perflab.ingest.base.PROGRESS_BYTES` shows progress
    bars on stderr when it is a terminal: one while the file is read, one while
    the tables are written.
    """
    module = readers()[fmt]
    sink_path = run.path / "requests.parquet.partial"
    con = duckdb_connection(run.path)
    try:
        result = None
        sources = copy.sources if copy is not None else {}
        fast = getattr(module, "read_fast", None)
        if fast is not None:
            result = fast(files, sink_path, encoding, fmt, con, sources)
        if result is None and copy is not None:
            copy.wait()
        source = select = None
        if result is not None:
            rows = result.meta.pop("request_rows", 0)
            source = result.meta.pop("requests_source", None)
            select = result.meta.pop("requests_select", None)
            run.meta["ingest_path"] = "duckdb"
        else:
            sink_path.unlink(missing_ok=True)
            sink = RequestSink(sink_path)
            try:
                result = module.read(files, sink, encoding, fmt)
                rows = sink.close()
            finally:
                sink.close()
            run.meta["ingest_path"] = "streaming"
        largest = max(files, key=lambda path: sources.get(path, path).stat().st_size)
        bar = progress_bar(
            sources.get(largest, largest), f"{largest.name}: writing tables", total=100
        )
        try:
            write_tables(
                run,
                result,
                sink_path if rows else None,
                con=con,
                source=source,
                select=select,
                progress=bar,
            )
        finally:
            if bar is not None:
                bar.close()
        if copy is not None:
            copy.wait()
    finally:
        con.close()
        sink_path.unlink(missing_ok=True)
        shutil.rmtree(run.path / ".duckdb-tmp", ignore_errors=True)
    return result


def write_tables(
    run: Run,
    result: Ingested,
    requests_path: Path | None,
    con: duckdb.DuckDBPyConnection | None = None,
    source: str | None = None,
    select: str | None = None,
    progress=None,
) -> None:
    """Write the canonical tables and ``run.json`` of an ingested result.

    The request rows at ``requests_path`` (Parquet, in the order they were read) are
    sorted by start time by DuckDB into ``requests.parquet``, and the derived tables
    are aggregated from that file by DuckDB too, so memory stays bounded by the
    connection's limit whatever the number of requests. The numbers are those of
    :func:`perflab.statistics.endpoint_table`, :func:`~perflab.statistics.
    interval_table` and :func:`~perflab.statistics.error_table` on the same rows.

    ``con`` is the DuckDB connection to use (one is opened when None). ``source``,
    a relation on it with a ``ts`` column and ``file_row_number`` (the read order),
    replaces reading ``requests_path`` as it is; ``select`` is the SQL list of the
    canonical ``requests`` columns made from its columns (its own columns of those
    names when None). A narrow source sorts faster: columns that repeat another
    (``endpoint`` made of ``method`` and ``name``) or are constant are better made
    in ``select``, after the sort. ``progress``, a tqdm bar of 100 steps, is moved
    along.
    """
    own = con is None
    if own:
        con = duckdb_connection(run.path)
    try:
        _write_tables(run, result, requests_path, con, source, select, progress)
    finally:
        if own:
            con.close()
            shutil.rmtree(run.path / ".duckdb-tmp", ignore_errors=True)


#: Shares of the table-writing progress bar: sorting the requests, then each table.
_SHARES = {"requests": 70, "intervals": 15, "endpoints": 10, "errors": 5}


def _write_tables(
    run: Run,
    result: Ingested,
    requests_path: Path | None,
    con: duckdb.DuckDBPyConnection,
    source: str | None,
    select: str | None,
    progress,
) -> None:
    span = None
    if requests_path is not None:
        source = source or f"read_parquet({sql_path(requests_path)}, " + (
            "file_row_number = true)"
        )
        span = _write_requests(run, source, con, select, progress)

    users = _users_series(result)
    derived = "computed from the per-request samples"
    for name in ("intervals", "endpoints", "errors", "resources"):
        provided = getattr(result, name)
        if span is not None and name != "resources":
            if name == "endpoints":
                seconds = span[2]
                if "requests_span_s" in result.meta:
                    # the reader widened a span its coarse timestamps cannot measure
                    seconds = max(seconds, float(result.meta["duration_s"]))
                frame = _endpoint_sql(con, seconds)
            elif name == "intervals":
                interval_s = statistics.interval_length(span[2])
                frame = _interval_sql(con, users, interval_s)
                for message, category in _interval_warnings(frame, interval_s, span[2]):
                    result.warn(message, category)
            else:
                frame = _error_sql(con)
            run.write_table(name, frame, "exact", derived)
        elif provided is not None:
            provenance, note = result.provenance.get(name, ("aggregate", ""))
            run.write_table(name, provided, provenance, note)
        if progress is not None and name in _SHARES:
            progress.update(_SHARES[name])

    meta = dict(result.meta)
    for key in ("start", "end"):
        if key in meta:
            meta[key] = iso(meta[key])
    if span is not None:
        meta.setdefault("start", iso(span[0]))
        meta.setdefault("end", iso(span[1]))
    if meta.get("start") and meta.get("end") and "duration_s" not in meta:
        length = pd.Timestamp(meta["end"]) - pd.Timestamp(meta["start"])
        meta["duration_s"] = round(length.total_seconds(), 3)
    meta.pop("users_series", None)
    meta.update(
        tool=result.tool,
        tool_version=result.tool_version,
        format=result.fmt,
        raw_files=sorted(p.name for p in result.files),
    )
    # What the run already knows (from `perflab run`) is not replaced by a blank.
    run.meta.update({key: value for key, value in meta.items() if value is not None})
    run.meta.setdefault("status", "completed")
    if run.meta["status"] == "interrupted" and not run.meta.get("command"):
        # An imported export: the tool finished writing it; we cannot know more.
        run.meta["status"] = "completed"
    run.add_warnings(result.warnings)
    run.save()
    if progress is not None:
        progress.update(progress.total - progress.n)


#: Rows fetched to find the latest request end exactly (see _write_requests).
_END_CANDIDATES = 64


def _write_requests(
    run: Run,
    source: str,
    con: duckdb.DuckDBPyConnection,
    select: str | None = None,
    progress=None,
) -> tuple[pd.Timestamp, pd.Timestamp, float] | None:
    """Sort the request rows into ``requests.parquet``; register it as ``requests``.

    Returns the first request start, the last request end and the window length in
    seconds (as :func:`perflab.statistics.window_seconds`), or None when there are
    no rows.
    """
    target = run.table_path("requests")
    tmp = target.with_suffix(".parquet.tmp")
    select = select or ", ".join(f'"{name}"' for name in SCHEMAS["requests"].names)
    # Rows starting at the same microsecond keep the order they were read in. The
    # columns are made after the sort, which then moves only the source's columns;
    # zstd's fastest level compresses these columns nearly as well as its default.
    execute(
        con,
        f"COPY (SELECT {select} FROM (SELECT * FROM {source} "
        f"ORDER BY ts, file_row_number)) TO {sql_path(tmp)} "
        "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)",
        progress,
        share=_SHARES["requests"] / 100,
    )
    os.replace(tmp, target)
    con.execute(
        "CREATE OR REPLACE VIEW requests AS SELECT *, file_row_number AS row "
        f"FROM read_parquet({sql_path(target)}, file_row_number = true)"
    ).fetchall()
    rows = con.execute("SELECT count(*) FROM requests").fetchall()[0][0]
    info = TableInfo(rows=rows, provenance="exact", note="one row per request")
    run.meta.setdefault("tables", {})["requests"] = info.to_json()
    run.save()
    log.info("wrote %s (%d rows, exact)", target, rows)
    if rows == 0:
        return None

    # The end of a request is ts + latency_ms, computed as pandas does (to the
    # nanosecond) over the few rows that can hold the maximum.
    start = con.execute("SELECT min(ts) FROM requests").fetchall()[0][0]
    candidates = _frame(
        con,
        "SELECT ts, latency_ms FROM requests ORDER BY epoch_us(ts) + "
        f"coalesce(latency_ms, 0) * 1000 DESC LIMIT {_END_CANDIDATES}",
    )
    ends = candidates["ts"] + pd.to_timedelta(candidates["latency_ms"].fillna(0), "ms")
    start = pd.Timestamp(start).tz_convert("UTC")
    end = ends.max()
    seconds = max((end - start).total_seconds(), 1e-3)
    return start, end, seconds


def _frame(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    """A query's result as a DataFrame, timestamps as UTC."""
    return (
        con.sql(sql)
        .to_arrow_table()
        .to_pandas(
            types_mapper={pa.int32(): pd.Int32Dtype(), pa.int64(): pd.Int64Dtype()}.get
        )
    )


_QUANTILES = ", ".join(repr(p / 100) for p in PERCENTILES)
_PERCENTILE_COLUMNS = [percentile_column(p) for p in PERCENTILES]


def _percentile_select(column: str = "q") -> str:
    # quantile_disc is the nearest-rank percentile (numpy's inverted_cdf).
    return ", ".join(
        f"{column}[{i + 1}] AS {name}" for i, name in enumerate(_PERCENTILE_COLUMNS)
    )


def _endpoint_sql(con: duckdb.DuckDBPyConnection, seconds: float) -> pd.DataFrame:
    """:func:`perflab.statistics.endpoint_table` of the ``requests`` view."""
    statistics = f"""count(*) AS requests,
                   count(*) FILTER (WHERE NOT coalesce(ok, false)) AS failures,
                   avg(latency_ms) AS mean_ms,
                   min(latency_ms) AS min_ms,
                   max(latency_ms) AS max_ms,
                   quantile_disc(latency_ms, [{_QUANTILES}]) AS q,
                   avg(bytes) AS bytes_mean"""
    columns = f"""requests, failures, mean_ms, min_ms, max_ms, {_percentile_select()},
                 bytes_mean"""
    # Two queries: DuckDB computes holistic aggregates (quantiles) over grouping
    # sets about half as fast as over one grouping each.
    endpoints = _frame(
        con,
        f"""
        WITH g AS (
            SELECT endpoint,
                   arg_min_null(method, row) AS method,
                   arg_min_null(name, row) AS name,
                   {statistics}
            FROM requests
            GROUP BY endpoint
        )
        SELECT endpoint, method, name, {columns}
        FROM g
        ORDER BY endpoint NULLS LAST
        """,
    )
    overall = _frame(
        con,
        f"""
        WITH g AS (SELECT {statistics} FROM requests)
        SELECT '{OVERALL}' AS endpoint, NULL::VARCHAR AS method,
               '{OVERALL}' AS name, {columns}
        FROM g
        """,
    )
    frame = pd.concat([endpoints, overall], ignore_index=True)
    frame["requests"] = frame["requests"].astype("int64")
    frame["failures"] = frame["failures"].astype("int64")
    frame["error_rate"] = frame["failures"] / frame["requests"]
    frame["throughput"] = frame["requests"] / seconds if seconds > 0 else np.nan
    frame = frame.astype(
        dict.fromkeys(["mean_ms", "min_ms", "max_ms", "bytes_mean"], float)
    )
    return frame[list(SCHEMAS["endpoints"].names)].reset_index(drop=True)


def _interval_sql(
    con: duckdb.DuckDBPyConnection,
    users: pd.DataFrame | None,
    interval_s: float = 1.0,
) -> pd.DataFrame:
    """:func:`perflab.statistics.interval_table` of the ``requests`` view."""
    step_us = round(interval_s * 1e6)
    origin_us = con.execute(
        "SELECT (min(epoch_us(ts)) // 1000000) * 1000000 FROM requests"
    ).fetchall()[0][0]
    frame = _frame(
        con,
        f"""
        WITH b AS (
            SELECT {origin_us} + ((epoch_us(ts) - {origin_us}) // {step_us})
                   * {step_us} AS bucket, endpoint, ok, latency_ms
            FROM requests
        ), g AS (
            SELECT grouping(endpoint) AS overall, bucket, endpoint,
                   count(*) AS requests,
                   count(*) FILTER (WHERE NOT coalesce(ok, false)) AS failures,
                   avg(latency_ms) AS mean_ms,
                   max(latency_ms) AS max_ms,
                   quantile_disc(latency_ms, [{_QUANTILES}]) AS q
            FROM b
            GROUP BY GROUPING SETS ((bucket, endpoint), (bucket))
        )
        SELECT overall, bucket, endpoint, requests, failures, mean_ms, max_ms,
               {_percentile_select()}
        FROM g
        WHERE overall = 1 OR endpoint IS NOT NULL
        """,
    )
    # The Overall series has every interval of the run, empty ones included.
    overall = frame[frame["overall"].to_numpy() == 1].set_index("bucket")
    last = int(overall.index.max())
    every = np.arange(origin_us, last + 1, step_us, dtype="int64")
    overall = overall.reindex(every).rename_axis("bucket").reset_index()
    overall["endpoint"] = OVERALL
    overall[["requests", "failures"]] = overall[["requests", "failures"]].fillna(0)
    frame = pd.concat(
        [frame[frame["overall"].to_numpy() == 0], overall], ignore_index=True
    )

    frame["ts"] = pd.to_datetime(frame["bucket"].astype("int64"), unit="us", utc=True)
    frame["interval_s"] = interval_s
    frame["requests"] = frame["requests"].astype("int64")
    frame["failures"] = frame["failures"].astype("int64")
    frame["throughput"] = frame["requests"] / interval_s
    frame["users"] = np.nan
    frame = frame.astype(
        dict.fromkeys(["mean_ms", "max_ms", *_PERCENTILE_COLUMNS], float)
    )
    columns = list(SCHEMAS["intervals"].names)
    table = frame[columns]
    if users is not None and not users.empty:
        series = users[["ts", "users"]].copy()
        series["ts"] = pd.to_datetime(series["ts"], utc=True).astype(
            "datetime64[us, UTC]"
        )
        series = series.sort_values("ts")
        table = table.assign(ts=table["ts"].astype("datetime64[us, UTC]"))
        table = table.sort_values("ts")
        merged = pd.merge_asof(
            table.drop(columns="users"), series, on="ts", direction="backward"
        )
        table = merged[columns]
    return table.sort_values(["endpoint", "ts"], kind="stable").reset_index(drop=True)


#: A pause with no request starting for this long (s) is reported at ingest: the
#: files probably hold several runs, appended or given together.
GAP_S = 300.0


def _interval_warnings(
    intervals: pd.DataFrame, interval_s: float, span_s: float
) -> list[tuple[str, type[Warning]]]:
    """Caveats about a run's interval series, with their warning classes: intervals
    longer than a second, and pauses of :data:`GAP_S` or more between requests."""
    messages: list[tuple[str, type[Warning]]] = []
    if interval_s > 1.0:
        messages.append(
            (
                f"The requests span {_duration_text(span_s)}, so the series over "
                f"time use intervals of {_duration_text(interval_s)} instead of 1 s "
                f"(at most {statistics.MAX_INTERVALS:,} intervals).",
                PrecisionWarning,
            )
        )
    overall = intervals[
        (intervals["endpoint"] == OVERALL) & (intervals["requests"] > 0)
    ]
    starts = overall["ts"].sort_values().reset_index(drop=True)
    pauses = (starts.diff().dt.total_seconds() - interval_s).fillna(0.0)
    found = np.flatnonzero(pauses.to_numpy() >= GAP_S)
    if found.size > 3:
        messages.append(
            (
                f"Requests pause for {GAP_S:g} s or more {found.size} times; the "
                "three longest follow.",
                DataWarning,
            )
        )
        found = np.sort(found[np.argsort(-pauses.to_numpy()[found])[:3]])
    for i in found:
        since = starts[i - 1] + pd.Timedelta(seconds=interval_s)
        text = (
            f"No request started for about {_duration_text(pauses[i])}, from "
            f"{since:%Y-%m-%d %H:%M:%S} to {starts[i]:%Y-%m-%d %H:%M:%S} UTC: the "
            "files probably hold several runs. Throughput and the steady-state "
            "window of the whole span include the pause; ingest each run on its "
            "own to analyse it."
        )
        messages.append((text, DataWarning))
    return messages


def _duration_text(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 2 * 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


#: Python's str.isspace() characters, as an RE2 class.
_SPACE = r"[\t\n\x0b\x0c\r\x1c-\x1f\x{85}\p{Z}]"


def _error_sql(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """:func:`perflab.statistics.error_table` of the ``requests`` view."""
    frame = _frame(
        con,
        f"""
        SELECT endpoint, method, name, status,
               CASE WHEN error IS NULL OR regexp_full_match(error, '{_SPACE}*')
                    THEN CASE WHEN status IS NULL THEN 'unknown error'
                              ELSE 'HTTP ' || CAST(status AS VARCHAR) END
                    ELSE error END AS error,
               count(*) AS count
        FROM requests
        WHERE NOT coalesce(ok, false)
        GROUP BY ALL
        ORDER BY count DESC, endpoint NULLS LAST, method NULLS LAST,
                 name NULLS LAST, status NULLS LAST, error NULLS LAST
        """,
    )
    frame["count"] = frame["count"].astype("int64")
    frame["status"] = frame["status"].astype("Int64")
    return frame


def _users_series(result: Ingested) -> pd.DataFrame | None:
    series = result.meta.get("users_series")
    if isinstance(series, pd.DataFrame) and not series.empty:
        return series
    return None


__all__ = [
    "Ingested",
    "RequestSink",
    "detect",
    "expand",
    "ingest",
    "readers",
    "reingest",
]

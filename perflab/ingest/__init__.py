"""Ingest: turn load-test exports into a run in the run store.

``ingest(paths)`` finds the files (folders are expanded), detects each file's format
from its content, copies the files into a new run's ``raw/`` untouched, reads them with
the format's reader, and writes the canonical tables. Tables the tool does not provide
are derived from the per-request samples when there are any.

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
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import ModuleType

import pandas as pd

from perflab import statistics
from perflab.errors import InputError
from perflab.ingest.base import Ingested, RequestSink, head_bytes
from perflab.store import DEFAULT_STORE, TABLES, Run, create_run, iso, open_run

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
    try:
        copied = _copy_raw(group, run.raw)
        ingest_into(run, found_fmt, copied, encoding=encoding)
    except BaseException:
        shutil.rmtree(run.path, ignore_errors=True)
        raise
    return run


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


def _copy_raw(files: list[Path], raw: Path) -> list[Path]:
    copied = []
    for path in files:
        target = raw / path.name
        suffix = 1
        while target.exists():
            target = raw / f"{path.stem}-{suffix}{path.suffix}"
            suffix += 1
        shutil.copy2(path, target)
        copied.append(target)
    return copied


def ingest_into(
    run: Run, fmt: str, files: list[Path], encoding: str | None = None
) -> Ingested:
    """Read files already in ``run.raw`` with one reader and write the run's tables."""
    module = readers()[fmt]
    sink_path = run.path / "requests.parquet.partial"
    sink = RequestSink(sink_path)
    try:
        result: Ingested = module.read(files, sink, encoding, fmt)
        rows = sink.close()
    finally:
        sink.close()
    write_tables(run, result, sink_path if rows else None)
    sink_path.unlink(missing_ok=True)
    return result


def write_tables(run: Run, result: Ingested, requests_path: Path | None) -> None:
    """Write the canonical tables and ``run.json`` of an ingested result."""
    requests = None
    if requests_path is not None:
        requests = pd.read_parquet(requests_path)
        requests = requests.sort_values("ts", kind="stable").reset_index(drop=True)
        run.write_table("requests", requests, "exact", "one row per request")

    users = _users_series(result)
    derived = "computed from the per-request samples"
    for name in ("intervals", "endpoints", "errors", "resources"):
        provided = getattr(result, name)
        if requests is not None and name != "resources":
            if name == "endpoints":
                frame = statistics.endpoint_table(requests)
            elif name == "intervals":
                frame = statistics.interval_table(requests, users=users)
            else:
                frame = statistics.error_table(requests)
            run.write_table(name, frame, "exact", derived)
        elif provided is not None:
            provenance, note = result.provenance.get(name, ("aggregate", ""))
            run.write_table(name, provided, provenance, note)

    meta = dict(result.meta)
    for key in ("start", "end"):
        if key in meta:
            meta[key] = iso(meta[key])
    if requests is not None and not requests.empty:
        meta.setdefault("start", iso(requests["ts"].min()))
        end = requests["ts"] + pd.to_timedelta(requests["latency_ms"].fillna(0), "ms")
        meta.setdefault("end", iso(end.max()))
    if meta.get("start") and meta.get("end") and "duration_s" not in meta:
        span = pd.Timestamp(meta["end"]) - pd.Timestamp(meta["start"])
        meta["duration_s"] = round(span.total_seconds(), 3)
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

"""Reader for the files ``perflab run`` writes into a run's ``raw/`` folder.

Those are the recorder's per-request files (one per Locust process), the users series,
the resource monitor's samples, and Locust's own CSV exports and HTML report. Requests,
users and resources come from perflab's files; Locust's ``_stats.csv`` is read only for
its Aggregated request count, kept in ``run.json`` as a cross-check of the recorder.
"""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path

import numpy as np
import pandas as pd

from perflab.errors import InputError
from perflab.ingest.base import Ingested, RequestSink, open_text
from perflab.monitoring import COLUMNS as RESOURCE_COLUMNS
from perflab.recording import (
    BLOCK_COLUMNS,
    BLOCK_HEAD,
    BLOCK_MAGIC,
    NO_BYTES,
    REQUEST_COLUMNS,
    REQUEST_FILE_HEADER,
    USERS_COLUMNS,
)
from perflab.store import endpoint_label

FORMATS = ("perflab-run",)

_BLOCKS_MARKER = REQUEST_FILE_HEADER.decode("ascii").split(",", 1)[0]
_MARKERS = (
    _BLOCKS_MARKER,
    REQUEST_COLUMNS[0],
    USERS_COLUMNS[0],
    RESOURCE_COLUMNS[0],
)
_WORKER = re.compile(r"perflab_requests-(.+)\.(?:bin|csv)$")
_CHUNK_ROWS = 200_000


def sniff(path: Path, head: bytes) -> str | None:
    first = head.split(b"\n", 1)[0].decode("utf-8", "replace").lstrip("\ufeff")
    if first.split(",", 1)[0] in _MARKERS:
        return "perflab-run"
    return None


def read(files: list[Path], sink: RequestSink, encoding: str | None, fmt: str):
    result = Ingested(tool="locust", fmt=fmt, files=list(files))
    kinds = {path: _kind(path) for path in files}

    for path in sorted(p for p, kind in kinds.items() if kind == "requests"):
        _read_requests(path, sink, result)
    for path in sorted(p for p, kind in kinds.items() if kind == "request-blocks"):
        _read_request_blocks(path, sink, result)
    users = [p for p, kind in kinds.items() if kind == "users"]
    if users:
        series = pd.read_csv(users[0])
        series = pd.DataFrame(
            {
                "ts": pd.to_datetime(series[USERS_COLUMNS[0]], unit="s", utc=True),
                "users": series["users"].astype(float),
            }
        )
        result.meta["users_series"] = series
        result.meta["peak_users"] = int(series["users"].max()) if len(series) else None
    resources = [p for p, kind in kinds.items() if kind == "resources"]
    if resources:
        frame = pd.read_csv(resources[0])
        result.resources = pd.DataFrame(
            {
                "ts": pd.to_datetime(frame[RESOURCE_COLUMNS[0]], unit="s", utc=True),
                "source": frame["source"],
                "metric": frame["metric"],
                "value": frame["value"].astype(float),
            }
        )
        result.provenance["resources"] = (
            "exact",
            "sampled once a second during the run by perflab's monitor (processes "
            "and host with psutil; PostgreSQL, Redis and Prometheus probes when "
            "configured)",
        )
    stats = [p for p in files if p.name.endswith("_stats.csv")]
    if stats:
        result.meta["locust_aggregated_requests"] = _locust_aggregated(stats[0])
    if not any(kind in ("requests", "request-blocks") for kind in kinds.values()):
        result.warn(
            "The run folder holds no recorder file, so there are no per-request "
            "samples; the run may have failed before Locust started."
        )
    return result


def _kind(path: Path) -> str:
    with open(path, "rb") as handle:
        first = handle.readline().decode("utf-8", "replace").split(",", 1)[0]
    return {
        _BLOCKS_MARKER: "request-blocks",
        REQUEST_COLUMNS[0]: "requests",
        USERS_COLUMNS[0]: "users",
        RESOURCE_COLUMNS[0]: "resources",
    }.get(first.strip(), "other")


def _read_request_blocks(path: Path, sink: RequestSink, result: Ingested) -> None:
    """The recorder's file: a header line, then one block per write (see
    ``perflab.recording``). A block cut short, as a process stopped mid-write
    leaves the last one, is left out with a warning."""
    match = _WORKER.search(path.name)
    worker = match.group(1) if match else path.stem
    endpoints: list[list[str | None]] = []
    errors: list[str | None] = [None]  # error code 0: no error
    pending: list[dict[str, np.ndarray]] = []
    pending_rows = dropped = 0
    cut = False
    with open(path, "rb") as handle:
        handle.readline()
        while head := handle.read(BLOCK_HEAD.size):
            magic, rows, meta_len = (
                BLOCK_HEAD.unpack(head) if len(head) == BLOCK_HEAD.size else (0, 0, 0)
            )
            size = meta_len + 8 * len(BLOCK_COLUMNS) * rows
            body = handle.read(size) if magic == BLOCK_MAGIC else b""
            if magic != BLOCK_MAGIC or len(body) < size:
                cut = True
                break
            meta = json.loads(body[:meta_len])
            endpoints.extend(meta["endpoints"])
            errors.extend(meta["errors"])
            block, offset = {}, meta_len
            for field, code in BLOCK_COLUMNS:
                block[field] = np.frombuffer(
                    body, "<f8" if code == "d" else "<i8", rows, offset
                )
                offset += 8 * rows
            pending.append(block)
            pending_rows += rows
            if pending_rows >= _CHUNK_ROWS:
                dropped += _emit(pending, endpoints, errors, worker, sink)
                pending, pending_rows = [], 0
    dropped += _emit(pending, endpoints, errors, worker, sink)
    if cut:
        result.warn(
            f"{path}: the last block is cut short or malformed (the process stopped "
            "while writing it, or the file is damaged); its rows are left out."
        )
    if dropped:
        result.warn(
            f"{path}: {dropped} recorded rows have no start time or latency; left out."
        )


def _emit(blocks, endpoints, errors, worker, sink) -> int:
    """Blocks' rows as one frame for the sink; returns how many were left out."""
    if not blocks:
        return 0
    columns = {
        field: np.concatenate([block[field] for block in blocks])
        for field, _ in BLOCK_COLUMNS
    }
    keep = ~(np.isnan(columns["start"]) | np.isnan(columns["latency"]))
    columns = {field: values[keep] for field, values in columns.items()}
    codes = columns["endpoint"]
    methods = np.array([m for m, _ in endpoints] or [None], dtype=object)
    names = np.array([n for _, n in endpoints] or [None], dtype=object)
    labels = np.array(
        [endpoint_label(m, n) for m, n in endpoints] or [None], dtype=object
    )
    error = pd.Series(np.array(errors, dtype=object)[columns["error"]], dtype="string")
    status, size = columns["status"], columns["bytes"]
    sink.append(
        pd.DataFrame(
            {
                # to the nearest microsecond: a float of seconds near 1.7e9 can
                # fall a few hundred ns short of the microsecond it stands for
                "ts": pd.to_datetime(
                    np.round(columns["start"] * 1e6), unit="us", utc=True
                ),
                "endpoint": labels[codes],
                "method": pd.Series(methods[codes], dtype="string"),
                "name": pd.Series(names[codes], dtype="string"),
                "status": pd.Series(status, dtype="Int64")
                .mask(status == 0)
                .astype("Int32"),
                "latency_ms": columns["latency"],
                "bytes": pd.Series(size, dtype="Int64").mask(size == NO_BYTES),
                "ok": error.isna().to_numpy(),
                "error": error,
                "worker": worker,
                "user": pd.Series(columns["user"], dtype="Int64"),
            }
        )
    )
    return int((~keep).sum())


def _read_requests(path: Path, sink: RequestSink, result: Ingested) -> None:
    """The CSV files of recorders before the block format, still read."""
    match = _WORKER.search(path.name)
    worker = match.group(1) if match else path.stem
    with open(path, "rb") as handle:
        lines = sum(1 for _ in handle) - 1
    read_rows = 0
    chunks = pd.read_csv(
        path,
        chunksize=200_000,
        on_bad_lines="skip",
        dtype={"method": "string", "name": "string", "error": "string"},
        keep_default_na=False,
        na_values={"status": [""], "bytes": [""], "latency_ms": [""], "user": [""]},
    )
    for chunk in chunks:
        chunk = chunk.dropna(subset=[REQUEST_COLUMNS[0], "latency_ms"])
        read_rows += len(chunk)
        status = pd.to_numeric(chunk["status"], errors="coerce").astype("Int32")
        error = chunk["error"].replace("", None)
        frame = pd.DataFrame(
            {
                # to the nearest microsecond: a float of seconds near 1.7e9 can
                # fall a few hundred ns short of the microsecond it was written as
                "ts": pd.to_datetime(
                    (chunk[REQUEST_COLUMNS[0]].astype(float) * 1e6).round(),
                    unit="us",
                    utc=True,
                ),
                "endpoint": [
                    endpoint_label(m, n)
                    for m, n in zip(chunk["method"], chunk["name"], strict=True)
                ],
                "method": chunk["method"],
                "name": chunk["name"],
                "status": status,
                "latency_ms": chunk["latency_ms"].astype(float),
                "bytes": pd.to_numeric(chunk["bytes"], errors="coerce").astype("Int64"),
                "ok": error.isna(),
                "error": error,
                "worker": worker,
                "user": pd.to_numeric(chunk["user"], errors="coerce").astype("Int64"),
            }
        )
        sink.append(frame)
    if read_rows < lines:
        result.warn(
            f"{path}: {lines - read_rows} of {lines} recorded rows could not be read "
            "(a line cut short when the process stopped, or malformed); left out."
        )


def _locust_aggregated(path: Path) -> int | None:
    """Locust's own Aggregated request count from its ``_stats.csv``."""
    try:
        with open_text(path) as handle:
            for row in csv.DictReader(handle):
                if row.get("Name") == "Aggregated":
                    return int(row["Request Count"])
    except (KeyError, ValueError, csv.Error) as exc:
        raise InputError(f"Locust's stats file cannot be read ({exc}).", path) from exc
    return None

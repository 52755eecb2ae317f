"""Reader for the files ``perflab run`` writes into a run's ``raw/`` folder.

Those are the recorder's per-request files (one per Locust process), the users series,
the resource monitor's samples, and Locust's own CSV exports and HTML report. Requests,
users and resources come from perflab's files; Locust's ``_stats.csv`` is read only for
its Aggregated request count, kept in ``run.json`` as a cross-check of the recorder.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import pandas as pd

from perflab.errors import InputError
from perflab.ingest.base import Ingested, RequestSink, open_text
from perflab.monitoring import COLUMNS as RESOURCE_COLUMNS
from perflab.recording import REQUEST_COLUMNS, USERS_COLUMNS
from perflab.store import endpoint_label

FORMATS = ("perflab-run",)

_MARKERS = (REQUEST_COLUMNS[0], USERS_COLUMNS[0], RESOURCE_COLUMNS[0])
_WORKER = re.compile(r"perflab_requests-(.+)\.csv$")


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
    if not any(kind == "requests" for kind in kinds.values()):
        result.warn(
            "The run folder holds no recorder file, so there are no per-request "
            "samples; the run may have failed before Locust started."
        )
    return result


def _kind(path: Path) -> str:
    with open(path, "rb") as handle:
        first = handle.readline().decode("utf-8", "replace").split(",", 1)[0]
    return {
        REQUEST_COLUMNS[0]: "requests",
        USERS_COLUMNS[0]: "users",
        RESOURCE_COLUMNS[0]: "resources",
    }.get(first.strip(), "other")


def _read_requests(path: Path, sink: RequestSink, result: Ingested) -> None:
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

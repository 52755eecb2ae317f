"""The run store: one folder per run, the contract between every step of the flow.

A run lives in ``<store>/<run_id>/`` (the store is ``data/runs`` by default)::

    run.json            what the run was, its status, its tables and their provenance
    raw/                the exports exactly as the tool wrote them; never edited
    requests.parquet    one row per request, when per-request data exists
    intervals.parquet   per-interval series per endpoint and overall
    endpoints.parquet   whole-window aggregates per endpoint and overall
    errors.parquet      error kinds with counts per endpoint
    resources.parquet   long-format resource samples: ts, source, metric, value

Every table records its *provenance* in ``run.json``: ``"exact"`` when its numbers
were computed from per-request samples, ``"aggregate"`` when they are a tool's own
summary, with a note saying how precise that summary is (Locust, for example, rounds
latencies into buckets before computing its percentiles).
"""

from __future__ import annotations

import json
import logging
import os
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from perflab import __version__
from perflab.errors import RunStoreError

log = logging.getLogger(__name__)

DEFAULT_STORE = Path("data") / "runs"

#: The label of the row or series that covers every endpoint together.
OVERALL = "Overall"

#: Percentile columns carried by ``intervals`` and ``endpoints`` (0-100 scale).
PERCENTILES = (50.0, 90.0, 95.0, 99.0, 99.9)

TABLES = ("requests", "intervals", "endpoints", "errors", "resources")

STATUSES = ("completed", "interrupted", "failed")

_TS = pa.timestamp("us", tz="UTC")


def percentile_column(percentile: float) -> str:
    """Name of the column holding a percentile: 95 -> ``p95``, 99.9 -> ``p99_9``."""
    text = f"{percentile:g}".replace(".", "_")
    return f"p{text}"


_PCT_FIELDS = [pa.field(percentile_column(p), pa.float64()) for p in PERCENTILES]

#: Arrow schemas of the canonical tables. Columns may be null where the source lacks
#: them; a missing value is never written as 0.
SCHEMAS: dict[str, pa.Schema] = {
    "requests": pa.schema(
        [
            pa.field("ts", _TS),  # request start
            pa.field("endpoint", pa.string()),  # "METHOD name"
            pa.field("method", pa.string()),
            pa.field("name", pa.string()),
            pa.field("status", pa.int32()),  # null when there was no response
            pa.field("latency_ms", pa.float64()),
            pa.field("bytes", pa.int64()),
            pa.field("ok", pa.bool_()),
            pa.field("error", pa.string()),
            pa.field("worker", pa.string()),  # load generator process or file
            pa.field("user", pa.int64()),  # virtual user within the worker
        ]
    ),
    "intervals": pa.schema(
        [
            pa.field("ts", _TS),  # interval start
            pa.field("interval_s", pa.float64()),
            pa.field("endpoint", pa.string()),
            pa.field("requests", pa.int64()),
            pa.field("failures", pa.int64()),
            pa.field("throughput", pa.float64()),  # completed requests per second
            pa.field("users", pa.float64()),
            pa.field("mean_ms", pa.float64()),
            pa.field("max_ms", pa.float64()),
            *_PCT_FIELDS,
        ]
    ),
    "endpoints": pa.schema(
        [
            pa.field("endpoint", pa.string()),
            pa.field("method", pa.string()),
            pa.field("name", pa.string()),
            pa.field("requests", pa.int64()),
            pa.field("failures", pa.int64()),
            pa.field("error_rate", pa.float64()),
            pa.field("throughput", pa.float64()),
            pa.field("mean_ms", pa.float64()),
            pa.field("min_ms", pa.float64()),
            pa.field("max_ms", pa.float64()),
            *_PCT_FIELDS,
            pa.field("bytes_mean", pa.float64()),
        ]
    ),
    "errors": pa.schema(
        [
            pa.field("endpoint", pa.string()),
            pa.field("method", pa.string()),
            pa.field("name", pa.string()),
            pa.field("status", pa.int32()),
            pa.field("error", pa.string()),
            pa.field("count", pa.int64()),
        ]
    ),
    "resources": pa.schema(
        [
            pa.field("ts", _TS),
            pa.field("source", pa.string()),
            pa.field("metric", pa.string()),  # unit in the name: cpu_percent, rss_mb
            pa.field("value", pa.float64()),
        ]
    ),
}


def endpoint_label(method: str | None, name: str) -> str:
    """The label requests are grouped by: ``"METHOD name"``, or the name alone."""
    return f"{method} {name}" if method else name


def new_run_id(started: datetime | None = None, label: str = "") -> str:
    """A sortable, unique run id: ``20261203T193900Z-<label>-<4 hex>``."""
    started = started or datetime.now(UTC)
    stamp = started.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^A-Za-z0-9]+", "-", label).strip("-").lower()[:40]
    parts = (
        [stamp, slug, secrets.token_hex(2)] if slug else [stamp, secrets.token_hex(2)]
    )
    return "-".join(parts)


def iso(ts: datetime | pd.Timestamp | None) -> str | None:
    """UTC ISO 8601 text of a timestamp, or None."""
    if ts is None or pd.isna(ts):
        return None
    ts = pd.Timestamp(ts)
    ts = ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")
    return ts.isoformat().replace("+00:00", "Z")


@dataclass
class TableInfo:
    """Where a table's numbers came from."""

    rows: int
    provenance: str  # "exact" or "aggregate"
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"rows": self.rows, "provenance": self.provenance, "note": self.note}


@dataclass
class Run:
    """A run folder and its ``run.json``.

    Use :func:`open_run` for an existing run and :func:`create_run` for a new one.
    """

    path: Path
    meta: dict[str, Any] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.meta.get("id", self.path.name)

    @property
    def raw(self) -> Path:
        return self.path / "raw"

    def table_path(self, name: str) -> Path:
        if name not in SCHEMAS:
            raise RunStoreError(f"There is no table called {name!r}; tables: {TABLES}.")
        return self.path / f"{name}.parquet"

    def has(self, name: str) -> bool:
        return self.table_path(name).exists()

    def table(self, name: str, columns: list[str] | None = None) -> pd.DataFrame:
        """Read one canonical table as a DataFrame (an empty one when absent)."""
        path = self.table_path(name)
        if not path.exists():
            return SCHEMAS[name].empty_table().to_pandas()
        return pd.read_parquet(path, columns=columns)

    def provenance(self, name: str) -> TableInfo | None:
        info = self.meta.get("tables", {}).get(name)
        return TableInfo(**info) if info else None

    def write_table(
        self, name: str, frame: pd.DataFrame, provenance: str, note: str = ""
    ) -> Path:
        """Write a canonical table, coerced to its schema, and record its provenance."""
        if provenance not in ("exact", "aggregate"):
            raise ValueError("provenance must be 'exact' or 'aggregate'")
        table = to_arrow(name, frame)
        path = self.table_path(name)
        tmp = path.with_suffix(".parquet.tmp")
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
        info = TableInfo(rows=table.num_rows, provenance=provenance, note=note)
        self.meta.setdefault("tables", {})[name] = info.to_json()
        self.save()
        log.info("wrote %s (%d rows, %s)", path, table.num_rows, provenance)
        return path

    def add_warnings(self, messages: Iterable[str]) -> None:
        """Record caveats in run.json so the report can show them."""
        known = self.meta.setdefault("warnings", [])
        for message in messages:
            if message not in known:
                known.append(message)
        self.save()

    def save(self) -> None:
        self.meta.setdefault("id", self.path.name)
        self.meta["perflab_version"] = __version__
        tmp = self.path / "run.json.tmp"
        tmp.write_text(json.dumps(self.meta, indent=2, default=str) + "\n")
        os.replace(tmp, self.path / "run.json")


def to_arrow(name: str, frame: pd.DataFrame) -> pa.Table:
    """Coerce a DataFrame to a canonical table's schema.

    Missing columns become nulls; extra columns are an error, so a reader cannot drop
    data silently by misnaming a column.
    """
    schema = SCHEMAS[name]
    extra = set(frame.columns) - set(schema.names)
    if extra:
        raise RunStoreError(
            f"Columns {sorted(extra)} are not part of the {name} table; "
            f"its columns are {schema.names}."
        )
    arrays = []
    for fld in schema:
        if fld.name in frame.columns:
            column = frame[fld.name]
            if pa.types.is_timestamp(fld.type):
                # Stored to the microsecond: finer digits are truncated, not refused.
                column = pd.to_datetime(column, utc=True)
                array = pa.array(column, from_pandas=True).cast(fld.type, safe=False)
            else:
                array = pa.array(column, type=fld.type, from_pandas=True)
            arrays.append(array)
        else:
            arrays.append(pa.nulls(len(frame), type=fld.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def create_run(
    store: Path | str = DEFAULT_STORE,
    run_id: str | None = None,
    label: str = "",
    **meta: Any,
) -> Run:
    """Create a new run folder with an empty ``raw/`` and a first ``run.json``."""
    store = Path(store)
    run_id = run_id or new_run_id(label=label)
    path = store / run_id
    if path.exists():
        raise RunStoreError(f"Run folder {path} already exists; choose another run id.")
    (path / "raw").mkdir(parents=True)
    run = Run(path, {"id": run_id, "status": "interrupted", "tables": {}, **meta})
    run.save()
    log.info("created run %s", path)
    return run


def open_run(ref: Path | str, store: Path | str = DEFAULT_STORE) -> Run:
    """Open a run by folder path or by id in the store."""
    path = Path(ref)
    if not (path / "run.json").exists():
        path = Path(store) / str(ref)
    meta_path = path / "run.json"
    if not meta_path.exists():
        raise RunStoreError(
            f"No run found at {ref!r}: neither {Path(ref)} nor {path} holds a "
            "run.json. Give a run folder, or a run id from `perflab runs`."
        )
    try:
        meta = json.loads(meta_path.read_text())
    except json.JSONDecodeError as exc:
        raise RunStoreError(
            f"{meta_path}:{exc.lineno}: run.json is not valid JSON ({exc.msg})."
        ) from exc
    return Run(path, meta)


def list_runs(store: Path | str = DEFAULT_STORE) -> list[Run]:
    """Every run in the store, oldest first."""
    store = Path(store)
    if not store.is_dir():
        return []
    runs = [open_run(p) for p in sorted(store.iterdir()) if (p / "run.json").exists()]
    return sorted(runs, key=lambda r: r.meta.get("start") or "")

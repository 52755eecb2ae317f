"""Reader for Gatling's text ``simulation.log`` (Gatling 2.x and 3.x).

The log is tab-separated, one record a line. Its layout changed between versions; the
reader tells them apart by where the record type sits and by the position of the
``OK``/``KO`` field, so no version table is needed:

=============  ==============================================================
Gatling        REQUEST record
=============  ==============================================================
2.0, 2.1       ``scenario userId REQUEST groups name requestStart requestEnd
               responseStart responseEnd OK|KO message``
2.2, 2.3       ``REQUEST scenario userId groups name start end OK|KO message``
3.0 to 3.3     ``REQUEST userId groups name start end OK|KO message``
3.4 and later  ``REQUEST groups name start end OK|KO message``
=============  ==============================================================

``USER`` records (``START``/``END`` with their times) give the users series and the
peak users; ``RUN`` gives the simulation class, id, description and the version;
``GROUP`` records are group timings, not requests, and are not read; ``ERROR`` records
(3.x: errors logged outside any request, such as a request that could not be built)
are counted into ``meta["errors_logged"]`` with their most frequent messages, and a
warning says they are not in the request counts.

Decisions
---------
* ``ts`` is the request start, ``latency_ms`` is end minus start (for 2.0/2.1: response
  end minus request start), all epoch milliseconds, UTC.
* The log does not record HTTP status codes. ``status`` is null, except for a failed
  status check whose message says what was found (``status.find.in(200,...), found
  404`` or ``status.find.is(302), but actually found 200``): then it is that code.
* ``error`` is the message of a ``KO`` request; ``ok`` is ``OK``.
* A request inside groups is named ``group / subgroup / name``, as Gatling's report
  shows it; the method is not logged, so the endpoint is that name.
* ``user`` is Gatling's user id where the layout logs it (before 3.4), else null.
* Gatling's newer binary ``simulation.log`` cannot be read; only the text log.
"""

from __future__ import annotations

import logging
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from perflab.errors import InputError
from perflab.ingest.base import Ingested, RequestSink, open_text, progress_bar

log = logging.getLogger(__name__)

FORMATS = ("gatling-log",)

_RECORDS = ("RUN", "USER", "REQUEST", "GROUP", "ERROR", "ASSERTION")
_CHUNK_ROWS = 200_000
_FOUND_STATUS = re.compile(r"^status\.find\..*\bfound (\d{3})\s*$")
_KEPT_ERROR_KINDS = 20


def sniff(path: Path, head: bytes) -> str | None:
    """``gatling-log`` when the file starts with a Gatling ``RUN`` record, else None.

    Parameters
    ----------
    path
        The file (not read; detection uses ``head`` only).
    head
        The file's first bytes, already un-gzipped.

    Returns
    -------
    str or None
        ``"gatling-log"``, or None when the first line is not a tab-separated RUN
        record of the 2.x or 3.x layout.
    """
    text = head.decode("utf-8", "replace").lstrip("\ufeff")
    first = text.split("\n", 1)[0].rstrip("\r").split("\t")
    if len(first) >= 5 and "RUN" in (first[0], first[2] if len(first) > 2 else ""):
        return "gatling-log"
    return None


def read(
    files: list[Path], sink: RequestSink, encoding: str | None, fmt: str
) -> Ingested:
    """Read ``simulation.log`` files into ``sink``; see the module docstring.

    Parameters
    ----------
    files
        Text ``simulation.log`` files (plain or gzipped).
    sink
        Receives the canonical request rows in chunks.
    encoding
        Text encoding; detected when None.
    fmt
        ``"gatling-log"``.

    Returns
    -------
    Ingested
        ``meta`` holds ``simulation``, ``simulation_id``, ``description``,
        ``scenario`` (the scenarios' names), ``start``, ``end`` (UTC), ``duration_s``,
        ``peak_users``, ``users_series`` (DataFrame ``ts``, ``users``),
        ``errors_logged`` and ``errors_logged_kinds``.

    Raises
    ------
    InputError
        When a file is empty or is not a Gatling text log.
    """
    result = Ingested(tool="gatling", fmt=fmt, files=list(files))
    state = _State()
    for path in files:
        _read_log(path, sink, encoding, state, result)
    state.report(result)
    return result


@dataclass
class _State:
    """What is gathered across the files of one run."""

    runs: list[list[str]] = field(default_factory=list)
    scenarios: dict[str, None] = field(default_factory=dict)
    user_events: list[tuple[int, int]] = field(default_factory=list)  # (ms, +1/-1)
    errors: Counter = field(default_factory=Counter)
    requests: int = 0
    start_ms: int | None = None
    end_ms: int | None = None

    def report(self, result: Ingested) -> None:
        meta = result.meta
        if self.runs:
            run = _run_fields(self.runs[0])
            result.tool_version = run.pop("version")
            meta.update(run)
        meta["scenario"] = ", ".join(self.scenarios) or meta.get("simulation_id")
        if self.start_ms is not None:
            meta["start"] = pd.Timestamp(self.start_ms, unit="ms", tz="UTC")
            meta["end"] = pd.Timestamp(self.end_ms, unit="ms", tz="UTC")
            meta["duration_s"] = round((self.end_ms - self.start_ms) / 1000, 3)
        if self.user_events:
            events = pd.DataFrame(self.user_events, columns=["ms", "change"])
            per_ms = events.groupby("ms", sort=True)["change"].sum()
            active = per_ms.cumsum()
            meta["users_series"] = _users_per_second(active)
            meta["peak_users"] = int(active.max())
        if self.requests == 0 and len(result.files) > 1:
            result.warn(
                "None of the Gatling logs given holds a request: the run has no "
                "request data to analyse."
            )
        meta["errors_logged"] = sum(self.errors.values())
        if self.errors:
            meta["errors_logged_kinds"] = dict(
                self.errors.most_common(_KEPT_ERROR_KINDS)
            )
            files = ", ".join(str(p) for p in result.files)
            top = "; ".join(
                f"{count} x {message!r}"
                for message, count in self.errors.most_common(3)
            )
            result.warn(
                f"{files}: {meta['errors_logged']} ERROR records (errors Gatling "
                "logged outside any request, such as a request that could not be "
                "built) are not requests and are not in the request or failure "
                f"counts; the most frequent: {top}."
            )


def _users_per_second(active: pd.Series) -> pd.DataFrame:
    """Active users as a series a per-second interval table can look up.

    Each second with USER events gets the most users active during it at its start,
    and the number still active at its end just before the next second, so that an
    interval starting in a quiet second sees the last count, not a peak long gone.
    """
    second = (active.index.to_numpy() // 1000) * 1000
    grouped = active.groupby(second)
    peak, last = grouped.max(), grouped.last()
    points = pd.concat([peak, last.set_axis(last.index + 999)]).sort_index()
    points = points[~points.index.duplicated(keep="first")]
    return pd.DataFrame(
        {
            "ts": pd.to_datetime(points.index, unit="ms", utc=True),
            "users": points.to_numpy(dtype=float),
        }
    )


def _run_fields(fields: list[str]) -> dict[str, str]:
    """Simulation class, id, description and version from a RUN record."""
    tokens = [f for i, f in enumerate(fields) if not (f == "RUN" and i in (0, 2))]
    start = next(
        (i for i, f in enumerate(tokens) if f.isdigit() and len(f) >= 12), None
    )
    named = tokens[:start] if start is not None else tokens[:2]
    after = tokens[start + 1 : -1] if start is not None else []
    return {
        "simulation": named[0] if named else None,
        "simulation_id": named[1] if len(named) > 1 else None,
        "description": (after[0].strip() or None) if after else None,
        "version": tokens[-1].strip() if len(tokens) > 2 else None,
    }


@dataclass
class _Layout:
    """Where a REQUEST record's fields sit."""

    type_at: int  # 0 from 2.2 on, 2 in 2.0/2.1
    status_at: int | None = None  # index of OK/KO, found from the first request
    user_at: int | None = None
    start_at: int = 0
    end_at: int = 0
    name_at: int = 0
    groups_at: int = 0  # -1 when the layout has no groups field


def _request_layout(fields: list[str], type_at: int) -> _Layout | None:
    """The layout of REQUEST records, from the first one; None when unrecognised."""
    if type_at == 2:
        # 2.0/2.1: four times (request start and end, response start and end) before
        # the status; the groups field, when logged, sits before the name.
        for status_at in (9, 8):
            times = fields[status_at - 4 : status_at]
            if (
                len(fields) > status_at
                and fields[status_at] in ("OK", "KO")
                and all(t.isdigit() for t in times)
            ):
                groups_at = status_at - 6 if status_at - 6 > 2 else -1
                start, end = status_at - 4, status_at - 1
                return _Layout(2, status_at, 1, start, end, status_at - 5, groups_at)
        return None
    for status_at, user_at in ((5, None), (6, 1), (7, 2)):
        if (
            len(fields) > status_at
            and fields[status_at] in ("OK", "KO")
            and fields[status_at - 1].isdigit()
            and fields[status_at - 2].isdigit()
        ):
            return _Layout(
                0,
                status_at,
                user_at,
                status_at - 2,
                status_at - 1,
                status_at - 3,
                status_at - 4,
            )
    return None


def _read_log(
    path: Path,
    sink: RequestSink,
    encoding: str | None,
    state: _State,
    result: Ingested,
) -> None:
    size = path.stat().st_size
    if size == 0:
        raise InputError("The file is empty; it holds no Gatling records.", path)
    rows: dict[str, list] = _empty_rows()
    layout: _Layout | None = None
    type_at: int | None = None
    malformed: list[int] = []
    kinds: Counter = Counter()  # the records read, by type
    read_before = state.requests
    bar = progress_bar(path)
    try:
        with open_text(path, encoding) as handle:
            for number, line in enumerate(handle, start=1):
                if bar is not None and number % 100_000 == 0:
                    bar.update(handle.buffer.tell() - bar.n)
                line = line.rstrip("\r\n")
                if not line.strip():
                    continue
                fields = line.split("\t")
                if type_at is None:
                    type_at = _type_position(fields)
                    if type_at is None:
                        raise InputError(
                            "This is not a Gatling text simulation.log: it does not "
                            "start with a RUN record (binary logs of newer Gatling "
                            "versions cannot be read; export a text log instead).",
                            path,
                            number,
                        )
                kind = fields[type_at] if len(fields) > type_at else ""
                if kind in _RECORDS:
                    kinds[kind] += 1
                if kind == "REQUEST":
                    if layout is None:
                        layout = _request_layout(fields, type_at)
                    if layout is None or not _add_request(rows, fields, layout):
                        malformed.append(number)
                    elif len(rows["ts"]) >= _CHUNK_ROWS:
                        _flush(rows, sink, state)
                elif kind == "USER":
                    if not _add_user(fields, type_at, state):
                        malformed.append(number)
                elif kind == "RUN":
                    state.runs.append(fields)
                elif kind == "ERROR":
                    message = fields[1].strip() if len(fields) > 2 else ""
                    state.errors[message or "(no message)"] += 1
                elif kind not in _RECORDS:
                    malformed.append(number)
    except UnicodeDecodeError as exc:
        raise InputError(
            f"The file is not valid text in its encoding ({exc.reason}); give the "
            "encoding with --encoding.",
            path,
        ) from exc
    finally:
        if bar is not None:
            bar.close()
    _flush(rows, sink, state)

    if malformed:
        shown = ", ".join(map(str, malformed[:10]))
        more = f" and {len(malformed) - 10} more" if len(malformed) > 10 else ""
        result.warn(
            f"{path}: {len(malformed)} malformed records (missing fields, non-numeric "
            f"times or an unknown record type, as in a truncated last line) were "
            f"skipped, at line {shown}{more}."
        )
    if state.requests == read_before:
        held = [f"{n} {kind}" for kind, n in kinds.items() if kind != "REQUEST"]
        plural = "s" if sum(kinds.values()) - kinds["REQUEST"] != 1 else ""
        listing = f"only {', '.join(held)} record{plural}" if held else "no record"
        why = (
            "its REQUEST records are malformed"
            if kinds["REQUEST"]
            else "Gatling logs a request when it ends, so the simulation probably "
            "stopped before its first request ended"
        )
        result.warn(
            f"{path}: the log holds no requests: no REQUEST record could be read, "
            f"{listing}; {why}. The run has no request data from this file."
        )
    log.info("read %s (%d requests)", path, state.requests - read_before)


def _type_position(fields: list[str]) -> int | None:
    if fields and fields[0] == "RUN":
        return 0
    if len(fields) > 2 and fields[2] == "RUN":
        return 2
    return None


def _empty_rows() -> dict[str, list]:
    return {
        "ts": [],
        "latency_ms": [],
        "name": [],
        "ok": [],
        "error": [],
        "status": [],
        "user": [],
    }


def _add_request(rows: dict[str, list], fields: list[str], layout: _Layout) -> bool:
    """Append one REQUEST record's values; False when it is malformed."""
    try:
        start = int(fields[layout.start_at])
        end = int(fields[layout.end_at])
        outcome = fields[layout.status_at]
    except (IndexError, ValueError):
        return False
    if outcome not in ("OK", "KO"):
        return False
    name = fields[layout.name_at]
    groups = fields[layout.groups_at].strip() if layout.groups_at >= 0 else ""
    if groups:
        name = " / ".join([*groups.split(","), name])
    message = ""
    if len(fields) > layout.status_at + 1:
        message = fields[layout.status_at + 1].strip()
    ok = outcome == "OK"
    status = None
    if not ok and message:
        found = _FOUND_STATUS.match(message)
        status = int(found.group(1)) if found else None
    user = None
    if layout.user_at is not None and fields[layout.user_at].isdigit():
        user = int(fields[layout.user_at])

    rows["ts"].append(start)
    rows["latency_ms"].append(end - start)
    rows["name"].append(name)
    rows["ok"].append(ok)
    rows["error"].append(None if ok else (message or None))
    rows["status"].append(status)
    rows["user"].append(user)
    return True


def _add_user(fields: list[str], type_at: int, state: _State) -> bool:
    """Record a USER START or END; False when the record is malformed."""
    try:
        at = next(i for i, f in enumerate(fields) if f in ("START", "END"))
        times = [int(f) for f in fields[at + 1 :] if f.strip()]
    except (StopIteration, ValueError):
        return False
    if not times:
        return False
    scenario = fields[1] if type_at == 0 else fields[0]
    state.scenarios.setdefault(scenario, None)
    if fields[at] == "START":
        state.user_events.append((times[0], 1))
    else:
        state.user_events.append((times[-1], -1))
    return True


def _flush(rows: dict[str, list], sink: RequestSink, state: _State) -> None:
    if not rows["ts"]:
        return
    start_ms = pd.Series(rows["ts"], dtype="int64")
    latency = pd.Series(rows["latency_ms"], dtype="float64")
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(start_ms, unit="ms", utc=True),
            "endpoint": rows["name"],
            "method": None,
            "name": rows["name"],
            "status": pd.array(rows["status"], dtype="Int32"),
            "latency_ms": latency,
            "bytes": pd.array([None] * len(start_ms), dtype="Int64"),
            "ok": rows["ok"],
            "error": rows["error"],
            "worker": None,
            "user": pd.array(rows["user"], dtype="Int64"),
        }
    )
    sink.append(frame)
    state.requests += len(frame)
    first, last = int(start_ms.min()), int((start_ms + latency).max())
    state.start_ms = first if state.start_ms is None else min(state.start_ms, first)
    state.end_ms = last if state.end_ms is None else max(state.end_ms, last)
    for values in rows.values():
        values.clear()

"""The recorder: a Locust plugin that keeps every request.

Locust keeps only aggregates (and rounds latencies into buckets before it computes
percentiles). The recorder listens to Locust's ``request`` event and writes one CSV row
per request into the run's ``raw/`` folder, so every statistic can be computed exactly
from samples. Each Locust process (a local runner, or each worker of ``--processes`` or
of a distributed run) writes its own file, ``perflab_requests-<host>-<pid>.csv``; the
process that controls the users (local or master) also writes the users series,
``perflab_users.csv``, once a second.

It is loaded by ``perflab run`` as an extra locustfile and records only when
``$PERFLAB_RUN_DIR`` names a run folder, so scenarios stay usable on their own.

Cost: the request event appends each field to a list of its own (no formatting), and
a background greenlet writes the lists out once a second as one Arrow table through
Arrow's C++ CSV writer, about a microsecond per request in all on the machines perflab
is built on, against Locust's own hundred or so. Values Arrow cannot type (a custom
client reporting a status that is not a number, say) make that second's rows go
through Python's csv module instead, so nothing is lost. ``benchmarks/
recorder_overhead.py`` measures the cost.
"""

from __future__ import annotations

import csv
import io
import logging
import os
import socket
import time
from pathlib import Path

import gevent
import pyarrow as pa
import pyarrow.csv as pa_csv

log = logging.getLogger(__name__)

RUN_DIR_ENV = "PERFLAB_RUN_DIR"

#: Header of the per-request files; its first field also identifies the format.
REQUEST_COLUMNS = (
    "perflab_start_unix_s",
    "method",
    "name",
    "status",
    "latency_ms",
    "bytes",
    "error",
    "user",
)
USERS_COLUMNS = ("perflab_users_unix_s", "users")

FLUSH_INTERVAL_S = 1.0


#: Arrow types of the request columns, for the fast write (see Recorder.flush).
REQUEST_SCHEMA = pa.schema(
    [
        (REQUEST_COLUMNS[0], pa.float64()),
        ("method", pa.string()),
        ("name", pa.string()),
        ("status", pa.int32()),
        ("latency_ms", pa.float64()),
        ("bytes", pa.int64()),
        ("error", pa.string()),
        ("user", pa.int64()),
    ]
)


class Recorder:
    """Buffers request fields in memory and writes them out from a greenlet."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115
        self._file.write(_csv_rows([REQUEST_COLUMNS]))
        self._file.flush()
        self._users: dict[int, int] = {}
        self._fresh_columns()
        self.count = 0
        self._flusher = gevent.spawn(self._flush_forever)

    def _fresh_columns(self) -> None:
        self._columns: list[list] = [[] for _ in REQUEST_COLUMNS]
        (
            self._start,
            self._method,
            self._name,
            self._status,
            self._latency,
            self._bytes,
            self._error,
            self._user,
        ) = (column.append for column in self._columns)

    def on_request(
        self,
        request_type,
        name,
        response_time,
        response_length,
        response=None,
        exception=None,
        start_time=None,
        **_,
    ):
        if start_time is None:
            start_time = time.time() - response_time / 1000.0
        self._start(start_time)
        self._method(request_type)
        self._name(name)
        self._status(getattr(response, "status_code", None) or None)
        self._latency(response_time)
        self._bytes(response_length)
        self._error(
            None if exception is None else f"{type(exception).__name__}: {exception}"
        )
        # Each Locust user runs in its own greenlet, so the current greenlet names the
        # user that sent the request (needed to see gaps in one user's send times).
        users = self._users
        self._user(users.setdefault(id(gevent.getcurrent()), len(users)))

    def flush(self) -> None:
        columns = self._columns
        rows = len(columns[0])
        if not rows:
            return
        self._fresh_columns()
        try:
            table = pa.Table.from_arrays(
                [
                    pa.array(values, type=field.type)
                    for values, field in zip(columns, REQUEST_SCHEMA, strict=True)
                ],
                schema=REQUEST_SCHEMA,
            )
        except (pa.ArrowException, TypeError, ValueError, OverflowError):
            self._file.write(_csv_rows(zip(*columns, strict=True)))
        else:
            sink = pa.BufferOutputStream()
            pa_csv.write_csv(table, sink, _CSV_OPTIONS)
            self._file.write(sink.getvalue())
        self._file.flush()
        self.count += rows

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def close(self) -> None:
        self._flusher.kill(block=False)
        self.flush()
        self._file.close()
        log.info("recorded %d requests to %s", self.count, self.path)


#: Arrow's CSV rows: nulls as empty fields, text quoted only where it must be.
_CSV_OPTIONS = pa_csv.WriteOptions(include_header=False, quoting_style="needed")


def _csv_rows(rows) -> bytes:
    """Rows as UTF-8 CSV by Python's csv module, lines ending as Arrow's do."""
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows(rows)
    return text.getvalue().encode("utf-8")


class UsersSampler:
    """Writes the runner's user count once a second."""

    def __init__(self, path: Path, runner):
        self.path = path
        self.runner = runner
        self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._file)
        self._writer.writerow(USERS_COLUMNS)
        self._greenlet = gevent.spawn(self._sample_forever)

    def sample(self) -> None:
        self._writer.writerow((f"{time.time():.3f}", self.runner.user_count))
        self._file.flush()

    def _sample_forever(self) -> None:
        while True:
            self.sample()
            gevent.sleep(1.0)

    def close(self) -> None:
        self._greenlet.kill(block=False)
        self.sample()
        self._file.close()


def register(events) -> None:
    """Attach the recorder to Locust's events (once per process)."""
    if getattr(events, "_perflab_recorder", False):
        return
    events._perflab_recorder = True
    events.init.add_listener(_on_init)


def _on_init(environment, **_):
    from locust.runners import MasterRunner, WorkerRunner

    run_dir = os.environ.get(RUN_DIR_ENV)
    if not run_dir:
        return
    raw = Path(run_dir) / "raw"
    runner = environment.runner
    closers = []

    if not isinstance(runner, MasterRunner):
        name = f"perflab_requests-{socket.gethostname()}-{os.getpid()}.csv"
        recorder = Recorder(raw / name)
        environment.events.request.add_listener(recorder.on_request)
        closers.append(recorder.close)
    if not isinstance(runner, WorkerRunner):
        sampler = UsersSampler(raw / "perflab_users.csv", runner)
        closers.append(sampler.close)

    def close_all(**_):
        while closers:
            closers.pop()()

    environment.events.quitting.add_listener(close_all)

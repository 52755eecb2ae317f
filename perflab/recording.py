"""The recorder: a Locust plugin that keeps every request.

Locust keeps only aggregates (and rounds latencies into buckets before it computes
percentiles). The recorder listens to Locust's ``request`` event and keeps every
request in a file of the run's ``raw/`` folder, so every statistic can be computed
exactly from samples. Each Locust process (a local runner, or each worker of
``--processes`` or of a distributed run) writes its own file,
``perflab_requests-<host>-<pid>.bin``; the process that controls the users (local or
master) also writes the users series, ``perflab_users.csv``, once a second.

It is loaded by ``perflab run`` as an extra locustfile and records only when
``$PERFLAB_RUN_DIR`` names a run folder, so scenarios stay usable on their own.

The file is binary, so that Locust's process does no formatting: the header line
``REQUEST_FILE_HEADER``, then one block per second, each ``BLOCK_HEAD`` (magic, rows,
length of the JSON part), a JSON object (the method and name pairs and the error
texts first seen in this block, which the codes count up through the file, and the
text of odd values), then the ``BLOCK_COLUMNS`` as little-endian 8-byte numbers,
column after column. Each block is one write, so a process stopped mid-run leaves a
file readable up to its last whole block. ``perflab.ingest.recorded`` reads it.

Cost: the request event appends numbers to ``array.array`` columns and looks up two
codes; the write once a second copies those buffers to the file. Values a column
cannot hold (a custom client's status that is not a number, say) are kept as null,
or the number they stand for, with their text in the block's JSON, so nothing is lost.
``benchmarks/recorder_overhead.py`` measures the cost (the README quotes it). An
earlier recorder kept the fields in Python lists and wrote them as CSV through Arrow:
inside Locust that cost several times what it cost outside, because the objects it
held made Locust's process collect garbage far more often.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import os
import socket
import struct
import sys
import time
from array import array
from pathlib import Path

import gevent

log = logging.getLogger(__name__)

RUN_DIR_ENV = "PERFLAB_RUN_DIR"

#: Header of the CSV files of earlier recorders, which the reader still reads.
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

#: First line of a per-request file; its first field identifies the format.
REQUEST_FILE_HEADER = b"perflab_request_blocks,1\n"
#: Each block: this magic, its row count and the length of its JSON part.
BLOCK_HEAD = struct.Struct("<4sII")
BLOCK_MAGIC = b"PLRB"
#: The numeric columns of a block, in file order, with their array type codes:
#: start (s, float64), latency (ms, float64), status (0: none), bytes (NO_BYTES:
#: none), endpoint and error codes (error 0: none) and user (all int64).
BLOCK_COLUMNS = (
    ("start", "d"),
    ("latency", "d"),
    ("status", "q"),
    ("bytes", "q"),
    ("endpoint", "q"),
    ("error", "q"),
    ("user", "q"),
)
NO_BYTES = -(2**63)

FLUSH_INTERVAL_S = 1.0


class Recorder:
    """Buffers request fields in memory and writes them out from a greenlet.

    Numbers go into ``array.array`` columns, which store them as machine values:
    no Python object of Locust's is kept until the write, and the write is a copy of
    those buffers. Method and name pairs and error texts are stored once, as codes.

    ``flush_every`` is the seconds between writes; with None nothing is written until
    :meth:`flush` or :meth:`close` is called (the overhead benchmark writes at the end
    of each phase it records).
    """

    def __init__(self, path: Path, flush_every: float | None = FLUSH_INTERVAL_S):
        self.path = path
        self._file = open(path, "wb")  # noqa: SIM115
        self._file.write(REQUEST_FILE_HEADER)
        self._file.flush()
        self._users: dict[int, int] = {}
        self._endpoints: dict = {}
        self._endpoint_count = 0
        self._errors: dict[str, int] = {}
        self._new_endpoints: list = []
        self._new_errors: list[str] = []
        self._odd: list = []
        self._fresh_columns()
        self.count = 0
        self._flusher = None
        if flush_every is not None:
            self._flusher = gevent.spawn(self._flush_forever, flush_every)

    def _fresh_columns(self) -> None:
        self._columns = [array(code) for _, code in BLOCK_COLUMNS]
        (
            self._start,
            self._latency,
            self._status,
            self._bytes,
            self._endpoint,
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
        context=None,
        url=None,
        **_,
    ):
        # Locust passes every field by keyword; naming the two unused ones saves
        # building a dict of them for each request (a fifth of this call's cost).
        try:
            endpoint = self._endpoints[request_type, name]
        except (KeyError, TypeError):
            endpoint = self._endpoint_code(request_type, name)
        try:  # a number of a type not ours fails here, before the codes are added
            if start_time is None:
                start_time = time.time() - response_time / 1000.0
            self._start(start_time)
            self._latency(response_time)
            self._status(getattr(response, "status_code", None) or 0)
            self._bytes(NO_BYTES if response_length is None else response_length)
        except (TypeError, ValueError, OverflowError):
            self._odd_request(
                request_type, name, response_time, response_length, response,
                start_time,
            )  # fmt: skip
        self._endpoint(endpoint)
        self._error(0 if exception is None else self._error_code(exception))
        # Each Locust user runs in its own greenlet, so the current greenlet names the
        # user that sent the request (needed to see gaps in one user's send times).
        users = self._users
        self._user(users.setdefault(id(gevent.getcurrent()), len(users)))

    def _endpoint_code(self, method, name) -> int:
        code = self._endpoint_count
        self._endpoint_count += 1
        self._new_endpoints.append([_text(method), _text(name)])
        try:
            self._endpoints[method, name] = code
        except TypeError:  # an unhashable name: coded anew each time
            pass
        return code

    def _error_code(self, exception) -> int:
        text = f"{type(exception).__name__}: {exception}"
        code = self._errors.get(text)
        if code is None:
            code = self._errors[text] = len(self._errors) + 1
            self._new_errors.append(text)
        return code

    def _odd_request(self, method, name, latency, length, response, start) -> None:
        """A request with a value its column cannot hold (a custom client's status
        that is not a number, say): the row is kept with that field null (or the
        number it stands for), and the value's text goes into the block's JSON."""
        endpoint_column = self._columns[4]
        row = len(endpoint_column)
        for column in self._columns[:4]:
            del column[row:]
        if start is None:  # NaN when the latency is no number either
            start = time.time() - _as_number("d", latency, math.nan)[0] / 1000.0
        values = (
            ("start", "d", start, math.nan),
            ("latency", "d", latency, math.nan),
            ("status", "q", getattr(response, "status_code", None) or 0, 0),
            ("bytes", "q", NO_BYTES if length is None else length, NO_BYTES),
        )
        for (field, code, value, null), column in zip(
            values, self._columns[:4], strict=True
        ):
            number, text = _as_number(code, value, null)
            column.append(number)
            if text is not None:
                self._odd.append([row, field, text])

    def flush(self) -> None:
        columns = self._columns
        rows = len(columns[-1])
        if not rows:
            return
        self._fresh_columns()
        meta = json.dumps(
            {
                "endpoints": self._new_endpoints,
                "errors": self._new_errors,
                "odd": self._odd,
            }
        ).encode("ascii")
        self._new_endpoints, self._new_errors, self._odd = [], [], []
        if sys.byteorder == "big":
            for column in columns:
                column.byteswap()
        # one write per block, so a process stopped mid-run leaves whole blocks and
        # at most one cut short, which the reader leaves out
        self._file.write(
            b"".join((BLOCK_HEAD.pack(BLOCK_MAGIC, rows, len(meta)), meta, *columns))
        )
        self._file.flush()
        self.count += rows

    def _flush_forever(self, seconds: float) -> None:
        while True:
            gevent.sleep(seconds)
            self.flush()

    def close(self) -> None:
        if self._flusher is not None:
            self._flusher.kill(block=False)
        self.flush()
        self._file.close()
        log.info("recorded %d requests to %s", self.count, self.path)


def _text(value) -> str | None:
    return value if value is None or isinstance(value, str) else str(value)


def _as_number(code: str, value, null):
    """``value`` as a number of the array type ``code``, and its text when that
    number does not stand for it exactly (else None)."""
    try:
        number = float(value) if code == "d" else int(value)
        array(code, [number])
    except (TypeError, ValueError, OverflowError):
        return null, _text(value)
    return number, (None if number == value else str(value))


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
        name = f"perflab_requests-{socket.gethostname()}-{os.getpid()}.bin"
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

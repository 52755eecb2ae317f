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

Cost: a row is a tuple appended to a list inside the request event; a background
greenlet writes the list out once a second. ``benchmarks/recorder_overhead.py``
measures it.
"""

from __future__ import annotations

import csv
import logging
import os
import socket
import time
from pathlib import Path

import gevent

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


class Recorder:
    """Buffers request rows in memory and writes them out from a greenlet."""

    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "w", newline="", encoding="utf-8")  # noqa: SIM115
        self._writer = csv.writer(self._file)
        self._writer.writerow(REQUEST_COLUMNS)
        self._rows: list[tuple] = []
        self._users: dict[int, int] = {}
        self.count = 0
        self._flusher = gevent.spawn(self._flush_forever)

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
        status = getattr(response, "status_code", None) or None
        error = None
        if exception is not None:
            error = f"{type(exception).__name__}: {exception}"
        # Each Locust user runs in its own greenlet, so the current greenlet names the
        # user that sent the request (needed to see gaps in one user's send times).
        user = self._users.setdefault(id(gevent.getcurrent()), len(self._users))
        if start_time is None:
            start_time = time.time() - response_time / 1000.0
        self._rows.append(
            (
                f"{start_time:.6f}",
                request_type,
                name,
                status,
                response_time,
                response_length,
                error,
                user,
            )
        )

    def flush(self) -> None:
        rows, self._rows = self._rows, []
        if rows:
            self._writer.writerows(rows)
            self._file.flush()
            self.count += len(rows)

    def _flush_forever(self) -> None:
        while True:
            gevent.sleep(FLUSH_INTERVAL_S)
            self.flush()

    def close(self) -> None:
        self._flusher.kill(block=False)
        self.flush()
        self._file.close()
        log.info("recorded %d requests to %s", self.count, self.path)


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

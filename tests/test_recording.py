"""The recorder's files, read back by the ingest reader for ``perflab run`` folders.

The recorder runs inside Locust; here its request handler is called directly, as
Locust's ``request`` event calls it, and its file is ingested like a run's ``raw/``.
"""

from __future__ import annotations

import time

import pandas as pd
import pytest

from perflab.ingest import ingest
from perflab.recording import REQUEST_COLUMNS, Recorder


class _Response:
    def __init__(self, status_code):
        self.status_code = status_code


START = 1767225600.123456


def _record(path, calls, flush_every=None):
    recorder = Recorder(path)
    for i, (args, kwargs) in enumerate(calls):
        recorder.on_request(*args, **kwargs)
        if flush_every and i % flush_every == flush_every - 1:
            recorder.flush()
    recorder.close()
    return recorder


def _calls():
    """Requests of every kind the handler meets: plain, with awkward names, failed
    with and without a response, without a byte count or a start time."""
    awkward = 'GET /search?q="a, b"\nnext'
    return [
        (("GET", "/a", 12.5, 100), {"response": _Response(200), "start_time": START}),
        (
            ("GET", awkward, 1.0000000001, 7),
            {"response": _Response(200), "start_time": START + 0.5},
        ),
        (
            ("POST", "/b", 7.25, 10),
            {
                "response": _Response(500),
                "exception": RuntimeError('500, "Server Error"\nsecond line'),
                "start_time": START + 1.000001,
            },
        ),
        (
            ("POST", "/b", 3.0, None),
            {
                "exception": ConnectionRefusedError("refused"),
                "start_time": START + 1.2,
            },
        ),
    ]


def test_recorded_requests_are_read_back_exactly(tmp_path, store):
    raw = tmp_path / "raw"
    raw.mkdir()
    recorder = _record(raw / "perflab_requests-host-1.csv", _calls())
    assert recorder.count == 4
    header = (raw / "perflab_requests-host-1.csv").read_text().splitlines()[0]
    assert header == ",".join(REQUEST_COLUMNS)

    requests = ingest([raw], store=store).table("requests")
    assert list(requests["name"]) == ["/a", 'GET /search?q="a, b"\nnext', "/b", "/b"]
    assert list(requests["latency_ms"]) == [12.5, 1.0000000001, 7.25, 3.0]
    # no response, no byte count: null, never 0
    assert requests["status"].tolist()[:3] == [200, 200, 500]
    assert pd.isna(requests["status"].iloc[3])
    assert requests["bytes"].tolist()[:3] == [100, 7, 10]
    assert pd.isna(requests["bytes"].iloc[3])
    assert list(requests["ok"]) == [True, True, False, False]
    assert list(requests["error"])[2:] == [
        'RuntimeError: 500, "Server Error"\nsecond line',
        "ConnectionRefusedError: refused",
    ]
    # start times to the microsecond, in UTC
    offsets = (requests["ts"] - pd.Timestamp(START, unit="s", tz="UTC")).dt
    assert list(offsets.total_seconds().round(6)) == [0.0, 0.5, 1.000001, 1.2]
    assert requests["user"].tolist() == [0, 0, 0, 0]  # all from this one greenlet


def test_values_arrow_cannot_type_are_still_written(tmp_path, store):
    # A custom client may report a status that is not a number: that second's rows
    # are written by Python's csv module instead, and none is lost.
    raw = tmp_path / "raw"
    raw.mkdir()
    calls = _calls()
    calls.insert(
        1,
        (("GET", "/odd", 2.0, 5), {"response": _Response("OK"), "start_time": START}),
    )
    _record(raw / "perflab_requests-host-1.csv", calls, flush_every=2)

    requests = ingest([raw], store=store).table("requests")
    assert len(requests) == 5
    odd = requests[requests["name"] == "/odd"].iloc[0]
    assert pd.isna(odd["status"]) and odd["ok"]
    assert set(requests["name"]) == {"/a", "/odd", "/b", 'GET /search?q="a, b"\nnext'}


def test_a_start_time_not_given_is_the_end_less_the_latency(tmp_path):
    path = tmp_path / "requests.csv"
    before = time.time()
    _record(path, [(("GET", "/a", 250.0, 5), {"response": _Response(200)})])
    after = time.time()
    start = float(path.read_text().splitlines()[1].split(",")[0])
    assert before - 0.25 <= start <= after - 0.25


@pytest.mark.parametrize("flush_every", [1, 3, None])
def test_flushing_in_any_batches_gives_the_same_file(tmp_path, flush_every):
    whole = _record(tmp_path / "whole.csv", _calls())
    batched = _record(tmp_path / "batched.csv", _calls(), flush_every=flush_every)
    assert whole.count == batched.count == 4
    assert (tmp_path / "whole.csv").read_bytes() == (
        tmp_path / "batched.csv"
    ).read_bytes()

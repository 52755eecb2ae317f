"""The recorder's files, read back by the ingest reader for ``perflab run`` folders.

The recorder runs inside Locust; here its request handler is called directly, as
Locust's ``request`` event calls it, and its file is ingested like a run's ``raw/``.
"""

from __future__ import annotations

import struct
import time

import gevent
import pandas as pd
import pytest

from perflab.errors import DataWarning
from perflab.ingest import ingest
from perflab.recording import BLOCK_HEAD, REQUEST_FILE_HEADER, Recorder


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
    recorder = _record(raw / "perflab_requests-host-1.bin", _calls())
    assert recorder.count == 4
    assert (
        (raw / "perflab_requests-host-1.bin")
        .read_bytes()
        .startswith(REQUEST_FILE_HEADER)
    )

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


def test_values_of_odd_types_are_still_written(tmp_path, store):
    # A custom client may report a status that is not a number: the row is kept,
    # that field read as null, and the value's text stays in the file.
    raw = tmp_path / "raw"
    raw.mkdir()
    calls = _calls()
    calls.insert(
        1,
        (("GET", "/odd", 2.0, 5), {"response": _Response("OK"), "start_time": START}),
    )
    calls.insert(2, (("GET", "/odd", "3.5", 6.0), {"start_time": START}))
    calls.insert(3, ((7, ["/list"], 4.0, 2**70), {"start_time": START}))
    _record(raw / "perflab_requests-host-1.bin", calls, flush_every=2)
    assert b'"OK"' in (raw / "perflab_requests-host-1.bin").read_bytes()

    requests = ingest([raw], store=store).table("requests")
    assert len(requests) == 7
    odd = requests[requests["name"] == "/odd"]
    assert pd.isna(odd["status"]).all() and odd["ok"].all()
    assert odd["latency_ms"].tolist() == [2.0, 3.5]
    assert odd["bytes"].tolist() == [5, 6]
    listed = requests[requests["name"] == "['/list']"].iloc[0]
    assert listed["method"] == "7" and pd.isna(listed["bytes"])
    assert set(requests["name"]) == {
        "/a",
        "/odd",
        "/b",
        "['/list']",
        'GET /search?q="a, b"\nnext',
    }


def _starts(path):
    """The start times in a recorder file's blocks."""
    data = path.read_bytes()[len(REQUEST_FILE_HEADER) :]
    starts = []
    while data:
        _, rows, meta_len = BLOCK_HEAD.unpack_from(data)
        offset = BLOCK_HEAD.size + meta_len
        starts += struct.unpack_from(f"<{rows}d", data, offset)
        data = data[offset + 7 * 8 * rows :]
    return starts


def test_a_start_time_not_given_is_the_end_less_the_latency(tmp_path):
    path = tmp_path / "requests.bin"
    before = time.time()
    _record(path, [(("GET", "/a", 250.0, 5), {"response": _Response(200)})])
    after = time.time()
    (start,) = _starts(path)
    assert before - 0.25 <= start <= after - 0.25


@pytest.mark.parametrize("flush_every", [1, 3])
def test_flushing_in_any_batches_reads_the_same(tmp_path, store, flush_every):
    whole = tmp_path / "whole" / "perflab_requests-host-1.bin"
    batched = tmp_path / "batched" / "perflab_requests-host-1.bin"
    for path in (whole, batched):
        path.parent.mkdir()
    assert _record(whole, _calls()).count == 4
    assert _record(batched, _calls(), flush_every=flush_every).count == 4
    pd.testing.assert_frame_equal(
        ingest([whole], store=store).table("requests"),
        ingest([batched], store=store).table("requests"),
    )


def test_a_file_cut_mid_write_reads_up_to_its_last_whole_block(tmp_path, store):
    path = tmp_path / "perflab_requests-host-1.bin"
    _record(path, _calls(), flush_every=2)
    data = path.read_bytes()
    path.write_bytes(data[:-5])  # the second block cut short
    with pytest.warns(DataWarning, match="cut short"):
        run = ingest([path], store=store)
    assert run.table("requests")["name"].tolist()[:2] == [
        "/a",
        'GET /search?q="a, b"\nnext',
    ]
    assert len(run.table("requests")) == 2


def test_writes_come_every_flush_every_seconds_or_only_when_asked(tmp_path):
    timed = Recorder(tmp_path / "timed.bin", flush_every=0.05)
    manual = Recorder(tmp_path / "manual.bin", flush_every=None)
    for recorder in (timed, manual):
        # every field by keyword, as Locust's request event passes them
        recorder.on_request(
            request_type="GET",
            name="/a",
            response_time=1.5,
            response_length=2,
            response=_Response(200),
            context={},
            exception=None,
            start_time=START,
            url="http://127.0.0.1/a",
        )
    gevent.sleep(0.3)  # lets the timed recorder's writer run
    assert (timed.count, manual.count) == (1, 0)
    manual.flush()
    assert manual.count == 1
    for recorder in (timed, manual):
        recorder.close()
        assert _starts(recorder.path) == [START]

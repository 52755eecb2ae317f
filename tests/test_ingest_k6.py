"""k6 exports: CSV, NDJSON and the two summary shapes.

The corpus tests check perflab's numbers against values worked out in the test itself
from the same file with the ``csv`` and ``json`` modules, never against perflab's own
output. The hand-written fixtures in ``tests/fixtures/k6/`` and the files generated
into ``tmp_path`` each exercise one oddity.
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import warnings
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from perflab.errors import DataWarning, InputError, PrecisionWarning
from perflab.ingest import detect, ingest
from perflab.ingest import k6 as k6_reader
from perflab.store import OVERALL

FIXTURES = Path(__file__).parent / "fixtures" / "k6"

DURATION = "http_req_duration"

CSV_HEADER = (
    "metric_name,timestamp,metric_value,check,error,error_code,expected_response,"
    "group,method,name,proto,scenario,service,status,subproto,tls_version,url,"
    "extra_tags"
)


# -- helpers --------------------------------------------------------------------------


def _ingest(paths, store, **kwargs):
    """Ingest and return (run, warnings caught)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = ingest([Path(p) for p in paths], store=store, **kwargs)
    return run, caught


def _messages(caught, category) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, category)]


def _overall(run) -> pd.Series:
    table = run.table("endpoints")
    return table.set_index("endpoint").loc[OVERALL]


def _nearest_rank(values: list[float], q: float) -> float:
    """Nearest-rank quantile, by hand: the sample at 1-based rank ceil(q * n)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def _raw_identical(run, source: Path) -> bool:
    return (run.raw / source.name).read_bytes() == source.read_bytes()


def _independent_json_requests(path: Path) -> tuple[list[dict], list[float]]:
    """http_req_duration points and vus values, read with the json module only."""
    requests, users = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            obj = json.loads(line)
            if obj["type"] != "Point":
                continue
            if obj["metric"] == "http_req_duration":
                requests.append({"value": obj["data"]["value"], **obj["data"]["tags"]})
            elif obj["metric"] == "vus":
                users.append(obj["data"]["value"])
    return requests, users


def _write_csv(path: Path, rows: list[str], header: str = CSV_HEADER) -> Path:
    path.write_text(header + "\n" + "".join(r + "\n" for r in rows))
    return path


def _csv_request(ts: str, duration: float, name: str, status: int = 200) -> list[str]:
    """The rows k6 writes for one request (header CSV_HEADER)."""
    expected = "true" if status < 400 else "false"
    tail = f",{expected},,GET,{name},HTTP/1.1,default,,{status},,,http://h.test{name},"
    return [
        f"http_reqs,{ts},1.000000,,,{tail}",
        f"http_req_duration,{ts},{duration:f},,,{tail}",
        f"http_req_failed,{ts},{float(status >= 400):f},,,{tail}",
    ]


# -- the shared corpus ----------------------------------------------------------------


@pytest.mark.corpus
def test_corpus_csv_2021(corpus, store):
    path = corpus / "k6" / "csv_2021_groups_checks.csv"
    run, caught = _ingest([path], store)

    # Independent: the http_req_duration rows, read with the csv module.
    with open(path, newline="") as handle:
        everything = list(csv.DictReader(handle))
    rows = [r for r in everything if r["metric_name"] == DURATION]
    check_rows = [r for r in everything if r["metric_name"] == "checks"]
    latencies = [float(r["metric_value"]) for r in rows]
    failures = sum(r["expected_response"] == "false" for r in rows)
    endpoints = {f"{r['method']} {r['name']}" for r in rows}

    overall = _overall(run)
    assert overall["requests"] == len(rows) == 3
    assert overall["failures"] == failures == 0
    assert set(run.table("endpoints")["endpoint"]) == endpoints | {OVERALL}
    assert overall["mean_ms"] == pytest.approx(sum(latencies) / len(latencies))
    assert overall["p50"] == pytest.approx(_nearest_rank(latencies, 0.5))
    # Whole-second timestamps: k6's sample time is the end of the request.
    first_end = datetime.fromtimestamp(int(rows[0]["timestamp"]), UTC)
    requests = run.table("requests")
    assert requests["ts"].max() == pd.Timestamp(
        first_end - timedelta(milliseconds=min(latencies))
    )
    assert len(_messages(caught, PrecisionWarning)) == 1
    assert "whole-second" in _messages(caught, PrecisionWarning)[0]
    assert not _messages(caught, DataWarning)
    passes = {c["name"]: c["passes"] for c in run.meta["checks"]}
    assert passes == {
        r["check"]: sum(
            float(x["metric_value"]) == 1
            for x in check_rows
            if x["check"] == r["check"]
        )
        for r in check_rows
    }
    assert run.meta["host"] == "http://localhost:3000"
    assert _raw_identical(run, path)


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "peak", "errors"),
    [
        ("ndjson_2021_tainted_sub_fields.json", 10, {}),
        ("ndjson_threshold_objects_abortonfail.json", 12, {"HTTP 502": 1}),
        ("ndjson_utc_nanos_groups.json", 1, {}),
    ],
)
def test_corpus_ndjson(corpus, store, name, peak, errors):
    path = corpus / "k6" / name
    run, caught = _ingest([path], store)

    # Independent: the Point lines of http_req_duration and vus, via json.
    points, users = _independent_json_requests(path)
    latencies = [p["value"] for p in points]
    failures = sum(p["expected_response"] == "false" for p in points)
    endpoints = {f"{p['method']} {p['name']}" for p in points}

    overall = _overall(run)
    assert overall["requests"] == len(points)
    assert overall["failures"] == failures
    assert set(run.table("endpoints")["endpoint"]) == endpoints | {OVERALL}
    assert overall["mean_ms"] == pytest.approx(sum(latencies) / len(latencies))
    assert overall["p95"] == pytest.approx(_nearest_rank(latencies, 0.95))
    assert run.meta["peak_users"] == max(users) == peak
    error_kinds = run.table("errors")
    assert dict(zip(error_kinds["error"], error_kinds["count"], strict=True)) == errors
    assert run.meta["setup_teardown_requests"] == 0
    assert not _messages(caught, DataWarning)
    assert _raw_identical(run, path)


@pytest.mark.corpus
def test_corpus_ndjson_times_are_utc_with_nanoseconds(corpus, store):
    path = corpus / "k6" / "ndjson_threshold_objects_abortonfail.json"
    run, _ = _ingest([path], store)

    # Independent: the first request's end 15:07:59.961068679-04:00 minus its
    # duration 2429.425762 ms, converted to UTC by hand.
    first = run.table("requests").iloc[0]
    expected = pd.Timestamp("2024-09-09T19:07:59.961068679Z") - pd.Timedelta(
        2429.425762, "ms"
    )
    assert abs(first["ts"] - expected) < pd.Timedelta(1, "us")
    thresholds = {(t["metric"], t["expression"]) for t in run.meta["thresholds"]}
    assert thresholds == {
        ("http_req_duration", "p(99)<1000"),
        ("http_req_failed", "rate<0.01"),
    }
    assert all(t["ok"] is None for t in run.meta["thresholds"])
    assert run.meta["scenario"] == "average_load"


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "thresholds"),
    [
        (
            "handlesummary_data_thresholds_ok.json",
            {
                ("http_req_failed", "rate<0.01", True),
                ("http_req_duration", "p(95)<500", True),
            },
        ),
        (
            "summary_export_custom_rate_metrics.json",
            # Legacy export: `true` means the threshold FAILED (p(95)=165 ms > 50).
            {("http_req_duration", "p(95)<50", False)},
        ),
        ("summary_export_failed_check.json", set()),
    ],
)
def test_corpus_summary(corpus, store, name, thresholds):
    path = corpus / "k6" / name
    run, caught = _ingest([path], store)

    # Independent: the figures straight from the JSON document.
    data = json.loads(path.read_text())
    metrics = data["metrics"]

    def values(metric):
        return metrics[metric].get("values", metrics[metric])

    overall = _overall(run)
    assert overall["requests"] == values("http_reqs")["count"]
    # In http_req_failed a "pass" is a failed request.
    assert overall["failures"] == values("http_req_failed")["passes"]
    assert overall["p95"] == pytest.approx(values(DURATION)["p(95)"])
    assert overall["mean_ms"] == pytest.approx(values(DURATION)["avg"])
    assert list(run.table("endpoints")["endpoint"]) == [OVERALL]
    assert not run.has("requests")
    assert run.provenance("endpoints").provenance == "aggregate"
    assert "linear interpolation" in run.provenance("endpoints").note
    assert run.meta["peak_users"] == values("vus")["max"]
    got = {(t["metric"], t["expression"], t["ok"]) for t in run.meta["thresholds"]}
    assert got == thresholds
    checks = data["root_group"]["checks"]
    checks = checks.values() if isinstance(checks, dict) else checks
    assert sum(c["fails"] for c in run.meta["checks"]) == sum(
        c["fails"] for c in checks
    )
    assert len(_messages(caught, PrecisionWarning)) == 1
    assert not _messages(caught, DataWarning)
    assert _raw_identical(run, path)


@pytest.mark.corpus
def test_corpus_files_are_all_detected(corpus):
    found = {p.name: detect(p) for p in sorted((corpus / "k6").iterdir())}
    assert len(found) == 7
    for name, fmt in found.items():
        expected = {"csv": "k6-csv", "ndj": "k6-json"}.get(name[:3], "k6-summary")
        assert fmt == expected, name


# -- CSV ------------------------------------------------------------------------------


END = datetime(2024, 3, 1, 12, 0, 0, 250000, tzinfo=UTC)


@pytest.mark.parametrize(
    ("fmt", "stamp", "coarse"),
    [
        ("unix", str(int(END.timestamp())), True),
        ("unix_milli", str(int(END.timestamp() * 1e3)), False),
        ("unix_micro", str(int(END.timestamp() * 1e6)), False),
        ("unix_nano", str(int(END.timestamp() * 1e6) * 1000), False),
        ("rfc3339", "2024-03-01T08:00:00-04:00", True),
        ("rfc3339_nano", "2024-03-01T08:00:00.250000000-04:00", False),
    ],
)
def test_csv_time_formats(tmp_path, store, fmt, stamp, coarse):
    path = _write_csv(tmp_path / f"{fmt}.csv", _csv_request(stamp, 100.0, "/a"))
    run, caught = _ingest([path], store)

    end = END.replace(microsecond=0) if coarse else END
    expected = pd.Timestamp(end - timedelta(milliseconds=100))
    assert run.table("requests")["ts"].tolist() == [expected]
    assert bool(_messages(caught, PrecisionWarning)) is coarse


def test_csv_gzip_and_columns_by_name(tmp_path, store):
    # The same request, with the columns in another order and gzipped.
    plain = _write_csv(tmp_path / "plain.csv", _csv_request("1700000000", 5, "/x"))
    with open(plain, newline="") as handle:
        rows = list(csv.reader(handle))
    order = list(reversed(range(len(rows[0]))))
    order.remove(0), order.remove(1), order.remove(2)
    order = [2, 0, 1, *order]
    shuffled = tmp_path / "shuffled.csv.gz"
    with gzip.open(shuffled, "wt", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(
            [[row[i] for i in order] for row in rows]
        )
    assert k6_reader.sniff(shuffled, b"metric_value,metric_name,timestamp") is None

    a, _ = _ingest([plain], store)
    b, _ = _ingest([shuffled], store, fmt="k6-csv")
    columns = ["ts", "endpoint", "status", "latency_ms", "ok"]
    pd.testing.assert_frame_equal(
        a.table("requests")[columns], b.table("requests")[columns]
    )
    assert _raw_identical(b, shuffled)


def test_csv_gzip_detected(tmp_path, store):
    path = tmp_path / "results.gz"
    text = CSV_HEADER + "\n" + "\n".join(_csv_request("1700000000", 7, "/g")) + "\n"
    path.write_bytes(gzip.compress(text.encode()))
    run, _ = _ingest([path], store)
    assert run.meta["format"] == "k6-csv"
    assert _overall(run)["requests"] == 1
    assert _raw_identical(run, path)


def test_csv_newer_header_metadata_vu_error_and_status_zero(store):
    path = FIXTURES / "metadata_vu.csv"
    run, caught = _ingest([path], store)

    requests = run.table("requests").sort_values("latency_ms")
    assert requests["endpoint"].tolist() == ["POST /cart", "GET /home", "GET /slow"]
    assert requests["user"].tolist() == [2, 1, 2]
    assert requests["ok"].tolist() == [False, True, False]
    assert requests["status"].isna().tolist() == [False, False, True]
    assert requests["error"].tolist()[2] == "request timeout"
    assert requests["bytes"].isna().all()
    assert run.meta["peak_users"] == 3
    assert run.meta["scenarios"] == ["browse", "buy"]
    assert run.meta["host"] == "http://shop.test"
    assert run.meta["checks"] == [
        {
            "name": "status is 200",
            "path": "::status is 200",
            "group": "",
            "passes": 0,
            "fails": 1,
        }
    ]
    errors = run.table("errors").set_index("endpoint")["error"].to_dict()
    assert errors == {"GET /slow": "request timeout", "POST /cart": "HTTP 503"}


def test_csv_success_from_http_req_failed_without_expected_response(tmp_path, store):
    header = CSV_HEADER.replace("expected_response,", "")
    rows = []
    for i, (status, failed) in enumerate([(200, 0), (404, 0), (200, 1)]):
        tail = f",,,GET,/r{i},HTTP/1.1,default,,{status},,,http://h.test/r{i},"
        rows += [
            f"http_req_duration,1700000000,{10 + i:f},,{tail}",
            f"http_req_waiting,1700000000,1.000000,,{tail}",
            f"http_req_failed,1700000000,{failed:f},,{tail}",
        ]
    path = _write_csv(tmp_path / "no_expected.csv", rows, header)
    run, caught = _ingest([path], store)

    requests = run.table("requests").sort_values("latency_ms")
    # A 404 the script expected is a success; http_req_failed decides.
    assert requests["ok"].tolist() == [True, True, False]
    assert run.meta["success_rule"] == {"http_req_failed": 3}
    assert not _messages(caught, DataWarning)


def test_csv_success_by_status_when_k6_recorded_neither(tmp_path, store):
    header = CSV_HEADER.replace("expected_response,", "")
    rows = [
        "http_req_duration,1700000000,10.000000,,,,,GET,/a,HTTP/1.1,d,,200,,,u,",
        "http_req_duration,1700000000,11.000000,,,,,GET,/b,HTTP/1.1,d,,500,,,u,",
    ]
    path = _write_csv(tmp_path / "old.csv", rows, header)
    run, caught = _ingest([path], store)
    assert run.table("requests").sort_values("latency_ms")["ok"].tolist() == [
        True,
        False,
    ]
    assert any("neither" in m for m in _messages(caught, DataWarning))


def test_csv_truncated_last_line(tmp_path, store):
    rows = _csv_request("1700000000", 10, "/a") + _csv_request("1700000001", 20, "/b")
    text = CSV_HEADER + "\n" + "\n".join(rows)
    path = tmp_path / "cut.csv"
    path.write_text(text[:-40])  # the last http_req_failed row is cut mid-way
    run, caught = _ingest([path], store)

    assert _overall(run)["requests"] == 2
    [message] = _messages(caught, DataWarning)
    assert "cut.csv" in message and "1 malformed line" in message
    assert "line 7" in message and "cut off" in message
    assert message in run.meta["warnings"]


def test_csv_truncated_last_line_keeping_its_columns(tmp_path, store):
    rows = _csv_request("1700000000", 10, "/a")
    text = CSV_HEADER + "\n" + "\n".join(rows) + "\nhttp_req_duration,1700000001,12.5"
    text += ",,,,true,,GET,/b,HTTP/1.1,default,,200,,,http://h.test/b,"
    path = tmp_path / "cut.csv"
    path.write_text(text[:-1])  # no trailing newline: the row may be incomplete
    run, caught = _ingest([path], store)
    assert _overall(run)["requests"] == 1
    assert "line 5" in _messages(caught, DataWarning)[0]


def test_csv_malformed_lines(tmp_path, store):
    rows = _csv_request("1700000000", 10, "/a")
    rows.insert(1, "http_req_duration,1700000000,oops,,,,true,,GET,/a,,d,,200,,,u,")
    rows.insert(2, "garbage line with no commas")
    rows += _csv_request("1700000001", 30, "/b")
    path = _write_csv(tmp_path / "bad.csv", rows)
    run, caught = _ingest([path], store)

    assert _overall(run)["requests"] == 2
    [message] = _messages(caught, DataWarning)
    assert "bad.csv: 2 malformed line(s) skipped (line 3, 4)" in message


def test_several_csv_files_are_one_run(tmp_path, store):
    first = _write_csv(tmp_path / "a.csv", _csv_request("1700000000", 10, "/a"))
    rows = _csv_request("1700000005", 30, "/b", status=500)
    second = _write_csv(tmp_path / "b.csv", rows)
    run, _ = _ingest([first, second], store)

    overall = _overall(run)
    assert (overall["requests"], overall["failures"]) == (2, 1)
    assert sorted(run.meta["raw_files"]) == ["a.csv", "b.csv"]
    # From the first start (10 ms before :00) to the last end (:05).
    assert run.meta["duration_s"] == pytest.approx(5.01)


def test_csv_header_only(tmp_path, store):
    path = _write_csv(tmp_path / "header.csv", [])
    with pytest.raises(InputError, match="header.csv.*no samples"):
        ingest([path], store=store)


def test_many_csv_rows_stream_in_batches(tmp_path, store, monkeypatch):
    # Tiny blocks force many batches, so a request's http_req_duration and its
    # http_req_failed rows often fall into different batches.
    monkeypatch.setattr(k6_reader, "_CSV_BLOCK_BYTES", 4096)
    header = CSV_HEADER.replace("expected_response,", "")
    rows = []
    for i in range(200):
        tail = f",,,,GET,/p{i % 3},HTTP/1.1,d,,200,,,http://h.test/p{i % 3},"
        stamp = 1_700_000_000_000 + i
        rows += [
            f"http_req_duration,{stamp},{i % 50 + 1:f},{tail}",
            f"http_req_waiting,{stamp},1.000000,{tail}",
            f"http_req_failed,{stamp},{float(i % 7 == 0):f},{tail}",
        ]
    path = _write_csv(tmp_path / "many.csv", rows, header)
    run, caught = _ingest([path], store)

    overall = _overall(run)
    assert overall["requests"] == 200
    assert overall["failures"] == sum(i % 7 == 0 for i in range(200))
    assert overall["mean_ms"] == pytest.approx(
        sum(i % 50 + 1 for i in range(200)) / 200
    )
    assert run.meta["success_rule"] == {"http_req_failed": 200}
    assert not _messages(caught, DataWarning)


# -- JSON lines -----------------------------------------------------------------------


def test_json_setup_teardown_offsets_metadata(store):
    path = FIXTURES / "setup_teardown.json"
    run, caught = _ingest([path], store)

    requests = run.table("requests").sort_values("ts")
    assert len(requests) == 2
    assert requests["endpoint"].tolist() == ["GET items", "GET items"]
    # 06:00:01.500-04:00 is 10:00:01.500Z; the request began 100 ms earlier.
    assert requests["ts"].iloc[0] == pd.Timestamp("2024-05-01T10:00:01.400Z")
    assert requests["user"].tolist() == [3, 2]
    assert requests["ok"].tolist() == [True, False]
    assert run.meta["setup_teardown_requests"] == 2
    assert run.meta["peak_users"] == 5
    assert run.meta["host"] == "http://api.test"
    assert {t["expression"] for t in run.meta["thresholds"]} == {
        "p(95)<500",
        "p(99)<900",
    }
    [message] = _messages(caught, DataWarning)
    assert "2 request(s)" in message and "setup()" in message
    assert run.meta["start"] == "2024-05-01T10:00:01Z"


def test_json_gzip_truncated_and_malformed_lines(tmp_path, store):
    vus = '{"metric":"vus","type":"Point","data":{"time":"%s","value":%s,"tags":{}}}'
    lines = (FIXTURES / "setup_teardown.json").read_text().splitlines()
    lines[3:3] = [
        '{"metric":"http_req_duration","type":"Point","data":{"time":',  # cut
        vus % ("yesterday", 1),  # not a time
        vus % ("2024-05-01T10:00:01Z", "1,"),  # not JSON, yet ends with }
        vus % ("2024-05-01T10:00:01Z", '"many"'),  # not a number
    ]
    text = "\n".join(lines)[:-30]  # the last line is cut off
    path = tmp_path / "cut.json.gz"
    path.write_bytes(gzip.compress(text.encode()))
    run, caught = _ingest([path], store)

    assert run.meta["format"] == "k6-json"
    [message] = [m for m in _messages(caught, DataWarning) if "malformed" in m]
    assert "cut.json.gz: 5 malformed line(s) skipped (line 4, 5, 6, 7, 14)" in message
    assert "cut off" in message
    assert _overall(run)["requests"] == 2
    assert run.meta["peak_users"] == 5
    assert run.meta["setup_teardown_requests"] == 1
    assert _raw_identical(run, path)


def test_json_many_lines_in_batches_old_key_order(tmp_path, store, monkeypatch):
    # k6 before 0.3x wrote "metric" last; no expected_response tag, so each
    # request's http_req_failed point decides, across batch boundaries too.
    monkeypatch.setattr(k6_reader, "_CSV_BLOCK_BYTES", 4096)
    lines = []
    for i in range(100):
        stamp = f"2024-01-01T00:00:{i % 60:02d}.{i:06d}+01:00"
        tags = f'{{"method":"GET","name":"/n{i % 2}","status":"200","group":""}}'
        for metric, value in ((DURATION, i + 1), ("http_req_failed", i % 5 == 0)):
            data = f'{{"time":"{stamp}","value":{int(value)},"tags":{tags}}}'
            lines.append(f'{{"type":"Point","data":{data},"metric":"{metric}"}}')
    path = tmp_path / "old.json"
    path.write_text("\n".join(lines) + "\n")
    run, caught = _ingest([path], store)

    overall = _overall(run)
    assert overall["requests"] == 100
    assert overall["failures"] == 20
    assert overall["max_ms"] == 100
    assert run.meta["success_rule"] == {"http_req_failed": 100}
    assert not _messages(caught, DataWarning)


# -- summaries ------------------------------------------------------------------------


def test_legacy_summary_threshold_true_means_failed(store):
    path = FIXTURES / "legacy_threshold_failed.json"
    run, caught = _ingest([path], store)

    assert run.meta["thresholds"] == [
        {"metric": "http_req_duration", "expression": "p(95)<500", "ok": False},
        {"metric": "http_req_duration", "expression": "max<1000", "ok": True},
    ]
    endpoints = run.table("endpoints").set_index("endpoint")
    assert list(endpoints.index) == [OVERALL, "/login"]
    assert endpoints.loc["/login", "requests"] == 10
    assert endpoints.loc["/login", "failures"] == 2
    assert endpoints.loc["/login", "p95"] == 850
    assert endpoints.loc[OVERALL, "error_rate"] == pytest.approx(0.1)
    assert endpoints.loc[OVERALL, "p50"] == 120
    assert pd.isna(endpoints.loc[OVERALL, "p99"])
    assert run.meta["duration_s"] == 5.0
    assert run.meta["checks"] == [
        {
            "name": "token present",
            "path": "::login::token present",
            "group": "::login",
            "passes": 9,
            "fails": 1,
        }
    ]


def test_handlesummary_submetric_rows_and_thresholds(store):
    path = FIXTURES / "handlesummary_submetric.json"
    run, _ = _ingest([path], store)

    endpoints = run.table("endpoints").set_index("endpoint")
    assert list(endpoints.index) == [OVERALL, "GET /api/items"]
    assert endpoints.loc["GET /api/items", "requests"] == 5  # from values.count
    assert endpoints.loc["GET /api/items", "p99"] == 29.8
    assert {(t["expression"], t["ok"]) for t in run.meta["thresholds"]} == {
        ("rate<0.01", True),
        ("p(99)<25", False),
    }
    assert run.meta["duration_s"] == 10.0
    assert run.meta["checks"][0]["path"] == "::api::is 200"


def test_several_summaries_are_refused(store):
    files = [FIXTURES / "legacy_threshold_failed.json"]
    files.append(FIXTURES / "handlesummary_submetric.json")
    with pytest.raises(InputError, match="cannot be merged"):
        ingest(files, store=store)


# -- detection and bad input ----------------------------------------------------------


@pytest.mark.parametrize(
    ("head", "expected"),
    [
        (CSV_HEADER.encode() + b"\nhttp_reqs,1,1", "k6-csv"),
        (
            b'\xef\xbb\xbf{"type":"Metric","data":{"name":"vus"},"metric":"vus"}\n',
            "k6-json",
        ),
        (b'{"metric":"vus","type":"Point","data":{"time":"t","value":1}}\n', "k6-json"),
        (b'{\n  "root_group": {},\n  "metrics": {\n', "k6-summary"),
        (b'{"metrics":{"http_reqs":{"count":1}}}', "k6-summary"),
        # Locust, JMeter and Gatling files are not k6's.
        (b"Type,Name,Request Count,Failure Count,Median Response Time\n", None),
        (b"timeStamp,elapsed,label,responseCode,responseMessage,threadName\n", None),
        (b"RUN\tsim\tsim\t1700000000000\t \t3.9.5\nREQUEST\t\t", None),
        (b'[{"name": "/", "method": "GET", "num_requests": 3}]', None),
        (b'{"type": "GROUP", "name": "All Requests", "stats": {}}', None),
        (b'{"Total": {"transaction": "Total", "sampleCount": 3}}', None),
    ],
)
def test_sniff(head, expected):
    assert k6_reader.sniff(Path("x"), head) == expected


def test_empty_file(tmp_path, store):
    path = tmp_path / "empty.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty.csv.*empty"):
        ingest([path], store=store)
    with pytest.raises(InputError, match="empty.csv.*empty"):
        ingest([path], store=store, fmt="k6-json")


@pytest.mark.parametrize("fmt", ["k6-csv", "k6-json", "k6-summary"])
def test_not_a_k6_file(tmp_path, store, fmt):
    path = tmp_path / "stats.csv"
    path.write_text("Type,Name,Request Count\nGET,/,3\n")
    with pytest.raises(InputError, match="stats.csv"):
        ingest([path], store=store, fmt=fmt)
    assert list(store.iterdir()) == []

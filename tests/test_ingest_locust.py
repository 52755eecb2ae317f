"""Reading Locust's exports: every CSV generation, the --json output, bad input.

Expected numbers come from the files themselves, read here with the csv module (or
by hand where a comment says so), never from the reader under test.
"""

from __future__ import annotations

import ast
import csv
import hashlib
import json
import math
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perflab import statistics
from perflab.errors import DataWarning, InputError, PerflabWarning, PrecisionWarning
from perflab.ingest import detect, ingest
from perflab.ingest import locust as reader
from perflab.store import OVERALL

FIXTURES = Path(__file__).parent / "fixtures" / "locust"


# -- helpers ---------------------------------------------------------------------------


def _ingest(paths, store, expect=(), **kwargs):
    """Ingest and check the set of perflab warning categories issued is ``expect``."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = ingest([Path(p) for p in paths], store=store, **kwargs)
    seen = {w.category for w in caught if issubclass(w.category, PerflabWarning)}
    assert seen == set(expect), [str(w.message) for w in caught]
    return run, [str(w.message) for w in caught]


def _rows(path: Path, encoding: str = "utf-8") -> list[dict[str, str]]:
    """A Locust CSV file read with the csv module alone (header names as written)."""
    with open(path, newline="", encoding=encoding) as handle:
        return list(csv.DictReader(handle))


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _assert_raw_copied(run, sources):
    for source in sources:
        assert _sha(run.raw / source.name) == _sha(source)


def _by_endpoint(run) -> pd.DataFrame:
    return run.table("endpoints").set_index("endpoint")


def _num(text: str) -> float:
    return math.nan if text in ("N/A", "") else float(text)


# -- the shared corpus: one test per file ----------------------------------------------


@pytest.mark.corpus
def test_corpus_all_timeouts_stats(corpus, store):
    path = corpus / "locust" / "all_timeouts_stats.csv"
    rows = _rows(path)
    total = next(r for r in rows if r["Name"] == "Aggregated")
    # Every percentile (60000) lies below every min (60001-60002): bucket rounding.
    run, messages = _ingest([path], store, expect={PrecisionWarning})
    assert "below the min" in messages[0] and path.name in messages[0]

    table = _by_endpoint(run)
    overall = table.loc[OVERALL]
    assert overall["requests"] == int(total["Request Count"]) == 881
    assert overall["failures"] == int(total["Failure Count"]) == 881
    assert overall["error_rate"] == 1.0
    assert overall["p50"] == _num(total["50%"]) == 60000
    assert overall["mean_ms"] == pytest.approx(float(total["Average Response Time"]))
    expected = {f"{r['Type']} {r['Name']}" for r in rows if r["Type"]}
    assert set(table.index) - {OVERALL} == expected
    assert "GET http://192.168.100.38:30946/?post_type=product&paged=2" in expected
    assert table["bytes_mean"].eq(0.0).all()  # Average Content Size 0.0 in the file
    assert run.meta["tool_version"] == "2.x?"
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_gbk_chinese_failures(corpus, store):
    path = corpus / "locust" / "gbk_chinese_failures.csv"
    rows = _rows(path, encoding="gbk")
    run, _ = _ingest([path], store, expect={DataWarning})

    errors = run.table("errors")
    assert len(errors) == len(rows) == 51
    assert errors["count"].sum() == sum(int(r["Occurrences"]) for r in rows)
    assert "GET 查看影响力榜单" in set(errors["endpoint"])
    # Status: only the "NNN Client/Server Error" texts name one.
    named = [
        r for r in rows if " Client Error" in r["Error"] or "Server Error" in r["Error"]
    ]
    assert errors["status"].notna().sum() == len(named)
    biggest = errors.iloc[0]  # sorted by count: 363 x "500 Server Error" (by eye)
    assert (biggest["count"], biggest["status"]) == (363, 500)
    reset = errors[errors["error"].str.contains("ConnectionResetError")]
    assert reset["status"].isna().all()
    assert reset["error"].str.contains("远程主机强迫关闭了一个现有的连接").all()
    assert run.meta["tool_version"] == "0.x-1.0?"
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_gbk_name_stats(corpus, store):
    path = corpus / "locust" / "gbk_name_stats.csv"
    rows = _rows(path, encoding="gbk")
    run, _ = _ingest([path], store, expect={DataWarning})

    table = _by_endpoint(run)
    assert list(table.index) == ["GET get接口", OVERALL]
    row = table.loc["GET get接口"]
    assert row["requests"] == int(rows[0]["Request Count"]) == 15
    assert row["failures"] == 0
    assert row["p90"] == _num(rows[0]["90%"]) == 54
    assert row["mean_ms"] == pytest.approx(float(rows[0]["Average Response Time"]))
    assert run.meta["tool_version"] == "1.x?"
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_header_only_exceptions(corpus, store):
    path = corpus / "locust" / "header_only_exceptions.csv"
    # Ingested on its own, the run has no request data: a visible warning says so.
    run, messages = _ingest([path], store, expect={DataWarning})
    (message,) = messages
    assert path.name in message and "holds no requests (a header only" in message
    assert run.meta["warnings"] == [message]
    assert run.meta["exceptions"] == []
    assert not run.has("endpoints") and not run.has("intervals")
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_header_only_failures(corpus, store):
    path = corpus / "locust" / "header_only_failures.csv"
    run, messages = _ingest([path], store, expect={DataWarning})
    (message,) = messages
    assert path.name in message and "holds no requests (a header only" in message
    assert run.has("errors") and run.table("errors").empty
    assert run.provenance("errors").rows == 0
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_quoted_99999pct_stats_history(corpus, store):
    path = corpus / "locust" / "quoted_99999pct_stats_history.csv"
    rows = _rows(path)
    run, _ = _ingest([path], store)

    intervals = run.table("intervals")
    # Rows 2 and 3 share one timestamp (the final write): they make one interval.
    assert len(intervals) == 2
    assert intervals["requests"].sum() == int(rows[-1]["Total Request Count"]) == 15
    assert intervals["failures"].sum() == int(rows[-1]["Total Failure Count"]) == 0
    assert intervals["interval_s"].tolist() == [2.0, 2.0]  # 1597569276 - 1597569274
    assert intervals["p50"].iloc[-1] == _num(rows[-1]["50%"]) == 11
    assert math.isnan(intervals["p50"].iloc[0])  # "N/A" in the file
    assert intervals["mean_ms"].isna().all()  # cumulative means are whole ms here
    assert run.meta["peak_users"] == max(int(r["User Count"]) for r in rows) == 10
    assert run.meta["csv_full_history"] is False
    # 100% is 52 while the run's max is 88: a recent window, not the whole run.
    assert run.meta["history_percentiles"] == "current"
    assert "last 10 s" in run.provenance("intervals").note
    assert run.meta["start"] == "2020-08-16T09:14:34Z"  # date -u -d @1597569274
    overall = _by_endpoint(run).loc[OVERALL]
    assert overall["requests"] == 15 and overall["max_ms"] == 88
    assert run.meta["tool_version"] == "1.0-1.1?"
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_v0_14_hash_requests_stats(corpus, store):
    path = corpus / "locust" / "v0_14_hash_requests_stats.csv"
    rows = _rows(path)
    total = rows[-1]
    assert (total["Type"], total["Name"]) == ("None", "Aggregated")
    # e.g. GET /questionnaire: max 1389 but 99.9% = 1400 (bucket rounding).
    run, messages = _ingest([path], store, expect={PrecisionWarning})
    above = next(m for m in messages if "above the max" in m)
    assert "GET /questionnaire," in above and path.name in above

    table = _by_endpoint(run)
    assert len(table) == len(rows) == 18
    overall = table.loc[OVERALL]
    assert overall["requests"] == int(total["# requests"]) == 5488
    assert overall["failures"] == int(total["# failures"]) == 288
    assert overall["p99"] == _num(total["99%"]) == 1300
    assert overall["p99_9"] == _num(total["99.9%"]) == 2600
    assert overall["throughput"] == float(total["Requests/s"])
    visitor = table.loc["GET /questionnaire/visitor/add-visitor/?previous=any-visitors"]
    assert visitor["error_rate"] == 1.0  # 288 of 288 failed
    assert run.meta["tool_version"] == "0.13-0.14?"
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_v0_14_stats_history(corpus, store):
    path = corpus / "locust" / "v0_14_type_name_timestamp_stats_history.csv"
    rows = _rows(path)
    # The first row has every percentile 0 with 5 requests: "no window yet".
    run, messages = _ingest([path], store, expect={DataWarning})
    assert "every percentile 0" in messages[0]

    intervals = run.table("intervals")
    assert len(intervals) == len(rows) == 31
    assert intervals["requests"].sum() == int(rows[-1]["# requests"]) == 644
    assert intervals["failures"].sum() == int(rows[-1]["# failures"]) == 0
    assert set(intervals["endpoint"]) == {OVERALL}  # only "None","Aggregated" rows
    assert intervals["requests"].iloc[1] == 26 - 5  # "# requests" of rows 2 and 1
    assert intervals["interval_s"].eq(2.0).all()
    assert math.isnan(intervals["p50"].iloc[0])
    assert intervals["p95"].iloc[1] == _num(rows[1]["95%"]) == 140
    assert intervals["throughput"].iloc[2] == float(rows[2]["Requests/s"]) == 7.67
    assert intervals["users"].isna().all()  # 0.14 wrote no user count
    assert run.meta["history_percentiles"] == "current"
    assert run.meta["duration_s"] == 1586169857 - 1586169797
    assert _by_endpoint(run).loc[OVERALL, "max_ms"] == 405.19
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_v0_httpbin_distribution(corpus, store):
    path = corpus / "locust" / "v0_httpbin_distribution.csv"
    rows = _rows(path)
    run, _ = _ingest([path], store)

    table = _by_endpoint(run)
    # "PUT /delayed" in one field becomes method PUT, name /delayed.
    assert table.loc["PUT /delayed", ["method", "name"]].tolist() == ["PUT", "/delayed"]
    assert table.loc[OVERALL, "requests"] == int(rows[-1]["# requests"]) == 1648
    assert table.loc[OVERALL, "p90"] == _num(rows[-1]["90%"]) == 5000
    assert table["failures"].isna().all()  # this file has no failure counts
    assert table["p99_9"].isna().all()  # nor a 99.9% column
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_v0_httpbin_requests(corpus, store):
    path = corpus / "locust" / "v0_httpbin_requests.csv"
    rows = _rows(path)
    run, _ = _ingest([path], store)

    table = _by_endpoint(run)
    total = rows[-1]
    assert (total["Method"], total["Name"]) == ("None", "Total")
    assert table.loc[OVERALL, "requests"] == int(total["# requests"]) == 1648
    assert table.loc[OVERALL, "failures"] == int(total["# failures"]) == 388
    assert table.loc["GET /status/404", "error_rate"] == 1.0
    # No percentile columns: p50 is the median column, the others are missing.
    assert table.loc["PUT /delayed", "p50"] == float(rows[0]["Median response time"])
    assert table["p95"].isna().all()
    assert run.meta["tool_version"] == "0.x?"
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_v0_httpbin_pair(corpus, store):
    folder = corpus / "locust"
    paths = [folder / "v0_httpbin_requests.csv", folder / "v0_httpbin_distribution.csv"]
    dist = _rows(paths[1])
    run, _ = _ingest(paths, store)

    table = _by_endpoint(run)
    assert len(table) == 5
    assert table.loc[OVERALL, "failures"] == 388  # from the requests file
    assert table.loc[OVERALL, "p90"] == _num(dist[-1]["90%"]) == 5000  # distribution
    assert table.loc["GET /get", "p99"] == _num(dist[1]["99%"]) == 19
    assert table.loc["GET /get", "throughput"] == 15.72
    _assert_raw_copied(run, paths)


@pytest.mark.corpus
def test_corpus_v2_float_median_stats(corpus, store):
    path = corpus / "locust" / "v2_float_median_stats.csv"
    rows = _rows(path)
    run, _ = _ingest([path], store)

    table = _by_endpoint(run)
    assert list(table.index) == ["POST /start/v4//", OVERALL]
    row = table.loc["POST /start/v4//"]
    assert row["requests"] == int(rows[0]["Request Count"]) == 437
    assert row["failures"] == int(rows[0]["Failure Count"]) == 0
    assert row["p50"] == 51000.0  # 50% column; the median column says 51000.0
    assert row["min_ms"] == pytest.approx(float(rows[0]["Min Response Time"]))
    assert row["bytes_mean"] == pytest.approx(208.25400457665904)
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_v2_stats_history(corpus, store):
    path = corpus / "locust" / "v2_stats_history.csv"
    rows = _rows(path)
    run, _ = _ingest([path], store)

    intervals = run.table("intervals")
    assert len(intervals) == len(rows) == 291
    assert (intervals["endpoint"] == OVERALL).all()
    assert intervals["requests"].sum() == int(rows[-1]["Total Request Count"]) == 416
    assert intervals["failures"].sum() == 0
    assert run.meta["peak_users"] == 100
    assert run.meta["csv_full_history"] is False
    # Each 100% equals the run's max so far: whole-run percentiles.
    assert run.meta["history_percentiles"] == "cumulative"
    # 10 -> 11 requests between 1675611667 and 1675611668: the one new request took
    # 36493.694507546024 * 11 - 35095.1528125006 * 10 ms, which is the new max.
    one = intervals[intervals["ts"] == pd.Timestamp(1675611667, unit="s", tz="UTC")]
    assert one["requests"].item() == 1
    assert one["mean_ms"].item() == pytest.approx(50479.11145800026, abs=1e-6)
    assert intervals["users"].max() == 100
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_zero_requests_stats(corpus, store):
    path = corpus / "locust" / "zero_requests_stats.csv"
    run, messages = _ingest([path], store, expect={DataWarning})
    (message,) = messages
    assert path.name in message and "the run holds 0 requests" in message
    assert run.meta["warnings"] == [message]

    overall = _by_endpoint(run).loc[OVERALL]
    assert overall["requests"] == 0 and overall["failures"] == 0
    # N/A percentiles and the 0 times of an empty run are missing values, not 0.
    for column in ("p50", "p99", "mean_ms", "min_ms", "max_ms", "error_rate"):
        assert math.isnan(overall[column]), column
    _assert_raw_copied(run, [path])


@pytest.mark.corpus
def test_corpus_every_locust_file_is_sniffed(corpus):
    files = sorted((corpus / "locust").iterdir())
    assert len(files) >= 13  # the 13 described in SOURCES.md
    assert {detect(p) for p in files} == {"locust-csv"}
    for other in ("k6", "jmeter", "gatling"):
        for path in (corpus / other).iterdir():
            assert reader.sniff(path, path.read_bytes()[:65536]) is None, path


@pytest.mark.corpus
def test_corpus_runs_with_other_prefixes_are_refused(corpus, store):
    folder = corpus / "locust"
    paths = [folder / "v2_float_median_stats.csv", folder / "v2_stats_history.csv"]
    with pytest.raises(InputError, match="one run at a time"):
        ingest(paths, store=store)
    assert not any(store.iterdir())  # no half-made run is left behind


@pytest.mark.corpus
def test_corpus_v2_pair_under_one_prefix(corpus, store, tmp_path):
    # The two files are one run (SOURCES.md); give them one prefix outside the repo.
    folder = tmp_path / "run"
    folder.mkdir()
    for source, target in (
        ("v2_float_median_stats.csv", "report_stats.csv"),
        ("v2_stats_history.csv", "report_stats_history.csv"),
    ):
        (folder / target).write_bytes((corpus / "locust" / source).read_bytes())
    run, _ = _ingest([folder], store)

    assert _by_endpoint(run).loc[OVERALL, "requests"] == 437  # from the stats file
    assert run.table("intervals")["requests"].sum() == 416  # history stops earlier
    assert run.meta["start"] == "2023-02-05T15:40:07Z"  # date -u -d @1675611607
    assert run.meta["duration_s"] == 1675611898 - 1675611607


@pytest.mark.corpus
def test_corpus_gbk_run_under_one_prefix(corpus, store, tmp_path):
    folder = tmp_path / "run"
    folder.mkdir()
    for source, target in (
        ("gbk_name_stats.csv", "locust_stats.csv"),
        ("quoted_99999pct_stats_history.csv", "locust_stats_history.csv"),
        ("header_only_failures.csv", "locust_failures.csv"),
    ):
        (folder / target).write_bytes((corpus / "locust" / source).read_bytes())
    run, _ = _ingest([folder], store, expect={DataWarning})

    assert "GET get接口" in set(run.table("endpoints")["endpoint"])
    assert run.table("intervals")["requests"].sum() == 15
    assert run.table("errors").empty
    assert run.meta["peak_users"] == 10


@pytest.mark.corpus
def test_corpus_gbk_with_wrong_encoding_is_an_input_error(corpus, store):
    path = corpus / "locust" / "gbk_chinese_failures.csv"
    with pytest.raises(InputError, match="--encoding"):
        ingest([path], store=store, encoding="utf-8")


# -- hand-written fixtures: one per generation -----------------------------------------


def _v2run() -> list[Path]:
    names = ("stats", "stats_history", "failures", "exceptions")
    return [FIXTURES / f"v2run_{name}.csv" for name in names]


def test_v2_run_with_full_history(store):
    paths = _v2run()
    run, _ = _ingest(paths, store)
    assert run.meta["tool"] == "locust" and run.meta["format"] == "locust-csv"
    assert run.meta["tool_version"] == "2.x?"
    assert run.meta["csv_full_history"] is True
    _assert_raw_copied(run, paths)

    # endpoints: the stats file's numbers (by hand from v2run_stats.csv)
    table = _by_endpoint(run)
    assert list(table.index) == ["GET /items", "POST /items?id=1,2", OVERALL]
    overall = table.loc[OVERALL]
    assert (overall["requests"], overall["failures"]) == (40, 3)
    assert overall["error_rate"] == pytest.approx(3 / 40)
    assert overall["mean_ms"] == pytest.approx((30 * 45.5 + 10 * 140.25) / 40)
    assert table.loc["POST /items?id=1,2", "p95"] == 330
    assert run.provenance("endpoints").provenance == "aggregate"
    assert "10,000 ms and above to the nearest 1,000 ms" in (
        run.provenance("endpoints").note
    )

    # intervals: differences of the cumulative counts, per endpoint and overall
    intervals = run.table("intervals")
    overall = intervals[intervals["endpoint"] == OVERALL]
    assert overall["requests"].tolist() == [0, 10, 30]
    assert overall["failures"].tolist() == [0, 1, 2]
    assert overall["users"].tolist() == [5.0, 10.0, 10.0]
    # (69.1875 * 40 - 41.0 * 10) / 30: the mean of the 30 requests of the last second
    assert overall["mean_ms"].iloc[-1] == pytest.approx(2357.5 / 30)
    assert overall["ts"].iloc[-1] == pd.Timestamp(1700000001, unit="s", tz="UTC")
    items = intervals[intervals["endpoint"] == "GET /items"]
    assert items["requests"].tolist() == [0, 10, 20]
    assert items["mean_ms"].iloc[-1] == pytest.approx((45.5 * 30 - 41.0 * 10) / 20)
    assert math.isnan(items["p50"].iloc[0])  # N/A
    # The Aggregated 100% (200) stays below the max (330.2): a recent window.
    assert run.meta["history_percentiles"] == "current"
    assert run.meta["peak_users"] == 10
    assert run.meta["start"] == "2023-11-14T22:13:20Z"  # date -u -d @1700000000
    assert run.meta["duration_s"] == 2.0

    # errors: commas, doubled quotes and a newline inside the quoted field
    errors = run.table("errors")
    assert errors["count"].tolist() == [2, 1]
    assert errors["status"].iloc[0] == 500
    assert pd.isna(errors["status"].iloc[1])
    assert errors["error"].iloc[1] == (
        "CatchResponseError('Got \"bad\" body, expected ok\nsecond line')"
    )
    assert errors["error"].iloc[0].endswith("items?a=1,2')")

    # exceptions: the traceback is kept whole
    (exception,) = run.meta["exceptions"]
    assert exception["count"] == 2
    assert exception["traceback"] == (
        '  File "locustfile.py", line 12, in task\n    1 / 0\n'
    )
    assert exception["nodes"] == "worker-1, worker-2"


def test_v1_0_quoted_stats(store):
    run, _ = _ingest([FIXTURES / "v1_0_stats.csv"], store)
    table = _by_endpoint(run)
    assert run.meta["tool_version"] == "1.0?"
    assert table.loc[OVERALL, ["requests", "failures"]].tolist() == [100, 2]
    assert table.loc["GET /", "p99_9"] == 95  # the 99.9% column, not 99.999%
    assert table.loc["GET /", "bytes_mean"] == 1024


def test_v1_1_history_without_full_history(store):
    run, _ = _ingest([FIXTURES / "v1_1_stats_history.csv"], store)
    intervals = run.table("intervals")
    assert intervals["requests"].tolist() == [0, 3, 4]  # 0, 3, 7 cumulative
    assert intervals["failures"].tolist() == [0, 0, 1]
    assert run.meta["csv_full_history"] is False
    assert run.meta["history_percentiles"] == "current"  # 100% 22 < max 95
    assert run.meta["tool_version"] == "1.0-1.1?"
    # Without a stats file the endpoints come from the last history row.
    overall = _by_endpoint(run).loc[OVERALL]
    assert (overall["requests"], overall["failures"], overall["max_ms"]) == (7, 1, 95)
    assert overall["p50"] == 20  # the whole-run median column
    assert math.isnan(overall["p95"])  # window percentiles are not whole-run ones
    assert overall["throughput"] == pytest.approx(7 / 2)  # over 2 s of history
    assert "last row" in run.provenance("endpoints").note


def test_v0_14_stats_and_history(store):
    paths = [FIXTURES / "v014_stats.csv", FIXTURES / "v014_stats_history.csv"]
    run, messages = _ingest(paths, store, expect={DataWarning, PrecisionWarning})
    assert any("every percentile 0" in m for m in messages)
    assert any("above the max" in m and "GET /a" in m for m in messages)
    assert run.meta["tool_version"] == "0.13-0.14?"
    table = _by_endpoint(run)
    assert table.loc[OVERALL, "failures"] == 1
    assert table.loc["GET /a", "p99"] == 1400  # kept as written, above max 1389
    intervals = run.table("intervals")
    assert intervals["requests"].tolist() == [4, 8, 8]
    assert intervals["interval_s"].tolist() == [2.0, 2.0, 2.0]
    assert math.isnan(intervals["p50"].iloc[0])  # the all-zero row
    assert intervals["mean_ms"].isna().all()  # whole-ms cumulative means
    assert intervals["users"].isna().all()


def test_v0_requests_and_distribution(store):
    paths = [FIXTURES / "v0_requests.csv", FIXTURES / "v0_distribution.csv"]
    run, _ = _ingest(paths, store)
    table = _by_endpoint(run)
    assert list(table.index) == ["GET /get", "GET /status/404", OVERALL]
    assert table.loc["GET /status/404", "p50"] == 4  # distribution 50%, not median 5
    assert table.loc[OVERALL, "p95"] == 33
    assert table.loc[OVERALL, "throughput"] == 5.0
    assert table.loc["GET /status/404", "error_rate"] == 1.0


def test_utf8_bom_is_not_part_of_the_header(store):
    path = FIXTURES / "bom_stats.csv"
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    run, _ = _ingest([path], store)
    assert list(_by_endpoint(run).index) == ["GET /café", OVERALL]


def test_gbk_text_is_detected(store, tmp_path):
    path = tmp_path / "cn_failures.csv"
    text = 'Method,Name,Error,Occurrences\r\nGET,接口,"HTTPError: 500",3\r\n'
    path.write_bytes(text.encode("gbk"))
    run, _ = _ingest([path], store, expect={DataWarning})
    errors = run.table("errors")
    assert errors["name"].tolist() == ["接口"]
    assert errors["status"].tolist() == [500]


def test_explicit_encoding_is_used(store, tmp_path):
    path = tmp_path / "latin_failures.csv"
    path.write_bytes("Method,Name,Error,Occurrences\nGET,/ça,x,1\n".encode("latin-1"))
    run, _ = _ingest([path], store, encoding="latin-1")
    assert run.table("errors")["name"].tolist() == ["/ça"]


# -- locust --json ---------------------------------------------------------------------


def test_json_output(store):
    path = FIXTURES / "locust_run.json"
    run, _ = _ingest([path], store)
    assert run.meta["format"] == "locust-json"
    _assert_raw_copied(run, [path])

    table = _by_endpoint(run)
    items = table.loc["GET /items"]
    # Histogram 50x2 60x3 100x2 150x2 310x1, nearest rank: p50 is the 5th value.
    assert items[["p50", "p90", "p95", "p99"]].tolist() == [60, 150, 310, 310]
    assert items["mean_ms"] == pytest.approx(1234.5 / 10)
    assert items["bytes_mean"] == 512
    overall = table.loc[OVERALL]
    assert (overall["requests"], overall["failures"]) == (15, 1)
    assert overall["p50"] == 100  # 8th of 15 in the merged histograms
    assert overall["throughput"] == pytest.approx(15 / 10.0)  # 1700000010 - ...000
    assert overall["min_ms"] == 50.1 and overall["max_ms"] == 310.2

    intervals = run.table("intervals")
    series = intervals[intervals["endpoint"] == OVERALL]
    assert series["requests"].tolist() == [4, 5, 6]
    assert series["failures"].tolist() == [0, 0, 1]
    assert run.meta["duration_s"] == 10.0


def test_json_fixture_keys_match_locust_source():
    """The fixture carries exactly the keys of the installed Locust's StatsEntryDict."""
    try:
        import importlib.util

        spec = importlib.util.find_spec("locust")
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.submodule_search_locations:
        pytest.skip("locust is not installed")
    source = Path(spec.submodule_search_locations[0]) / "stats.py"
    tree = ast.parse(source.read_text())
    keys = set()
    for node in tree.body:
        if isinstance(node, ast.ClassDef) and node.name in (
            "StatsBaseDict",
            "StatsEntryDict",
        ):
            keys |= {
                item.target.id for item in node.body if isinstance(item, ast.AnnAssign)
            }
    entries = json.loads((FIXTURES / "locust_run.json").read_text())
    assert keys and all(set(entry) == keys for entry in entries)


def test_histogram_percentiles_match_nearest_rank_on_samples():
    histogram = {"50": 2, "60": 3, "100": 2, "150": 2, "310": 1, "1000": 0}
    samples = np.repeat([50, 60, 100, 150, 310], [2, 3, 2, 2, 1])
    assert reader.histogram_percentiles(histogram) == statistics.percentiles(samples)
    assert all(math.isnan(v) for v in reader.histogram_percentiles({}).values())


# -- bad input -------------------------------------------------------------------------


def test_malformed_rows_are_dropped_with_a_warning(store):
    path = FIXTURES / "malformed_stats.csv"
    run, messages = _ingest([path], store, expect={DataWarning})
    (message,) = messages
    assert "dropped 2 malformed rows" in message and path.name in message
    assert "line 3" in message and "line 4" in message
    assert list(_by_endpoint(run).index) == ["GET /ok", OVERALL]
    assert run.meta["warnings"] == [message]


def test_truncated_last_line(store):
    path = FIXTURES / "truncated_stats_history.csv"
    run, messages = _ingest([path], store, expect={DataWarning})
    assert "line 5" in messages[0] and "truncated" in messages[0]
    intervals = run.table("intervals")
    assert intervals["requests"].tolist() == [0, 2, 3]
    assert intervals["mean_ms"].iloc[2] == pytest.approx((20.2 * 5 - 20.25 * 2) / 3)
    assert run.meta["history_percentiles"] == "cumulative"


def test_empty_file(store, tmp_path):
    path = tmp_path / "empty_stats.csv"
    path.write_bytes(b"")
    with pytest.raises(InputError, match="empty"):
        ingest([path], store=store)
    with pytest.raises(InputError, match="empty"):
        reader.read([path], None, None, "locust-csv")


def test_csv_that_is_not_locust(store):
    path = FIXTURES / "not_locust.csv"
    assert reader.sniff(path, path.read_bytes()) is None
    with pytest.raises(InputError, match="not_locust.csv"):
        ingest([path], store=store)
    with pytest.raises(InputError, match="not a Locust export"):
        ingest([path], store=store, fmt="locust-csv")


def test_json_that_is_not_locust(store, tmp_path):
    path = tmp_path / "other.json"
    path.write_text('[{"a": 1}]')
    with pytest.raises(InputError, match="not the output of locust --json"):
        ingest([path], store=store, fmt="locust-json")
    path.write_text("[{")
    with pytest.raises(InputError, match="not valid JSON"):
        ingest([path], store=store, fmt="locust-json")


def test_two_stats_files_of_one_prefix_are_refused(store, tmp_path):
    first, second = tmp_path / "a", tmp_path / "b"
    for folder in (first, second):
        folder.mkdir()
        (folder / "x_stats.csv").write_bytes((FIXTURES / "v1_0_stats.csv").read_bytes())
    with pytest.raises(InputError, match="one run at a time"):
        ingest([first, second], store=store)


def test_sniff_recognises_content_not_names(tmp_path):
    for path in FIXTURES.iterdir():
        head = path.read_bytes()
        expected = {"not_locust.csv": None, "locust_run.json": "locust-json"}.get(
            path.name, "locust-csv"
        )
        assert reader.sniff(path, head) == expected, path.name
    # A Locust stats file under any name is still recognised.
    renamed = tmp_path / "results.txt"
    renamed.write_bytes((FIXTURES / "v2run_stats.csv").read_bytes())
    assert reader.sniff(renamed, renamed.read_bytes()) == "locust-csv"


@pytest.mark.parametrize(
    ("text", "status"),
    [
        ("HTTPError('404 Client Error: Not Found for url: /x')", 404),
        ("404 Client Error: Not Found for url: 查看", 404),
        ("HTTPError: 500", 500),
        ("ConnectionResetError(10054, 'x', None, 10054, None)", None),
        ("CatchResponseError('took 1500 ms')", None),
    ],
)
def test_status_from_error(text, status):
    assert reader.status_from_error(text) == status


def test_json_with_wrong_value_types(store, tmp_path):
    entries = json.loads((FIXTURES / "locust_run.json").read_text())
    entries[0]["response_times"] = ["not", "a", "histogram"]
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(entries))
    with pytest.raises(InputError, match="wrong type"):
        ingest([path], store=store)


def test_percentiles_out_of_order_are_reported_not_fixed(store, tmp_path):
    path = tmp_path / "odd_stats.csv"
    lines = (FIXTURES / "v2run_stats.csv").read_text().splitlines()
    # GET /items: 90% 80 -> 30, below its 50% of 42.
    lines[1] = lines[1].replace(",52,80,120,", ",52,30,120,")
    path.write_text("\n".join(lines) + "\n")
    run, messages = _ingest([path], store, expect={PrecisionWarning})
    (message,) = messages
    assert "not increasing" in message and "GET /items" in message
    assert path.name in message
    assert _by_endpoint(run).loc["GET /items", "p90"] == 30  # kept as written


def test_undecodable_bytes_suggest_encoding(store, tmp_path):
    path = tmp_path / "cn_stats.csv"
    text = (FIXTURES / "v1_0_stats.csv").read_text().replace('"/"', '"/接口"')
    path.write_bytes(text.encode("gbk"))
    with pytest.raises(InputError, match="--encoding"):
        ingest([path], store=store, encoding="utf-8")


def test_read_returns_the_users_series():
    result = reader.read(
        [FIXTURES / "v2run_stats_history.csv"], None, None, "locust-csv"
    )
    series = result.meta["users_series"]
    assert series.columns.tolist() == ["ts", "users"]
    assert series["users"].tolist() == [5, 10, 10]
    assert series["ts"].iloc[0] == pd.Timestamp(1700000000, unit="s", tz="UTC")
    assert result.meta["start"] == series["ts"].iloc[0]
    assert result.tool == "locust" and result.fmt == "locust-csv"

"""JMeter JTL files: CSV (with or without a header, any delimiter) and XML.

The corpus tests compare perflab's numbers with values worked out in the test itself
from the same file with the ``csv`` module or ``xml.etree`` and plain arithmetic,
never with perflab's own output. The hand-written fixtures in
``tests/fixtures/jmeter/`` each exercise one oddity.
"""

from __future__ import annotations

import csv
import gzip
import math
import re
import warnings
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

from perflab.errors import InputError, PerflabWarning
from perflab.ingest import detect, ingest
from perflab.ingest import jmeter as jmeter_reader
from perflab.ingest.base import RequestSink, head_bytes
from perflab.store import OVERALL

FIXTURES = Path(__file__).parent / "fixtures" / "jmeter"

# The pre-3.0 default columns, written out here rather than taken from the reader.
COLUMNS_2X = (
    "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,"
    "success,bytes,grpThreads,allThreads,Latency"
).split(",")


# -- helpers --------------------------------------------------------------------------


def _ingest(path: Path, store: Path, **kwargs):
    """Ingest one file; returns (run, perflab warning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = ingest([path], store=store, **kwargs)
    messages = [
        str(w.message) for w in caught if issubclass(w.category, PerflabWarning)
    ]
    return run, messages


def _ingest_quiet(path: Path, store: Path, **kwargs):
    """Ingest a file that must raise no perflab warning at all."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerflabWarning)
        return ingest([path], store=store, **kwargs)


def _nearest_rank(values: list[float], q: float) -> float:
    """Nearest-rank quantile by hand: the sample at 1-based rank ceil(q * n)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def _overall(run) -> pd.Series:
    return run.table("endpoints").set_index("endpoint").loc[OVERALL]


def _check_numbers(run, elapsed: list[int], failures: int, endpoints: set[str]):
    """Request and failure counts, endpoints, mean and p95 against hand values."""
    requests = run.table("requests")
    assert len(requests) == len(elapsed)
    assert int((~requests["ok"]).sum()) == failures
    assert set(requests["endpoint"]) == endpoints
    overall = _overall(run)
    assert overall["requests"] == len(elapsed)
    assert overall["failures"] == failures
    assert overall["mean_ms"] == pytest.approx(sum(elapsed) / len(elapsed))
    assert overall["p95"] == _nearest_rank(elapsed, 0.95)


def _raw_identical(run, original: Path) -> None:
    assert (run.raw / original.name).read_bytes() == original.read_bytes()


# -- the corpus -----------------------------------------------------------------------


@pytest.mark.corpus
def test_corpus_redirect_subresults(corpus, store):
    path = corpus / "jmeter" / "csv_redirect_subresults.jtl"
    run, messages = _ingest(path, store)

    # By hand: parents are the rows whose label has no "-<n>" suffix.
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    parents = [r for r in rows if not re.search(r"-\d+$", r["label"])]
    elapsed = [int(r["elapsed"]) for r in parents]
    failures = sum(r["success"] == "false" for r in parents)
    assert len(rows) - len(parents) == 200

    _check_numbers(run, elapsed, failures, {r["label"] for r in parents})
    assert any("200 sub-results" in m for m in messages)
    assert run.meta["subresults_left_out"] == 200
    assert run.meta["peak_users"] == max(int(r["allThreads"]) for r in parents)
    first = min(int(r["timeStamp"]) for r in parents)
    assert pd.Timestamp(run.meta["start"]) == datetime.fromtimestamp(first / 1000, UTC)
    _raw_identical(run, path)


@pytest.mark.corpus
def test_corpus_headerless_2x(corpus, store):
    path = corpus / "jmeter" / "headerless_java_sampler_2015.jtl"
    run, messages = _ingest(path, store)

    # By hand: no header, the 12 pre-3.0 default columns.
    with open(path, newline="") as handle:
        rows = [dict(zip(COLUMNS_2X, r, strict=True)) for r in csv.reader(handle)]
    elapsed = [int(r["elapsed"]) for r in rows]
    failures = sum(r["success"] == "false" for r in rows)
    assert (len(rows), failures) == (2046, 61)

    _check_numbers(run, elapsed, failures, {"dispatcher lib call"})
    assert _overall(run)["p99"] == _nearest_rank(elapsed, 0.99)
    requests = run.table("requests")
    assert requests["status"].isna().all()  # Java sampler: no response code
    assert requests["user"].nunique() == len({r["threadName"] for r in rows})
    assert run.meta["peak_users"] == max(int(r["allThreads"]) for r in rows)
    # By hand: sessions appended over 7.5 hours, the longest pause 6.8 h; 7.5 h
    # in 1 s intervals would be 27,000 of them, over the 20,000 allowed.
    stamps = sorted(int(r["timeStamp"]) for r in rows)
    pauses = sorted(b - a for a, b in zip(stamps, stamps[1:], strict=False))
    assert round(pauses[-1] / 3.6e6, 1) == 6.8
    assert sum(p >= 300_000 for p in pauses) == 4
    assert "Requests pause for 300 s or more 4 times" in " ".join(messages)
    assert any("No request started for about 6.8 h" in m for m in messages)
    assert any("intervals of 2 s instead of 1 s" in m for m in messages)
    assert set(run.table("intervals")["interval_s"]) == {2.0}
    _raw_identical(run, path)


@pytest.mark.corpus
def test_corpus_jmeter53_baseline(corpus, store):
    path = corpus / "jmeter" / "jmeter53_example_com.jtl"
    run = _ingest_quiet(path, store)

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    elapsed = [int(r["elapsed"]) for r in rows]
    _check_numbers(run, elapsed, 0, {"T01_HomePageLoad"})
    assert _overall(run)["p50"] == _nearest_rank(elapsed, 0.50)
    assert run.meta["peak_users"] == max(int(r["allThreads"]) for r in rows)
    assert run.meta["threads"] == len({r["threadName"] for r in rows})
    _raw_identical(run, path)


@pytest.mark.corpus
def test_corpus_no_url_column_with_unstarted_samples(corpus, store):
    path = corpus / "jmeter" / "no_url_column_2018.jtl"
    run, messages = _ingest(path, store)

    # By hand: rows with timeStamp 0 (samples JMeter never started) are left out.
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    timed = [r for r in rows if r["timeStamp"] != "0"]
    assert len(rows) - len(timed) == 3
    elapsed = [int(r["elapsed"]) for r in timed]
    failures = sum(r["success"] == "false" for r in timed)
    _check_numbers(run, elapsed, failures, {r["label"] for r in timed})
    assert any("3 samples with timestamp 0" in m for m in messages)
    assert any("java.lang.Error: No entries found" in m for m in messages)
    # two runs appended, 4 hours apart (SOURCES.md)
    assert any("No request started for about 4.0 h" in m for m in messages)

    # A failure with an empty failureMessage keeps the response message.
    errors = run.table("errors")
    tc3 = "[problem MARK AS UNTESTED] GET POI/detect - 2 - tc3"
    row = errors[errors["endpoint"] == tc3].iloc[0]
    assert (row["status"], row["error"], row["count"]) == (400, "Bad Request", 4)
    # success=true with a 400 status stays a success: JMeter's verdict is kept.
    requests = run.table("requests")
    hl3 = requests[requests["endpoint"] == "GET POI/detect - hl3"]
    assert hl3["ok"].all() and (hl3["status"] == 400).all()
    _raw_identical(run, path)


@pytest.mark.corpus
def test_corpus_custom_columns_quoted_header(corpus, store):
    path = corpus / "jmeter" / "samplecount_errorcount_quoted_uuid.jtl"
    run = _ingest_quiet(path, store)

    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0])[-1] == "uuid"
    _check_numbers(run, [int(r["elapsed"]) for r in rows], 0, {"/api"})
    requests = run.table("requests")
    assert requests["bytes"].tolist() == [int(rows[0]["bytes"])]
    assert requests["status"].tolist() == [200]
    _raw_identical(run, path)


@pytest.mark.corpus
def test_corpus_xml_nested_subresults(corpus, store):
    path = corpus / "jmeter" / "xml_testresults_v1_2.xml"
    assert detect(path) == "jmeter-xml"
    run, messages = _ingest(path, store)

    # By hand: the root's direct httpSample children are the requests.
    root = ET.parse(path).getroot()
    top = [e for e in root if e.tag == "httpSample"]
    nested = len(root.findall(".//httpSample")) - len(top)
    assert (len(top), nested) == (300, 400)
    elapsed = [int(e.get("t")) for e in top]
    failures = sum(e.get("s") == "false" for e in top)
    _check_numbers(run, elapsed, failures, {e.get("lb") for e in top})
    assert _overall(run)["p99"] == _nearest_rank(elapsed, 0.99)
    assert any("400 sub-results" in m for m in messages)
    assert any("No request started for about 13.8 h" in m for m in messages)
    assert any("intervals of 5 s instead of 1 s" in m for m in messages)
    assert run.meta["peak_users"] == max(int(e.get("na")) for e in top)
    _raw_identical(run, path)


@pytest.mark.corpus
def test_sniff_claims_only_jtl_files(corpus):
    for path in sorted((corpus / "jmeter").iterdir()):
        expected = "jmeter-xml" if path.suffix == ".xml" else "jmeter-csv"
        assert jmeter_reader.sniff(path, head_bytes(path)) == expected, path.name
    for tool in ("locust", "k6", "gatling"):
        for path in sorted((corpus / tool).iterdir()):
            assert jmeter_reader.sniff(path, head_bytes(path)) is None, path.name


# -- hand-written fixtures ------------------------------------------------------------


def test_quoted_fields_and_non_http_failures(store):
    path = FIXTURES / "header_quoted_fields.jtl"
    run = _ingest_quiet(path, store)
    requests = run.table("requests")

    assert len(requests) == 5
    assert set(requests["endpoint"]) == {"GET /items", "Search, by name"}
    failed = requests[~requests["ok"]].set_index("latency_ms")
    assert failed.loc[340.0, "error"] == (
        'Test failed: text expected to contain /"total": 3/, got:\n"total": 0'
    )
    assert failed.loc[80.0, "error"] == "Internal Server Error"
    assert failed.loc[80.0, "status"] == 500
    timeout = failed.loc[21003.0]
    assert pd.isna(timeout["status"])
    assert timeout["error"] == "java.net.SocketTimeoutException: Read timed out"
    assert requests["error"][requests["ok"]].isna().all()
    assert requests["method"].isna().all()
    # Thread names become users in order of first appearance.
    assert requests.sort_values("ts")["user"].tolist() == [1, 2, 1, 2, 1]
    _raw_identical(run, path)


def test_tab_delimited_with_header(store):
    path = FIXTURES / "tab_delimited.jtl"
    assert detect(path) == "jmeter-csv"
    run = _ingest_quiet(path, store)
    requests = run.table("requests")
    assert requests["endpoint"].tolist() == ["Login, then home", "Home", "Home"]
    assert requests["status"].tolist() == [200, 404, 200]
    assert requests["error"].tolist()[1] == "Not Found"


def test_semicolon_delimiter_with_formatted_local_timestamps(store):
    path = FIXTURES / "semicolon_formatted_time.jtl"
    run, messages = _ingest(path, store)
    requests = run.table("requests")
    assert requests["ts"].iloc[0] == pd.Timestamp("2023-05-04 10:00:00.250", tz="UTC")
    assert requests["endpoint"].tolist() == ["Checkout", "Checkout", "Cart; view"]
    assert [m for m in messages if "read as UTC" in m]
    assert run.meta["start"] == "2023-05-04T10:00:00.250000Z"


def test_formatted_timestamps_with_zone_need_no_warning(tmp_path, store):
    path = tmp_path / "zoned.jtl"
    path.write_text(
        "timeStamp,elapsed,label,responseCode,threadName,success\n"
        "2023-05-04T12:00:00.500+02:00,10,a,200,T 1-1,true\n"
        "2023-05-04T12:00:01.000+02:00,20,a,200,T 1-1,true\n"
    )
    run = _ingest_quiet(path, store)
    first = run.table("requests")["ts"].iloc[0]
    assert first == pd.Timestamp("2023-05-04 10:00:00.500", tz="UTC")


def test_headerless_5x_pipe_delimited(store):
    path = FIXTURES / "headerless_pipe_5x.jtl"
    assert detect(path) == "jmeter-csv"
    run = _ingest_quiet(path, store)
    requests = run.table("requests")
    assert requests["endpoint"].tolist() == ["GET /a", "GET /b", "GET /a"]
    assert requests["user"].tolist() == [1, 1, 2]
    assert run.meta["peak_users"] == 2
    users = run.table("intervals")
    assert users.loc[users["endpoint"] == OVERALL, "users"].max() == 2


def test_headerless_3x_16_columns(store):
    run = _ingest_quiet(FIXTURES / "headerless_16_columns.jtl", store)
    assert run.table("requests")["latency_ms"].tolist() == [10.0, 30.0]


def test_subresults_and_transaction_samples_left_out(store):
    path = FIXTURES / "subresults_transactions.jtl"
    run, messages = _ingest(path, store)
    requests = run.table("requests")
    # Two "Home" parents (their -0/-1 parts dropped), and "Step-2", whose thread wrote
    # no "Step" sample before it, so it is a request of its own.
    assert sorted(requests["endpoint"]) == ["Home", "Home", "Step-2"]
    assert requests.set_index("ts")["latency_ms"].tolist() == [300.0, 70.0, 40.0]
    assert any("4 sub-results" in m for m in messages)
    assert any("1 transaction controller samples" in m for m in messages)
    assert run.meta["transactions_left_out"] == 1


def test_subresults_found_across_block_boundaries(store, tmp_path, monkeypatch):
    # Tiny blocks put parents and their sub-results in different batches.
    monkeypatch.setattr(jmeter_reader, "_BLOCK_BYTES", 256)
    path = FIXTURES / "subresults_transactions.jtl"
    run, messages = _ingest(path, store)
    assert sorted(run.table("requests")["endpoint"]) == ["Home", "Home", "Step-2"]
    assert any("4 sub-results" in m for m in messages)


def test_malformed_rows_are_skipped_with_their_lines(store):
    path = FIXTURES / "malformed_rows.jtl"
    run, messages = _ingest(path, store)
    assert run.table("requests")["latency_ms"].tolist() == [100.0, 300.0]
    # Line 3: non-numeric elapsed; line 4: one field too many; line 6: truncated.
    (message,) = [m for m in messages if "malformed" in m]
    assert "3 malformed rows" in message
    assert "line 3, 4, 6" in message
    assert "malformed_rows.jtl" in message


def test_gzipped_jtl_is_read_and_kept_byte_identical(tmp_path, store):
    path = tmp_path / "results.jtl.gz"
    path.write_bytes(gzip.compress((FIXTURES / "tab_delimited.jtl").read_bytes()))
    run = _ingest_quiet(path, store)
    assert len(run.table("requests")) == 3
    _raw_identical(run, path)


def test_xml_nested_transactions_and_methods(store):
    path = FIXTURES / "nested_transactions.xml"
    run, messages = _ingest(path, store)
    requests = run.table("requests").set_index("name")

    # The transaction's parent sample is replaced by the two requests inside it; the
    # transaction sample without children is left out; Home's two redirect steps are
    # not counted.
    assert sorted(requests.index) == ["Home", "Home", "Pay", "View cart"]
    assert requests.loc["View cart", "endpoint"] == "GET View cart"
    assert requests.loc["Pay", "endpoint"] == "POST Pay"
    assert requests.loc["Pay", "error"] == "Test failed: code expected to equal /200/"
    home = requests.loc["Home"].set_index("latency_ms")
    assert home.loc[500.0, "ok"]
    assert pd.isna(home.loc[10005.0, "status"])
    assert home.loc[10005.0, "error"] == (
        "org.apache.http.conn.ConnectTimeoutException: "
        "Connect to example.org:443 failed: connect timed out"
    )
    assert any("2 sub-results" in m for m in messages)
    assert any("1 transaction controller samples" in m for m in messages)


def test_xml_read_in_small_chunks_gives_the_same_rows(store, monkeypatch):
    monkeypatch.setattr(jmeter_reader, "_XML_CHUNK_SAMPLES", 1)
    run, _ = _ingest(FIXTURES / "nested_transactions.xml", store)
    assert sorted(run.table("requests")["name"]) == ["Home", "Home", "Pay", "View cart"]


def test_xml_truncated_is_read_up_to_the_cut(store):
    path = FIXTURES / "truncated.xml"
    run, messages = _ingest(path, store)
    assert run.table("requests")["latency_ms"].tolist() == [100.0, 200.0, 300.0]
    (message,) = [m for m in messages if "closing" in m]
    assert "truncated.xml:11:" in message
    _raw_identical(run, path)


def test_empty_file_is_an_input_error(store, tmp_path):
    path = FIXTURES / "empty.jtl"
    with pytest.raises(InputError, match="empty.jtl"):
        ingest([path], store=store)
    with pytest.raises(InputError, match="empty.jtl: The file is empty"):
        jmeter_reader.read([path], RequestSink(tmp_path / "r.parquet"), None, "csv")
    assert list(store.iterdir()) == []


def test_not_a_jtl_is_an_input_error(store):
    path = FIXTURES / "not_a_jtl.csv"
    assert jmeter_reader.sniff(path, head_bytes(path)) is None
    with pytest.raises(InputError, match=r"not_a_jtl\.csv: This is not a JMeter CSV"):
        ingest([path], store=store, fmt="jmeter-csv")
    with pytest.raises(InputError, match=r"not_a_jtl\.csv"):
        ingest([path], store=store, fmt="jmeter-xml")
    assert list(store.iterdir()) == []


def test_header_only_file_is_an_input_error(tmp_path, store):
    path = tmp_path / "header_only.jtl"
    path.write_text("timeStamp,elapsed,label,responseCode,success\n")
    with pytest.raises(InputError, match="holds a sample"):
        _ingest(path, store)


def test_many_rows_stream_through_small_blocks(tmp_path, store, monkeypatch):
    monkeypatch.setattr(jmeter_reader, "_BLOCK_BYTES", 4096)
    path = tmp_path / "many.jtl"
    lines = ["timeStamp,elapsed,label,responseCode,threadName,success,allThreads"]
    for i in range(3000):
        ok = "false" if i % 10 == 0 else "true"
        lines.append(f"{1700000000000 + i},{i % 50},L{i % 3},200,T 1-{i % 7},{ok},7")
    path.write_text("\n".join(lines) + "\n")
    run = _ingest_quiet(path, store)
    overall = _overall(run)
    assert (overall["requests"], overall["failures"]) == (3000, 300)
    assert run.table("requests")["user"].nunique() == 7


def test_given_encoding_is_used_for_labels(tmp_path, store):
    path = tmp_path / "cp1252.jtl"
    rows = "".join(
        f"17000000000{i:02d},{i},Café crème,200,Groupe 1-1,true\n" for i in range(5)
    )
    header = "timeStamp,elapsed,label,responseCode,threadName,success\n"
    path.write_bytes((header + rows).encode("cp1252"))
    run = _ingest_quiet(path, store, encoding="cp1252")
    assert set(run.table("requests")["endpoint"]) == {"Café crème"}


@pytest.mark.parametrize("block_bytes", [1 << 20, 200])
def test_subresults_of_a_parent_whose_label_ends_in_a_number(
    tmp_path, store, monkeypatch, block_bytes
):
    monkeypatch.setattr(jmeter_reader, "_BLOCK_BYTES", block_bytes)
    path = tmp_path / "numbered.jtl"
    rows = [
        "timeStamp,elapsed,label,responseCode,threadName,success",
        "1000,50,Other,200,T 1-1,true",
        "2000,300,Login-1,200,T 1-1,true",
        "2000,100,Login-1-0,302,T 2-1,true",  # another thread: not a sub-result
        "2000,100,Login-1-0,302,T 1-1,true",
        "2101,150,Login-1-1,200,T 1-1,true",
        "2120,20,Login-1-1-0,200,T 1-1,true",  # nested one level deeper
        "2400,40,Login-2,200,T 1-1,true",  # starts after Login-1 ended: top-level
    ]
    path.write_text("\n".join(rows) + "\n")
    run, messages = _ingest(path, store)
    requests = run.table("requests")
    assert requests.sort_values(["ts", "user"])["endpoint"].tolist() == [
        "Other",
        "Login-1",
        "Login-1-0",
        "Login-2",
    ]
    assert any("3 sub-results" in m for m in messages)

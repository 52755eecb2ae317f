"""The DuckDB fast paths give the same run as the careful streaming readers.

Each test ingests one file twice, once through the reader's ``read_fast`` (DuckDB
parses and transforms the file in SQL) and once with ``read_fast`` switched off (the
pyarrow streaming reader), and compares every table, ``run.json`` and the warnings.
The files are generated ones with every kind of request the rules tell apart, and
the corpus's real k6 CSV and CSV JTL exports. The expected answers are the careful
readers' own, which the other ingest tests check against values worked out by hand.
Means may differ in the last bits, since DuckDB and numpy add in different orders;
every other number must be equal.

Input the fast path's rules do not cover (malformed lines, possible sub-results,
samples without a start ...) must be handed to the streaming reader, so that its
rows are reported by line rather than read differently or dropped silently.

The vectorised :func:`statistics.endpoint_table` and :func:`statistics.
interval_table` are checked against a plain per-group loop over ``np.quantile``
(the definition of each statistic), value for value.
"""

from __future__ import annotations

import gzip
import io
import shutil
import threading
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from perflab import statistics
from perflab.ingest import base, ingest
from perflab.ingest import jmeter as jmeter_reader
from perflab.ingest import k6 as k6_reader
from perflab.store import OVERALL, PERCENTILES, percentile_column

K6_HEADER = (
    "metric_name,timestamp,metric_value,check,error,error_code,expected_response,"
    "group,method,name,proto,scenario,service,status,subproto,tls_version,url,"
    "extra_tags,metadata"
)
JTL_HEADER = (
    "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,"
    "success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,"
    "IdleTime,Connect"
)
TABLES = ("requests", "endpoints", "intervals", "errors")


# -- helpers --------------------------------------------------------------------------


def _both_ways(path: Path, tmp_path: Path, monkeypatch, module) -> tuple:
    """Ingest a file through the fast path and the streaming reader."""
    runs = []
    for name in ("fast", "careful"):
        store = tmp_path / name
        store.mkdir()
        with monkeypatch.context() as patch:
            if name == "careful":
                patch.setattr(module, "read_fast", lambda *args: None)
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                run = ingest([path], store=store, run_id="run")
        # JMeter's warnings name the file in the run's raw/ folder
        run.meta["warnings"] = [
            m.replace(str(run.path), "<run>") for m in run.meta.get("warnings", [])
        ]
        messages = [str(w.message).replace(str(run.path), "<run>") for w in caught]
        runs.append((run, messages))
    return runs


def _assert_same_run(fast, careful, path: str = "duckdb") -> None:
    """Both runs hold the same tables, run.json and warnings.

    ``path`` is the way the first run must have been read: ``"streaming"`` when
    the fast path is expected to decline.
    """
    (one, one_warnings), (two, two_warnings) = fast, careful
    assert one.meta["ingest_path"] == path
    assert two.meta["ingest_path"] == "streaming"
    for name in TABLES:
        pd.testing.assert_frame_equal(
            one.table(name), two.table(name), check_exact=False, rtol=1e-12
        )
    ignore = {"ingest_path", "perflab_version"}
    assert {k: v for k, v in one.meta.items() if k not in ignore} == {
        k: v for k, v in two.meta.items() if k not in ignore
    }
    assert one_warnings == two_warnings


def _k6_request(ts, duration, tags: dict) -> list[str]:
    """The CSV rows k6 writes for one request, with the given tag overrides."""
    name = tags.get("name", "")
    row = {
        "check": "",
        "error": "",
        "error_code": "",
        "expected_response": "true",
        "group": "",
        "method": "GET",
        "name": name,
        "proto": "HTTP/1.1",
        "scenario": "default",
        "service": "",
        "status": "200",
        "subproto": "",
        "tls_version": "",
        "url": f"https://api.test{name}",
        "extra_tags": "",
        "metadata": "",
    }
    failed = tags.pop("failed", None)
    row.update(tags)
    tail = ",".join(row.values())
    if failed is None:
        failed = float(row["expected_response"] == "false")
    lines = [
        f"http_reqs,{ts},1.000000,{tail}",
        f"http_req_duration,{ts},{duration:f},{tail}",
        f"http_req_waiting,{ts},{duration * 0.8:f},{tail}",
    ]
    if failed != "none":
        lines.append(f"http_req_failed,{ts},{float(failed):f},{tail}")
    return lines


def _k6_file(path: Path, stamps: str = "micro", tagged: bool = False) -> Path:
    """A k6 CSV of 400 requests of every kind; ``tagged``: all of them have the
    expected_response tag (k6's default), which then decides over the
    http_req_failed sample (one in 17 says the opposite)."""
    rng = np.random.default_rng(3)
    start = 1_764_700_000_000_000
    lines = [K6_HEADER]
    for i in range(400):
        micro = start + i * 7_919 + int(rng.integers(0, 5_000))
        ts = {
            "seconds": micro // 1_000_000,
            "milli": micro // 1_000,
            "micro": micro,
            "nano": micro * 1_000 + i % 1_000,
            "rfc3339": pd.Timestamp(micro, unit="us", tz="UTC").isoformat(),
        }[stamps]
        duration = float(np.round(rng.lognormal(3, 0.7), 6))
        if i % 50 == 0:
            lines.append(f"vus,{ts},{i // 50 + 1}.000000" + "," * 16)
        name = ("/items", "/items/{id}", "/orders")[i % 3]
        method = "POST" if name == "/orders" else "GET"
        kind = i % 17
        tags: dict = {
            "method": method,
            "name": name,
            "metadata": f"vu={i % 9 + 1}&iter={i}",
        }
        if kind == 1:
            tags.update(status="500", expected_response="false", error_code="1500")
        elif kind == 2:
            tags.update(
                status="0",
                expected_response="false",
                error="dial tcp: i/o timeout",
                error_code="1211",
            )
        elif kind == 3:
            tags.update(status="0", expected_response="", error_code="1050", failed=1)
        elif kind == 4:  # no expected_response: http_req_failed decides
            tags.update(status="404", expected_response="", failed=0)
        elif kind == 5:  # neither: the status decides
            tags.update(status="503", expected_response="", failed="none")
        elif kind == 6:
            tags.update(group="::setup")
        elif kind == 7:
            tags.update(group="::teardown::cleanup", scenario="")
        elif kind == 8:
            tags.update(method="", name="", url="http://other.test/raw?q=1")
        if tagged and not tags.get("expected_response", "true"):
            tags.update(expected_response="True" if kind == 4 else "false")
        elif tagged and kind == 9:
            tags.update(failed=1)
        lines += _k6_request(ts, duration, tags)
        if i % 4 == 0:
            ok = "1.000000" if kind not in (1, 2) else "0.000000"
            lines.append(
                f"checks,{ts},{ok},status is 200,,,,,,,,default,,,,,,,vu={i % 9 + 1}"
            )
        lines.append(f"iterations,{ts},1.000000" + "," * 16)
    path.write_text("\n".join(lines) + "\n")
    return path


def _jtl_file(path: Path, labels=("List items", "Show item", "Place order")) -> Path:
    rng = np.random.default_rng(5)
    lines = [JTL_HEADER]
    for i in range(600):
        ts = 1_764_700_000_000 + i * 37 - int(rng.integers(0, 900))
        elapsed = int(rng.lognormal(3, 0.8)) + 1
        label = labels[i % len(labels)]
        code, message, ok, failure = "200", "OK", "true", ""
        kind = i % 13
        if kind == 1:
            code, message, ok = "500", "Internal Server Error", "false"
        elif kind == 2:
            code = "Non HTTP response code: java.net.SocketTimeoutException"
            message, ok = "Non HTTP response message: Read timed out", "false"
        elif kind == 3:
            code, ok, failure = "200", "false", "  Assertion failed: body  "
        elif kind == 4:
            code, message, ok = "404", "", "false"
        elif kind == 5:
            message = '"Number of samples in transaction : 2, number of failing : 0"'
        elif kind == 6:
            label = '"Search, with comma"'
        threads = 10 + i // 100
        lines.append(
            f"{ts},{elapsed},{label},{code},{message},Users 1-{i % 7 + 1},text,{ok},"
            f"{failure},{int(rng.integers(100, 9000))},120,{threads},{threads},"
            f"https://api.test/x,{max(elapsed - 3, 0)},0,1"
        )
    path.write_text("\n".join(lines) + "\n")
    return path


# -- the fast paths against the streaming readers -------------------------------------


@pytest.mark.parametrize("stamps", ["seconds", "milli", "micro", "nano", "rfc3339"])
def test_k6_csv_fast_path_gives_the_same_run(tmp_path, monkeypatch, stamps):
    path = _k6_file(tmp_path / "k6.csv", stamps)
    fast, careful = _both_ways(path, tmp_path, monkeypatch, k6_reader)
    # RFC 3339 timestamps (timeFormat rfc3339) are the streaming reader's
    _assert_same_run(fast, careful, "streaming" if stamps == "rfc3339" else "duckdb")
    run = fast[0]
    assert run.meta["setup_teardown_requests"] > 0
    assert set(run.meta["success_rule"]) == {
        "expected_response",
        "http_req_failed",
        "status",
    }
    assert run.table("errors")["error"].str.startswith("k6 error code").any()


def test_k6_csv_with_every_expected_response_gives_the_same_run(tmp_path, monkeypatch):
    # the fast path then leaves out pairing the samples with http_req_failed
    path = _k6_file(tmp_path / "k6.csv", tagged=True)
    fast, careful = _both_ways(path, tmp_path, monkeypatch, k6_reader)
    _assert_same_run(fast, careful)
    requests = fast[0].table("requests")
    assert not requests["ok"].all() and requests["ok"].any()
    assert fast[0].meta["success_rule"] == {"expected_response": len(requests)}


def test_jtl_fast_path_gives_the_same_run(tmp_path, monkeypatch):
    path = _jtl_file(tmp_path / "results.jtl")
    fast, careful = _both_ways(path, tmp_path, monkeypatch, jmeter_reader)
    _assert_same_run(fast, careful)
    run = fast[0]
    assert run.meta["transactions_left_out"] > 0
    errors = set(run.table("errors")["error"])
    assert "java.net.SocketTimeoutException: Read timed out" in errors
    assert "Assertion failed: body" in errors


def test_k6_error_with_a_line_break_gives_the_same_run(tmp_path, monkeypatch):
    # k6 (Go's encoding/csv) quotes a field holding a comma, quote or line break
    lines = _k6_file(tmp_path / "source.csv").read_text().splitlines()
    error = '"read tcp: connection reset, ""peer""\nclosed"'
    tail = (
        f",,{error},1000,false,,GET,/reset,HTTP/1.1,default,,0,,,https://api.test/r,,"
    )
    lines[30:30] = [
        f"http_req_duration,1764700000000000,12.5{tail}",
        f"http_req_failed,1764700000000000,1.000000{tail}",
    ]
    path = tmp_path / "k6.csv"
    path.write_text("\n".join(lines) + "\n")
    fast, careful = _both_ways(path, tmp_path, monkeypatch, k6_reader)
    _assert_same_run(fast, careful)
    errors = set(fast[0].table("errors")["error"])
    assert 'read tcp: connection reset, "peer"\nclosed' in errors


def test_jtl_with_possible_subresults_is_read_carefully(tmp_path):
    path = _jtl_file(tmp_path / "results.jtl", labels=("Home", "Home-0", "Home-1"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = ingest([path], store=tmp_path / "runs")
    assert run.meta["ingest_path"] == "streaming"
    assert run.meta["subresults_left_out"] > 0


def test_malformed_k6_csv_is_read_carefully_with_its_line(tmp_path):
    path = _k6_file(tmp_path / "k6.csv")
    lines = path.read_text().splitlines()
    lines[7] = "http_req_duration,not-a-time"
    path.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = ingest([path], store=tmp_path / "runs")
    assert run.meta["ingest_path"] == "streaming"
    assert any("line 8" in str(w.message) for w in caught)


# -- the raw copy, made while the file is read --------------------------------------


@pytest.mark.parametrize("kind", ["k6", "jmeter"])
def test_the_fast_path_reads_the_file_given_while_it_is_copied(
    tmp_path, monkeypatch, kind
):
    # The copy starts only once the fast path has read the file: had it read the
    # copy in raw/, it would have found no file and declined.
    module = k6_reader if kind == "k6" else jmeter_reader
    make = _k6_file if kind == "k6" else _jtl_file
    path = make(tmp_path / ("k6.csv" if kind == "k6" else "results.jtl"))
    before = ingest([path], store=tmp_path / "before", run_id="run")
    read = threading.Event()
    real_fast, real_copy = module.read_fast, shutil.copy2

    def fast(*args):
        try:
            return real_fast(*args)
        finally:
            read.set()

    def copy(source, target):
        assert read.wait(60)
        return real_copy(source, target)

    monkeypatch.setattr(module, "read_fast", fast)
    monkeypatch.setattr(shutil, "copy2", copy)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = ingest([path], store=tmp_path / "after", run_id="run")
    assert run.meta["ingest_path"] == "duckdb"
    assert (run.raw / path.name).read_bytes() == path.read_bytes()
    for name in TABLES:
        pd.testing.assert_frame_equal(run.table(name), before.table(name))
    # the messages name the copy in raw/, as when the copy is read
    assert [m.replace(str(run.path), "<run>") for m in run.meta["warnings"]] == [
        m.replace(str(before.path), "<run>") for m in before.meta["warnings"]
    ]


def test_the_streaming_reader_waits_for_the_copy(tmp_path, monkeypatch):
    path = _k6_file(tmp_path / "k6.csv")
    lines = path.read_text().splitlines()
    lines[7] = "http_req_duration,not-a-time"
    path.write_text("\n".join(lines) + "\n")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        before = ingest([path], store=tmp_path / "before")
    real_copy = shutil.copy2

    def slow_copy(source, target):
        time.sleep(0.3)
        return real_copy(source, target)

    monkeypatch.setattr(shutil, "copy2", slow_copy)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = ingest([path], store=tmp_path / "after")
    assert run.meta["ingest_path"] == "streaming"
    assert any(
        "k6.csv: 1 malformed line(s) skipped (line 8)" in str(w.message) for w in caught
    )
    for name in TABLES:
        pd.testing.assert_frame_equal(run.table(name), before.table(name))
    assert (run.raw / path.name).read_bytes() == path.read_bytes()


def test_files_of_the_same_name_are_all_copied(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    _k6_file(one / "k6.csv")
    _k6_file(two / "k6.csv", "milli")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = ingest([one / "k6.csv", two / "k6.csv"], store=tmp_path / "runs")
    assert sorted(run.meta["raw_files"]) == ["k6-1.csv", "k6.csv"]
    assert (run.raw / "k6.csv").read_bytes() == (one / "k6.csv").read_bytes()
    assert (run.raw / "k6-1.csv").read_bytes() == (two / "k6.csv").read_bytes()


def test_a_failed_copy_leaves_no_run(tmp_path, monkeypatch):
    path = _jtl_file(tmp_path / "results.jtl")

    def broken_copy(source, target):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(shutil, "copy2", broken_copy)
    with pytest.raises(OSError, match="No space left"):
        ingest([path], store=tmp_path / "runs")
    assert not any((tmp_path / "runs").iterdir())


@pytest.mark.parametrize("kind", ["k6", "jmeter"])
def test_sql_tables_match_the_statistics_functions(tmp_path, kind):
    if kind == "k6":
        path = _k6_file(tmp_path / "k6.csv")
    else:
        path = _jtl_file(tmp_path / "results.jtl")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = ingest([path], store=tmp_path / "runs")
    assert run.meta["ingest_path"] == "duckdb"
    requests = run.table("requests")
    assert requests["ts"].is_monotonic_increasing
    expected = {
        "endpoints": statistics.endpoint_table(requests),
        "intervals": statistics.interval_table(requests),
        "errors": statistics.error_table(requests),
    }
    for name, frame in expected.items():
        stored = run.table(name)  # as DuckDB aggregated it
        run.write_table(name, frame, "exact")  # coerced to the same schema
        computed = run.table(name)
        if name == "intervals":
            # users come from the tool's own series, not from the requests
            stored, computed = (
                stored.drop(columns="users"),
                computed.drop(columns="users"),
            )
        pd.testing.assert_frame_equal(stored, computed, check_exact=False, rtol=1e-12)


# -- the corpus: real exports ---------------------------------------------------------


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("name", "path"),
    [
        ("k6/csv_2021_groups_checks.csv", "duckdb"),
        ("jmeter/jmeter53_example_com.jtl", "duckdb"),
        ("jmeter/headerless_java_sampler_2015.jtl", "duckdb"),
        ("jmeter/samplecount_errorcount_quoted_uuid.jtl", "duckdb"),
        # sub-results labelled "HTTP Request-0"
        ("jmeter/csv_redirect_subresults.jtl", "streaming"),
        # samples JMeter could not start, with timeStamp 0
        ("jmeter/no_url_column_2018.jtl", "streaming"),
    ],
)
def test_corpus_exports_give_the_same_run_both_ways(
    corpus, tmp_path, monkeypatch, name, path
):
    source = corpus / name
    module = k6_reader if name.startswith("k6/") else jmeter_reader
    fast, careful = _both_ways(source, tmp_path, monkeypatch, module)
    _assert_same_run(fast, careful, path)
    assert len(fast[0].table("requests")) > 0


FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize(
    "name",
    [
        "k6/metadata_vu.csv",
        "jmeter/header_quoted_fields.jtl",
        "jmeter/headerless_16_columns.jtl",
        "jmeter/headerless_pipe_5x.jtl",
        "jmeter/malformed_rows.jtl",
        "jmeter/semicolon_formatted_time.jtl",
        "jmeter/subresults_transactions.jtl",
        "jmeter/tab_delimited.jtl",
    ],
)
def test_fixtures_give_the_same_run_both_ways(tmp_path, monkeypatch, name):
    module = k6_reader if name.startswith("k6/") else jmeter_reader
    fast, careful = _both_ways(FIXTURES / name, tmp_path, monkeypatch, module)
    _assert_same_run(fast, careful, fast[0].meta["ingest_path"])


# -- input the fast paths leave to the streaming readers ------------------------------


def _k6_lines(tmp_path: Path) -> list[str]:
    return _k6_file(tmp_path / "source.csv").read_text().splitlines()


def _jtl_lines(tmp_path: Path) -> list[str]:
    return _jtl_file(tmp_path / "source.jtl").read_text().splitlines()


def _first(lines: list[str], start: str) -> int:
    return next(i for i, line in enumerate(lines) if line.startswith(start))


def _k6_empty_value(lines):
    i = _first(lines, "http_req_duration,")
    fields = lines[i].split(",")
    fields[2] = ""
    lines[i] = ",".join(fields)
    return lines


def _k6_empty_time(lines):
    i = _first(lines, "http_req_failed,")
    fields = lines[i].split(",")
    fields[1] = ""
    lines[i] = ",".join(fields)
    return lines


def _k6_negative_time(lines):
    i = _first(lines, "vus,")
    fields = lines[i].split(",")
    fields[1] = "-" + fields[1]
    lines[i] = ",".join(fields)
    return lines


def _k6_nan_value(lines):
    i = _first(lines, "checks,")
    fields = lines[i].split(",")
    fields[2] = "nan"
    lines[i] = ",".join(fields)
    return lines


def _k6_short_row(lines):
    lines.insert(40, "http_req_duration,1764700000000000,12.5,,,")
    return lines


@pytest.mark.parametrize(
    "damage",
    [_k6_empty_value, _k6_empty_time, _k6_negative_time, _k6_nan_value, _k6_short_row],
)
def test_damaged_k6_csv_is_left_to_the_streaming_reader(tmp_path, monkeypatch, damage):
    path = tmp_path / "k6.csv"
    path.write_text("\n".join(damage(_k6_lines(tmp_path))) + "\n")
    fast, careful = _both_ways(path, tmp_path, monkeypatch, k6_reader)
    _assert_same_run(fast, careful, "streaming")
    assert any("malformed line" in m for m in fast[1])


def test_k6_csv_without_a_last_newline_is_read_carefully(tmp_path, monkeypatch):
    path = tmp_path / "k6.csv"
    path.write_text("\n".join(_k6_lines(tmp_path)))
    fast, careful = _both_ways(path, tmp_path, monkeypatch, k6_reader)
    _assert_same_run(fast, careful, "streaming")
    assert any("the last line is cut off" in m for m in fast[1])


def test_gzipped_k6_csv_is_read_carefully(tmp_path, monkeypatch):
    path = tmp_path / "k6.csv.gz"
    path.write_bytes(gzip.compress(_k6_file(tmp_path / "k6.csv").read_bytes()))
    fast, careful = _both_ways(path, tmp_path, monkeypatch, k6_reader)
    _assert_same_run(fast, careful, "streaming")


def _jtl_field(lines, column: str, value: str, row: int = 5):
    at = JTL_HEADER.split(",").index(column)
    fields = lines[row].split(",")
    fields[at] = value
    lines[row] = ",".join(fields)
    return lines


@pytest.mark.parametrize(
    ("damage", "warned"),
    [
        (lambda lines: _jtl_field(lines, "success", ""), "malformed rows"),
        (lambda lines: _jtl_field(lines, "success", "TRUE"), None),
        (lambda lines: _jtl_field(lines, "elapsed", ""), "malformed rows"),
        (lambda lines: _jtl_field(lines, "timeStamp", "0"), "timestamp 0"),
        (lambda lines: _jtl_field(lines, "responseCode", " 200"), None),
        (lambda lines: _jtl_field(lines, "responseCode", "+1"), None),
        (lambda lines: lines[:300] + [JTL_HEADER] + lines[300:], "repeated header"),
        (lambda lines: lines[:9] + ["1764700000000,12,short row"] + lines[9:], None),
    ],
    ids=[
        "empty success",
        "upper-case success",
        "empty elapsed",
        "timestamp 0",
        "blank before code",
        "signed code",
        "repeated header",
        "short row",
    ],
)
def test_jtl_the_fast_path_does_not_cover_is_read_carefully(
    tmp_path, monkeypatch, damage, warned
):
    path = tmp_path / "results.jtl"
    path.write_text("\n".join(damage(_jtl_lines(tmp_path))) + "\n")
    fast, careful = _both_ways(path, tmp_path, monkeypatch, jmeter_reader)
    _assert_same_run(fast, careful, "streaming")
    if warned is not None:
        assert any(warned in m for m in fast[1])


# -- progress -------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("way", ["fast", "careful"])
@pytest.mark.parametrize("kind", ["k6", "jmeter"])
def test_a_large_file_shows_progress_on_a_terminal(tmp_path, monkeypatch, kind, way):
    if kind == "k6":
        path, module = _k6_file(tmp_path / "k6.csv"), k6_reader
    else:
        path, module = _jtl_file(tmp_path / "results.jtl"), jmeter_reader
    if way == "careful":
        monkeypatch.setattr(module, "read_fast", lambda *args: None)
    monkeypatch.setattr(base, "PROGRESS_BYTES", 1)
    terminal = _Terminal()
    monkeypatch.setattr("sys.stderr", terminal)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        run = ingest([path], store=tmp_path / "runs")
    shown = terminal.getvalue()
    assert run.meta["ingest_path"] == ("duckdb" if way == "fast" else "streaming")
    assert f"{path.name}:" in shown  # the reading bar, labelled with the file
    assert f"{path.name}: writing tables" in shown


def test_no_progress_bar_when_stderr_is_not_a_terminal(tmp_path, monkeypatch):
    monkeypatch.setattr(base, "PROGRESS_BYTES", 1)
    stream = io.StringIO()
    monkeypatch.setattr("sys.stderr", stream)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ingest([_jtl_file(tmp_path / "results.jtl")], store=tmp_path / "runs")
    assert stream.getvalue() == ""


# -- the vectorised statistics against the definition ---------------------------------


def _requests(seed: int, n: int = 3000) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    start = pd.Timestamp("2026-01-01T00:00:00.250", tz="UTC")
    latency = np.round(rng.lognormal(3, 1, n), 3)
    latency[rng.random(n) < 0.03] = np.nan
    endpoint = rng.choice(["GET /a", "GET /b", "POST /c", "Overall x"], n)
    frame = pd.DataFrame(
        {
            "ts": start + pd.to_timedelta(np.sort(rng.integers(0, 40_000, n)), "ms"),
            "endpoint": endpoint,
            "method": [e.split()[0] for e in endpoint],
            "name": [e.split()[1] for e in endpoint],
            "latency_ms": latency,
            "bytes": pd.array(rng.integers(0, 5000, n), dtype="Int64"),
            "ok": rng.random(n) > 0.1,
        }
    )
    frame.loc[5:8, "ts"] = start + pd.Timedelta(seconds=90)  # a gap of empty seconds
    return frame.sort_values("ts", kind="stable").reset_index(drop=True)


def _by_definition(values: np.ndarray, method: str) -> list[float]:
    values = values[~np.isnan(values)]
    if values.size == 0:
        return [float("nan")] * len(PERCENTILES)
    numpy_method = statistics.METHODS[method]
    return list(np.quantile(values, np.array(PERCENTILES) / 100, method=numpy_method))


@pytest.mark.parametrize("method", ["nearest-rank", "linear"])
def test_vectorised_endpoint_table_matches_the_definition(method):
    requests = _requests(1)
    table = statistics.endpoint_table(requests, method=method).set_index("endpoint")
    groups = list(requests.groupby("endpoint")) + [(OVERALL, requests)]
    for label, group in groups:
        row = table.loc[label]
        latency = group["latency_ms"].to_numpy(dtype=float)
        assert row["requests"] == len(group)
        assert row["failures"] == int((~group["ok"]).sum())
        assert row["mean_ms"] == latency[~np.isnan(latency)].mean()
        assert row["max_ms"] == np.nanmax(latency)
        assert row["min_ms"] == np.nanmin(latency)
        got = [row[percentile_column(p)] for p in PERCENTILES]
        assert got == _by_definition(latency, method)
    assert list(table.index) == ["GET /a", "GET /b", "Overall x", "POST /c", OVERALL]


@pytest.mark.parametrize("method", ["nearest-rank", "linear"])
def test_vectorised_interval_table_matches_the_definition(method):
    requests = _requests(2)
    users = pd.DataFrame(
        {"ts": requests["ts"].iloc[::400].to_numpy(), "users": np.arange(8.0)}
    )
    table = statistics.interval_table(requests, users=users, method=method)
    bucket = requests["ts"].dt.floor("s")
    expected = []
    for (start, label), group in requests.groupby([bucket, "endpoint"]):
        expected.append((start, label, group))
    for start in pd.date_range(bucket.min(), bucket.max(), freq="s"):
        expected.append((start, OVERALL, requests[bucket == start]))
    assert len(table) == len(expected)
    indexed = table.set_index(["endpoint", "ts"])
    for start, label, group in expected:
        row = indexed.loc[(label, start)]
        latency = group["latency_ms"].to_numpy(dtype=float)
        assert row["requests"] == len(group)
        assert row["failures"] == int((~group["ok"]).sum())
        got = [row[percentile_column(p)] for p in PERCENTILES]
        np.testing.assert_array_equal(got, _by_definition(latency, method))
        if np.isfinite(latency).any():
            assert row["mean_ms"] == latency[~np.isnan(latency)].mean()
        known = users[users["ts"] <= start]["users"]
        assert row["users"] == (known.iloc[-1] if len(known) else None) or (
            np.isnan(row["users"]) and known.empty
        )
    empty = indexed.loc[OVERALL]
    assert (empty["requests"] == 0).any()

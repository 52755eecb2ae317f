"""Oddities the readers must report rather than pass over in silence.

Each test writes a small export by hand into ``tmp_path`` (or reads one corpus file),
ingests it as the command line does and checks the exact warning text and the
counts that result. Expected numbers are worked out by hand in the comments.

* JMeter XML samples without a usable ``ts``, ``t`` or ``s`` are skipped with their
  lines named.
* JMeter rows with a ``SampleCount`` above 1 stand for several samples; they stay
  one request each, and a warning says so.
* Locust and Gatling files that hold no request at all give a run with a warning
  that says so, while a header-only failures file beside data is normal.
* k6 CSV timestamps of whole seconds: when all requests end within one second,
  the run's span is widened to that second and the throughput is flagged.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import pandas as pd
import pytest

from perflab.errors import DataWarning, PerflabWarning, PrecisionWarning
from perflab.ingest import ingest
from perflab.ingest import jmeter as jmeter_reader
from perflab.ingest import k6 as k6_reader
from perflab.store import OVERALL

# -- helpers --------------------------------------------------------------------------


def _ingest(paths, store: Path, **kwargs):
    """Ingest; returns the run and the perflab warnings issued, as (category, text)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = ingest([Path(p) for p in paths], store=store, **kwargs)
    issued = [
        (w.category, str(w.message).replace(f"{run.raw}/", ""))
        for w in caught
        if issubclass(w.category, PerflabWarning)
    ]
    return run, issued


def _texts(issued, category=PerflabWarning) -> list[str]:
    return [text for kind, text in issued if issubclass(kind, category)]


def _overall(run) -> pd.Series:
    return run.table("endpoints").set_index("endpoint").loc[OVERALL]


def _both_ways(path: Path, tmp_path: Path, monkeypatch, module) -> list[tuple]:
    """The run and warnings through the DuckDB fast path and the streaming reader."""
    results = []
    for name in ("fast", "streaming"):
        with monkeypatch.context() as patch:
            if name == "streaming":
                patch.setattr(module, "read_fast", lambda *args: None)
            results.append(_ingest([path], tmp_path / name))
    assert [run.meta["ingest_path"] for run, _ in results] == ["duckdb", "streaming"]
    return results


# -- JMeter XML: samples without ts, t or s -------------------------------------------

XML_HEAD = '<?xml version="1.0" encoding="UTF-8"?>\n<testResults version="1.2">\n'


def _sample(ts="1700000000000", t="100", s="true", label="/a", extra="") -> str:
    attributes = {"t": t, "ts": ts, "s": s}
    written = " ".join(f'{k}="{v}"' for k, v in attributes.items() if v is not None)
    return (
        f'<httpSample {written} lb="{label}" rc="200" rm="OK" tn="TG 1-1" by="10" '
        f'na="1"{extra}/>\n'
    )


def test_xml_samples_without_ts_t_or_s_are_skipped_with_their_lines(tmp_path):
    path = tmp_path / "bad.xml"
    path.write_text(
        XML_HEAD  # lines 1-2
        + _sample(label="/ok")  # line 3: read
        + _sample(ts=None)  # line 4: no ts
        + _sample(t="fast")  # line 5: non-numeric t
        # line 6: a parent whose redirect step has no t; sub-results are not read,
        # so only its own attributes count and it is read
        + '<httpSample t="50" ts="1700000000500" s="true" lb="/r" rc="200" '
        'tn="TG 1-1">\n'
        + '  <httpSample ts="1700000000500" s="true" lb="/r-0"/>\n'
        + "</httpSample>\n"
        # line 9: no s, written over two lines; the element starts at line 9
        + '<httpSample t="100" ts="1700000001000"\n   lb="/b" rc="200" tn="TG 1-1"/>\n'
        + _sample(ts="1700000002000", label="/ok")  # line 11: read
        + "</testResults>\n"
    )
    run, issued = _ingest([path], tmp_path / "runs")

    (skipped,) = [m for m in _texts(issued, DataWarning) if "were skipped" in m]
    assert skipped.startswith(
        "bad.xml: 3 samples with a missing or non-numeric ts, t or s attribute were "
        "skipped, at line 4, 5, 9; they are not in the request counts."
    )
    assert any("1 sub-results" in m for m in _texts(issued, DataWarning))
    requests = run.table("requests")
    assert sorted(requests["name"]) == ["/ok", "/ok", "/r"]
    assert _overall(run)["requests"] == 3
    assert any("at line 4, 5, 9" in m for m in run.meta["warnings"])


def test_xml_skipped_samples_list_the_first_ten_lines(tmp_path):
    path = tmp_path / "many.xml"
    bad = [_sample(ts="x") for _ in range(12)]  # lines 3-14
    path.write_text(XML_HEAD + "".join(bad) + _sample() + "</testResults>\n")
    run, issued = _ingest([path], tmp_path / "runs")

    (skipped,) = [m for m in _texts(issued) if "were skipped" in m]
    assert (
        "12 samples with a missing or non-numeric ts, t or s attribute were skipped, "
        "at line 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 and 2 more;" in skipped
    )
    assert len(run.table("requests")) == 1


def test_xml_skipped_lines_inside_a_transaction_and_before_a_cut(tmp_path):
    path = tmp_path / "cut.xml"
    path.write_text(
        XML_HEAD
        # line 3: a transaction controller's parent sample: its children are read
        + '<sample t="300" ts="1700000000000" s="true" lb="Buy" '
        'rm="Number of samples in transaction : 2, number of failing samples : 0" '
        'tn="TG 1-1">\n'
        + "  "
        + _sample(label="/cart")  # line 4
        + "  "
        + _sample(s="maybe", label="/pay")  # line 5: s is neither true nor false
        + "</sample>\n"
        + _sample(t="")  # line 7
        + '<httpSample t="10" ts="17'  # line 8: cut off
    )
    run, issued = _ingest([path], tmp_path / "runs")

    texts = _texts(issued, DataWarning)
    assert any(m.startswith("cut.xml:8: the XML ends or breaks") for m in texts)
    assert any(
        "cut.xml: 2 samples with a missing or non-numeric ts, t or s attribute were "
        "skipped, at line 5, 7;" in m
        for m in texts
    )
    assert run.table("requests")["name"].tolist() == ["/cart"]


# -- JMeter SampleCount and ErrorCount ---------------------------------------------

JTL_HEAD = (
    "timeStamp,elapsed,label,responseCode,responseMessage,threadName,success,"
    "failureMessage,bytes,allThreads,SampleCount,ErrorCount\n"
)


def test_csv_rows_standing_for_several_samples_are_one_request_each(
    tmp_path, monkeypatch
):
    path = tmp_path / "statistical.jtl"
    path.write_text(
        JTL_HEAD  # line 1
        + "1700000000000,120,/a,200,OK,TG 1-1,true,,100,1,1,0\n"  # line 2: one sample
        + "1700000000500,300,/a,200,OK,TG 1-1,true,,500,1,5,0\n"  # line 3: 5 samples
        + "1700000001000,250,/b,500,Error,TG 1-2,false,boom,80,2,4,3\n"  # 4: 4, 3 bad
        + "1700000002000,90,/b,200,OK,TG 1-2,true,,80,2,1,0\n"  # line 5
    )
    expected = (
        "statistical.jtl: 2 rows stand for 9 samples by JMeter's SampleCount (the "
        "first at line 3) and were counted as one request each (ErrorCount gives 3 "
        "failures among them), so request counts and error rates are for rows, not "
        "samples."
    )
    for run, issued in _both_ways(path, tmp_path, monkeypatch, jmeter_reader):
        (message,) = _texts(issued)
        assert message.startswith(expected)
        assert issubclass(issued[0][0], DataWarning)
        assert any(m.endswith(message) for m in run.meta["warnings"])
        overall = _overall(run)
        # 4 rows are 4 requests (not 1 + 5 + 4 + 1 = 11 samples); 1 failed row
        assert (overall["requests"], overall["failures"]) == (4, 1)
        assert overall["error_rate"] == pytest.approx(1 / 4)
        assert len(run.table("requests")) == 4
        assert run.meta["rows_with_sample_count"] == 2
        assert run.meta["samples_in_those_rows"] == 9


def test_one_aggregated_row_without_error_count(tmp_path):
    path = tmp_path / "no_errors.jtl"
    path.write_text(
        "timeStamp,elapsed,label,responseCode,threadName,success,SampleCount\n"
        "1700000000000,40,/a,200,TG 1-1,true,1\n"
        "1700000000100,70,/a,200,TG 1-1,true,7\n"  # line 3
        "1700000000200,20,/a,200,TG 1-1,true,null\n"  # no count: one sample
    )
    run, issued = _ingest([path], tmp_path / "runs")

    (message,) = _texts(issued)
    assert message.startswith(
        "no_errors.jtl: 1 row stands for 7 samples by JMeter's SampleCount (at line "
        "3) and was counted as one request (no ErrorCount tells how many of their "
        "samples failed), so request counts and error rates are for rows, not "
        "samples."
    )
    assert _overall(run)["requests"] == 3


def test_xml_sample_count_attribute(tmp_path):
    path = tmp_path / "sc.xml"
    path.write_text(
        XML_HEAD
        + _sample(extra=' sc="1" ec="0"')  # line 3
        + _sample(ts="1700000000300", s="false", extra=' sc="6" ec="2"')  # line 4
        + "</testResults>\n"
    )
    run, issued = _ingest([path], tmp_path / "runs")

    (message,) = _texts(issued)
    assert message.startswith(
        "sc.xml: 1 row stands for 6 samples by JMeter's SampleCount (at line 4) and "
        "was counted as one request (ErrorCount gives 2 failures among them)"
    )
    overall = _overall(run)
    assert (overall["requests"], overall["failures"]) == (2, 1)


def test_sample_count_of_one_says_nothing(corpus, tmp_path):
    # The corpus file has SampleCount and ErrorCount columns with 1 and 0.
    path = corpus / "jmeter" / "samplecount_errorcount_quoted_uuid.jtl"
    run, issued = _ingest([path], tmp_path / "runs")
    assert issued == []
    assert "rows_with_sample_count" not in run.meta


# -- Locust and Gatling files without requests --------------------------------------

LOCUST_STATS_HEAD = (
    "Type,Name,Request Count,Failure Count,Median Response Time,Average Response "
    "Time,Min Response Time,Max Response Time,Average Content Size,Requests/s,"
    "Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
)
LOCUST_FAILURES_HEAD = "Method,Name,Error,Occurrences\n"
LOCUST_EXCEPTIONS_HEAD = "Count,Message,Traceback,Nodes\n"


def test_locust_header_only_stats_file_warns_it_holds_no_requests(tmp_path):
    path = tmp_path / "run_stats.csv"
    path.write_text(LOCUST_STATS_HEAD)
    run, issued = _ingest([path], tmp_path / "runs")

    assert issued == [
        (
            DataWarning,
            "run_stats.csv: the file holds no requests (a header only, no data "
            "rows), and no other file given holds any: the run has no request data "
            "to analyse. Locust writes a row as soon as the run starts, so the file "
            "was probably cut short or the run stopped at once.",
        )
    ]
    assert len(run.meta["warnings"]) == 1
    assert run.table("endpoints").empty


def test_locust_header_only_failures_and_exceptions_each_named(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "run_failures.csv").write_text(LOCUST_FAILURES_HEAD)
    (folder / "run_exceptions.csv").write_text(LOCUST_EXCEPTIONS_HEAD)
    run, issued = _ingest([folder], tmp_path / "runs")

    texts = _texts(issued, DataWarning)
    assert len(texts) == 2
    for name in ("run_failures.csv", "run_exceptions.csv"):
        (text,) = [t for t in texts if t.startswith(name)]
        assert f"{name}: the file holds no requests (a header only" in text
        assert "Ingest the run's _stats.csv or _stats_history.csv with it." in text
    assert not run.has("endpoints") and not run.has("intervals")
    assert run.table("errors").empty
    assert len(run.meta["warnings"]) == 2


def test_locust_exceptions_alone_hold_no_requests(tmp_path):
    path = tmp_path / "run_exceptions.csv"
    path.write_text(
        LOCUST_EXCEPTIONS_HEAD + '3,ValueError: bad,"Traceback ...",local\n'
    )
    run, issued = _ingest([path], tmp_path / "runs")

    (text,) = _texts(issued, DataWarning)
    assert text.startswith(
        "run_exceptions.csv: the file lists 1 exceptions raised in user code but no "
        "requests, and no other file given holds any: the run has no request data"
    )
    assert run.meta["exceptions"][0]["count"] == 3


def test_locust_header_only_failures_beside_data_is_normal(tmp_path):
    folder = tmp_path / "export"
    folder.mkdir()
    (folder / "run_stats.csv").write_text(
        LOCUST_STATS_HEAD
        + "GET,/a,10,0,20,21.5,10,40,100,2.0,0.0,20,21,22,23,30,35,40,40,40,40,40\n"
        + ",Aggregated,10,0,20,21.5,10,40,100,2.0,0.0,20,21,22,23,30,35,40,40,40,40,"
        "40\n"
    )
    (folder / "run_failures.csv").write_text(LOCUST_FAILURES_HEAD)
    run, issued = _ingest([folder], tmp_path / "runs")

    assert issued == []
    assert _overall(run)["requests"] == 10
    assert run.table("errors").empty


def test_locust_stats_with_zero_requests_warns(tmp_path):
    path = tmp_path / "empty_stats.csv"
    path.write_text(
        LOCUST_STATS_HEAD + ",Aggregated,0,0,0,0.0,0,0,0,0.0,0.0" + ",N/A" * 11 + "\n"
    )
    run, issued = _ingest([path], tmp_path / "runs")

    (text,) = _texts(issued, DataWarning)
    assert text.startswith(
        "empty_stats.csv: the run holds 0 requests: Locust counted no request in "
        "its one row, so there are no latencies, error rates or throughput to "
        "analyse."
    )
    overall = _overall(run)
    assert overall["requests"] == 0
    assert pd.isna(overall["error_rate"]) and pd.isna(overall["p50"])


def test_corpus_locust_zero_requests_stats_warns(corpus, tmp_path):
    path = corpus / "locust" / "zero_requests_stats.csv"
    run, issued = _ingest([path], tmp_path / "runs")
    (text,) = _texts(issued, DataWarning)
    assert text.startswith("zero_requests_stats.csv: the run holds 0 requests")
    assert run.meta["warnings"] == [f"{run.raw}/{text}"]


def test_locust_json_with_zero_requests_warns(tmp_path):
    path = tmp_path / "locust.json"
    entry = {
        "name": "/a",
        "method": "GET",
        "num_requests": 0,
        "num_failures": 0,
        "response_times": {},
        "start_time": 1700000000.0,
        "last_request_timestamp": None,
    }
    path.write_text(json.dumps([entry]))
    run, issued = _ingest([path], tmp_path / "runs")

    (text,) = _texts(issued, DataWarning)
    assert text.startswith(
        "locust.json: the run holds 0 requests: none of its one entry counts a request"
    )
    assert _overall(run)["requests"] == 0


def test_gatling_log_with_only_its_run_record(tmp_path):
    path = tmp_path / "simulation.log"
    path.write_text("RUN\tsim.Basic\tbasic\t1700000000000\tsmoke\t3.9.5\n")
    run, issued = _ingest([path], tmp_path / "runs")

    assert issued == [
        (
            DataWarning,
            "simulation.log: the log holds no requests: no REQUEST record could be "
            "read, only 1 RUN record; Gatling logs a request when it ends, so the "
            "simulation probably stopped before its first request ended. The run "
            "has no request data from this file.",
        )
    ]
    assert run.meta["tables"] == {}
    assert len(run.meta["warnings"]) == 1
    assert run.meta["description"] == "smoke"


def test_gatling_log_with_users_but_no_request(tmp_path):
    path = tmp_path / "simulation.log"
    path.write_text(
        "RUN\tsim.Basic\tbasic\t1700000000000\t \t3.9.5\n"
        "USER\tscn\tSTART\t1700000000100\n"
        "USER\tscn\tSTART\t1700000000200\n"
    )
    run, issued = _ingest([path], tmp_path / "runs")

    (text,) = _texts(issued, DataWarning)
    assert "only 1 RUN, 2 USER records;" in text
    assert run.meta["peak_users"] == 2
    assert not run.has("requests")


# -- k6 whole-second timestamps -------------------------------------------------------

K6_HEAD = (
    "metric_name,timestamp,metric_value,check,error,error_code,expected_response,"
    "group,method,name,proto,scenario,service,status,subproto,tls_version,url,"
    "extra_tags\n"
)


def _k6_request(stamp: str, duration: float, name: str) -> str:
    tail = f",,,,true,,GET,{name},HTTP/1.1,default,,200,,,http://h.test{name},"
    return (
        f"http_reqs,{stamp},1.000000{tail}\n"
        f"http_req_duration,{stamp},{duration:f}{tail}\n"
        f"http_req_failed,{stamp},0.000000{tail}\n"
    )


def test_k6_requests_within_one_whole_second_widen_the_run(tmp_path, monkeypatch):
    path = tmp_path / "seconds.csv"
    path.write_text(
        K6_HEAD
        + _k6_request("1700000000", 4.0, "/a")
        + _k6_request("1700000000", 2.0, "/b")
        + _k6_request("1700000000", 3.0, "/a")
    )
    # Ends all stamped 22:13:20; the first start is 4 ms before, so the requests
    # span 0.004 s (750 requests/s). Widened to the end of that second: 1.004 s.
    for run, issued in _both_ways(path, tmp_path, monkeypatch, k6_reader):
        (text,) = _texts(issued, PrecisionWarning)
        assert text.startswith("seconds.csv: k6 wrote whole-second timestamps")
        assert (
            "All 3 request(s) end within one second (2023-11-14 22:13:20 UTC), so "
            "their own times span only 0.004 s, less than the timestamps' 1 s "
            "resolution: the run's end was widened to the end of that second, and "
            "its duration in run.json is 1.004 s instead of 0.004 s. Throughput "
            "over the requests' own span (750 requests/s) is not meaningful; over "
            "the widened span it is 2.99 requests/s" in text
        )
        assert run.meta["duration_s"] == 1.004
        assert run.meta["start"] == "2023-11-14T22:13:19.996000Z"
        assert run.meta["end"] == "2023-11-14T22:13:21Z"
        assert run.meta["timestamp_resolution_s"] == 1.0
        assert run.meta["requests_span_s"] == 0.004
        assert _overall(run)["requests"] == 3


def test_k6_whole_seconds_over_several_seconds_are_not_widened(tmp_path):
    path = tmp_path / "longer.csv"
    path.write_text(
        K6_HEAD
        + _k6_request("1700000000", 10.0, "/a")
        + _k6_request("1700000005", 30, "/b")
    )
    run, issued = _ingest([path], tmp_path / "runs")

    (text,) = _texts(issued, PrecisionWarning)
    assert "widened" not in text
    assert run.meta["duration_s"] == pytest.approx(5.01)  # 10 ms before :00 to :05
    assert "requests_span_s" not in run.meta


def test_k6_finer_timestamps_are_not_widened(tmp_path):
    path = tmp_path / "micro.csv"
    path.write_text(K6_HEAD + _k6_request("1700000000123456", 4.0, "/a"))
    run, issued = _ingest([path], tmp_path / "runs")

    assert _texts(issued, PrecisionWarning) == []
    assert run.meta["duration_s"] == 0.004
    assert "timestamp_resolution_s" not in run.meta


def test_corpus_k6_csv_2021_duration_is_widened(corpus, tmp_path):
    path = corpus / "k6" / "csv_2021_groups_checks.csv"
    run, issued = _ingest([path], tmp_path / "runs")

    (text,) = _texts(issued, PrecisionWarning)
    # All rows stamped 1619922931 (02:35:31 UTC); the requests took 2.3-7.3 ms.
    assert "All 3 request(s) end within one second (2021-05-02 02:35:31 UTC)" in text
    assert "duration in run.json is 1.007 s instead of 0.007 s" in text
    assert "(413 requests/s) is not meaningful" in text
    assert run.meta["duration_s"] == 1.007
    assert run.meta["end"] == "2021-05-02T02:35:32Z"

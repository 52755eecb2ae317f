"""Ingest orchestration: detection, raw copies, bad input, the recorder's files."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import warnings

import pytest

from perflab.errors import DataWarning, InputError, PerflabWarning
from perflab.ingest import ingest
from perflab.ingest.base import detect_encoding
from perflab.recording import REQUEST_COLUMNS, USERS_COLUMNS

RECORDED = (
    ",".join(REQUEST_COLUMNS)
    + "\n"
    + "1767225600.000000,GET,/a,200,12.5,100,,0\n"
    + "1767225600.500000,GET,/a,200,20.0,100,,1\n"
    + "1767225601.000000,POST,/b,500,7.25,10,HTTPError: 500 Server Error,0\n"
    + "1767225601.200000,POST,/b,,3.0,0,ConnectionRefusedError: refused,1\n"
)


def _sha(path):
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_recorder_files_become_exact_tables(tmp_path, store):
    source = tmp_path / "perflab_requests-host-1.csv"
    source.write_text(RECORDED)
    users = tmp_path / "perflab_users.csv"
    users.write_text(",".join(USERS_COLUMNS) + "\n1767225600.0,2\n1767225601.0,2\n")
    run = ingest([tmp_path], store=store)

    requests = run.table("requests")
    assert len(requests) == 4
    assert list(requests["ok"]) == [True, True, False, False]
    assert requests["status"].isna().sum() == 1  # no response: null, never 0
    assert requests["worker"].unique().tolist() == ["host-1"]
    endpoints = run.table("endpoints").set_index("endpoint")
    assert endpoints.loc["GET /a", "p50"] == 12.5
    assert endpoints.loc["POST /b", "failures"] == 2
    errors = run.table("errors")
    assert set(errors["error"]) == {
        "HTTPError: 500 Server Error",
        "ConnectionRefusedError: refused",
    }
    assert run.meta["peak_users"] == 2
    assert run.meta["tables"]["endpoints"]["provenance"] == "exact"
    for name in (source.name, users.name):
        assert _sha(run.raw / name) == _sha(tmp_path / name)


def test_truncated_recorder_line_is_dropped_with_a_warning(tmp_path, store):
    source = tmp_path / "perflab_requests-host-1.csv"
    source.write_text(RECORDED + "1767225602.0,GET,/a,2")
    with pytest.warns(DataWarning, match=r"1 of 5 recorded rows"):
        run = ingest([source], store=store)
    assert len(run.table("requests")) == 4
    assert any("1 of 5" in w for w in run.meta["warnings"])


def test_empty_file_is_a_clear_error(tmp_path, store):
    empty = tmp_path / "results.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match=r"results\.csv: The file is empty"):
        ingest([empty], store=store)
    assert list(store.iterdir()) == []


def test_a_file_that_is_not_an_export_is_named(tmp_path, store):
    other = tmp_path / "notes.csv"
    other.write_text("a,b,c\n1,2,3\n")
    with pytest.raises(InputError, match=r"notes\.csv: This is not a load-test export"):
        ingest([other], store=store)


def test_missing_path(tmp_path, store):
    with pytest.raises(InputError, match="No such file"):
        ingest([tmp_path / "absent.csv"], store=store)


def test_unknown_format_option(tmp_path, store):
    source = tmp_path / "perflab_requests-x.csv"
    source.write_text(RECORDED)
    with pytest.raises(InputError, match="Unknown format"):
        ingest([source], store=store, fmt="excel")


def test_command_line_prints_errors_without_traceback(tmp_path):
    other = tmp_path / "notes.csv"
    other.write_text("a,b,c\n1,2,3\n")
    result = subprocess.run(
        [sys.executable, "-m", "perflab.cli", "--store", str(tmp_path / "runs"),
         "ingest", str(other)],
        capture_output=True,
        text=True,
    )  # fmt: skip
    assert result.returncode == 2
    assert "perflab: error:" in result.stderr and "notes.csv" in result.stderr
    assert "Traceback" not in result.stderr


# -- text encodings, for every reader ------------------------------------------------

#: A JMeter CSV JTL as JMeter writes it on a Chinese-locale Windows: GBK labels and
#: thread group name. Hand-made; charset_normalizer alone reads these bytes as
#: Korean (cp949), giving a mix of Hangul and Chinese characters.
GBK_JTL = (
    "timeStamp,elapsed,label,responseCode,responseMessage,threadName,success\n"
    "1767225600000,35,查询订单,200,OK,线程组 1-1,true\n"
    "1767225600100,48,提交订单,500,服务器错误,线程组 1-2,false\n"
    "1767225600250,41,查询订单,200,OK,线程组 1-1,true\n"
).encode("gbk")

#: A k6 CSV with a GBK request name (k6 itself writes UTF-8; a re-saved file).
GBK_K6 = (
    "metric_name,timestamp,metric_value,check,error,error_code,expected_response,"
    "group,method,name,proto,scenario,service,status,subproto,tls_version,url\n"
    "http_req_duration,1767225600000000,12.5,,,,true,,GET,登录,HTTP/1.1,default,,"
    "200,,,http://127.0.0.1/login\n"
    "http_req_failed,1767225600000000,0.0,,,,true,,GET,登录,HTTP/1.1,default,,"
    "200,,,http://127.0.0.1/login\n"
).encode("gbk")


def test_gbk_jtl_is_read_as_chinese(tmp_path, store):
    path = tmp_path / "results.jtl"
    path.write_bytes(GBK_JTL)
    assert detect_encoding(path) == "gb18030"
    run = ingest([path], store=store)
    requests = run.table("requests")
    assert requests["endpoint"].tolist() == ["查询订单", "提交订单", "查询订单"]
    assert requests["error"].tolist()[1] == "服务器错误"
    assert run.meta["ingest_path"] == "streaming"  # the fast path reads UTF-8 only


def test_gbk_k6_csv_is_read_as_chinese(tmp_path, store):
    path = tmp_path / "k6.csv"
    path.write_bytes(GBK_K6)
    assert detect_encoding(path) == "gb18030"
    run = ingest([path], store=store)
    assert run.table("requests")["endpoint"].tolist() == ["GET 登录"]


@pytest.mark.corpus
@pytest.mark.parametrize(
    "name",
    # charset_normalizer alone guesses mac_iceland for the second file
    ["gbk_chinese_failures.csv", "gbk_name_stats.csv"],
)
def test_corpus_gbk_files_are_detected(corpus, name):
    assert detect_encoding(corpus / "locust" / name) == "gb18030"


@pytest.mark.parametrize(
    ("text", "encoding", "detected"),
    [
        # Korean in Hangul stays Korean, Japanese with kana stays Japanese
        ("이름,조회 요청,로그인 페이지\n", "euc-kr", "cp949"),
        ("名前,ログイン画面,注文を確認する\n", "shift_jis", "cp932"),
        ("x,café crème,déjà vu\n", "cp1252", None),
    ],
)
def test_other_encodings_are_not_taken_for_gbk(tmp_path, text, encoding, detected):
    path = tmp_path / "labels.csv"
    path.write_bytes(("timeStamp,elapsed,label\n" + text).encode(encoding))
    found = detect_encoding(path)
    assert found != "gb18030"
    if detected is not None:
        assert found == detected
    assert path.read_bytes().decode(found) == ("timeStamp,elapsed,label\n" + text)


JTL_HEADER = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,success\n"


def test_requests_years_apart_get_longer_intervals_and_a_warning(tmp_path, store):
    # 2020-01-01 and 2024-01-01 00:00:00 UTC: 4 years, or 126,230,400 s, which
    # in 1 s intervals would be 126 million rows; at most 20,000 intervals need
    # ceil(126230400 / 3600 / 20000) = 2 hours each.
    path = tmp_path / "far.jtl"
    path.write_text(
        JTL_HEADER
        + "1577836800000,10,a,200,OK,t 1-1,true\n"
        + "1704067200000,20,a,200,OK,t 1-1,true\n"
    )
    with pytest.warns(PerflabWarning) as caught:
        run = ingest([path], store=store)
    messages = [str(w.message) for w in caught]

    intervals = run.table("intervals")
    assert set(intervals["interval_s"]) == {7200.0}
    overall = intervals[intervals["endpoint"] == "Overall"]
    assert len(overall) == 126230400 // 7200 + 1
    assert overall["requests"].sum() == 2
    assert any("intervals of 2.0 h instead of 1 s" in m for m in messages)
    # the pause is measured between intervals: 126,230,400 - 7,200 s = 1460.9 days
    assert any("No request started for about 1460.9 days" in m for m in messages)


def test_a_short_pause_is_no_ingest_warning(tmp_path, store):
    # 299 s without a request (under GAP_S): a stall for the findings, not two runs
    path = tmp_path / "pause.jtl"
    path.write_text(
        JTL_HEADER
        + "1577836800000,10,a,200,OK,t 1-1,true\n"
        + "1577837099000,20,a,200,OK,t 1-1,true\n"
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerflabWarning)
        run = ingest([path], store=store)
    assert set(run.table("intervals")["interval_s"]) == {1.0}


def test_an_error_names_the_file_given_not_its_copy(tmp_path, store):
    path = tmp_path / "summary.json"
    path.write_text('{"metrics": {"http_req')
    with pytest.raises(InputError) as raised:
        ingest([path], store=store, fmt="k6-summary")
    assert raised.value.path == path
    assert str(raised.value).startswith(f"{path}:1: ")
    assert "raw" not in str(raised.value)
    assert not any(store.iterdir())  # the unfinished run is removed

"""Text encodings of the exports: detected or given, never silently mangled.

The fixtures are written here, in the encoding each test is about, so that the
expected names are the text the test starts from. A guessed encoding other than
UTF-8 is reported with a DataWarning naming the file and the encoding, and kept in
run.json (``warnings`` and ``guessed_encodings``).
"""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest

from perflab.errors import PerflabWarning
from perflab.ingest import ingest
from perflab.ingest.base import detect_encoding

JTL_HEADER = "timeStamp,elapsed,label,responseCode,responseMessage,threadName,success\n"

#: The Locust 2.x *_stats.csv header (as in tests/fixtures/locust/bom_stats.csv).
STATS_HEADER = (
    "Type,Name,Request Count,Failure Count,Median Response Time,"
    "Average Response Time,Min Response Time,Max Response Time,Average Content Size,"
    "Requests/s,Failures/s,50%,66%,75%,80%,90%,95%,98%,99%,99.9%,99.99%,100%\n"
)
STATS_NUMBERS = "4,0,10,10.5,9.8,11.2,50.0,0.5,0.0,10,10,11,11,11,11,11,11,11,11,11"


def jtl(labels: list[str], thread: str = "Thread Group 1-1") -> str:
    """A CSV JTL with one successful sample per label, 100 ms apart."""
    rows = [
        f"{1700000000000 + 100 * i},{10 + i},{label},200,OK,{thread},true\n"
        for i, label in enumerate(labels)
    ]
    return JTL_HEADER + "".join(rows)


def locust_stats(names: list[str]) -> str:
    """A Locust *_stats.csv with one GET row per name and the Aggregated row."""
    rows = [f"GET,{name},{STATS_NUMBERS}\n" for name in names]
    return STATS_HEADER + "".join(rows) + f",Aggregated,{STATS_NUMBERS}\n"


def ingest_caught(path: Path, store: Path, **kwargs):
    """Ingest one file; return the run and the perflab warnings issued."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = ingest([path], store=store, **kwargs)
    messages = [
        str(w.message) for w in caught if issubclass(w.category, PerflabWarning)
    ]
    return run, messages


def detected(path: Path) -> str:
    """detect_encoding's answer, checking that a guess (not UTF-8) is warned of."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        encoding = detect_encoding(path)
    messages = guess_warnings([str(w.message) for w in caught])
    if encoding.startswith("utf"):
        assert messages == []
    else:
        (message,) = messages
        assert str(path) in message and encoding in message
    return encoding


def guess_warnings(messages: list[str]) -> list[str]:
    return [m for m in messages if "text encoding was guessed" in m]


def assert_guess_reported(run, messages: list[str], name: str, encoding: str):
    """One warning names the file and the encoding; run.json keeps both."""
    (message,) = guess_warnings(messages)
    assert name in message and encoding in message and "--encoding" in message
    assert message in run.meta["warnings"]
    assert run.meta["guessed_encodings"] == {name: encoding}


def assert_no_guess(run, messages: list[str]):
    assert guess_warnings(messages) == []
    assert not any("text encoding" in m for m in run.meta.get("warnings", []))
    assert "guessed_encodings" not in run.meta


# -- Latin-1 / cp1252 ------------------------------------------------------------------

LATIN_NAMES = [
    # Portuguese and Spanish, as in the bug report: GB18030 read them as 'Inscri玢o'
    # and 'Pa駉' (the bytes are valid GBK too), charset_normalizer as cp1250
    ["Inscrição", "Paño"],
    ["Configuração", "Ação São Paulo", "Relatório"],
    ["Búsqueda", "Año Niño", "¿Qué pasa?"],
    # French
    ["Créer un élève", "Reçu façade", "Déjà vu"],
    # German and Nordic
    ["Größe ändern", "Übersicht", "Håkan Ærø"],
]


@pytest.mark.parametrize("labels", LATIN_NAMES, ids=lambda names: names[0])
@pytest.mark.parametrize("encoding", ["latin-1", "cp1252"])
def test_latin1_jtl_labels_decode_exactly(tmp_path, store, labels, encoding):
    path = tmp_path / "latin.jtl"
    path.write_bytes(jtl(labels, thread="Grupo 1-1").encode(encoding))
    assert detected(path) == "cp1252"

    run, messages = ingest_caught(path, store)

    assert run.table("requests")["endpoint"].tolist() == labels
    assert_guess_reported(run, messages, "latin.jtl", "cp1252")


def test_the_reported_file_reads_as_portuguese_and_spanish(tmp_path, store):
    # The bytes of the bug report, byte for byte.
    path = tmp_path / "es_latin1.jtl"
    path.write_bytes(
        b"timeStamp,elapsed,label,responseCode,responseMessage,threadName,success\n"
        b"1700000000000,10,Inscri\xe7\xe3o,200,OK,Grupo 1-1,true\n"
        b"1700000000100,12,Pa\xf1o,200,OK,Grupo 1-1,true\n"
    )
    run, messages = ingest_caught(path, store)
    endpoints = set(run.table("endpoints")["endpoint"])
    assert {"Inscrição", "Paño"} <= endpoints
    assert not endpoints & {"Inscri玢o", "Pa駉"}
    assert_guess_reported(run, messages, "es_latin1.jtl", "cp1252")


def test_latin1_locust_stats_names_decode_exactly(tmp_path, store):
    names = ["/inscrição", "/año", "/élève", "/garçon"]
    path = tmp_path / "latin_stats.csv"
    path.write_bytes(locust_stats(names).encode("latin-1"))

    run, messages = ingest_caught(path, store)

    endpoints = run.table("endpoints")["endpoint"].tolist()
    assert [e for e in endpoints if e != "Overall"] == [f"GET {n}" for n in names]
    assert_guess_reported(run, messages, "latin_stats.csv", "cp1252")


def test_a_given_encoding_is_used_and_not_reported_as_a_guess(tmp_path, store):
    labels = ["Inscrição", "Paño"]
    path = tmp_path / "given.jtl"
    path.write_bytes(jtl(labels).encode("latin-1"))
    run, messages = ingest_caught(path, store, encoding="latin-1")
    assert run.table("requests")["endpoint"].tolist() == labels
    assert_no_guess(run, messages)


# -- East Asian code pages -------------------------------------------------------------


def test_gbk_jtl_labels_decode_exactly(tmp_path, store):
    labels = ["查询订单", "提交订单", "登录", "GET 用户信息"]
    text = jtl(labels, thread="线程组 1-1")
    text += "1700000001000,48,提交订单,500,服务器错误,线程组 1-2,false\n"
    path = tmp_path / "gbk.jtl"
    path.write_bytes(text.encode("gbk"))
    assert detected(path) == "gb18030"

    run, messages = ingest_caught(path, store)

    requests = run.table("requests")
    assert requests["endpoint"].tolist() == [*labels, "提交订单"]
    assert requests["error"].dropna().tolist() == ["服务器错误"]
    assert_guess_reported(run, messages, "gbk.jtl", "gb18030")


def test_gbk_locust_stats_names_decode_exactly(tmp_path, store):
    names = ["/接口", "/查看影响力榜单", "福建号订阅"]
    path = tmp_path / "gbk_stats.csv"
    path.write_bytes(locust_stats(names).encode("gbk"))

    run, messages = ingest_caught(path, store)

    endpoints = run.table("endpoints")["endpoint"].tolist()
    assert [e for e in endpoints if e != "Overall"] == [f"GET {n}" for n in names]
    assert_guess_reported(run, messages, "gbk_stats.csv", "gb18030")


def test_cp949_jtl_labels_decode_exactly(tmp_path, store):
    labels = ["로그인 페이지", "주문 조회", "장바구니 보기"]
    path = tmp_path / "korean.jtl"
    path.write_bytes(jtl(labels, thread="스레드 그룹 1-1").encode("cp949"))
    assert detected(path) == "cp949"

    run, messages = ingest_caught(path, store)

    assert run.table("requests")["endpoint"].tolist() == labels
    assert_guess_reported(run, messages, "korean.jtl", "cp949")


def test_shift_jis_with_kana_is_japanese(tmp_path):
    text = JTL_HEADER + "1700000000000,10,ログイン画面,200,OK,スレッド 1-1,true\n"
    path = tmp_path / "japanese.jtl"
    path.write_bytes(text.encode("shift_jis"))
    assert detected(path) == "cp932"


def test_a_file_read_twice_is_reported_once(tmp_path, store):
    # The JMeter fast path looks at the encoding before handing the file to the
    # streaming reader, which looks again: one guess, one warning.
    path = tmp_path / "twice.jtl"
    path.write_bytes(jtl(["Inscrição"]).encode("latin-1"))
    run, messages = ingest_caught(path, store)
    assert len(guess_warnings(messages)) == 1
    assert run.meta["ingest_path"] == "streaming"


def test_reingesting_reports_the_guess_again(tmp_path, store):
    path = tmp_path / "again.jtl"
    path.write_bytes(jtl(["Inscrição", "Paño"]).encode("latin-1"))
    run, _ = ingest_caught(path, store)
    again, messages = ingest_caught(run.path, store)
    assert again.path == run.path
    assert again.table("requests")["endpoint"].tolist() == ["Inscrição", "Paño"]
    assert_guess_reported(again, messages, "again.jtl", "cp1252")


# -- Unicode ---------------------------------------------------------------------------

UNICODE_LABELS = ["Inscrição", "Paño", "查询订单", "로그인 페이지", "ログイン"]


@pytest.mark.parametrize(
    ("encoding", "expected"),
    [
        ("utf-8", "utf-8"),
        ("utf-8-sig", "utf-8-sig"),  # BOM, kept out of the first column name
        ("utf-16", "utf-16"),  # with a BOM (Python writes the native order)
        ("utf-16-be-bom", "utf-16"),
    ],
)
def test_unicode_jtl_labels_decode_without_a_guess(tmp_path, store, encoding, expected):
    text = jtl(UNICODE_LABELS)
    if encoding == "utf-16-be-bom":
        data = b"\xfe\xff" + text.encode("utf-16-be")
    else:
        data = text.encode(encoding)
    path = tmp_path / "unicode.jtl"
    path.write_bytes(data)
    assert detected(path) == expected

    run, messages = ingest_caught(path, store)

    assert run.table("requests")["endpoint"].tolist() == UNICODE_LABELS
    assert_no_guess(run, messages)


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_unicode_locust_stats_names_decode_without_a_guess(tmp_path, store, encoding):
    names = ["/inscrição", "/查询订单", "/로그인"]
    path = tmp_path / "unicode_stats.csv"
    path.write_bytes(locust_stats(names).encode(encoding))

    run, messages = ingest_caught(path, store)

    endpoints = run.table("endpoints")["endpoint"].tolist()
    assert [e for e in endpoints if e != "Overall"] == [f"GET {n}" for n in names]
    assert_no_guess(run, messages)


# -- the shared corpus: real GBK exports -----------------------------------------------


@pytest.mark.corpus
def test_corpus_gbk_failures_decode(corpus, store):
    path = corpus / "locust" / "gbk_chinese_failures.csv"
    run, messages = ingest_caught(path, store)
    errors = run.table("errors")
    assert "GET 查看影响力榜单" in set(errors["endpoint"])
    assert errors["error"].str.contains("远程主机强迫关闭了一个现有的连接").any()
    assert_guess_reported(run, messages, path.name, "gb18030")


@pytest.mark.corpus
def test_corpus_gbk_name_stats_decode(corpus, store):
    # charset_normalizer alone reads this file as mac_iceland; CP949 reads its
    # one name as two Hangul syllables.
    path = corpus / "locust" / "gbk_name_stats.csv"
    run, messages = ingest_caught(path, store)
    assert "GET get接口" in set(run.table("endpoints")["endpoint"])
    assert_guess_reported(run, messages, path.name, "gb18030")

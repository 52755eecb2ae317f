"""Gatling text ``simulation.log`` files, 2.x and 3.x layouts.

The corpus tests compare perflab's numbers with values worked out in the test itself
by splitting the log's lines on tabs, never with perflab's own output. The fixtures
in ``tests/fixtures/gatling/`` are hand-written snippets of each layout.
"""

from __future__ import annotations

import math
import re
import warnings
from itertools import accumulate
from pathlib import Path

import pandas as pd
import pytest

from perflab.errors import DataWarning, InputError, PerflabWarning
from perflab.ingest import detect, ingest
from perflab.ingest import gatling as gatling_reader
from perflab.ingest.base import head_bytes
from perflab.store import OVERALL

FIXTURES = Path(__file__).parent / "fixtures" / "gatling"


# -- helpers --------------------------------------------------------------------------


def _ingest(path: Path, store: Path, **kwargs):
    """Ingest one file; returns (run, DataWarning messages)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        run = ingest([path], store=store, **kwargs)
    messages = [str(w.message) for w in caught if issubclass(w.category, DataWarning)]
    return run, messages


def _nearest_rank(values: list[float], q: float) -> float:
    """Nearest-rank quantile by hand: the sample at 1-based rank ceil(q * n)."""
    ordered = sorted(values)
    return ordered[max(math.ceil(q * len(ordered)), 1) - 1]


def _records(path: Path, kind: str) -> list[list[str]]:
    """The tab-split records of one type, by plain string splitting."""
    lines = path.read_text(encoding="utf-8").splitlines()
    return [line.split("\t") for line in lines if line.startswith(kind + "\t")]


def _peak_users(path: Path) -> int:
    """Most users active at once, from 3.4+ USER records (scenario, kind, ms)."""
    changes = sorted(
        (int(f[3]), 1 if f[2] == "START" else -1) for f in _records(path, "USER")
    )
    by_time: dict[int, int] = {}
    for ms, change in changes:
        by_time[ms] = by_time.get(ms, 0) + change
    return max(accumulate(by_time[ms] for ms in sorted(by_time)))


# -- the corpus -----------------------------------------------------------------------


@pytest.mark.corpus
def test_corpus_v3_5_ko_404(corpus, store):
    path = corpus / "gatling" / "v3_5_1_ko_404_simulation.log"
    assert detect(path) == "gatling-log"
    with warnings.catch_warnings():
        warnings.simplefilter("error", PerflabWarning)
        run = ingest([path], store=store)

    # By hand: 3.5 REQUEST records are REQUEST, groups, name, start, end, OK|KO, text.
    requests_by_hand = _records(path, "REQUEST")
    latency = [int(f[4]) - int(f[3]) for f in requests_by_hand]
    failed = [f for f in requests_by_hand if f[5] == "KO"]
    found = [re.search(r"found (\d{3})$", f[6]) for f in failed]
    codes = [int(m.group(1)) for m in found if m]
    assert (len(latency), len(failed), len(codes)) == (7617, 758, 163)

    requests = run.table("requests")
    assert len(requests) == len(latency)
    assert int((~requests["ok"]).sum()) == len(failed)
    assert set(requests["endpoint"]) == {f[2] for f in requests_by_hand}
    # Only a failed status check tells the status: 127 x 404 and 36 x 400 here.
    assert requests["status"].notna().sum() == len(codes)
    for code in (404, 400):
        assert int((requests["status"] == code).sum()) == codes.count(code)
    overall = run.table("endpoints").set_index("endpoint").loc[OVERALL]
    assert overall["mean_ms"] == pytest.approx(sum(latency) / len(latency))
    assert overall["p95"] == _nearest_rank(latency, 0.95)
    assert overall["p99"] == _nearest_rank(latency, 0.99)
    first = min(int(f[3]) for f in requests_by_hand)
    assert pd.Timestamp(run.meta["start"]) == pd.Timestamp(first, unit="ms", tz="UTC")

    (run_record,) = _records(path, "RUN")
    assert run.meta["tool_version"] == run_record[5] == "3.5.1"
    assert run.meta["simulation"] == run_record[1]
    assert run.meta["description"] == "first run"
    assert run.meta["scenario"] == "loadTest2"
    assert run.meta["peak_users"] == _peak_users(path)
    assert run.meta["errors_logged"] == 0
    assert (run.raw / path.name).read_bytes() == path.read_bytes()


@pytest.mark.corpus
def test_corpus_v3_6_error_lines(corpus, store):
    path = corpus / "gatling" / "v3_6_1_error_lines_simulation.log"
    run, messages = _ingest(path, store)

    requests_by_hand = _records(path, "REQUEST")
    latency = [int(f[4]) - int(f[3]) for f in requests_by_hand]
    failed = [f for f in requests_by_hand if f[5] == "KO"]
    errors_by_hand = _records(path, "ERROR")
    assert (len(latency), len(failed), len(errors_by_hand)) == (273, 1, 8)

    requests = run.table("requests")
    assert len(requests) == len(latency)
    assert set(requests["endpoint"]) == {f[2] for f in requests_by_hand}
    overall = run.table("endpoints").set_index("endpoint").loc[OVERALL]
    assert overall["failures"] == 1
    assert overall["mean_ms"] == pytest.approx(sum(latency) / len(latency))
    assert overall["p90"] == _nearest_rank(latency, 0.90)

    # 'status.find.is(302), but actually found 200': the status seen was 200.
    ko = requests[~requests["ok"]].iloc[0]
    assert (ko["endpoint"], ko["status"]) == ("Registration", 200)
    assert ko["error"] == failed[0][6]

    # ERROR records are not requests; they are counted and warned about.
    assert run.meta["errors_logged"] == 8
    assert sum(run.meta["errors_logged_kinds"].values()) == 8
    (message,) = [m for m in messages if "ERROR records" in m]
    assert "8 ERROR records" in message
    assert run.meta["description"] == "rem"
    assert run.meta["peak_users"] == _peak_users(path) == 1
    assert (run.raw / path.name).read_bytes() == path.read_bytes()


@pytest.mark.corpus
def test_sniff_claims_only_gatling_logs(corpus):
    for path in sorted((corpus / "gatling").iterdir()):
        assert gatling_reader.sniff(path, head_bytes(path)) == "gatling-log"
    for tool in ("locust", "k6", "jmeter"):
        for path in sorted((corpus / tool).iterdir()):
            assert gatling_reader.sniff(path, head_bytes(path)) is None, path.name


# -- hand-written fixtures ------------------------------------------------------------


def test_v2_1_layout(store):
    path = FIXTURES / "v2_1_simulation.log"
    assert detect(path) == "gatling-log"
    run, messages = _ingest(path, store)
    assert messages == []
    requests = run.table("requests").set_index("name")
    # 2.0/2.1: response end (field 8) minus request start (field 5).
    assert requests.loc["home", "latency_ms"] == 150.0
    assert requests.loc["search", "latency_ms"] == 200.0
    assert requests.loc["search", "status"] == 500
    assert requests["user"].tolist() == [1, 2]
    assert run.meta["scenario"] == "Scenario Name"
    assert run.meta["simulation"] == "computerdatabase.BasicSimulation"
    assert run.meta["peak_users"] == 2


def test_v2_3_layout(store):
    run, messages = _ingest(FIXTURES / "v2_3_simulation.log", store)
    assert messages == []
    requests = run.table("requests")
    assert requests["endpoint"].tolist() == ["home", "computers", "computers"]
    assert requests["latency_ms"].tolist() == [150.0, 40.0, 500.0]
    assert requests["error"].tolist()[2].startswith("i.n.c.ConnectTimeoutException")
    assert requests["status"].isna().all()
    assert run.meta["description"] == "smoke"


def test_v3_2_layout_with_user_ids(store):
    run, _ = _ingest(FIXTURES / "v3_2_simulation.log", store)
    requests = run.table("requests")
    assert requests["user"].tolist() == [1, 2]
    assert requests["status"].tolist()[1] == 503
    assert run.meta["tool_version"] == "3.2.1"
    assert run.meta["peak_users"] == 2


def test_groups_group_records_errors_and_a_truncated_line(store):
    path = FIXTURES / "v3_9_groups_truncated_simulation.log"
    run, messages = _ingest(path, store)
    requests = run.table("requests")
    assert requests["endpoint"].tolist() == [
        "home",
        "Buy / Pay / submit",
        "Buy / Pay / submit",
    ]
    assert requests["status"].tolist()[1] == 500
    assert requests["user"].isna().all()
    (malformed,) = [m for m in messages if "malformed" in m]
    assert re.search(r"1 malformed records .* at line 10\.", malformed)
    assert any("1 ERROR records" in m for m in messages)
    users = run.table("intervals")
    assert users.loc[users["endpoint"] == OVERALL, "users"].max() == 2


def test_empty_log_is_an_input_error(tmp_path, store):
    path = tmp_path / "simulation.log"
    path.write_text("")
    with pytest.raises(InputError, match="simulation.log"):
        ingest([path], store=store, fmt="gatling-log")


def test_not_a_gatling_log_is_an_input_error(store):
    path = Path(__file__).parent / "fixtures" / "jmeter" / "tab_delimited.jtl"
    assert gatling_reader.sniff(path, head_bytes(path)) is None
    with pytest.raises(
        InputError, match=r"tab_delimited\.jtl:1: This is not a Gatling"
    ):
        ingest([path], store=store, fmt="gatling-log")
    assert list(store.iterdir()) == []


def test_v2_0_layout_without_groups_field(tmp_path, store):
    # Early 2.0 logs have no groups field: the name sits right after REQUEST.
    path = tmp_path / "simulation.log"
    lines = [
        ["sim.Basic", "basic", "RUN", "1400000000000", "first", "2.0"],
        ["Scn", "7", "USER", "START", "1400000000010", "1400000000010"],
        ["Scn", "7", "REQUEST", "home", "1400000000100", "1400000000101"]
        + ["1400000000190", "1400000000230", "OK", " "],
        ["Scn", "7", "USER", "END", "1400000000010", "1400000000300"],
    ]
    path.write_text("\n".join("\t".join(line) for line in lines) + "\n")
    run, messages = _ingest(path, store)
    assert messages == []
    requests = run.table("requests")
    assert requests[["endpoint", "latency_ms", "user"]].values.tolist() == [
        ["home", 130.0, 7]
    ]

"""The analysis notebooks on runs that perflab did not make: a k6 NDJSON output and a
JMeter CSV JTL, written here from a seeded generator, and (when ../shared/corpus is
present) a real export of each.

Each run is ingested, analysed through papermill, and its report checked against its
own requests table: the total, the tool, and every notebook executed without error.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import nbformat
import numpy as np
import pytest

from perflab.ingest import ingest
from perflab.notebooks import NOTEBOOKS, analyze

START = datetime(2026, 11, 30, 9, 0, 0, tzinfo=UTC)
ENDPOINTS = {  # name: (method, median ms)
    "http://127.0.0.1:8080/api/v1/publications?limit=20": ("GET", 18.0),
    "http://127.0.0.1:8080/api/v1/publications": ("POST", 35.0),
    "http://127.0.0.1:8080/api/v1/analytics/engagement": ("GET", 120.0),
}


def _load(seed: int, seconds: int = 40, peak_users: int = 8):
    """(time, url, method, latency ms, ok, users) for a ramp, hold and ramp down."""
    rng = np.random.default_rng(seed)
    rows = []
    urls = list(ENDPOINTS)
    for second in range(seconds):
        edge = min(second, seconds - 1 - second)
        users = max(1, min(peak_users, 1 + edge))
        for _ in range(users * 2):
            url = urls[rng.integers(len(urls))]
            method, median = ENDPOINTS[url]
            at = START + timedelta(seconds=second + float(rng.random()))
            latency = float(rng.lognormal(np.log(median), 0.4))
            ok = bool(rng.random() > 0.02)
            rows.append((at, url, method, round(latency, 3), ok, users))
    rows.sort(key=lambda row: row[0])
    return rows


def _write_k6_ndjson(path, rows) -> None:
    def metric(name, kind, contains):
        data = {"name": name, "type": kind, "contains": contains, "thresholds": []}
        return {"type": "Metric", "data": data, "metric": name}

    def point(name, at, value, tags):
        stamp = at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        data = {"time": stamp, "value": value, "tags": tags}
        return {"metric": name, "type": "Point", "data": data}

    lines = [
        metric("http_req_duration", "trend", "time"),
        metric("http_req_failed", "rate", "default"),
        metric("vus", "gauge", "default"),
    ]
    last_second = None
    for at, url, method, latency, ok, users in rows:
        if at.second != last_second:
            lines.append(point("vus", at, users, {}))
            last_second = at.second
        tags = {
            "expected_response": "true" if ok else "false",
            "method": method,
            "name": url,
            "scenario": "default",
            "status": "200" if ok else "500",
            "url": url,
        }
        lines.append(point("http_req_duration", at, latency, tags))
        lines.append(point("http_req_failed", at, 0 if ok else 1, tags))
    # compact, as k6 writes it
    text = "".join(json.dumps(line, separators=(",", ":")) + "\n" for line in lines)
    path.write_text(text)


def _write_jtl(path, rows) -> None:
    header = (
        "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,"
        "success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,"
        "IdleTime,Connect"
    )
    lines = [header]
    for at, url, method, latency, ok, users in rows:
        label = f"{method} {url.split('8080', 1)[1].split('?')[0]}"
        stamp = int(at.timestamp() * 1000)
        code, message = ("200", "OK") if ok else ("500", "Internal Server Error")
        failure = "" if ok else "Test failed: code expected to be 200"
        lines.append(
            f"{stamp},{round(latency)},{label},{code},{message},Users 1-1,text,"
            f"{str(ok).lower()},{failure},512,120,{users},{users},{url},"
            f"{round(latency)},0,1"
        )
    path.write_text("\n".join(lines) + "\n")


def _check_report(run, result, tool: str) -> None:
    requests = run.table("requests")
    assert len(requests) > 0
    assert run.meta["tool"] == tool
    assert [p.name for p in result.notebooks] == [f"{n}.ipynb" for n in NOTEBOOKS]
    for path in result.notebooks:
        nb = nbformat.read(path, as_version=4)
        outputs = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]
        assert outputs, f"{path.name} has no outputs"
        errors = [o for o in outputs if o.output_type == "error"]
        assert not errors, f"{path.name}: {errors[0].get('evalue') if errors else ''}"
    text = result.report_md.read_text()
    assert text.startswith("## Load Test Results")
    total = re.search(r"\*\*Total Requests\*\*: ([\d,]+)", text)
    assert total and int(total.group(1).replace(",", "")) == len(requests)
    for heading in ("### Results", "### Bottlenecks Identified", "### Recommendations"):
        assert heading in text
    html = result.report_html.read_text()
    assert "<img" in html and "data:image/png;base64," in html


@pytest.mark.slow
def test_notebooks_run_on_an_ingested_k6_run(tmp_path):
    export = tmp_path / "exports" / "k6-out.json"
    export.parent.mkdir()
    rows = _load(seed=61)
    _write_k6_ndjson(export, rows)
    run = ingest([export], store=tmp_path / "runs")
    assert len(run.table("requests")) == len(rows)
    _check_report(run, analyze(run, out_dir=tmp_path / "report"), "k6")


@pytest.mark.slow
def test_notebooks_run_on_an_ingested_jmeter_run(tmp_path):
    export = tmp_path / "exports" / "results.jtl"
    export.parent.mkdir()
    rows = _load(seed=62)
    _write_jtl(export, rows)
    run = ingest([export], store=tmp_path / "runs")
    requests = run.table("requests")
    assert len(requests) == len(rows)
    assert int((~requests["ok"]).sum()) == sum(1 for row in rows if not row[4])
    _check_report(run, analyze(run, out_dir=tmp_path / "report"), "jmeter")


@pytest.mark.slow
@pytest.mark.corpus
@pytest.mark.parametrize(
    "name, tool",
    [
        ("k6/ndjson_utc_nanos_groups.json", "k6"),
        ("jmeter/xml_testresults_v1_2.xml", "jmeter"),
    ],
)
def test_notebooks_run_on_real_exports(corpus, tmp_path, name, tool):
    run = ingest([corpus / name], store=tmp_path / "runs")
    _check_report(run, analyze(run, out_dir=tmp_path / "report"), tool)

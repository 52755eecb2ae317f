"""How fast perflab ingests a large k6 CSV and JMeter JTL, against DuckDB alone.

Generates (once; cached in ``--dir``) two files of ``--rows`` rows each (5,000,000 by
default, about 750 MB):

``k6.csv``
    ``k6 run --out csv`` as k6 0.5x writes it with its default ``timeFormat`` (unix
    seconds): per HTTP request one ``http_reqs``, ``http_req_duration``, the six
    timing metrics and ``http_req_failed`` row, then one ``checks`` row; per
    iteration (four requests) ``data_sent``, ``data_received``,
    ``iteration_duration`` and ``iterations``; ``vus`` and ``vus_max`` every second.
    So about one row in eleven is a request: 5 M rows hold about 455,000 requests.
    About 1 % of responses are 500s and 0.1 % are timeouts without a response.
``jmeter.jtl``
    A CSV JTL with JMeter 5's 17 default columns and its header line, one row per
    request (5 M requests) written, as JMeter does, when the request ended (so not
    in ``timeStamp`` order), with the same kinds of failures.

For each file it prints, median of ``--repeats`` runs, each in its own process; they
are run in turns (DuckDB, perflab, DuckDB, ...) so that other work on the
machine weighs on both alike:

* DuckDB alone: ``read_csv`` (auto-detected) and per endpoint ``count``, ``avg``,
  ``quantile_disc`` p95 and p99: wall time, MB/s and peak resident memory.
* perflab: ``perflab.ingest.ingest`` into a fresh temporary store (raw copy,
  requests.parquet, intervals, endpoints, errors, run.json): wall time of the call,
  MB/s, and the child process's peak resident memory (``wait4`` rusage), which
  includes importing perflab. Progress bars are not drawn: the child's stderr is
  not a terminal.
* the ratio of the two speeds (perflab aims at 0.5 or more), of the medians and
  its range over the pairs of runs, and whether the peak stays within 1 GiB.
* with ``--floor``, a third measurement in the turns: DuckDB alone parsing the file
  and writing its requests to Parquet sorted by start time, in one statement
  (:func:`child_floor`), and its ratio: the best any ingest that stores the
  requests in time order could reach here.

The load average before and after is printed too: the machines have two cores, and
anything else running makes both numbers slower and noisier.

Usage::

    python benchmarks/ingest_speed.py [--rows 5000000] [--dir /tmp/perflab-bench]
                                      [--repeats 3] [--only k6|jmeter] [--floor]

Not a test: it prints numbers for a person to read; the README quotes them.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

DEFAULT_DIR = Path(tempfile.gettempdir()) / "perflab-ingest-bench"

K6_HEADER = (
    "metric_name,timestamp,metric_value,check,error,error_code,expected_response,"
    "group,method,name,proto,scenario,service,status,subproto,tls_version,url,"
    "extra_tags,metadata"
)
K6_TIMINGS = (
    "http_req_blocked",
    "http_req_connecting",
    "http_req_tls_handshaking",
    "http_req_sending",
    "http_req_waiting",
    "http_req_receiving",
)
#: (method, name, url path, median latency ms) of the four requests of an iteration.
K6_REQUESTS = (
    ("GET", "/api/catalog/items", "/api/catalog/items?page=2&size=50", 18.0),
    ("GET", "/api/catalog/items/{id}", "/api/catalog/items/4711", 9.0),
    ("POST", "/api/checkout/orders", "/api/checkout/orders", 42.0),
    ("GET", "/api/account/profile", "/api/account/profile", 12.0),
)
K6_HOST = "https://shop.staging.example.com"

JTL_HEADER = (
    "timeStamp,elapsed,label,responseCode,responseMessage,threadName,dataType,"
    "success,failureMessage,bytes,sentBytes,grpThreads,allThreads,URL,Latency,"
    "IdleTime,Connect"
)
JTL_LABELS = (
    ("List catalogue items", "/api/catalog/items?page=2&size=50", 18.0),
    ("Show catalogue item", "/api/catalog/items/4711", 9.0),
    ("Place checkout order", "/api/checkout/orders", 42.0),
    ("Show account profile", "/api/account/profile", 12.0),
)


# -- generating the files ------------------------------------------------------------


def generate_k6(path: Path, rows: int, seed: int = 7) -> dict:
    """Write a k6 CSV of about ``rows`` rows; returns what was written."""
    rng = np.random.default_rng(seed)
    per_iteration = len(K6_REQUESTS) * (len(K6_TIMINGS) + 4) + 4
    iterations = max(rows // per_iteration, 1)
    vus = 50
    start = 1_764_700_000
    # each VU runs an iteration about every 0.5 s
    seconds = np.sort(rng.integers(0, max(iterations // (2 * vus), 1), iterations))
    latency = rng.lognormal(0.0, 0.6, (iterations, len(K6_REQUESTS)))
    fate = rng.random((iterations, len(K6_REQUESTS)))
    written = requests = 0
    last_second = -1
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(K6_HEADER + "\n")
        lines: list[str] = []
        for i in range(iterations):
            ts = start + int(seconds[i])
            if seconds[i] != last_second:
                last_second = int(seconds[i])
                lines.append(f"vus,{ts},{vus}.000000,,,,,,,,,,,,,,,,")
                lines.append(f"vus_max,{ts},{vus}.000000,,,,,,,,,,,,,,,,")
            for j, (method, name, path_q, median) in enumerate(K6_REQUESTS):
                duration = median * latency[i, j]
                status, expected, error, code = "200", "true", "", ""
                if fate[i, j] < 0.001:
                    status, expected = "0", "false"
                    error, code = "request timeout", "1050"
                    duration = 60000.0
                elif fate[i, j] < 0.011:
                    status, expected, code = "500", "false", "1500"
                tags = (
                    f"{error},{code},{expected},,{method},{name},HTTP/1.1,default,,"
                    f"{status},,tls1.3,{K6_HOST}{path_q},,"
                )
                parts = np.round(duration * np.array([0.05, 0.8, 0.15]), 6)
                values = (
                    ("http_reqs", 1.0),
                    ("http_req_duration", duration),
                    ("http_req_blocked", 0.004),
                    ("http_req_connecting", 0.0),
                    ("http_req_tls_handshaking", 0.0),
                    ("http_req_sending", parts[0]),
                    ("http_req_waiting", parts[1]),
                    ("http_req_receiving", parts[2]),
                    ("http_req_failed", float(expected == "false")),
                )
                lines.extend(f"{m},{ts},{v:f},,{tags}" for m, v in values)
                lines.append(
                    f"checks,{ts},{float(status == '200'):f},status is 200,,,,,,,,"
                    "default,,,,,,,"
                )
                requests += 1
            lines.append(f"data_sent,{ts},{1840:f},,,,,,,,,default,,,,,,,")
            lines.append(f"data_received,{ts},{58211:f},,,,,,,,,default,,,,,,,")
            lines.append(
                f"iteration_duration,{ts},{latency[i].sum() * 20 + 500:f},,,,,,,,,"
                "default,,,,,,,"
            )
            lines.append(f"iterations,{ts},1.000000,,,,,,,,,default,,,,,,,")
            if len(lines) > 200_000:
                written += len(lines)
                out.write("\n".join(lines) + "\n")
                lines = []
        written += len(lines)
        out.write("\n".join(lines) + "\n")
    return {"rows": written, "requests": requests}


def generate_jtl(path: Path, rows: int, seed: int = 11) -> dict:
    """Write a JMeter 5 CSV JTL (17 default columns, header) of ``rows`` samples."""
    rng = np.random.default_rng(seed)
    threads = 100
    start_ms = 1_764_700_000_000
    span_ms = max(rows // 500, 1) * 1000  # about 500 requests per second
    stamps = rng.integers(0, span_ms, rows) + start_ms
    which = rng.integers(0, len(JTL_LABELS), rows)
    thread = rng.integers(1, threads + 1, rows)
    latency = rng.lognormal(0.0, 0.6, rows)
    fate = rng.random(rows)
    size = rng.integers(800, 60000, rows)
    medians = np.array([m for _, _, m in JTL_LABELS])
    elapsed_ms = (medians[which] * latency).astype(np.int64) + 1
    elapsed_ms[fate < 0.001] = 60000
    # JMeter writes a sample when it ends; timeStamp is when it started.
    order = np.argsort(stamps + elapsed_ms, kind="stable")
    stamps, which, thread = stamps[order], which[order], thread[order]
    fate, size, elapsed_ms = fate[order], size[order], elapsed_ms[order]
    written = 0
    with open(path, "w", encoding="utf-8", newline="") as out:
        out.write(JTL_HEADER + "\n")
        lines: list[str] = []
        for k in range(rows):
            label, url, _ = JTL_LABELS[which[k]]
            elapsed = int(elapsed_ms[k])
            code, message, ok, body = "200", "OK", "true", int(size[k])
            if fate[k] < 0.001:
                code = "Non HTTP response code: java.net.SocketTimeoutException"
                message = "Non HTTP response message: Read timed out"
                ok, body = "false", 1521
            elif fate[k] < 0.011:
                code, message, ok, body = "500", "Internal Server Error", "false", 312
            lines.append(
                f"{stamps[k]},{elapsed},{label},{code},{message},"
                f"Shoppers 1-{thread[k]},text,{ok},,{body},412,"
                f"{threads},{threads},{K6_HOST}{url},{max(elapsed - 2, 0)},0,1"
            )
            if len(lines) >= 200_000:
                written += len(lines)
                out.write("\n".join(lines) + "\n")
                lines = []
        written += len(lines)
        out.write("\n".join(lines) + "\n")
    return {"rows": written, "requests": written}


def ensure(kind: str, folder: Path, rows: int) -> tuple[Path, dict]:
    """The generated file of a kind, generated now unless cached."""
    folder.mkdir(parents=True, exist_ok=True)
    name = "k6.csv" if kind == "k6" else "jmeter.jtl"
    path = folder / f"{rows}-{name}"
    info_path = path.with_suffix(path.suffix + ".json")
    if path.exists() and info_path.exists():
        return path, json.loads(info_path.read_text())
    began = time.perf_counter()
    make = generate_k6 if kind == "k6" else generate_jtl
    info = make(path, rows)
    info["bytes"] = path.stat().st_size
    info_path.write_text(json.dumps(info))
    print(
        f"generated {path} in {time.perf_counter() - began:.0f} s",
        file=sys.stderr,
    )
    return path, info


# -- measuring, each in a child process ------------------------------------------------


def child_duckdb(path: str, kind: str) -> dict:
    import duckdb

    if kind == "k6":
        sql = f"""
            SELECT name, count(*), avg(metric_value),
                   quantile_disc(metric_value, [0.95, 0.99])
            FROM read_csv('{path}')
            WHERE metric_name = 'http_req_duration'
            GROUP BY name"""
    else:
        sql = f"""
            SELECT label, count(*), avg(elapsed),
                   quantile_disc(elapsed, [0.95, 0.99])
            FROM read_csv('{path}')
            GROUP BY label"""
    began = time.perf_counter()
    rows = duckdb.connect().execute(sql).fetchall()
    return {"seconds": time.perf_counter() - began, "groups": len(rows)}


def child_floor(path: str, kind: str) -> dict:
    """DuckDB alone parsing the file and writing its requests, sorted by start
    time, to Parquet with the store's columns, in one statement.

    Less than any ingest that stores requests in time order can do: no check of
    the rows, the failure message as it stands for the error, users by a hash of
    the thread name (JMeter) or none (k6), no derived tables, no raw copy, no
    memory limit. Its speed bounds what such an ingest can reach on this machine.
    """
    import duckdb

    if kind == "k6":
        select = f"""
            SELECT make_timestamptz(CAST(timestamp AS BIGINT) * 1000000
                       - CAST(metric_value * 1000 AS BIGINT)) AS ts,
                   method || ' ' || name AS endpoint, method, name,
                   TRY_CAST(status AS INTEGER) AS status, metric_value AS latency_ms,
                   NULL::BIGINT AS bytes, expected_response = 'true' AS ok,
                   error, NULL::VARCHAR AS worker, NULL::BIGINT AS "user"
            FROM read_csv('{path}', all_varchar = false,
                          types = {{'status': 'VARCHAR',
                                   'expected_response': 'VARCHAR'}})
            WHERE metric_name = 'http_req_duration'"""
    else:
        select = f"""
            SELECT make_timestamptz(timeStamp * 1000) AS ts, label AS endpoint,
                   NULL::VARCHAR AS method, label AS name,
                   TRY_CAST(responseCode AS INTEGER) AS status,
                   CAST(elapsed AS DOUBLE) AS latency_ms, bytes,
                   success = 'true' AS ok,
                   CASE WHEN success <> 'true' THEN failureMessage END AS error,
                   NULL::VARCHAR AS worker, hash(threadName) AS "user"
            FROM read_csv('{path}', types = {{'responseCode': 'VARCHAR',
                                              'success': 'VARCHAR'}})"""
    with tempfile.TemporaryDirectory() as tmp:
        target = Path(tmp) / "requests.parquet"
        con = duckdb.connect()
        con.execute("SET preserve_insertion_order = true")
        began = time.perf_counter()
        con.execute(
            f"COPY ({select} ORDER BY ts) TO '{target}' "
            "(FORMAT parquet, COMPRESSION zstd, COMPRESSION_LEVEL 1)"
        )
        seconds = time.perf_counter() - began
    return {"seconds": seconds}


def child_perflab(path: str, kind: str) -> dict:
    import warnings

    from perflab.ingest import ingest

    with tempfile.TemporaryDirectory() as store:
        began = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            run = ingest([path], store=store)
        seconds = time.perf_counter() - began
        tables = {k: v["rows"] for k, v in run.meta["tables"].items()}
        fast = run.meta.get("ingest_path")
    return {"seconds": seconds, "tables": tables, "path": fast}


def measure(which: str, path: Path, kind: str) -> dict:
    """Run one measurement in a child process; adds its peak RSS in MiB."""
    proc = subprocess.Popen(
        [sys.executable, __file__, "--child", which, str(path), kind],
        stdout=subprocess.PIPE,
    )
    output = proc.stdout.read()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise SystemExit(f"the {which} child failed ({proc.returncode})")
    result = json.loads(output)
    result["peak_mib"] = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--only", choices=("k6", "jmeter"))
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time DuckDB alone writing the requests sorted (see child_floor)",
    )
    parser.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        which, path, kind = args.child
        run = {"duckdb": child_duckdb, "floor": child_floor}.get(which, child_perflab)
        print(json.dumps(run(path, kind)))
        return

    print(f"machine: {os.cpu_count()} cores; load average {os.getloadavg()}")
    for kind in ("k6", "jmeter") if args.only is None else (args.only,):
        path, info = ensure(kind, args.dir, args.rows)
        size_mb = info["bytes"] / 1e6
        print(
            f"\n{kind}: {path.name}: {info['rows']:,} rows, {info['requests']:,} "
            f"HTTP requests, {size_mb:,.0f} MB"
        )
        runs: dict[str, list[dict]] = {"duckdb": [], "perflab": []}
        if args.floor:
            runs["floor"] = []
        for _ in range(args.repeats):
            for which in runs:
                runs[which].append(measure(which, path, kind))
        for which, done in runs.items():
            seconds = statistics.median(r["seconds"] for r in done)
            peak = max(r["peak_mib"] for r in done)
            extra = ""
            if which == "perflab":
                extra = f"  [{done[-1]['path']}; tables {done[-1]['tables']}]"
            each = ", ".join(f"{r['seconds']:.2f}" for r in done)
            print(
                f"  {which:8} {seconds:6.2f} s  {size_mb / seconds:6.0f} MB/s  "
                f"peak RSS {peak:5.0f} MiB  (runs: {each} s){extra}"
            )
        pairs = [
            d["seconds"] / p["seconds"]
            for d, p in zip(runs["duckdb"], runs["perflab"], strict=True)
        ]
        duckdb_s = statistics.median(r["seconds"] for r in runs["duckdb"])
        perflab_s = statistics.median(r["seconds"] for r in runs["perflab"])
        peak_mib = max(r["peak_mib"] for r in runs["perflab"])
        print(
            f"  ratio perflab / DuckDB speed: {duckdb_s / perflab_s:.2f} "
            f"(pairs {min(pairs):.2f}-{max(pairs):.2f}; aim: >= 0.50); "
            f"perflab peak {peak_mib:,.0f} MiB (aim: <= 1,024 MiB)"
        )
        if args.floor:
            floor_s = statistics.median(r["seconds"] for r in runs["floor"])
            print(
                f"  ratio floor / DuckDB speed:   {duckdb_s / floor_s:.2f} (the best "
                "an ingest storing requests in time order could reach)"
            )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()

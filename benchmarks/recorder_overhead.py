"""What perflab's recorder costs Locust: the same load with and without it.

Runs a FastHttpUser load (no think time) on loopback against a minimal keep-alive HTTP
server, in pairs of short runs without and with the recorder (the order alternating
from pair to pair, so a drift in the machine's speed falls on both sides), and prints
for each run Locust's own request rate and the Locust process's CPU time per request.
On a shared machine the rate of one run varies by several percent from the next, so
the summary is the median of the paired differences, with their quartiles: the cost
is a few percent at most only when that median is. Then it prints the recorder's own
CPU time per request measured in this process alone, without Locust.
The server runs in its own process (on uvloop when it is installed) so that Locust,
not the server, is the bottleneck; check that the Locust CPU column is near 100 % (one
core), else the rates compare the server. A run with failed requests is refused.

Usage::

    python benchmarks/recorder_overhead.py [--seconds 6] [--users 20] [--repeats 12]

Not a test: it prints numbers for a person to read; the README quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from multiprocessing import Process
from pathlib import Path

import perflab

RECORDER = Path(perflab.__file__).parent / "scenarios" / "_record.py"

LOCUSTFILE = """
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

class Hammer(FastHttpUser):
    wait_time = constant(0)

    @task
    def hit(self):
        self.client.get("/ping")
"""

RESPONSE = (
    b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n"
    b"Connection: keep-alive\r\n\r\nok"
)


class _Answer(asyncio.Protocol):
    def connection_made(self, transport):
        self.transport = transport
        self.buffer = b""

    def data_received(self, data):
        self.buffer += data
        while b"\r\n\r\n" in self.buffer:
            _, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
            self.transport.write(RESPONSE)


def _serve(port: int) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Answer, "127.0.0.1", port)
        await server.serve_forever()

    try:
        import uvloop
    except ImportError:  # the standard loop is slower, but still not the bottleneck
        asyncio.run(main())
    else:
        uvloop.run(main())


def _wait_for(port: int, seconds: float = 10.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise SystemExit(f"the benchmark's server did not start on port {port}")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run_once(
    host: str, locustfile: Path, seconds: int, users: int, record: bool, work: Path
):
    """One Locust run; returns (requests/s, CPU us per request, CPU %)."""
    run_dir = Path(tempfile.mkdtemp(dir=work))
    (run_dir / "raw").mkdir()
    files = f"{RECORDER},{locustfile}" if record else str(locustfile)
    env = dict(os.environ)
    if record:
        env["PERFLAB_RUN_DIR"] = str(run_dir)
    else:
        env.pop("PERFLAB_RUN_DIR", None)
    command = [
        sys.executable, "-m", "locust", "-f", files, "--headless", "--host", host,
        "-u", str(users), "-r", str(users), "-t", f"{seconds}s",
        "--csv", str(run_dir / "locust"), "--only-summary", "--loglevel", "WARNING",
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    started = time.monotonic()
    with open(run_dir / "locust.stderr", "wb") as stderr:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.monotonic() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        tail = (run_dir / "locust.stderr").read_text(errors="replace")[-2000:]
        raise SystemExit(f"locust exited with {process.returncode}:\n{tail}")
    with open(run_dir / "locust_stats.csv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    requests = int(row["Request Count"])
    failures = int(row["Failure Count"])
    if failures:
        raise SystemExit(
            f"{failures:,} of {requests:,} requests failed: the rates would measure "
            "errors, not the recorder"
        )
    rate = float(row["Requests/s"])
    cpu_s = usage.ru_utime + usage.ru_stime
    if record:
        files = (run_dir / "raw").glob("perflab_requests-*")
        recorded = sum(_recorded_rows(path) for path in files)
        if recorded < requests:
            print(f"  note: recorder kept {recorded} of {requests} requests")
    return rate, 1e6 * cpu_s / max(requests, 1), 100 * cpu_s / wall


def _recorded_rows(path: Path) -> int:
    """The rows in a recorder file, from its blocks' heads."""
    from perflab.recording import BLOCK_COLUMNS, BLOCK_HEAD, REQUEST_FILE_HEADER

    rows = 0
    with open(path, "rb") as handle:
        handle.seek(len(REQUEST_FILE_HEADER))
        while len(head := handle.read(BLOCK_HEAD.size)) == BLOCK_HEAD.size:
            _, count, meta = BLOCK_HEAD.unpack(head)
            rows += count
            handle.seek(meta + 8 * len(BLOCK_COLUMNS) * count, os.SEEK_CUR)
    return rows


def _quartiles(values: list[float]) -> str:
    low, _, high = statistics.quantiles(values, n=4)
    return f"quartiles {low:+.1f} to {high:+.1f} %, range {min(values):+.1f} to " + (
        f"{max(values):+.1f} %"
    )


def recorder_cpu_us(rows: int = 200_000) -> float:
    """The recorder's own CPU time per request, in microseconds: its request handler
    and its share of the once-a-second write, called in this process without
    Locust, so none of the noise of two processes sharing two cores. ``main``
    prints the median of three calls after a short one that warms Arrow up."""
    from perflab.recording import Recorder

    class Response:
        status_code = 200

    response = Response()
    # latencies and start times with all their digits, as Locust reports them
    rng = random.Random(0)
    latencies = [rng.uniform(0.5, 5.0) for _ in range(rows)]
    starts = [time.time() + i * 1e-4 for i in range(rows)]
    with tempfile.TemporaryDirectory() as tmp:
        recorder = Recorder(Path(tmp) / "requests.bin")
        started = time.process_time()
        for i in range(rows):
            recorder.on_request(
                "GET", "/ping", latencies[i], 2, response=response, start_time=starts[i]
            )
            if i % 10_000 == 9_999:
                recorder.flush()
        recorder.close()
        return 1e6 * (time.process_time() - started) / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=12, help="pairs of runs")
    args = parser.parse_args()

    port = _free_port()
    server = Process(target=_serve, args=(port,), daemon=True)
    server.start()
    _wait_for(port)
    host = f"http://127.0.0.1:{port}"
    results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            locustfile = work / "hammer.py"
            locustfile.write_text(LOCUSTFILE)
            for repeat in range(args.repeats):
                order = (False, True) if repeat % 2 == 0 else (True, False)
                for record in order:
                    result = run_once(
                        host, locustfile, args.seconds, args.users, record, work
                    )
                    results[record].append(result)
                    label = "with recorder   " if record else "without recorder"
                    print(
                        f"pair {repeat + 1} {label}: {result[0]:8.0f} req/s, "
                        f"{result[1]:6.1f} us CPU per request, "
                        f"Locust CPU {result[2]:5.1f} %",
                        flush=True,
                    )
    finally:
        server.terminate()

    base = statistics.median(r[0] for r in results[False])
    with_recorder = statistics.median(r[0] for r in results[True])
    cpu_base = statistics.median(r[1] for r in results[False])
    cpu_rec = statistics.median(r[1] for r in results[True])
    pairs = list(zip(results[False], results[True], strict=True))
    rate_cost = [100 * (1 - w[0] / b[0]) for b, w in pairs]
    cpu_cost = [100 * (w[1] / b[1] - 1) for b, w in pairs]
    print(
        f"\nmedian rate without recorder: {base:,.0f} req/s\n"
        f"median rate with recorder:    {with_recorder:,.0f} req/s\n"
        f"rate cost of the recorder:    {statistics.median(rate_cost):+.1f} % "
        f"(median of {len(pairs)} pairs; {_quartiles(rate_cost)})\n"
        f"CPU per request:              {cpu_base:.1f} us without, {cpu_rec:.1f} us "
        f"with; paired: {statistics.median(cpu_cost):+.1f} % "
        f"({_quartiles(cpu_cost)})"
    )
    print(f"rate cost, pair by pair:      {', '.join(f'{p:+.1f}' for p in rate_cost)}")
    recorder_cpu_us(20_000)  # warms the recorder up: not counted
    own = statistics.median(recorder_cpu_us() for _ in range(3))
    print(
        f"the recorder's own CPU:       {own:.2f} us per request, "
        f"{100 * own / cpu_base:.1f} % of Locust's {cpu_base:.1f} us without it"
    )


if __name__ == "__main__":
    main()

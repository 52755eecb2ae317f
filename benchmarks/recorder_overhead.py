"""What perflab's recorder costs Locust: the same load with and without it.

Runs a FastHttpUser load (no think time) on loopback against a minimal keep-alive HTTP
server, in its own process (on uvloop when it is installed) so that Locust, not the
server, is the bottleneck: Locust must keep one core busy, else the rates compare the
server (the output says how busy it was, and the interleaved design warns when it
was not). A run with failed requests is refused. Two designs:

``interleaved`` (the default)
    In each Locust process the recorder is attached and detached in turn, for
    phases of ``--phase`` seconds (0.2), after a warm-up; pairs of phases alternate
    their order (off, on, then on, off, ...). A recorded phase ends with the
    recorder's write of what it kept, so the write's cost falls in it too, as the
    once-a-second write does in a real run. On a shared virtual machine Locust's
    rate drifts by 10 to 20 % over seconds and from one process to the next;
    neighbouring phases of one process share most of that, so the paired
    differences measure the recorder far more tightly than whole runs can.
    Each phase's rate is its requests (Locust's own count) over its measured
    length; the rows the recorder wrote must equal the requests of its phases.
    ``--attach nothing`` runs the same phases with nothing attached, which checks
    the design itself: its cost must come out near zero. ``--attach listener``
    attaches a listener that does nothing: what Locust spends calling one more
    request listener, which any recorder pays, apart from the recorder's own
    work.
``separate``
    Pairs of whole runs without and with the recorder loaded as ``perflab run``
    loads it (``--seconds`` each, the order alternating from pair to pair); prints
    Locust's own request rate and the process's CPU time per request for each run.
    Closest to a real run, but between runs the rate varies by several percent
    even on a quiet machine.

Both print the rates without and with the recorder and the paired costs (the fall
in the rate): their median with a bootstrap 95 % interval and quartiles, and their
mean with its interval. The median is the figure to read: now and then a phase or
a run loses a large part of its time to something else on the machine, and those
stalls, on either side of a pair, swing the mean. Then the recorder's own CPU time
per request is measured in this process alone, without Locust.

Usage::

    python benchmarks/recorder_overhead.py [--design interleaved|separate|both]
        [--runs 3] [--pairs 150] [--phase 0.2]                # interleaved
        [--attach recorder|listener|nothing]
        [--repeats 12] [--seconds 6]                          # separate
        [--users 20]

Not a test: it prints numbers for a person to read; the README quotes them.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import math
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

#: The same user, with a greenlet that attaches and detaches a recorder in phases
#: (settings in $PERFLAB_BENCH) and writes what each phase did (requests, seconds,
#: CPU seconds of the process), then stops Locust.
INTERLEAVED = (
    LOCUSTFILE
    + """
import json
import os
import time
from pathlib import Path

import gevent
from locust import events

from perflab.recording import Recorder


@events.test_start.add_listener
def _start(environment, **_):
    gevent.spawn(_alternate, environment)


def _nothing(**_):
    pass


def _alternate(environment):
    settings = json.loads(os.environ["PERFLAB_BENCH"])
    recorder = Recorder(Path(settings["file"]), flush_every=None)
    listener = {"recorder": recorder.on_request, "listener": _nothing}.get(
        settings["attach"]
    )
    request, total = environment.events.request, environment.stats.total
    phases = []
    gevent.sleep(settings["warmup"])
    for pair in range(settings["pairs"]):
        for record in (False, True) if pair % 2 == 0 else (True, False):
            attach = record and listener is not None
            if attach:
                request.add_listener(listener)
            count, clock = total.num_requests, time.perf_counter()
            cpu = time.process_time()
            gevent.sleep(settings["phase"])
            if attach:
                request.remove_listener(listener)
                recorder.flush()
            seconds, cpu = time.perf_counter() - clock, time.process_time() - cpu
            phases.append([pair, record, total.num_requests - count, seconds, cpu])
    recorder.close()
    result = {"phases": phases, "recorded": recorder.count}
    Path(settings["out"]).write_text(json.dumps(result))
    environment.runner.quit()
"""
)

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


def _locust(
    host: str, files: str, users: int, seconds: float, run_dir: Path, env: dict
) -> tuple[dict, float, float]:
    """Run Locust headless until it stops (by itself, or at ``seconds``); returns
    its Aggregated stats row, its CPU seconds and its wall seconds."""
    command = [
        sys.executable, "-m", "locust", "-f", files, "--headless", "--host", host,
        "-u", str(users), "-r", str(users), "-t", f"{math.ceil(seconds)}s",
        "--csv", str(run_dir / "locust"), "--only-summary", "--loglevel", "WARNING",
        "--exit-code-on-error", "0",
    ]  # fmt: skip
    started = time.monotonic()
    with open(run_dir / "locust.stderr", "wb") as stderr:
        process = subprocess.Popen(
            command, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
    # Locust stops itself at -t; a Locust that hangs is killed a minute later
    deadline = started + seconds + 60
    while (waited := os.wait4(process.pid, os.WNOHANG))[0] == 0:
        if time.monotonic() > deadline:
            process.kill()
            os.wait4(process.pid, 0)
            raise SystemExit(
                f"locust was still running {seconds + 60:.0f} s on: killed"
            )
        time.sleep(0.05)
    _, status, usage = waited
    wall = time.monotonic() - started
    if (code := os.waitstatus_to_exitcode(status)) != 0:
        tail = (run_dir / "locust.stderr").read_text(errors="replace")[-2000:]
        raise SystemExit(f"locust exited with {code}:\n{tail}")
    with open(run_dir / "locust_stats.csv", newline="") as handle:
        row = next(r for r in csv.DictReader(handle) if r["Name"] == "Aggregated")
    if failures := int(row["Failure Count"]):
        raise SystemExit(
            f"{failures:,} of {int(row['Request Count']):,} requests failed: the "
            "rates would measure errors, not the recorder"
        )
    return row, usage.ru_utime + usage.ru_stime, wall


def run_separate(
    host: str, locustfile: Path, seconds: int, users: int, record: bool, work: Path
) -> tuple[float, float, float]:
    """One whole run; returns (requests/s, CPU us per request, CPU %)."""
    run_dir = Path(tempfile.mkdtemp(dir=work))
    (run_dir / "raw").mkdir()
    files = f"{RECORDER},{locustfile}" if record else str(locustfile)
    env = dict(os.environ)
    env.pop("PERFLAB_RUN_DIR", None)
    if record:
        env["PERFLAB_RUN_DIR"] = str(run_dir)
    row, cpu_s, wall = _locust(host, files, users, seconds, run_dir, env)
    requests = int(row["Request Count"])
    if record:
        files = (run_dir / "raw").glob("perflab_requests-*")
        recorded = sum(_recorded_rows(path) for path in files)
        if recorded < requests:
            print(f"  note: recorder kept {recorded} of {requests} requests")
    rate = float(row["Requests/s"])
    return rate, 1e6 * cpu_s / max(requests, 1), 100 * cpu_s / wall


def run_interleaved(
    host: str,
    locustfile: Path,
    users: int,
    pairs: int,
    phase: float,
    attach: str,
    work: Path,
    warmup: float = 3.0,
) -> tuple[list[tuple[float, float]], float, float]:
    """One Locust process alternating phases without and with the recorder (or
    what ``attach`` names).

    Returns each pair's (rate without, rate with) in requests/s; the median share
    of a core Locust used in a phase (near 1 when it is the bottleneck); and its
    median CPU time per request, in us, in the phases without.
    """
    run_dir = Path(tempfile.mkdtemp(dir=work))
    settings = {
        "pairs": pairs,
        "phase": phase,
        "warmup": warmup,
        "attach": attach,
        "file": str(run_dir / "requests.bin"),
        "out": str(run_dir / "phases.json"),
    }
    env = dict(os.environ, PERFLAB_BENCH=json.dumps(settings))
    env.pop("PERFLAB_RUN_DIR", None)
    limit = warmup + 2 * pairs * phase + 30  # a bound only: the phases stop Locust
    _locust(host, str(locustfile), users, limit, run_dir, env)
    try:
        done = json.loads(Path(settings["out"]).read_text())
    except FileNotFoundError:
        tail = (run_dir / "locust.stderr").read_text(errors="replace")[-2000:]
        raise SystemExit(f"Locust stopped before its phases ended:\n{tail}") from None
    rates: dict[int, dict[bool, float]] = {}
    recorded_phases = 0
    for pair, record, requests, seconds, _ in done["phases"]:
        rates.setdefault(pair, {})[record] = requests / seconds
        recorded_phases += requests if record else 0
    expected = recorded_phases if attach == "recorder" else 0
    if done["recorded"] != expected:
        raise SystemExit(
            f"the recorder wrote {done['recorded']:,} rows, but its phases sent "
            f"{expected:,} requests"
        )
    busy = statistics.median(cpu / seconds for *_, seconds, cpu in done["phases"])
    cpu_us = statistics.median(
        1e6 * cpu / requests
        for _, record, requests, _, cpu in done["phases"]
        if not record and requests
    )
    return [(r[False], r[True]) for _, r in sorted(rates.items())], busy, cpu_us


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


def _interval(
    values: list[float], estimate=statistics.median, draws: int = 4000
) -> tuple[float, float]:
    """A bootstrap 95 % interval of ``estimate`` (the pairs resampled)."""
    rng = random.Random(1)
    found = sorted(estimate(rng.choices(values, k=len(values))) for _ in range(draws))
    return found[int(0.025 * draws)], found[int(0.975 * draws) - 1]


def _costs(label: str, pairs: list[tuple[float, float]]) -> list[float]:
    """Print the rates without and with what is measured (the recorder, or what
    ``--attach`` names) and the paired costs (the fall in the rate, in %); returns
    the costs."""
    costs = [100 * (1 - on / off) for off, on in pairs]
    low, high = _interval(costs)
    mean_low, mean_high = _interval(costs, statistics.fmean)
    print(
        f"{label}:\n"
        f"  median rate without:          "
        f"{statistics.median(off for off, _ in pairs):,.0f} req/s\n"
        f"  median rate with:             "
        f"{statistics.median(on for _, on in pairs):,.0f} req/s\n"
        f"  rate cost:                    median {statistics.median(costs):+.2f} % "
        f"of {len(costs)} pairs, bootstrap 95 % interval {low:+.2f} to "
        f"{high:+.2f} %\n"
        f"                                ({_quartiles(costs)})\n"
        f"                                mean {statistics.fmean(costs):+.2f} % "
        f"({mean_low:+.2f} to {mean_high:+.2f} %)",
        flush=True,
    )
    return costs


def recorder_cpu_us(rows: int = 200_000) -> float:
    """The recorder's own CPU time per request, in microseconds: its request handler
    called as Locust's event calls it (every field by keyword) and its share of the
    writes, in this process without Locust, so none of the noise of two processes
    sharing two cores. ``main`` prints the median of three calls after a short one
    that warms it up."""
    from perflab.recording import Recorder

    class Response:
        status_code = 200

    # latencies and start times with all their digits, as Locust reports them
    rng = random.Random(0)
    latencies = [rng.uniform(0.5, 5.0) for _ in range(rows)]
    starts = [time.time() + i * 1e-4 for i in range(rows)]
    meta = {
        "request_type": "GET",
        "name": "/ping",
        "context": {},
        "response": Response(),
        "exception": None,
        "start_time": 0.0,
        "url": "http://127.0.0.1/ping",
        "response_length": 2,
        "response_time": 0.0,
    }
    with tempfile.TemporaryDirectory() as tmp:
        recorder = Recorder(Path(tmp) / "requests.bin", flush_every=None)
        on_request = recorder.on_request
        started = time.process_time()
        for i in range(rows):
            meta["start_time"], meta["response_time"] = starts[i], latencies[i]
            on_request(**meta)
            if i % 10_000 == 9_999:
                recorder.flush()
        recorder.close()
        return 1e6 * (time.process_time() - started) / rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--design", choices=("interleaved", "separate", "both"), default="interleaved"
    )
    parser.add_argument("--users", type=int, default=20)
    parser.add_argument("--runs", type=int, default=3, help="interleaved processes")
    parser.add_argument("--pairs", type=int, default=150, help="pairs of phases a run")
    parser.add_argument("--phase", type=float, default=0.2, help="seconds a phase")
    parser.add_argument(
        "--attach",
        choices=("recorder", "listener", "nothing"),
        default="recorder",
        help="what the interleaved phases attach: the recorder, a listener that "
        "does nothing, or nothing (a control of the design)",
    )
    parser.add_argument("--repeats", type=int, default=12, help="pairs of whole runs")
    parser.add_argument("--seconds", type=int, default=6, help="seconds a whole run")
    args = parser.parse_args()
    interleaved = args.design in ("interleaved", "both")
    separate = args.design in ("separate", "both")
    if min(args.users, args.runs) < 1:
        parser.error("--users and --runs need at least 1")
    if interleaved and (args.pairs < 10 or args.phase <= 0):
        parser.error("--pairs needs at least 10 and --phase more than 0 s")
    if separate and (args.repeats < 2 or args.seconds < 1):
        parser.error("--repeats needs at least 2 and --seconds at least 1")

    port = _free_port()
    server = Process(target=_serve, args=(port,), daemon=True)
    server.start()
    _wait_for(port)
    host = f"http://127.0.0.1:{port}"
    try:
        with tempfile.TemporaryDirectory() as tmp:
            work = Path(tmp)
            # Locust's CPU per request: of the steady phases when there are
            # some, else of whole runs, start and stop included
            base = _interleaved(args, host, work) if interleaved else None
            whole = _separate(args, host, work) if separate else None
    finally:
        server.terminate()

    recorder_cpu_us(20_000)  # warms the recorder up: not counted
    own = statistics.median(recorder_cpu_us() for _ in range(3))
    if base is not None:
        share = f", {100 * own / base:.1f} % of Locust's {base:.1f} us in a phase"
    else:
        share = (
            f", {100 * own / whole:.1f} % of Locust's {whole:.1f} us in a whole run "
            "(start and stop included)"
        )
    print(f"the recorder's own CPU: {own:.2f} us per request{share}")


def _interleaved(args, host: str, work: Path) -> float:
    """The interleaved runs; returns Locust's median CPU us per request in the
    phases without the recorder."""
    locustfile = work / "interleaved.py"
    locustfile.write_text(INTERLEAVED)
    what = {
        "recorder": "recorder",
        "listener": "a listener that does nothing",
        "nothing": "control: nothing attached",
    }[args.attach]
    print(
        f"interleaved ({what}): {args.runs} runs of {args.pairs} pairs of "
        f"{args.phase} s phases, {args.users} users",
        flush=True,
    )
    pooled, cpu = [], []
    for run in range(args.runs):
        pairs, busy, cpu_us = run_interleaved(
            host, locustfile, args.users, args.pairs, args.phase, args.attach, work
        )
        _costs(
            f"run {run + 1} (Locust busy {100 * busy:.1f} % of a core in a phase, "
            f"{cpu_us:.1f} us CPU per request)",
            pairs,
        )
        if busy < 0.9:
            print(
                "  warning: Locust was not the bottleneck in most phases, so these "
                "rates measure the server or the machine, not what the recorder "
                "costs Locust; use more --users"
            )
        pooled += pairs
        cpu.append(cpu_us)
    if args.runs > 1:
        _costs(f"all {args.runs} runs", pooled)
    return statistics.median(cpu)


def _separate(args, host: str, work: Path) -> float:
    """Pairs of whole runs; returns Locust's median CPU us per request without the
    recorder."""
    locustfile = work / "hammer.py"
    locustfile.write_text(LOCUSTFILE)
    results: dict[bool, list[tuple[float, float, float]]] = {False: [], True: []}
    for repeat in range(args.repeats):
        for record in (False, True) if repeat % 2 == 0 else (True, False):
            result = run_separate(
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
    pairs = list(zip(results[False], results[True], strict=True))
    costs = _costs(
        f"separate: {args.repeats} pairs of {args.seconds} s runs",
        [(off[0], on[0]) for off, on in pairs],
    )
    print(f"  rate cost, pair by pair:      {', '.join(f'{c:+.1f}' for c in costs)}")
    cpu_base = statistics.median(off[1] for off, _ in pairs)
    cpu_cost = [100 * (on[1] / off[1] - 1) for off, on in pairs]
    print(
        f"  CPU per request:              {cpu_base:.1f} us without, "
        f"{statistics.median(on[1] for _, on in pairs):.1f} us with; paired "
        f"{statistics.median(cpu_cost):+.1f} % ({_quartiles(cpu_cost)})"
    )
    return cpu_base


if __name__ == "__main__":
    main()

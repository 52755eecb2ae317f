"""How often two real runs of the same service are called different: A/A pairs.

Starts the sample service on a free loopback port with a fixed 20 ms service time on
its listing query (pool of 8 connections), then runs ``--runs`` short Locust runs of
5 users one after another against it (a warm-up run first, not counted), and
compares each run with the one before (:func:`perflab.comparing.compare`): so
``--runs`` 21 gives 20 A/A pairs of the same build. Then an A/B pair: one run against
the same service, one against a service whose query is 20 % slower.

For each pair it prints each endpoint's verdict and p50 change, and at the end how
many pairs had every endpoint "no significant change" and how many passed the
regression gate (:func:`perflab.comparing.regressions` empty), with the default run
noise (:data:`perflab.comparing.RUN_NOISE`) and without any. It also estimates the
run noise from the A/A runs (:func:`perflab.comparing.estimate_run_noise`): that is
how the default was measured. Run it on an otherwise quiet machine.

``--keep DIR`` keeps the runs in ``DIR``; ``--runs-from DIR`` analyses runs kept
before instead of making new ones (so a default fitted on one set of runs can be
checked on another).

Usage::

    python benchmarks/real_a_a.py [--runs 21] [--hold 30] [--keep DIR]
    python benchmarks/real_a_a.py --runs-from DIR

Not a test: it prints numbers for a person to read; the README quotes them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from realruns import SERVICE_MS, steady_runs  # noqa: E402

from perflab.comparing import (  # noqa: E402
    RUN_NOISE,
    UNCHANGED,
    RunNoise,
    compare,
    estimate_run_noise,
    regressions,
)
from perflab.store import open_run  # noqa: E402


def describe(comparison) -> str:
    cells = []
    changes = comparison.changes.set_index(["endpoint", "metric"])["relative"]
    for row in comparison.endpoints.itertuples(index=False):
        p50 = changes.loc[(row.endpoint, "p50")]
        cells.append(f"{row.endpoint}: {row.verdict} (p50 {p50:+.1%})")
    gate = "gate passes" if not regressions(comparison) else "gate fails"
    return "; ".join(cells) + f"; {gate}"


def make_runs(folder: Path, count: int, hold: int):
    shape = f"1s:5,{hold}s:5"
    parts = {"a-a": (SERVICE_MS, count), "base": (SERVICE_MS, 1)}
    parts["candidate"] = (SERVICE_MS * 1.2, 1)
    for name, (service_ms, runs) in parts.items():
        (folder / name).mkdir()
        steady_runs(folder / name, service_ms, runs, shape, name)
    return kept_runs(folder)


def kept_runs(folder: Path):
    """The A/A runs, the A/B base and the A/B candidate that ``make_runs`` left in
    ``folder``, without the warm-up run that began each part."""
    parts = []
    for name in ("a-a", "base", "candidate"):
        runs = sorted(
            (open_run(path) for path in (folder / name / "runs").iterdir()),
            key=lambda run: run.meta["launched"],
        )
        parts.append(runs[1:])
    a_a, (base,), (candidate,) = parts
    return a_a, base, candidate


def report(a_a, base, candidate, noise: RunNoise, label: str) -> None:
    print(f"\n== run noise {label} ==")
    unchanged = passed = 0
    for i, (first, second) in enumerate(zip(a_a, a_a[1:], strict=False)):
        comparison = compare(first, second, run_noise=noise)
        unchanged += bool((comparison.endpoints["verdict"] == UNCHANGED).all())
        passed += not regressions(comparison)
        window = comparison.candidate_window.seconds
        print(f"A/A {i + 1:2d} ({window:.1f} s): {describe(comparison)}")
    pairs = len(a_a) - 1
    print(
        f"A/A: {unchanged} of {pairs} pairs with every endpoint unchanged; "
        f"{passed} of {pairs} passed the regression gate"
    )
    comparison = compare(base, candidate, run_noise=noise)
    print(f"A/B, query 20 % slower: {describe(comparison)}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--hold", type=int, default=30, help="seconds at 5 users")
    parser.add_argument("--keep", type=Path, help="keep the runs in this folder")
    parser.add_argument("--runs-from", type=Path, help="analyse runs kept before")
    args = parser.parse_args()

    if args.runs_from:
        a_a, base, candidate = kept_runs(args.runs_from)
    elif args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
        a_a, base, candidate = make_runs(args.keep, args.runs, args.hold)
    else:
        folder = Path(tempfile.mkdtemp(prefix="perflab-a-a-"))
        a_a, base, candidate = make_runs(folder, args.runs, args.hold)

    estimate, table = estimate_run_noise(a_a)
    print(f"run noise estimated from the {len(a_a)} A/A runs: {estimate}")
    print(table.to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    report(a_a, base, candidate, RUN_NOISE, f"{RUN_NOISE} (the default)")
    report(a_a, base, candidate, RunNoise(0, 0), "none (within-run tests only)")
    if not (args.runs_from or args.keep):
        shutil.rmtree(folder)


if __name__ == "__main__":
    main()

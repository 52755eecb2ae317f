"""How often two real runs of the same service are called different: A/A pairs.

Starts the sample service on a free loopback port with a fixed 20 ms service time on
its listing query (pool of 8 connections), then runs ``--runs`` short Locust runs of
5 users one after another against it (a warm-up run first, not counted), and
compares each run with the one before (:func:`perflab.comparing.compare`): so
``--runs`` 21 gives 20 A/A pairs of the same build. Then an A/B pair: one run against
the same service, one against a service whose query is 20 % slower.

For each pair it prints each endpoint's verdict and p50 change, and at the end how
many pairs had every endpoint "no significant change" and how many passed the
regression gate (:func:`perflab.comparing.regressions` empty). The comparison's
intervals come from resampling time blocks inside each run; what differs between
two runs as a whole (the machine's state when each ran) is not in them, and this
script measures how much that weighs here. Run it on an otherwise quiet machine.

Usage::

    python benchmarks/real_a_a.py [--runs 21] [--hold 14]

Not a test: it prints numbers for a person to read; the README quotes them.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from realruns import SERVICE_MS, steady_runs  # noqa: E402

from perflab.comparing import UNCHANGED, compare, regressions  # noqa: E402


def describe(comparison) -> str:
    cells = []
    changes = comparison.changes.set_index(["endpoint", "metric"])["relative"]
    for row in comparison.endpoints.itertuples(index=False):
        p50 = changes.loc[(row.endpoint, "p50")]
        cells.append(f"{row.endpoint}: {row.verdict} (p50 {p50:+.1%})")
    gate = "gate passes" if not regressions(comparison) else "gate fails"
    return "; ".join(cells) + f"; {gate}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=21)
    parser.add_argument("--hold", type=int, default=14, help="seconds at 5 users")
    args = parser.parse_args()
    shape = f"1s:5,{args.hold}s:5"

    with tempfile.TemporaryDirectory() as folder:
        folder = Path(folder)
        runs = steady_runs(folder, SERVICE_MS, args.runs, shape, "a-a")
        unchanged = passed = 0
        for i, (base, candidate) in enumerate(zip(runs, runs[1:], strict=False)):
            comparison = compare(base, candidate)
            unchanged += bool((comparison.endpoints["verdict"] == UNCHANGED).all())
            passed += not regressions(comparison)
            window = comparison.candidate_window.seconds
            print(f"A/A {i + 1:2d} ({window:.1f} s): {describe(comparison)}")
        pairs = len(runs) - 1
        print(
            f"\nA/A: {unchanged} of {pairs} pairs with every endpoint unchanged; "
            f"{passed} of {pairs} passed the regression gate"
        )

        (base,) = steady_runs(folder, SERVICE_MS, 1, shape, "base")
        (candidate,) = steady_runs(folder, SERVICE_MS * 1.2, 1, shape, "candidate")
        print(f"\nA/B, query 20 % slower: {describe(compare(base, candidate))}")


if __name__ == "__main__":
    main()

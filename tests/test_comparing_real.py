"""Comparisons of real runs against the sample service (tests/realruns.py): repeated
A/A pairs, and an A/B pair whose service is 20 % slower on one endpoint.

These take about seven minutes of real load, so they are marked ``extended`` and
left out of the default test run (``pyproject.toml``); ``.ci/run`` runs them after
it: ``python -m pytest -m extended``. Run them on a quiet machine: another load
during one run of a pair is a real difference between the two runs, which no test
of the pair can tell from a change of the service.
"""

from __future__ import annotations

import pytest
from realruns import HEALTH, QUERY, SERVICE_MS, steady_runs

from perflab.comparing import FASTER, SLOWER, UNCHANGED, compare, render_comparison

pytestmark = [pytest.mark.slow, pytest.mark.extended]

#: Each compared run: Locust brings the 5 users up within about 4 s, leaving some
#: 10 s of steady state, enough for bootstrap blocks of a second.
MEASURED = "1s:5,14s:5"


def test_repeated_real_a_a_pairs_show_no_significant_change(tmp_path):
    # 21 runs of one build, each compared with the one before: 20 A/A pairs
    runs = steady_runs(tmp_path, SERVICE_MS, 21, MEASURED)
    changed = []
    for base, candidate in zip(runs, runs[1:], strict=False):
        comparison = compare(base, candidate)
        assert comparison.differences == []
        if not (comparison.endpoints["verdict"] == UNCHANGED).all():
            changed.append(render_comparison(comparison))
    assert len(changed) <= 1, "\n\n".join(changed)


def test_real_a_b_pair_finds_the_slower_endpoint_only(tmp_path):
    (base,) = steady_runs(tmp_path, SERVICE_MS, 1, MEASURED, "base")
    (candidate,) = steady_runs(tmp_path, SERVICE_MS * 1.2, 1, MEASURED, "candidate")

    comparison = compare(base, candidate)
    detail = render_comparison(comparison)
    verdicts = comparison.endpoints.set_index("endpoint")["verdict"]
    assert verdicts[QUERY] == SLOWER, detail
    assert verdicts[HEALTH] not in (FASTER, SLOWER), detail
    changes = comparison.changes.set_index(["endpoint", "metric"])
    # the listing's latency is the 20 ms service time plus a few ms of HTTP and
    # Python, so 4 ms more service time makes it about 15 to 20 % slower
    p50 = changes.loc[(QUERY, "p50")]
    assert 0.08 < p50["relative"] < 0.25, detail
    assert p50["relative_low"] > 0.05, detail

"""Locust scenarios of the load-testing plan, run by ``perflab run --scenario NAME``.

Each scenario is a locustfile in this folder; :func:`scenario_path` finds it by name.
Every scenario logs in on start as the plan does, uses FastHttpUser (they need only
HTTP), and follows the stages ``perflab run`` hands over (:mod:`perflab.shapes`).
This package's ``__init__`` does not import Locust; the scenario files do.
"""

from __future__ import annotations

from pathlib import Path

from perflab.errors import LaunchError

_HERE = Path(__file__).resolve().parent

#: Think time between a user's tasks, ``MIN,MAX`` seconds; the plan uses 1 to 2 s.
WAIT_ENV = "PERFLAB_WAIT_S"

#: When set, each user starts one task every this many seconds (Locust's
#: ``constant_pacing``) instead of thinking between tasks: an intended rate, which
#: lets the report correct for coordinated omission.
PACE_ENV = "PERFLAB_PACE_S"

#: Scenario name -> what it exercises.
SCENARIOS = {
    "newsletter": "Scenario 1: newsletter scheduling (POST .../newsletter/schedule)",
    "alerts": "Scenario 2: real-time alert distribution (POST /api/v1/alerts)",
    "publications": "Scenario 3: publication management, tasks weighted 3:2:1",
    "analytics": "Scenario 4: analytics queries (engagement and performance)",
    "plan": "All four scenarios together, one user class each",
}


def scenario_path(name: str) -> Path:
    """The locustfile of a bundled scenario, or a path the user gave."""
    if name in SCENARIOS:
        return _HERE / f"{name}.py"
    path = Path(name)
    if path.is_file():
        return path.resolve()
    raise LaunchError(
        f"Unknown scenario {name!r}: give one of {', '.join(SCENARIOS)} or the path "
        "of a locustfile."
    )

"""Load shapes: how many users a run has over time.

Stages are written like k6's ``stages`` option, as ``DURATION:USERS`` pairs separated by
commas, for example ``10s:20,40s:20,10s:0`` (ramp to 20 users over 10 s, hold 40 s, ramp
down over 10 s). Users move linearly from the previous stage's count (0 at the start) to
each stage's count over its duration. A run following stages stops by itself when the
last stage ends.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass

from locust import LoadTestShape

#: The environment variable through which ``perflab run`` hands stages to Locust.
STAGES_ENV = "PERFLAB_STAGES"

_DURATION = re.compile(
    r"^(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s?)?$"
)


@dataclass(frozen=True)
class Stage:
    """One stage: reach ``users`` over ``duration_s`` seconds."""

    duration_s: float
    users: int

    def to_json(self) -> dict:
        return {"duration_s": self.duration_s, "users": self.users}


def parse_duration(text: str) -> float:
    """Seconds in a duration such as ``90``, ``30s``, ``1m30s`` or ``1h``."""
    match = _DURATION.match(text.strip())
    if not text.strip() or not match or not any(match.groups()):
        raise ValueError(f"{text!r} is not a duration; write it like 30s, 2m or 1m30s.")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
    return hours * 3600 + minutes * 60 + seconds


def parse_stages(text: str) -> list[Stage]:
    """Parse ``DURATION:USERS,...`` into stages.

    Raises
    ------
    ValueError
        Naming the stage that is malformed and showing the expected form.
    """
    stages = []
    for number, part in enumerate(text.split(","), start=1):
        duration, sep, users = part.strip().partition(":")
        try:
            if not sep:
                raise ValueError("missing ':'")
            stage = Stage(parse_duration(duration), int(users))
        except ValueError as exc:
            raise ValueError(
                f"Stage {number} ({part.strip()!r}) is not DURATION:USERS, for "
                f"example 30s:20 ({exc})."
            ) from None
        if stage.duration_s <= 0 or stage.users < 0:
            raise ValueError(
                f"Stage {number} ({part.strip()!r}) needs a positive duration and "
                "zero or more users."
            )
        stages.append(stage)
    return stages


def format_stages(stages: list[Stage]) -> str:
    """The ``DURATION:USERS,...`` text of a list of stages."""
    return ",".join(f"{s.duration_s:g}s:{s.users}" for s in stages)


def total_duration(stages: list[Stage]) -> float:
    return sum(stage.duration_s for stage in stages)


def _locate(stages: list[Stage], elapsed_s: float) -> tuple[Stage, int, float] | None:
    """The stage running at a time, the users before it and the time into it."""
    previous = 0
    for stage in stages:
        if elapsed_s < stage.duration_s:
            return stage, previous, elapsed_s
        elapsed_s -= stage.duration_s
        previous = stage.users
    return None


def users_at(stages: list[Stage], elapsed_s: float) -> float | None:
    """Planned users at a time into the run; None once the last stage has ended."""
    located = _locate(stages, elapsed_s)
    if located is None:
        return None
    stage, previous, into = located
    return previous + (stage.users - previous) * into / stage.duration_s


class StagesShape(LoadTestShape):
    """A Locust load shape following the stages in ``$PERFLAB_STAGES``.

    Each tick asks for the users the stages plan at that moment, with a spawn rate
    that keeps up with the current stage's slope; after the last stage the shape
    returns None and Locust stops the run.
    """

    def __init__(self):
        super().__init__()
        self.stages = parse_stages(os.environ.get(STAGES_ENV, "10s:10,20s:10,5s:0"))

    def tick(self):
        elapsed = self.get_run_time()
        located = _locate(self.stages, elapsed)
        if located is None:
            return None
        stage, previous, _ = located
        users = users_at(self.stages, elapsed)
        rising = stage.users > previous
        slope = abs(stage.users - previous) / stage.duration_s
        return (math.ceil(users) if rising else math.floor(users)), max(slope, 1.0)

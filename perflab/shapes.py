"""Load shapes: how many users a run has over time.

Stages are written like k6's ``stages`` option, as ``DURATION:USERS`` pairs separated by
commas, for example ``10s:20,40s:20,10s:0`` (ramp to 20 users over 10 s, hold 40 s, ramp
down over 10 s). Users move linearly from the previous stage's count (0 at the start) to
each stage's count over its duration. A run following stages stops by itself when the
last stage ends.

A *step load* raises users in equal steps and holds each level long enough to settle,
to measure throughput against users (see :mod:`perflab.capacity`). It is written
``steps:START:STEP:COUNT:HOLD[:RAMP]``, for example ``steps:2:2:6:5s`` (2, 4, ... 12
users, each level held 5 s, reached by a 1 s ramp), and is nothing but a list of
stages with short ramps: :func:`parse_shape` accepts either form and returns stages.

This module does not import Locust (importing Locust monkey-patches the process with
gevent); the Locust shape class that follows the stages is in
:mod:`perflab.scenarios.common`.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

#: The environment variable through which ``perflab run`` hands stages to Locust.
STAGES_ENV = "PERFLAB_STAGES"

#: Prefix of a step-load spec, see :func:`step_stages`.
STEPS_PREFIX = "steps:"

#: Seconds the ramp to each step level takes, unless the spec says otherwise.
DEFAULT_STEP_RAMP_S = 1.0

#: Stages used when none are given.
DEFAULT_STAGES = "10s:20,40s:20,10s:0"

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


def step_stages(
    start: int,
    step: int,
    count: int,
    hold_s: float,
    ramp_s: float = DEFAULT_STEP_RAMP_S,
) -> list[Stage]:
    """Stages of a step load: users rising in equal steps, each level held.

    Parameters
    ----------
    start
        Users of the first level (at least 1).
    step
        Users added at each further level (at least 1).
    count
        Number of levels (at least 1); the last one has
        ``start + (count - 1) * step`` users.
    hold_s
        Seconds each level is held once reached.
    ramp_s
        Seconds the ramp to each level takes (from 0 for the first); short, so that
        almost all the time is spent at a level.

    Returns
    -------
    list of Stage
        ``count`` pairs (ramp, hold), then a ramp down to 0 users over ``ramp_s``.
    """
    if start < 1 or step < 1 or count < 1:
        raise ValueError(
            "A step load needs START, STEP and COUNT of at least 1, not "
            f"{start}, {step} and {count}."
        )
    if hold_s <= 0 or ramp_s <= 0:
        raise ValueError(
            f"A step load needs a positive HOLD and RAMP, not {hold_s:g} s and "
            f"{ramp_s:g} s."
        )
    stages = []
    for level in range(count):
        users = start + level * step
        stages += [Stage(ramp_s, users), Stage(hold_s, users)]
    return [*stages, Stage(ramp_s, 0)]


def parse_steps(text: str) -> list[Stage]:
    """Parse ``steps:START:STEP:COUNT:HOLD[:RAMP]`` into the stages of a step load.

    For example ``steps:2:2:6:5s`` is 2, 4, 6, 8, 10 and 12 users, each held 5 s after
    a 1 s ramp; ``steps:10:10:5:1m:5s`` is 10 to 50 users, each held a minute after a
    5 s ramp. See :func:`step_stages`.

    Raises
    ------
    ValueError
        Saying which part is malformed and showing the expected form.
    """
    body = text.strip()
    if body.lower().startswith(STEPS_PREFIX):
        body = body[len(STEPS_PREFIX) :]
    parts = [part.strip() for part in body.split(":")]
    form = "steps:START:STEP:COUNT:HOLD[:RAMP], for example steps:2:2:6:5s"
    if len(parts) not in (4, 5):
        raise ValueError(f"{text!r} is not a step load; write it as {form}.")
    try:
        start, step, count = (int(part) for part in parts[:3])
    except ValueError:
        raise ValueError(
            f"{text!r}: START, STEP and COUNT must be whole numbers of users; write "
            f"it as {form}."
        ) from None
    hold_s = parse_duration(parts[3])
    ramp_s = parse_duration(parts[4]) if len(parts) == 5 else DEFAULT_STEP_RAMP_S
    return step_stages(start, step, count, hold_s, ramp_s)


def parse_shape(text: str) -> list[Stage]:
    """Stages from either a stage list (``10s:20,40s:20,10s:0``) or a step-load spec
    (``steps:2:2:6:5s``, see :func:`parse_steps`).

    Raises
    ------
    ValueError
        When the text is neither, naming the part that is malformed.
    """
    if text.strip().lower().startswith(STEPS_PREFIX):
        return parse_steps(text)
    return parse_stages(text)


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


def tick(stages: list[Stage], elapsed_s: float) -> tuple[int, float] | None:
    """What a Locust shape asks for at a time into the run.

    Returns
    -------
    tuple or None
        ``(users, spawn_rate)``: the users the stages plan now (rounded towards the
        stage's target) and a spawn rate that keeps up with the stage's slope (at least
        1 user/s); None once the last stage has ended, which stops the run.
    """
    located = _locate(stages, elapsed_s)
    if located is None:
        return None
    stage, previous, _ = located
    users = users_at(stages, elapsed_s)
    rising = stage.users > previous
    slope = abs(stage.users - previous) / stage.duration_s
    return (math.ceil(users) if rising else math.floor(users)), max(slope, 1.0)

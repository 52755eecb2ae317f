"""What the plan's scenarios share: logging in on start, think time, the load shape."""

from __future__ import annotations

import os

from locust import LoadTestShape, between, constant_pacing
from locust.contrib.fasthttp import FastHttpUser

from perflab import shapes
from perflab.scenarios import PACE_ENV, WAIT_ENV


def think_time():
    """Locust wait_time: one task every ``$PERFLAB_PACE_S`` seconds when it is set,
    else a think time from ``$PERFLAB_WAIT_S`` (default the plan's 1 to 2 s)."""
    pace = os.environ.get(PACE_ENV)
    if pace:
        return constant_pacing(float(pace))
    low, _, high = os.environ.get(WAIT_ENV, "1,2").partition(",")
    return between(float(low), float(high or low))


class StagesShape(LoadTestShape):
    """A Locust load shape following the stages in ``$PERFLAB_STAGES``.

    The variable holds a stage list or a step-load spec (see
    :func:`perflab.shapes.parse_shape`).

    It stops the run (returns None) when the last stage ends; see
    :func:`perflab.shapes.tick`.
    """

    def __init__(self):
        super().__init__()
        text = os.environ.get(shapes.STAGES_ENV, shapes.DEFAULT_STAGES)
        self.stages = shapes.parse_shape(text)

    def tick(self):
        return shapes.tick(self.stages, self.get_run_time())


class PlanUser(FastHttpUser):
    """A Publishing API user that logs in on start, as the plan's scenarios do."""

    abstract = True
    wait_time = think_time()

    def on_start(self):
        response = self.client.post(
            "/auth/login",
            json={"username": "test@example.com", "password": "password"},
        )
        token = response.json()["token"] if response.status_code == 200 else ""
        self.headers = {"Authorization": f"Bearer {token}"}


__all__ = ["PlanUser", "StagesShape", "think_time"]

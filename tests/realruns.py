"""Short real runs against the sample service, for the comparison tests.

Each run holds 5 users against two endpoints: a listing whose one database query
waits a fixed service time (``query_delay_ms``) behind a pool of 8 connections, as
in a database-bound service, and the health page, which touches no database. The
runs follow one another against one service process, as a CI job's runs of two
builds would; a short first run warms the service up (imports, caches, the pool)
and is not returned.
"""

from __future__ import annotations

from pathlib import Path

LOCUSTFILE = '''
"""Two endpoints of the sample service: one database query, and the health page."""

from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser

from perflab.scenarios.common import StagesShape  # noqa: F401 (the shape)


class SteadyUser(FastHttpUser):
    wait_time = constant(0.02)

    @task(3)
    def list_one(self):
        self.client.get(
            "/api/v1/publications?limit=1",
            headers={"Authorization": "Bearer test-token"},
            name="/api/v1/publications",
        )

    @task
    def health(self):
        self.client.get("/health")
'''

QUERY = "GET /api/v1/publications"
HEALTH = "GET /health"
#: The listing's service time, ms.
SERVICE_MS = 20.0
WARM_UP = "1s:5,2s:5"


def steady_runs(
    folder: Path, service_ms: float, count: int, shape: str, name: str = "service"
):
    """``count`` runs of ``shape`` against one sample service whose listing query
    takes ``service_ms``, after a warm-up run; the runs go to ``folder / "runs"``."""
    from perflab.launching import LocustOptions, run_locust
    from perflab.service import ServiceSettings, start_service
    from perflab.shapes import parse_shape

    locustfile = folder / "steady.py"
    locustfile.write_text(LOCUSTFILE)
    settings = ServiceSettings(
        db_path=folder / f"{name}.sqlite3", pool_size=8, query_delay_ms=service_ms
    )
    runs = []
    with start_service(settings) as service:
        for spec in [WARM_UP] + [shape] * count:
            options = LocustOptions(
                scenario=str(locustfile),
                host=service.url,
                stages=parse_shape(spec),
                wait_s=(0.02, 0.02),
                target_pid=service.pid,
            )
            runs.append(run_locust(options, store=folder / "runs"))
    return runs[1:]

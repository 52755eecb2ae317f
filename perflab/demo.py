"""The demo: the whole flow on this machine against the bundled sample service.

Start the service on a free loopback port, seed it, run the plan's four scenarios with a
staged load (ramp up, hold, ramp down), ingest, analyze, stop the service, and return
the report's paths. Nothing leaves this machine.
"""

from __future__ import annotations

import logging
from pathlib import Path

from perflab.launching import LocustOptions, run_locust
from perflab.shapes import Stage
from perflab.store import DEFAULT_STORE

log = logging.getLogger(__name__)

#: Think time of the demo's users, seconds: shorter than the plan's 1-2 s so that a
#: one-minute demo gathers enough requests for its tail percentiles.
DEMO_WAIT_S = (0.2, 0.8)


def demo_stages(duration_s: float, users: int) -> list[Stage]:
    """Ramp up over a sixth of the time, hold, ramp down over the last twelfth."""
    ramp_up = max(round(duration_s / 6), 1)
    ramp_down = max(round(duration_s / 12), 1)
    hold = max(duration_s - ramp_up - ramp_down, 1)
    return [Stage(ramp_up, users), Stage(hold, users), Stage(ramp_down, 0)]


def run_demo(
    duration_s: float = 60.0,
    users: int = 20,
    seed_count: int = 2_000,
    settings=None,
    store: Path | str = DEFAULT_STORE,
    reports: Path | None = None,
):
    """Run the demo and return the analysis result (its ``report_md``, ``report_html``).

    Parameters
    ----------
    duration_s
        Length of the load in seconds, ramps included.
    users
        Peak concurrent users.
    seed_count
        Subscribers written into the service's database before the load.
    settings
        :class:`perflab.service.ServiceSettings`; a database file beside the store by
        default. With a PostgreSQL ``database_url`` and a Redis ``cache_url`` the
        monitor probes both servers too.
    store, reports
        The run store, and the report folder (``reports/<run_id>`` by default).
    """
    from perflab.notebooks import analyze
    from perflab.service import ServiceSettings, seed_subscribers, start_service

    store = Path(store)
    store.mkdir(parents=True, exist_ok=True)
    if settings is None:
        settings = ServiceSettings(db_path=store.parent / "demo-service.sqlite3")
    seed_subscribers(settings.database, seed_count)

    with start_service(settings) as service:
        log.info("sample service listening on %s (pid %s)", service.url, service.pid)
        options = LocustOptions(
            scenario="plan",
            host=service.url,
            stages=demo_stages(duration_s, users),
            wait_s=DEMO_WAIT_S,
            target_pid=service.pid,
            # The service's own metrics hold its pool and queue: the evidence for
            # the pool-exhausted and queue-backed-up findings.
            prometheus_urls=[f"service={service.url}/metrics"],
            postgres_dsn=settings.database_url,
            redis_url=settings.cache_url,
            redis_lists=[settings.queue_name] if settings.cache_url else [],
            environment="local demo",
        )
        run = run_locust(options, store=store)
    run.meta["service"] = {
        "pool_size": settings.pool_size,
        "query_delay_ms": settings.query_delay_ms,
        "database": "PostgreSQL" if settings.database_url else "SQLite",
        "cache": "Redis" if settings.cache_url else None,
    }
    run.save()
    return analyze(run, out_dir=reports or Path("reports") / run.id)

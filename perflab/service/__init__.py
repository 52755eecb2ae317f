"""perflab's bundled sample service: the load-testing plan's "Publishing Module".

A small FastAPI app over SQLite (or PostgreSQL, with ``database_url``) that answers the
endpoints the plan's scenarios call, behind a bounded connection pool so that it slows
down under load the way a real service does, with an optional global rate limit (429),
an optional Redis cache and Celery-like job queue (``cache_url``), and a Prometheus
``/metrics`` page. ``perflab demo`` runs its load against it; the tests use it as a
real target.

Modules: :mod:`~perflab.service.settings` (configuration and its env variables),
:mod:`~perflab.service.database` (schema, pool, queries),
:mod:`~perflab.service.cache` (the Redis cache and job queue),
:mod:`~perflab.service.app` (the HTTP API), :mod:`~perflab.service.seeding` (bulk
test data), :mod:`~perflab.service.process` (running it).
"""

from perflab.service.app import create_app
from perflab.service.process import RunningService, free_port, serve, start_service
from perflab.service.seeding import SeedSummary, seed_subscribers
from perflab.service.settings import (
    ServiceSettings,
    add_arguments,
    default_db_path,
    settings_from_arguments,
)

__all__ = [
    "RunningService",
    "SeedSummary",
    "ServiceSettings",
    "add_arguments",
    "create_app",
    "default_db_path",
    "free_port",
    "seed_subscribers",
    "serve",
    "settings_from_arguments",
    "start_service",
]

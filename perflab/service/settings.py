"""Settings of the bundled sample service, and their ``PERFLAB_SERVICE_*`` env form.

The service runs in its own process (``python -m perflab.service``), so every setting
has an environment variable: ``PERFLAB_SERVICE_`` followed by the field name in upper
case, for example ``PERFLAB_SERVICE_POOL_SIZE=4``. :meth:`ServiceSettings.to_env` and
:meth:`ServiceSettings.from_env` convert in both directions.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from perflab.errors import LaunchError

#: Prefix of the environment variables the service reads its settings from.
ENV_PREFIX = "PERFLAB_SERVICE_"

#: The user the plan's scenarios log in as (``POST /auth/login``).
DEFAULT_USERNAME = "test@example.com"
DEFAULT_PASSWORD = "password"

#: The fixed bearer token the plan's k6 scenario and seed script send.
DEFAULT_STATIC_TOKEN = "test-token"


def default_db_path() -> Path:
    """Return the database file used when none is given.

    It sits in the system's temporary folder and is the same for every process, so
    ``perflab seed`` and a later ``perflab serve`` find the same data.

    Returns
    -------
    Path
        ``<tempdir>/perflab-service/service.sqlite3``.
    """
    return Path(tempfile.gettempdir()) / "perflab-service" / "service.sqlite3"


@dataclass(frozen=True)
class ServiceSettings:
    """How the sample service is configured.

    Parameters
    ----------
    db_path
        The SQLite database file; created, with its schema, on startup.
    pool_size
        Number of pooled database connections. A request waits for a free one, so the
        service's throughput is capped near ``pool_size / service_time``.
    query_delay_ms
        Extra service time, in milliseconds, added to every database call while it
        holds a pooled connection. Lets a test set a known service time.
    pool_timeout_s
        How long, in seconds, a request waits for a pooled connection before the
        service answers 503 (the plan's "connection pool exhausted" symptom).
    token_ttl_s
        Lifetime, in seconds, of the tokens ``POST /auth/login`` issues.
    rate_limit_rps
        Requests per second accepted across all clients; above it the service answers
        429 (a token bucket holding one second's worth of requests). ``None`` means no
        limit. Only ``/api/v1`` requests count; login, ``/health`` and ``/metrics``
        are never limited.
    username, password
        The credentials ``POST /auth/login`` accepts.
    static_token
        A bearer token accepted without logging in, as the plan's k6 scenario sends;
        ``None`` accepts issued tokens only.
    token_secret
        Key that signs issued tokens; empty means a random key per process, so tokens
        do not survive a restart.
    access_log
        Whether uvicorn logs every request; off by default because it costs
        throughput under load.
    database_url
        A PostgreSQL DSN (``postgresql://user:password@127.0.0.1:5432/app``); the
        pool then holds PostgreSQL connections and ``db_path`` is not used. ``None``
        (the default) uses the SQLite file ``db_path``.
    cache_url
        A Redis URL (``redis://127.0.0.1:6379/0``) for the cache and the job queue;
        ``None`` (the default) means no cache and no queue. With it, publication
        reads and analytics results are cached for ``cache_ttl_s``, and scheduling
        a newsletter pushes a job onto the Redis list ``queue_name``.
    cache_ttl_s
        How long, in seconds, a cached read stays valid.
    queue_name
        The Redis list newsletter jobs are pushed onto (Celery's default queue is
        the list ``celery``).
    queue_workers
        Workers in the service that take jobs off the queue, each one job at a
        time; 0 (the default) leaves the queue to grow, as when the workers are
        down or absent.
    queue_job_ms
        How long, in milliseconds, a worker spends on one job; the workers drain
        at most ``queue_workers * 1000 / queue_job_ms`` jobs per second.
    """

    db_path: Path = field(default_factory=default_db_path)
    pool_size: int = 8
    query_delay_ms: float = 0.0
    pool_timeout_s: float = 30.0
    token_ttl_s: float = 3600.0
    rate_limit_rps: float | None = None
    username: str = DEFAULT_USERNAME
    password: str = DEFAULT_PASSWORD
    static_token: str | None = DEFAULT_STATIC_TOKEN
    token_secret: str = ""
    access_log: bool = False
    database_url: str | None = None
    cache_url: str | None = None
    cache_ttl_s: float = 60.0
    queue_name: str = "celery"
    queue_workers: int = 0
    queue_job_ms: float = 50.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "db_path", Path(self.db_path))
        problems = []
        if self.pool_size < 1:
            problems.append(f"pool_size must be at least 1, not {self.pool_size}")
        if self.query_delay_ms < 0:
            problems.append(
                f"query_delay_ms must be 0 or more, not {self.query_delay_ms}"
            )
        if self.pool_timeout_s <= 0:
            problems.append(
                f"pool_timeout_s must be more than 0, not {self.pool_timeout_s}"
            )
        if self.token_ttl_s <= 0:
            problems.append(f"token_ttl_s must be more than 0, not {self.token_ttl_s}")
        if self.rate_limit_rps is not None and self.rate_limit_rps <= 0:
            problems.append(
                "rate_limit_rps must be more than 0 (or None for no limit), "
                f"not {self.rate_limit_rps}"
            )
        if self.cache_ttl_s <= 0:
            problems.append(f"cache_ttl_s must be more than 0, not {self.cache_ttl_s}")
        if self.queue_workers < 0:
            problems.append(
                f"queue_workers must be 0 or more, not {self.queue_workers}"
            )
        if self.queue_job_ms < 0:
            problems.append(f"queue_job_ms must be 0 or more, not {self.queue_job_ms}")
        if not self.queue_name:
            problems.append("queue_name must not be empty")
        if self.database_url is not None and not self.database_url.startswith(
            ("postgresql://", "postgres://")
        ):
            problems.append(
                "database_url must be a PostgreSQL URL (postgresql://...), "
                f"not {self.database_url.split('://')[0]!r}"
            )
        if self.cache_url is not None and not self.cache_url.startswith(
            ("redis://", "rediss://", "unix://")
        ):
            problems.append("cache_url must be a Redis URL (redis://...)")
        if problems:
            raise LaunchError(
                "The sample service cannot start with these settings: "
                + "; ".join(problems)
                + "."
            )

    @property
    def database(self) -> str | Path:
        """Where the data is: ``database_url`` when set, else the file ``db_path``."""
        return self.database_url if self.database_url else self.db_path

    def to_env(self) -> dict[str, str]:
        """Return the settings as ``PERFLAB_SERVICE_*`` environment variables.

        Returns
        -------
        dict of str to str
            One entry per field; a ``None`` value becomes an empty string.
        """
        env = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None:
                text = ""
            elif isinstance(value, bool):
                text = "1" if value else "0"
            else:
                text = str(value)
            env[ENV_PREFIX + f.name.upper()] = text
        return env

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ServiceSettings:
        """Read settings from ``PERFLAB_SERVICE_*`` variables; absent ones default.

        Parameters
        ----------
        environ
            The variables to read; ``os.environ`` when omitted.

        Returns
        -------
        ServiceSettings

        Raises
        ------
        LaunchError
            When a variable cannot be read as its field's type, or a value is out of
            range.
        """
        environ = os.environ if environ is None else environ
        values = {}
        for f in dataclasses.fields(cls):
            name = ENV_PREFIX + f.name.upper()
            if name not in environ:
                continue
            values[f.name] = _parse(name, environ[name], f.name)
        return cls(**values)


_FLOATS = {
    "query_delay_ms",
    "pool_timeout_s",
    "token_ttl_s",
    "cache_ttl_s",
    "queue_job_ms",
}
_INTS = {"pool_size", "queue_workers"}
_OPTIONAL_STRINGS = {"static_token", "database_url", "cache_url"}


def _parse(variable: str, text: str, name: str):
    """Convert one environment value to its field's type."""
    try:
        if name == "db_path":
            return Path(text)
        if name in _INTS:
            return int(text)
        if name in _FLOATS:
            return float(text)
        if name == "rate_limit_rps":
            return float(text) if text.strip() else None
        if name == "access_log":
            return text.strip().lower() in {"1", "true", "yes", "on"}
        if name in _OPTIONAL_STRINGS:
            return text or None
        return text
    except ValueError:
        raise LaunchError(
            f"The environment variable {variable}={text!r} is not a valid {name}; "
            "fix or unset it."
        ) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the service's command-line options to ``parser``.

    Every option defaults to ``None``, meaning "keep the environment's or the
    default value"; :func:`settings_from_arguments` applies them.

    Parameters
    ----------
    parser
        The parser of ``python -m perflab.service`` or of ``perflab serve``.
    """
    parser.add_argument("--db-path", type=Path, help="SQLite database file")
    parser.add_argument("--pool-size", type=int, help="pooled DB connections")
    parser.add_argument(
        "--query-delay-ms",
        type=float,
        help="extra service time per database call, in milliseconds",
    )
    parser.add_argument(
        "--pool-timeout-s",
        type=float,
        help="longest wait for a pooled connection before 503, in seconds",
    )
    parser.add_argument(
        "--token-ttl-s", type=float, help="lifetime of login tokens, in seconds"
    )
    parser.add_argument(
        "--rate-limit-rps",
        type=float,
        help="requests per second accepted across all clients (429 above)",
    )
    parser.add_argument(
        "--database-url",
        help="PostgreSQL DSN to use instead of the SQLite file",
    )
    parser.add_argument(
        "--cache-url", help="Redis URL for the read cache and the job queue"
    )
    parser.add_argument(
        "--cache-ttl-s", type=float, help="lifetime of cached reads, in seconds"
    )
    parser.add_argument("--queue-name", help="Redis list newsletter jobs go onto")
    parser.add_argument(
        "--queue-workers",
        type=int,
        help="workers draining the job queue (0: none, the queue grows)",
    )
    parser.add_argument(
        "--queue-job-ms", type=float, help="time a worker spends per job, in ms"
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        default=None,
        help="log every request (costs throughput)",
    )


def settings_from_arguments(
    arguments: argparse.Namespace, base: ServiceSettings | None = None
) -> ServiceSettings:
    """Apply the options added by :func:`add_arguments` on top of ``base``.

    Parameters
    ----------
    arguments
        Parsed command line.
    base
        Settings the options override; read from the environment when omitted.

    Returns
    -------
    ServiceSettings

    Raises
    ------
    LaunchError
        When a value is out of range or an environment variable is malformed.
    """
    base = ServiceSettings.from_env() if base is None else base
    names = {f.name for f in dataclasses.fields(ServiceSettings)}
    given = {
        name: value
        for name, value in vars(arguments).items()
        if name in names and value is not None
    }
    return dataclasses.replace(base, **given)

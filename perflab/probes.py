"""Probes of the services behind a target: PostgreSQL, Redis, Prometheus metrics.

Each probe is built from its configuration, connects in ``start()`` (raising
:class:`~perflab.errors.LaunchError` with the reason when it cannot), and returns
``{metric: value}`` from ``sample()`` once per monitor interval; the
:class:`~perflab.monitoring.ResourceMonitor` writes them as rows of its ``source``.
A failing ``sample()`` raises; the monitor then records nothing for that interval.
:func:`probes_from_options` builds the probes of ``perflab run``'s options.

Metrics (units in the names, rates from counter differences between two samples):

``postgres`` (:class:`PostgresProbe`)
    ``connections`` (client connections but the probe's own), ``connections_<state>``
    for each ``pg_stat_activity`` state (``active``, ``idle``,
    ``idle_in_transaction``...), ``connections_waiting_on_lock``,
    ``max_connections``, ``connections_percent`` (of ``max_connections``),
    ``transactions_per_s`` (commits and rollbacks in the probe's database),
    ``longest_query_s`` (the longest-running active query, 0 when none runs),
    ``longest_transaction_s``.
``redis`` (:class:`RedisProbe`)
    ``used_memory_mb``, ``maxmemory_mb`` and ``memory_used_percent`` (both only when
    a ``maxmemory`` limit is set), ``hit_ratio_percent`` (keyspace hits / lookups in
    the interval; absent when there were none), ``hit_ratio_percent_since_start``,
    ``hits_per_s``, ``misses_per_s``, ``evictions_per_s``, ``expirations_per_s``,
    ``commands_per_s``, ``connected_clients`` (but the probe's own), and
    ``list_length:<name>`` per watched list (a Celery queue is such a list).
``prometheus`` or a given name (:class:`PrometheusProbe`)
    each selected sample as ``name{labels}``, and for counters also
    ``<name without _total>_per_s{labels}``.
"""

from __future__ import annotations

import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit, urlunsplit

from perflab.errors import LaunchError
from perflab.monitoring import CounterRates, Probe, ProcessGroup

log = logging.getLogger(__name__)

MB = 2**20

#: Seconds a probe waits for its service before that interval counts as failed.
TIMEOUT_S = 2.0


def _reason(exc: BaseException) -> str:
    """An exception's message without trailing dots, to end a sentence with."""
    return " ".join(str(exc).split()).rstrip(".") or type(exc).__name__


def _redact(url: str) -> str:
    """A URL or DSN without its password, fit for a message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    if parts.port is not None:
        host += f":{parts.port}"
    user = f"{parts.username}:***@" if parts.username else ":***@"
    return urlunsplit(parts._replace(netloc=user + host))


# ---------------------------------------------------------------------------
# PostgreSQL

_STATES = ("active", "idle", "idle in transaction", "idle in transaction (aborted)")

_ACTIVITY = """
SELECT coalesce(state, 'unknown') AS state,
       count(*) AS connections,
       count(*) FILTER (WHERE wait_event_type = 'Lock') AS waiting_on_lock,
       coalesce(extract(epoch FROM max(now() - query_start)
                FILTER (WHERE state = 'active')), 0) AS longest_query_s,
       coalesce(extract(epoch FROM max(now() - xact_start)), 0)
           AS longest_transaction_s
FROM pg_stat_activity
WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()
GROUP BY 1
"""

_TRANSACTIONS = """
SELECT current_setting('max_connections')::int,
       coalesce(xact_commit + xact_rollback, 0)
FROM pg_stat_database WHERE datname = current_database()
"""


class PostgresProbe:
    """Connections, transaction rate and longest query of a PostgreSQL server.

    Parameters
    ----------
    dsn
        A libpq connection string or URL, such as
        ``postgresql://user:password@127.0.0.1:5432/app``. Connect to the
        application's database: the transaction rate is that database's. The role
        needs ``pg_monitor`` (or to be a superuser) to see other roles' queries.
    source
        The ``source`` of the rows.

    Notes
    -----
    Connection counts are server-wide, over client backends, without the probe's
    own. The probe runs one transaction per sample, which is in
    ``transactions_per_s`` (about ``1 / interval_s``). PostgreSQL publishes a
    backend's transaction counts when it goes idle, at most once a second, so the
    rate trails the load by up to about a second.
    """

    def __init__(self, dsn: str, source: str = "postgres") -> None:
        self.dsn = dsn
        self.source = source
        self._conn = None
        self._rates = CounterRates()

    def _connect(self):
        import psycopg

        return psycopg.connect(
            self.dsn,
            autocommit=True,
            connect_timeout=max(1, int(TIMEOUT_S)),
            application_name="perflab-monitor",
            options=f"-c statement_timeout={int(TIMEOUT_S * 1000)}",
        )

    def start(self) -> None:
        """Connect and read once.

        Raises
        ------
        LaunchError
            When the server cannot be reached or refuses the login.
        """
        import psycopg

        if self._conn is not None:
            return
        try:
            self._conn = self._connect()
            self.sample()
        except psycopg.Error as exc:
            self.close()
            raise LaunchError(
                f"The PostgreSQL probe cannot connect to {_redact(self.dsn)}: "
                f"{_reason(exc)}. Check the --postgres DSN and that the server "
                "is up."
            ) from exc

    def close(self) -> None:
        """Close the connection."""
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def sample(self) -> dict[str, float]:
        """The server's metrics now (see the module's documentation)."""
        import psycopg

        if self._conn is None:
            self._conn = self._connect()  # reconnect after a failed interval
        try:
            with self._conn.transaction():
                activity = self._conn.execute(_ACTIVITY).fetchall()
                limit_row = self._conn.execute(_TRANSACTIONS).fetchone()
        except psycopg.Error:
            self.close()
            raise
        now_s = time.monotonic()

        values = {"connections_" + _metric_word(s): 0.0 for s in _STATES}
        total = waiting = 0
        longest_query = longest_xact = 0.0
        for state, count, on_lock, query_s, xact_s in activity:
            values["connections_" + _metric_word(state)] = float(count)
            total += count
            waiting += on_lock
            longest_query = max(longest_query, float(query_s))
            longest_xact = max(longest_xact, float(xact_s))
        values["connections"] = float(total)
        values["connections_waiting_on_lock"] = float(waiting)
        values["longest_query_s"] = longest_query
        values["longest_transaction_s"] = longest_xact
        if limit_row is not None:
            max_connections, transactions = limit_row
            values["max_connections"] = float(max_connections)
            values["connections_percent"] = 100 * total / max_connections
            rate = self._rates.rate("transactions", float(transactions), now_s)
            if rate is not None:
                values["transactions_per_s"] = rate
        return values


def _metric_word(text: str) -> str:
    """``idle in transaction (aborted)`` -> ``idle_in_transaction_aborted``."""
    words = "".join(c if c.isalnum() else " " for c in text.lower()).split()
    return "_".join(words)


# ---------------------------------------------------------------------------
# Redis


class RedisProbe:
    """Memory, hit ratio, evictions, clients and list lengths of a Redis server.

    Parameters
    ----------
    url
        A Redis URL, such as ``redis://127.0.0.1:6379/0``; the lists are read in
        its database.
    lists
        Names of lists whose length to record (``LLEN``), such as Celery's
        ``celery`` queue.
    source
        The ``source`` of the rows.

    Notes
    -----
    ``hit_ratio_percent`` is ``hits / (hits + misses) * 100`` of ``keyspace_hits``
    and ``keyspace_misses`` increases in the interval: it counts every read command
    on the server, not only one application's. ``memory_used_percent`` is
    ``used_memory / maxmemory * 100`` and is not recorded when ``maxmemory`` is 0
    (no limit): Redis then grows until the machine runs out of memory.
    """

    def __init__(
        self, url: str, lists: Sequence[str] = (), source: str = "redis"
    ) -> None:
        self.url = url
        self.lists = list(dict.fromkeys(lists))
        self.source = source
        self._client = None
        self._rates = CounterRates()
        self._bad_lists: set[str] = set()
        # The probe's own key lookups (TYPE, LLEN), left out of the hit ratio.
        self._own_hits = 0
        self._own_misses = 0

    def start(self) -> None:
        """Connect and read once.

        Raises
        ------
        LaunchError
            When the server cannot be reached, or a watched key is not a list.
        """
        import redis

        if self._client is not None:
            return
        try:
            self._client = redis.Redis.from_url(
                self.url,
                socket_timeout=TIMEOUT_S,
                socket_connect_timeout=TIMEOUT_S,
                client_name="perflab-monitor",
            )
            self._client.ping()
            kinds = [self._client.type(name) for name in self.lists]
            self._note_lookups(kind != b"none" for kind in kinds)
        except (redis.RedisError, ValueError) as exc:
            self.close()
            raise LaunchError(
                f"The Redis probe cannot connect to {_redact(self.url)}: "
                f"{_reason(exc)}. Check the --redis URL and that the server is up."
            ) from exc
        wrong = [
            name
            for name, kind in zip(self.lists, kinds, strict=True)
            if kind not in (b"list", b"none")
        ]
        if wrong:
            self.close()
            raise LaunchError(
                f"The Redis keys {', '.join(wrong)} at {_redact(self.url)} are not "
                "lists; --redis-list takes the names of lists (queues) only."
            )
        self.sample()

    def _note_lookups(self, found: Iterable[bool]) -> None:
        """Count the probe's own lookups as Redis counts them: found is a hit."""
        for hit in found:
            if hit:
                self._own_hits += 1
            else:
                self._own_misses += 1

    def close(self) -> None:
        """Close the connection."""
        if self._client is not None:
            self._client.close()
            self._client = None

    def sample(self) -> dict[str, float]:
        """The server's metrics now (see the module's documentation)."""
        import redis

        if self._client is None:
            raise RuntimeError("the Redis probe was not started")
        pipe = self._client.pipeline(transaction=False)
        pipe.info()
        for name in self.lists:
            pipe.llen(name)
        answers = pipe.execute(raise_on_error=False)
        info, lengths = answers[0], answers[1:]
        if isinstance(info, Exception):
            raise info
        now_s = time.monotonic()

        values = {"used_memory_mb": info["used_memory"] / MB}
        limit = info.get("maxmemory", 0)
        if limit:
            values["maxmemory_mb"] = limit / MB
            values["memory_used_percent"] = 100 * info["used_memory"] / limit
        values["connected_clients"] = float(max(0, info["connected_clients"] - 1))

        hits = max(0, info["keyspace_hits"] - self._own_hits)
        misses = max(0, info["keyspace_misses"] - self._own_misses)
        self._note_lookups(
            not isinstance(n, Exception) and n > 0 for n in lengths
        )  # they show in the next sample's counters
        if hits + misses:
            values["hit_ratio_percent_since_start"] = 100 * hits / (hits + misses)
        hits_rate = self._rates.rate("hits", hits, now_s)
        misses_rate = self._rates.rate("misses", misses, now_s)
        if hits_rate is not None and misses_rate is not None:
            values["hits_per_s"] = hits_rate
            values["misses_per_s"] = misses_rate
            if hits_rate + misses_rate > 0:
                values["hit_ratio_percent"] = (
                    100 * hits_rate / (hits_rate + misses_rate)
                )
        for metric, field in (
            ("evictions_per_s", "evicted_keys"),
            ("expirations_per_s", "expired_keys"),
            ("commands_per_s", "total_commands_processed"),
        ):
            rate = self._rates.rate(field, info[field], now_s)
            if rate is not None:
                values[metric] = rate

        for name, length in zip(self.lists, lengths, strict=True):
            if isinstance(length, redis.RedisError):
                if name not in self._bad_lists:
                    self._bad_lists.add(name)
                    log.warning("Redis cannot give the length of %r: %s", name, length)
                continue
            self._bad_lists.discard(name)
            values[f"list_length:{name}"] = float(length)
        return values


# ---------------------------------------------------------------------------
# Prometheus

#: Stops a page with label explosions from flooding the resources file.
MAX_SERIES = 500

#: Talks to the metrics page directly, whatever proxy the environment names.
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class PrometheusProbe:
    """Selected metrics of a Prometheus text exposition page, such as ``/metrics``.

    Parameters
    ----------
    url
        The page's URL.
    names
        Metric families to record, by family name (``perflab_db_pool_in_use``) or
        sample name (``perflab_http_requests_total``); ``None`` records every gauge,
        counter and untyped metric. A named histogram or summary records its
        ``_count`` and ``_sum`` as counters.
    source
        The ``source`` of the rows.

    Notes
    -----
    A sample's metric is its name with its labels, as Prometheus writes it
    (``perflab_http_requests_total{method="GET",route="/health",status="200"}``);
    a counter also gets a rate, ``perflab_http_requests_per_s{...}``. Units are
    those of the metric's own name. At most :data:`MAX_SERIES` series are kept.
    """

    def __init__(
        self,
        url: str,
        names: Iterable[str] | None = None,
        source: str = "prometheus",
    ) -> None:
        self.url = url
        self.names = None if names is None else set(names)
        self.source = source
        self._rates = CounterRates()
        self._started = False
        self._capped = False

    def start(self) -> None:
        """Read the page once.

        Raises
        ------
        LaunchError
            When the page cannot be fetched or is not in the text format.
        """
        if self._started:
            return
        try:
            families = self._families()
        except (OSError, ValueError) as exc:
            raise LaunchError(
                f"The Prometheus probe cannot read {_redact(self.url)}: "
                f"{_reason(exc)}. Check the --prometheus URL and that the service "
                "is up."
            ) from exc
        if self.names is not None:
            present = set()
            for family in families:
                present |= {family.name, *(s.name for s in family.samples)}
            missing = sorted(self.names - present)
            if missing:
                log.warning(
                    "%s has no metric named %s yet; recording it when it appears.",
                    self.url,
                    ", ".join(missing),
                )
        self._started = True
        self._read(families)

    def close(self) -> None:
        """Nothing to release."""

    def _families(self) -> list:
        from prometheus_client.parser import text_string_to_metric_families

        with _DIRECT.open(self.url, timeout=TIMEOUT_S) as response:
            text = response.read().decode("utf-8", "replace")
        return list(text_string_to_metric_families(text))

    def sample(self) -> dict[str, float]:
        """The selected samples now, and the rates of the counters among them."""
        return self._read(self._families())

    def _read(self, families: list) -> dict[str, float]:
        now_s = time.monotonic()
        values: dict[str, float] = {}
        for family in families:
            for sample, counter in self._selected(family):
                labels = _labels(sample.labels)
                values[sample.name + labels] = float(sample.value)
                if counter:
                    base = sample.name.removesuffix("_total")
                    rate = self._rates.rate(
                        sample.name + labels, float(sample.value), now_s
                    )
                    if rate is not None:
                        values[f"{base}_per_s{labels}"] = rate
        if len(values) > MAX_SERIES:
            if not self._capped:
                self._capped = True
                log.warning(
                    "%s has %d series; recording the first %d. Name the metrics "
                    "to record to keep the ones you need.",
                    self.url,
                    len(values),
                    MAX_SERIES,
                )
            values = dict(list(values.items())[:MAX_SERIES])
        return {k: v for k, v in values.items() if math.isfinite(v)}

    def _selected(self, family):
        """``(sample, is_counter)`` pairs of a family that are to be recorded."""
        names = self.names
        wanted = names is None or family.name in names
        if family.type in ("gauge", "unknown", "untyped"):
            for sample in family.samples:
                if wanted or sample.name in names:
                    yield sample, False
        elif family.type == "counter":
            for sample in family.samples:
                if sample.name.endswith("_created"):
                    continue
                if wanted or sample.name in names:
                    yield sample, True
        elif names is not None and family.type in ("histogram", "summary"):
            for sample in family.samples:
                if sample.name in (family.name + "_count", family.name + "_sum") and (
                    wanted or sample.name in names
                ):
                    yield sample, True


def _labels(labels: dict[str, str]) -> str:
    """``{a="1",b="x"}`` in Prometheus' own notation, or ``""`` without labels."""
    if not labels:
        return ""
    text = ",".join(
        '{}="{}"'.format(
            key, value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        )
        for key, value in sorted(labels.items())
    )
    return "{" + text + "}"


# ---------------------------------------------------------------------------


def probes_from_options(
    postgres_dsn: str | None = None,
    redis_url: str | None = None,
    redis_lists: Sequence[str] = (),
    prometheus_urls: Sequence[str] = (),
    prometheus_names: Iterable[str] | None = None,
    target_pid: int | None = None,
    target_match: str | None = None,
    target_name: str | None = None,
) -> list[Probe]:
    """The probes that ``perflab run``'s options ask for, not yet started.

    Parameters
    ----------
    postgres_dsn
        ``--postgres``: a PostgreSQL DSN, for a :class:`PostgresProbe`.
    redis_url
        ``--redis``: a Redis URL, for a :class:`RedisProbe`.
    redis_lists
        ``--redis-list`` (repeatable): lists whose length the Redis probe records.
    prometheus_urls
        ``--prometheus`` (repeatable): metrics page URLs, each for a
        :class:`PrometheusProbe`. ``NAME=URL`` sets the rows' source to ``NAME``;
        otherwise it is ``prometheus``, or ``prometheus_2``, ``prometheus_3``... for
        the second and later pages.
    prometheus_names
        Metric families every Prometheus probe records; all gauges and counters when
        ``None``.
    target_pid, target_match, target_name
        ``--target-pid``, ``--target-match``, ``--target-name``: how to find the
        service's processes; one ``target`` :class:`ProcessGroup` of all of them.

    Returns
    -------
    list
        The target group first when there is one, then the service probes. Start
        them with :func:`start_probes` before launching the load, to fail early;
        the monitor starts any that are not started yet, and closes them all.

    Raises
    ------
    LaunchError
        When ``--redis-list`` is given without ``--redis``.
    """
    probes: list[Probe] = []
    if target_pid is not None or target_match or target_name:
        probes.append(
            ProcessGroup("target", pid=target_pid, match=target_match, name=target_name)
        )
    if postgres_dsn:
        probes.append(PostgresProbe(postgres_dsn))
    if redis_lists and not redis_url:
        raise LaunchError(
            "--redis-list needs --redis URL: the lists are read on that server."
        )
    if redis_url:
        probes.append(RedisProbe(redis_url, lists=redis_lists))
    for index, item in enumerate(prometheus_urls, start=1):
        name, url = _named_url(item)
        if name is None:
            name = "prometheus" if index == 1 else f"prometheus_{index}"
        probes.append(PrometheusProbe(url, names=prometheus_names, source=name))
    return probes


def start_probes(probes: Iterable[Probe]) -> None:
    """Start every probe, so that a bad option fails before any load is sent.

    Parameters
    ----------
    probes
        Probes from :func:`probes_from_options`; starting one twice is harmless.

    Raises
    ------
    LaunchError
        From the first probe that cannot start; those started before it are
        closed again.
    """
    started: list[Probe] = []
    try:
        for probe in probes:
            probe.start()
            started.append(probe)
    except BaseException:
        close_probes(started)
        raise


def close_probes(probes: Iterable[Probe]) -> None:
    """Close every probe, whatever happens to one of them (best effort)."""
    for probe in probes:
        try:
            probe.close()
        except Exception as exc:
            log.debug("closing the %s probe failed: %s", probe.source, exc)


def _named_url(item: str) -> tuple[str | None, str]:
    """Split ``NAME=URL`` into its parts; a plain URL has no name."""
    name, sep, rest = item.partition("=")
    if sep and "://" in rest and "/" not in name and ":" not in name and name:
        return name, rest
    return None, item

"""The sample service's Redis side: a read cache and a newsletter job queue.

Both exist only when the service has a ``cache_url``. The :class:`Cache` keeps JSON
answers under ``perflab:cache:<database>:<key>`` for ``cache_ttl_s`` (``<database>``
is a short hash of the database's name, so services on different databases sharing
one Redis never answer from each other's data) and counts its hits and misses; the
service empties its part of the cache when it starts. A Redis failure during a
request is counted and the request goes to the database instead (a cache speeds a
service up, it must not take it down). The :class:`JobQueue` pushes one job per
scheduled newsletter onto a Redis list, the way Celery queues tasks, and runs
``queue_workers`` workers in the service that take jobs off it; with no worker,
nothing drains it and the list grows, the plan's "worker queue backed up" bottleneck.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from perflab.errors import LaunchError

log = logging.getLogger(__name__)

#: Prefix of every cache key, so the cache can be emptied without touching the queue.
PREFIX = "perflab:cache:"

#: Seconds a Redis command may take before it counts as failed.
TIMEOUT_S = 5.0

#: Seconds a worker blocks waiting for a job before it looks again.
POLL_S = 1


def connect(url: str):
    """A ``redis.asyncio`` client for ``url`` (no connection is made yet)."""
    import redis.asyncio

    return redis.asyncio.Redis.from_url(
        url, socket_timeout=TIMEOUT_S, socket_connect_timeout=TIMEOUT_S
    )


def _redacted(url: str) -> str:
    """``url`` without its password, fit for a message."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}"
    if parts.port is not None:
        netloc += f":{parts.port}"
    return urlunsplit(parts._replace(netloc=netloc))


class Cache:
    """JSON values cached in Redis with a time to live, and the count of their use.

    Parameters
    ----------
    client
        A ``redis.asyncio`` client.
    ttl_s
        Seconds a cached value stays valid.
    namespace
        What the keys of this cache start with, after :data:`PREFIX`.

    Attributes
    ----------
    hits, misses
        Reads answered from the cache, and reads that went to the database.
    errors
        Redis commands that failed (the request then went to the database).
    """

    def __init__(self, client, ttl_s: float, namespace: str = "") -> None:
        self.client = client
        self.prefix = PREFIX + (f"{namespace}:" if namespace else "")
        self.ttl_ms = max(1, round(ttl_s * 1000))
        self.hits = 0
        self.misses = 0
        self.errors = 0

    async def clear(self) -> int:
        """Delete every cached value (the service's data may have changed since)."""
        deleted = 0
        async for key in self.client.scan_iter(match=self.prefix + "*", count=1000):
            deleted += await self.client.delete(key)
        return deleted

    async def get_or_load(
        self,
        key: str,
        load: Callable[[], Awaitable[Any]],
        keep: Callable[[Any], bool] = lambda value: value is not None,
    ) -> Any:
        """The cached value of ``key``, or ``load()``'s, cached when ``keep`` says so.

        Parameters
        ----------
        key
            The value's name, without the cache's prefix.
        load
            Reads the value from the database.
        keep
            Whether a loaded value is cached; by default everything but ``None``
            (a 404 is not cached).

        Returns
        -------
        The value, as JSON gives it back.
        """
        import redis

        try:
            cached = await self.client.get(self.prefix + key)
        except redis.RedisError as exc:
            self._failed(exc)
            return await load()
        if cached is not None:
            self.hits += 1
            return json.loads(cached)

        self.misses += 1
        value = await load()
        if keep(value):
            try:
                await self.client.set(
                    self.prefix + key, json.dumps(value), px=self.ttl_ms
                )
            except redis.RedisError as exc:
                self._failed(exc)
        return value

    async def forget(self, key: str) -> None:
        """Drop one cached value (after a write that changes it)."""
        import redis

        try:
            await self.client.delete(self.prefix + key)
        except redis.RedisError as exc:
            self._failed(exc)

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        if self.errors == 1 or self.errors % 1000 == 0:
            log.warning("Redis failed (%d times so far): %s", self.errors, exc)


class JobQueue:
    """A Celery-like job queue on a Redis list, and the workers that drain it.

    Jobs are pushed on the left (``LPUSH``) and taken from the right (``BRPOP``), as
    Celery's Redis transport does.

    Parameters
    ----------
    client
        A ``redis.asyncio`` client.
    name
        The list's key, such as ``celery``.
    workers
        Worker tasks to run; 0 leaves the queue undrained.
    job_ms
        Milliseconds a worker spends on each job.

    Attributes
    ----------
    enqueued, done
        Jobs pushed and jobs finished since the service started.
    """

    def __init__(self, client, name: str, workers: int, job_ms: float) -> None:
        self.client = client
        self.name = name
        self.workers = workers
        self.job_ms = job_ms
        self.enqueued = 0
        self.done = 0
        self._tasks: list[asyncio.Task] = []

    async def push(self, job: dict[str, Any]) -> int:
        """Queue one job; returns the queue's length after it."""
        job = {**job, "enqueued_unix_s": round(time.time(), 3)}
        length = await self.client.lpush(self.name, json.dumps(job))
        self.enqueued += 1
        return length

    async def length(self) -> int:
        """Jobs waiting now."""
        return await self.client.llen(self.name)

    def start(self) -> None:
        """Start the workers (tasks on the running event loop)."""
        self._tasks = [
            asyncio.create_task(self._work(), name=f"perflab-queue-worker-{i}")
            for i in range(self.workers)
        ]

    async def stop(self) -> None:
        """Stop the workers; a job being worked on is abandoned."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    async def _work(self) -> None:
        import redis

        while True:
            try:
                job = await self.client.brpop([self.name], timeout=POLL_S)
            except redis.RedisError as exc:
                log.warning("A queue worker cannot reach Redis: %s", exc)
                await asyncio.sleep(POLL_S)
                continue
            if job is None:
                continue
            await asyncio.sleep(self.job_ms / 1000)
            self.done += 1


async def open_cache(
    url: str,
    ttl_s: float,
    queue_name: str,
    workers: int,
    job_ms: float,
    namespace: str = "",
):
    """Connect to Redis, empty the cache, and start the queue's workers.

    Parameters
    ----------
    url
        The Redis URL.
    ttl_s, queue_name, workers, job_ms
        As the settings ``cache_ttl_s``, ``queue_name``, ``queue_workers`` and
        ``queue_job_ms``.
    namespace
        Keeps this service's cached values apart (see :class:`Cache`).

    Returns
    -------
    tuple
        ``(client, Cache, JobQueue)``.

    Raises
    ------
    LaunchError
        When Redis does not answer.
    """
    import redis

    client = connect(url)
    try:
        await client.ping()
        cache = Cache(client, ttl_s, namespace)
        cleared = await cache.clear()
    except (redis.RedisError, OSError) as exc:
        await client.aclose()
        raise LaunchError(
            f"The sample service cannot reach its cache at {_redacted(url)}: {exc}. "
            "Check the cache_url and that Redis is up."
        ) from exc
    queue = JobQueue(client, queue_name, workers, job_ms)
    queue.start()
    log.info(
        "Cache ready at %s (%d stale entries dropped); queue %r with %d workers",
        _redacted(url),
        cleared,
        queue_name,
        workers,
    )
    return client, cache, queue

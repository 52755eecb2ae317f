"""The sample service's SQLite database: schema, a bounded connection pool, the queries.

The pool is what makes the service behave like a real one under load: it holds
``size`` connections, and a request that finds none free waits in line for one. Time
spent in line is latency the client sees, so past ``size / service_time`` requests per
second the queue grows and latency climbs, the plan's "database connection pool
exhausted" bottleneck.

The wait happens on the event loop (an :class:`anyio.Semaphore`, first come first
served), not in a thread, so a queue of any length occupies no worker thread; only
the requests holding a connection run in threads, limited to ``size`` of them by the
pool's own :class:`anyio.CapacityLimiter`. Neither touches Starlette's shared thread
pool (40 threads by default), so pool waits cannot starve or deadlock it.

The query functions take a connection and plain values and return plain dicts; the
HTTP layer (:mod:`perflab.service.app`) runs them through :meth:`ConnectionPool.run`.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import time
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread

from perflab.errors import LaunchError

log = logging.getLogger(__name__)

T = TypeVar("T")

#: How long, in milliseconds, a connection waits on another one's write lock.
BUSY_TIMEOUT_MS = 5000

#: Engagement event kinds, in funnel order.
EVENT_TYPES = ("delivered", "opened", "clicked", "unsubscribed")

#: Channel kinds a subscriber can prefer and engagement is counted by.
CHANNEL_TYPES = ("email", "slack", "webhook", "sms")

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscribers (
    id INTEGER PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    preferred_channels TEXT NOT NULL,
    topic_interests TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS publications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    publication_type TEXT NOT NULL,
    content_ids TEXT NOT NULL,
    channels TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_time TEXT,
    recipients INTEGER,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    content_id TEXT NOT NULL,
    priority TEXT NOT NULL,
    channels TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS engagement_events (
    id INTEGER PRIMARY KEY,
    publication_id INTEGER NOT NULL,
    subscriber_id INTEGER NOT NULL,
    channel_type TEXT NOT NULL,
    event_type TEXT NOT NULL,
    occurred_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS engagement_events_by_time
    ON engagement_events
    (occurred_at, channel_type, event_type, subscriber_id, publication_id);
"""


class PoolTimeout(Exception):
    """No pooled connection became free in time; the HTTP layer answers 503."""


def connect(db_path: Path) -> sqlite3.Connection:
    """Open one connection configured the way every connection of the service is.

    Autocommit (each statement is its own transaction), WAL journal so readers do not
    block the writer, a busy timeout so concurrent writers wait instead of failing,
    usable from any thread (the pool hands it to one thread at a time).

    Parameters
    ----------
    db_path
        The SQLite file; created when absent, its folder too.

    Returns
    -------
    sqlite3.Connection

    Raises
    ------
    LaunchError
        When the file cannot be created or opened.
    """
    db_path = Path(db_path)
    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(
            db_path,
            isolation_level=None,
            check_same_thread=False,
            timeout=BUSY_TIMEOUT_MS / 1000,
        )
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        conn.execute("PRAGMA synchronous=NORMAL")
    except (OSError, sqlite3.Error) as exc:
        raise LaunchError(
            f"The sample service cannot open its database {db_path}: {exc}. "
            "Give a db_path in a writable folder."
        ) from exc
    conn.row_factory = sqlite3.Row
    return conn


def create_schema(db_path: Path) -> None:
    """Create the service's tables and indexes when they do not exist yet.

    Parameters
    ----------
    db_path
        The SQLite file; created when absent.

    Raises
    ------
    LaunchError
        When the file cannot be created or written.
    """
    conn = connect(db_path)
    try:
        conn.executescript(SCHEMA)
    except sqlite3.Error as exc:
        raise LaunchError(
            f"The sample service cannot create its tables in {db_path}: {exc}."
        ) from exc
    finally:
        conn.close()
    log.info("Database schema ready in %s", db_path)


class ConnectionPool:
    """A fixed number of SQLite connections, lent to one request at a time.

    Parameters
    ----------
    db_path
        The SQLite file every connection opens.
    size
        Number of connections, at least 1.
    query_delay_ms
        Extra time, in milliseconds, each :meth:`run` call sleeps while it holds its
        connection, on top of the real query time.
    timeout_s
        Longest wait, in seconds, for a free connection before :class:`PoolTimeout`.

    Notes
    -----
    All bookkeeping happens on the event loop thread, so the counters need no lock.
    :meth:`open` and :meth:`run` must be called from the same event loop.
    """

    def __init__(
        self,
        db_path: Path,
        size: int,
        *,
        query_delay_ms: float = 0.0,
        timeout_s: float = 30.0,
    ) -> None:
        self.db_path = Path(db_path)
        self.size = size
        self.query_delay_ms = query_delay_ms
        self.timeout_s = timeout_s
        self._idle: list[sqlite3.Connection] = []
        self._free: anyio.Semaphore | None = None
        self._threads: anyio.CapacityLimiter | None = None

        self.in_use = 0
        self.waiting = 0
        self.in_use_max = 0
        self.waiting_max = 0
        self.acquired_total = 0
        self.timeouts_total = 0
        self.wait_seconds_total = 0.0
        self.held_seconds_total = 0.0

    def open(self) -> None:
        """Open the connections.

        Raises
        ------
        LaunchError
            When the database cannot be opened.
        """
        self._idle = [connect(self.db_path) for _ in range(self.size)]
        self._free = anyio.Semaphore(self.size, fast_acquire=True)
        self._threads = anyio.CapacityLimiter(self.size)
        log.info("Opened %d pooled connections to %s", self.size, self.db_path)

    def close(self) -> None:
        """Close the idle connections (a connection still lent is closed on return)."""
        for conn in self._idle:
            conn.close()
        self._idle = []
        self._free = None

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """Wait for a free connection, then call ``work(connection)`` in a thread.

        Parameters
        ----------
        work
            A blocking function of one connection.

        Returns
        -------
        Whatever ``work`` returns.

        Raises
        ------
        PoolTimeout
            When no connection became free within ``timeout_s``.
        """
        if self._free is None or self._threads is None:
            raise RuntimeError("the connection pool is not open")

        # Wait in line on the event loop, holding no thread.
        started = time.perf_counter()
        self.waiting += 1
        self.waiting_max = max(self.waiting_max, self.waiting)
        try:
            with anyio.fail_after(self.timeout_s):
                await self._free.acquire()
        except TimeoutError:
            self.timeouts_total += 1
            raise PoolTimeout(
                f"no database connection became free within {self.timeout_s:g} s"
            ) from None
        finally:
            self.waiting -= 1
            self.wait_seconds_total += time.perf_counter() - started

        conn = self._idle.pop()
        self.in_use += 1
        self.in_use_max = max(self.in_use_max, self.in_use)
        self.acquired_total += 1
        held_from = time.perf_counter()
        try:
            return await anyio.to_thread.run_sync(
                self._call, work, conn, limiter=self._threads
            )
        finally:
            self.held_seconds_total += time.perf_counter() - held_from
            self.in_use -= 1
            if self._free is None:
                conn.close()  # the pool was closed meanwhile
            else:
                self._idle.append(conn)
                self._free.release()

    def _call(self, work: Callable[[sqlite3.Connection], T], conn) -> T:
        """Run ``work`` and the configured extra service time, in a worker thread."""
        result = work(conn)
        if self.query_delay_ms:
            time.sleep(self.query_delay_ms / 1000)
        return result


# ---------------------------------------------------------------------------
# Queries. Each takes a connection first and returns JSON-ready values.


def _now() -> str:
    """The current UTC time as stored in the database."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _publication(row: sqlite3.Row) -> dict[str, Any]:
    """A publications row as the API returns it."""
    return {
        "id": row["id"],
        "publication_type": row["publication_type"],
        "content_ids": json.loads(row["content_ids"]),
        "channels": json.loads(row["channels"]),
        "status": row["status"],
        "scheduled_time": row["scheduled_time"],
        "recipients": row["recipients"],
        "created_at": row["created_at"],
    }


def insert_publication(
    conn: sqlite3.Connection,
    publication_type: str,
    content_ids: list[str],
    channels: list[str],
    *,
    status: str = "draft",
    scheduled_time: str | None = None,
    recipients: int | None = None,
) -> dict[str, Any]:
    """Store a publication and return it with its new ``id``."""
    cursor = conn.execute(
        "INSERT INTO publications (publication_type, content_ids, channels, status,"
        " scheduled_time, recipients, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)"
        " RETURNING *",
        (
            publication_type,
            json.dumps(content_ids),
            json.dumps(channels),
            status,
            scheduled_time,
            recipients,
            _now(),
        ),
    )
    return _publication(cursor.fetchone())


def list_publications(
    conn: sqlite3.Connection, limit: int, offset: int
) -> dict[str, Any]:
    """The newest publications first, one page of them, with the total count."""
    rows = conn.execute(
        "SELECT * FROM publications ORDER BY id DESC LIMIT ? OFFSET ?",
        (limit, offset),
    ).fetchall()
    total = conn.execute("SELECT COUNT(*) FROM publications").fetchone()[0]
    return {
        "items": [_publication(row) for row in rows],
        "limit": limit,
        "offset": offset,
        "total": total,
    }


def get_publication(conn: sqlite3.Connection, publication_id: int):
    """One publication, or ``None`` when there is no such id."""
    row = conn.execute(
        "SELECT * FROM publications WHERE id = ?", (publication_id,)
    ).fetchone()
    return None if row is None else _publication(row)


def schedule_newsletter(
    conn: sqlite3.Connection,
    content_ids: list[str],
    channels: list[str],
    scheduled_time: str,
) -> dict[str, Any]:
    """Store a scheduled newsletter addressed to every active subscriber."""
    recipients = conn.execute(
        "SELECT COUNT(*) FROM subscribers WHERE status = 'active'"
    ).fetchone()[0]
    return insert_publication(
        conn,
        "newsletter",
        content_ids,
        channels,
        status="scheduled",
        scheduled_time=scheduled_time,
        recipients=recipients,
    )


def insert_alert(
    conn: sqlite3.Connection, content_id: str, priority: str, channels: list[str]
) -> dict[str, Any]:
    """Queue an alert and return it with its new ``id``."""
    row = conn.execute(
        "INSERT INTO alerts (content_id, priority, channels, status, created_at)"
        " VALUES (?, ?, ?, 'queued', ?) RETURNING *",
        (content_id, priority, json.dumps(channels), _now()),
    ).fetchone()
    return {
        "id": row["id"],
        "content_id": row["content_id"],
        "priority": row["priority"],
        "channels": json.loads(row["channels"]),
        "status": row["status"],
        "created_at": row["created_at"],
    }


def insert_subscriber(
    conn: sqlite3.Connection,
    email: str,
    preferred_channels: list[str],
    topic_interests: dict[str, float],
):
    """Store a subscriber; ``None`` when the email is already subscribed."""
    try:
        row = conn.execute(
            "INSERT INTO subscribers (email, preferred_channels, topic_interests,"
            " status, created_at) VALUES (?, ?, ?, 'active', ?) RETURNING *",
            (
                email,
                json.dumps(preferred_channels),
                json.dumps(topic_interests),
                _now(),
            ),
        ).fetchone()
    except sqlite3.IntegrityError:
        return None
    return {
        "id": row["id"],
        "email": row["email"],
        "preferred_channels": json.loads(row["preferred_channels"]),
        "topic_interests": json.loads(row["topic_interests"]),
        "status": row["status"],
        "created_at": row["created_at"],
    }


def _window(start_date: date, end_date: date) -> tuple[str, str]:
    """Stored-timestamp bounds ``[start, end)`` covering both whole days."""
    return start_date.isoformat(), (end_date + timedelta(days=1)).isoformat()


def _rate(part: int, whole: int) -> float | None:
    """``part / whole``, or ``None`` when ``whole`` is 0."""
    return part / whole if whole else None


_FUNNEL_SUMS = ", ".join(
    f"SUM(e.event_type = '{kind}') AS {kind}" for kind in EVENT_TYPES
)


def engagement(
    conn: sqlite3.Connection,
    start_date: date,
    end_date: date,
    channel_type: str | None,
) -> dict[str, Any]:
    """Engagement per day between two dates, both included, for one channel or all.

    Parameters
    ----------
    conn
        A connection to the service's database.
    start_date, end_date
        First and last day of the window (UTC), both included.
    channel_type
        Count only events of this channel; ``None`` counts all.

    Returns
    -------
    dict
        ``totals``: the count of each event type (delivered, opened, clicked,
        unsubscribed) in the window; ``unique_subscribers``: distinct subscribers
        with any event; ``open_rate`` = opened / delivered and ``click_rate`` =
        clicked / delivered, ``None`` when nothing was delivered; ``daily``: the
        same counts per day that has events, oldest first; and the query's dates
        and channel.
    """
    low, high = _window(start_date, end_date)
    where = "e.occurred_at >= ? AND e.occurred_at < ?"
    params: list[Any] = [low, high]
    if channel_type is not None:
        where += " AND e.channel_type = ?"
        params.append(channel_type)

    daily = conn.execute(
        f"SELECT substr(e.occurred_at, 1, 10) AS day, {_FUNNEL_SUMS}"
        f" FROM engagement_events AS e WHERE {where} GROUP BY day ORDER BY day",
        params,
    ).fetchall()
    unique = conn.execute(
        "SELECT COUNT(DISTINCT e.subscriber_id) FROM engagement_events AS e"
        f" WHERE {where}",
        params,
    ).fetchone()[0]

    totals = {kind: sum(row[kind] for row in daily) for kind in EVENT_TYPES}
    return {
        "start_date": start_date.isoformat(),
        "end_date": end_date.isoformat(),
        "channel_type": channel_type,
        "totals": totals,
        "unique_subscribers": unique,
        "open_rate": _rate(totals["opened"], totals["delivered"]),
        "click_rate": _rate(totals["clicked"], totals["delivered"]),
        "daily": [
            {"date": row["day"], **{kind: row[kind] for kind in EVENT_TYPES}}
            for row in daily
        ],
    }


def performance(
    conn: sqlite3.Connection, start_date: date, end_date: date, top: int = 10
) -> dict[str, Any]:
    """Publication performance between two dates, both included.

    Parameters
    ----------
    conn
        A connection to the service's database.
    start_date, end_date
        First and last day of the window (UTC), both included.
    top
        How many publications ``top_publications`` lists.

    Returns
    -------
    dict
        ``by_type``: per publication type and channel, the number of publications
        with events and the count of each event type; ``top_publications``: the
        ``top`` publications with the most clicks (ties by lower id) with the same
        counts; every entry has ``open_rate`` = opened / delivered and
        ``click_rate`` = clicked / delivered, ``None`` when nothing was delivered.
    """
    low, high = _window(start_date, end_date)

    # One pass over the events, per publication and channel; the two views are
    # sums of these few hundred rows.
    rows = conn.execute(
        "SELECT per.*, p.publication_type FROM ("
        f"  SELECT e.publication_id, e.channel_type, {_FUNNEL_SUMS}"
        "   FROM engagement_events AS e"
        "   WHERE e.occurred_at >= ? AND e.occurred_at < ?"
        "   GROUP BY e.publication_id, e.channel_type"
        ") AS per JOIN publications AS p ON p.id = per.publication_id",
        (low, high),
    ).fetchall()

    by_type: dict[tuple[str, str], dict[str, Any]] = {}
    by_publication: dict[int, dict[str, Any]] = {}
    for row in rows:
        counts = {kind: row[kind] for kind in EVENT_TYPES}
        group = by_type.setdefault(
            (row["publication_type"], row["channel_type"]),
            {"publications": 0, **dict.fromkeys(EVENT_TYPES, 0)},
        )
        group["publications"] += 1
        single = by_publication.setdefault(
            row["publication_id"],
            {
                "publication_type": row["publication_type"],
                **dict.fromkeys(EVENT_TYPES, 0),
            },
        )
        for kind, n in counts.items():
            group[kind] += n
            single[kind] += n

    def rates(counts: dict[str, Any]) -> dict[str, Any]:
        return {
            **counts,
            "open_rate": _rate(counts["opened"], counts["delivered"]),
            "click_rate": _rate(counts["clicked"], counts["delivered"]),
        }

    best = sorted(
        by_publication.items(), key=lambda item: (-item[1]["clicked"], item[0])
    )
    return {
        "start_date": start_date.isoformat(),
        "end_date": end_date.isoformat(),
        "by_type": [
            {"publication_type": kind, "channel_type": channel, **rates(counts)}
            for (kind, channel), counts in sorted(by_type.items())
        ],
        "top_publications": [
            {"publication_id": publication_id, **rates(counts)}
            for publication_id, counts in best[:top]
        ],
    }

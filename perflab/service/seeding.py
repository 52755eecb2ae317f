"""Fill the sample service's database with the plan's test data, in bulk.

The plan's seed script creates 100,000 subscribers one HTTP request at a time; here
they are written straight into the database (SQLite, or PostgreSQL by ``COPY``) in one
transaction, with publications and
engagement events spread over 2025-09-01 to 2025-11-30 so that the analytics
endpoints (queried by the plan for October 2025) aggregate real rows. The data is
drawn from a seeded random generator: the same arguments give the same database, so
two runs against freshly seeded services compare like with like.
"""

from __future__ import annotations

import json
import logging
import random
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from perflab.service import database as db
from perflab.service.settings import default_db_path

log = logging.getLogger(__name__)

#: First and last day (inclusive) of the seeded engagement events.
FIRST_DAY = datetime(2025, 9, 1, tzinfo=UTC)
DAYS = 91

#: Chance that a delivery is opened, that an opened one is clicked, and that a
#: delivery leads to an unsubscribe.
OPEN_RATE = 0.4
CLICK_RATE = 0.25
UNSUBSCRIBE_RATE = 0.01

_CHANNEL_MIXES = (
    (["email"], 70),
    (["email", "slack"], 15),
    (["slack"], 5),
    (["email", "sms"], 5),
    (["webhook"], 5),
)
_TOPICS = (
    "artificial_intelligence",
    "machine_learning",
    "data_engineering",
    "security",
    "cloud",
)
_PUBLICATION_TYPES = (("newsletter", 60), ("digest", 20), ("alert", 15))
_PUBLICATION_TYPES += (("announcement", 5),)


@dataclass(frozen=True)
class SeedSummary:
    """What :func:`seed_subscribers` wrote.

    Attributes
    ----------
    db_path
        The database file, or the PostgreSQL URL without its password.
    subscribers, publications, events
        Rows now in the ``subscribers``, seeded ``publications`` and
        ``engagement_events`` tables.
    seconds
        Wall time the seeding took, in seconds.
    """

    db_path: Path | str
    subscribers: int
    publications: int
    events: int
    seconds: float


def seed_subscribers(
    db_path: str | Path | None = None,
    count: int = 100_000,
    *,
    publications: int = 200,
    events_per_subscriber: float = 0.5,
    random_seed: int = 0,
) -> SeedSummary:
    """Replace the service's data with ``count`` test subscribers and their activity.

    Subscribers are ``test0@example.com`` ... ``test{count-1}@example.com``, as in the
    plan's seed script, with preferred channels and topic interests; about 2 % are
    unsubscribed. Publications get creation times across the window, and engagement
    events (delivered, then opened with probability 0.4, clicked with 0.25 of the
    opened, unsubscribed with 0.01) belong to a random subscriber, publication and
    one of the subscriber's channels. Existing rows of every table are deleted first.
    Safe to run while the service is up (the service then sees the new data).

    Parameters
    ----------
    db_path
        The database file, or a PostgreSQL URL (``postgresql://...``); the
        service's default file when omitted. The file and the schema are created
        when absent.
    count
        Number of subscribers, 0 or more.
    publications
        Number of publications the events belong to, at least 1 when ``count > 0``.
    events_per_subscriber
        Average number of engagement events per subscriber (deliveries and what
        followed them), 0 or more.
    random_seed
        Seed of the generator; the same arguments give the same data.

    Returns
    -------
    SeedSummary

    Raises
    ------
    ValueError
        When a count is negative, or there are events to write and no publication.
    LaunchError
        When the database cannot be created or written.
    """
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    if events_per_subscriber < 0:
        raise ValueError(
            f"events_per_subscriber must be 0 or more, not {events_per_subscriber}"
        )
    if publications < 0 or (publications == 0 and count and events_per_subscriber):
        raise ValueError(
            f"publications must be at least 1 when there are events, not {publications}"
        )
    database = default_db_path() if db_path is None else db_path
    database = database if db.is_postgres(database) else Path(database)
    started = time.perf_counter()
    rng = random.Random(random_seed)

    db.create_schema(database)
    subscribers = _subscribers(rng, count)
    pubs = _publications(rng, publications)
    events = _events(
        rng, subscribers, publications, round(count * events_per_subscriber)
    )

    conn = db.connect(database)
    if isinstance(conn, db.PostgresConnection):
        try:
            _write_postgres(conn, subscribers, pubs, events)
        finally:
            conn.close()
    else:
        _write_sqlite(conn, subscribers, pubs, events)

    summary = SeedSummary(
        db_path=db.describe(database) if db.is_postgres(database) else database,
        subscribers=count,
        publications=len(pubs),
        events=len(events),
        seconds=time.perf_counter() - started,
    )
    log.info(
        "Seeded %s with %d subscribers, %d publications and %d engagement events "
        "in %.2f s",
        summary.db_path,
        summary.subscribers,
        summary.publications,
        summary.events,
        summary.seconds,
    )
    return summary


def _write_sqlite(conn, subscribers: list, pubs: list, events: list) -> None:
    """Replace every table's rows in one SQLite transaction."""
    try:
        conn.execute("BEGIN IMMEDIATE")
        for table in ("engagement_events", "alerts", "publications", "subscribers"):
            conn.execute(f"DELETE FROM {table}")
        conn.execute(
            "DELETE FROM sqlite_sequence WHERE name IN ('publications', 'alerts')"
        )
        conn.executemany(
            "INSERT INTO subscribers (id, email, preferred_channels,"
            " topic_interests, status, created_at) VALUES (?, ?, ?, ?, ?, ?)",
            ((row[0], *row[2:]) for row in subscribers),
        )
        conn.executemany(
            "INSERT INTO publications (id, publication_type, content_ids, channels,"
            " status, scheduled_time, recipients, created_at)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            pubs,
        )
        conn.executemany(
            "INSERT INTO engagement_events (publication_id, subscriber_id,"
            " channel_type, event_type, occurred_at) VALUES (?, ?, ?, ?, ?)",
            events,
        )
        conn.execute("COMMIT")
        conn.execute("ANALYZE")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    finally:
        conn.close()


def _write_postgres(conn, subscribers: list, pubs: list, events: list) -> None:
    """Replace every table's rows in one PostgreSQL transaction, by ``COPY``."""
    with conn.transaction():
        conn.execute(f"TRUNCATE {', '.join(db.TABLES)} RESTART IDENTITY")
        with conn.raw.cursor() as cursor:
            with cursor.copy(
                "COPY subscribers (id, email, preferred_channels, topic_interests,"
                " status, created_at) FROM STDIN"
            ) as copy:
                for row in subscribers:
                    copy.write_row((row[0], *row[2:]))
            with cursor.copy(
                "COPY publications (id, publication_type, content_ids, channels,"
                " status, scheduled_time, recipients, created_at) FROM STDIN"
            ) as copy:
                for row in pubs:
                    copy.write_row(row)
            with cursor.copy(
                "COPY engagement_events (publication_id, subscriber_id,"
                " channel_type, event_type, occurred_at) FROM STDIN"
            ) as copy:
                for row in events:
                    copy.write_row(row)
        # Explicit ids do not move the identity sequences; new rows go after them.
        for table in ("subscribers", "publications"):
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'),"
                f" coalesce(max(id), 0) + 1, false) FROM {table}"
            )
    conn.execute("ANALYZE")


def _stamp(moment: datetime) -> str:
    """A datetime in the database's timestamp format."""
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _subscribers(rng: random.Random, count: int) -> list[tuple]:
    """Rows ``(id, channels list, email, channels, interests, status, created)``."""
    mixes = [mix for mix, _ in _CHANNEL_MIXES]
    weights = [weight for _, weight in _CHANNEL_MIXES]
    # A few hundred distinct interest profiles, serialized once, keep this fast.
    profiles = []
    for _ in range(256):
        topics = rng.sample(_TOPICS, rng.randint(1, 3))
        profiles.append(json.dumps({t: round(rng.uniform(0.3, 1), 1) for t in topics}))
    mix_json = [json.dumps(mix) for mix in mixes]

    mix_index = rng.choices(range(len(mixes)), weights, k=count)
    profile_index = rng.choices(range(len(profiles)), k=count)
    created = _stamp(FIRST_DAY - timedelta(days=30))
    rows = []
    for i in range(count):
        m = mix_index[i]
        status = "unsubscribed" if rng.random() < 0.02 else "active"
        rows.append(
            (
                i + 1,
                mixes[m],
                f"test{i}@example.com",
                mix_json[m],
                profiles[profile_index[i]],
                status,
                created,
            )
        )
    return rows


def _publications(rng: random.Random, count: int) -> list[tuple]:
    """Publication rows spread over the seeded window, all already sent."""
    kinds = [kind for kind, _ in _PUBLICATION_TYPES]
    weights = [weight for _, weight in _PUBLICATION_TYPES]
    rows = []
    for i in range(count):
        sent = FIRST_DAY + timedelta(seconds=rng.uniform(0, DAYS * 86400))
        content_ids = [f"content-{rng.randrange(10_000)}" for _ in range(3)]
        rows.append(
            (
                i + 1,
                rng.choices(kinds, weights)[0],
                json.dumps(content_ids),
                json.dumps([f"channel-{rng.randrange(20)}"]),
                "sent",
                _stamp(sent),
                None,
                _stamp(sent),
            )
        )
    return rows


def _events(
    rng: random.Random, subscribers: list[tuple], publications: int, target: int
) -> list[tuple]:
    """About ``target`` engagement events: deliveries and what followed them."""
    rows: list[tuple] = []
    if not subscribers or not target:
        return rows

    # Formatting from whole seconds is ten times faster than datetime arithmetic.
    days = [_stamp(FIRST_DAY + timedelta(days=d))[:10] for d in range(DAYS + 2)]

    def stamp(offset_s: int) -> str:
        day, rest = divmod(offset_s, 86400)
        hour, rest = divmod(rest, 3600)
        minute, second = divmod(rest, 60)
        return f"{days[day]}T{hour:02d}:{minute:02d}:{second:02d}Z"

    window_s = DAYS * 86400
    while len(rows) < target:
        subscriber_id, channels = subscribers[rng.randrange(len(subscribers))][:2]
        publication_id = rng.randrange(publications) + 1
        channel = channels[rng.randrange(len(channels))]
        moment = rng.randrange(window_s)

        rows.append(
            (publication_id, subscriber_id, channel, "delivered", stamp(moment))
        )
        if rng.random() < OPEN_RATE:
            moment += rng.randrange(60, 36_000)
            rows.append(
                (publication_id, subscriber_id, channel, "opened", stamp(moment))
            )
            if rng.random() < CLICK_RATE:
                moment += rng.randrange(5, 300)
                rows.append(
                    (publication_id, subscriber_id, channel, "clicked", stamp(moment))
                )
        if rng.random() < UNSUBSCRIBE_RATE:
            rows.append(
                (publication_id, subscriber_id, channel, "unsubscribed", stamp(moment))
            )
    return rows

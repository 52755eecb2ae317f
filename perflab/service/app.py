"""The sample publishing service's HTTP API, built by :func:`create_app`.

It stands in for the load-testing plan's "Publishing Module": the endpoints its
scenarios call, a bearer-token login, a bounded database connection pool
(:mod:`perflab.service.database`), an optional global rate limit, and a Prometheus
``/metrics`` page that shows the pool filling up.

Endpoints::

    GET  /health                                     readiness, no login
    GET  /metrics                                    Prometheus text, no login
    POST /auth/login                                 {"username", "password"} -> token
    POST /api/v1/publications                        201
    GET  /api/v1/publications?limit=20&offset=0
    GET  /api/v1/publications/{id}                   404 when absent
    POST /api/v1/publications/newsletter/schedule    202
    POST /api/v1/alerts                              201
    POST /api/v1/subscribers                         201, 409 when already subscribed
    GET  /api/v1/analytics/engagement?start_date=&end_date=&channel_type=
    GET  /api/v1/analytics/performance?start_date=&end_date=

Every ``/api/v1`` endpoint needs ``Authorization: Bearer <token>`` (401 otherwise).
Every ``/api/v1`` request counts against the rate limit (429); logging in does not,
so that a limited run shows 429s rather than users left without a token.
A request that waits longer than ``pool_timeout_s`` for a connection gets 503.

With a ``cache_url`` (Redis), ``GET /api/v1/publications/{id}`` and both analytics
endpoints answer from a cache when they can (:mod:`perflab.service.cache`), and
scheduling a newsletter also pushes a job onto the ``queue_name`` list, drained by
``queue_workers`` workers; ``/metrics`` then shows cache hits and misses and the
queue's length.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import logging
import math
import secrets
import time
from collections import Counter, defaultdict
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, Field

from perflab.service import database as db
from perflab.service.cache import Cache, JobQueue, open_cache
from perflab.service.settings import ServiceSettings

log = logging.getLogger(__name__)

ChannelType = Literal["email", "slack", "webhook", "sms"]
PublicationType = Literal["newsletter", "alert", "digest", "announcement"]
Priority = Literal["low", "normal", "high", "critical"]
Ids = Annotated[list[Annotated[str, Field(min_length=1)]], Field(min_length=1)]


# ---------------------------------------------------------------------------
# Request bodies


class Login(BaseModel):
    username: str
    password: str


class NewPublication(BaseModel):
    content_ids: Ids
    channels: Ids
    publication_type: PublicationType = "newsletter"


class NewsletterSchedule(BaseModel):
    content_ids: Ids
    channels: Ids
    scheduled_time: datetime


class NewAlert(BaseModel):
    content_id: str = Field(min_length=1)
    priority: Priority = "normal"
    channels: Ids


class NewSubscriber(BaseModel):
    email: str = Field(pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$", max_length=254)
    preferred_channels: list[ChannelType] = Field(default=["email"], min_length=1)
    topic_interests: dict[str, Annotated[float, Field(ge=0, le=1)]] = {}


# ---------------------------------------------------------------------------
# State shared by the requests of one app


class TokenBucket:
    """Admit at most ``rate_per_s`` requests per second on average.

    The bucket holds up to ``capacity`` tokens, refilled continuously at
    ``rate_per_s``; each admitted request takes one. Used from the event loop only.

    Parameters
    ----------
    rate_per_s
        Refill rate, in tokens per second.
    capacity
        Largest burst admitted at once; one second's worth when omitted.
    """

    def __init__(self, rate_per_s: float, capacity: float | None = None) -> None:
        self.rate_per_s = rate_per_s
        self.capacity = max(1.0, rate_per_s if capacity is None else capacity)
        self.tokens = self.capacity
        self.updated = time.monotonic()

    def take(self) -> bool:
        """Take a token when one is there; ``False`` means the request is refused."""
        now = time.monotonic()
        self.tokens = min(
            self.capacity, self.tokens + (now - self.updated) * self.rate_per_s
        )
        self.updated = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        return False

    def retry_after_s(self) -> int:
        """Whole seconds until the next token, for the ``Retry-After`` header."""
        return max(1, math.ceil((1 - self.tokens) / self.rate_per_s))


def _same(given: str, expected: str) -> bool:
    """Compare two secrets in constant time (any characters, unlike ``str`` input)."""
    return hmac.compare_digest(given.encode(), expected.encode())


class Tokens:
    """Issue and check signed, expiring bearer tokens.

    A token is ``<payload>.<signature>``: the base64 of ``username:expiry`` (expiry in
    Unix seconds) and its HMAC-SHA256 under the app's secret, so checking one needs
    no storage.
    """

    def __init__(self, secret: str, ttl_s: float, static_token: str | None) -> None:
        self._key = (secret or secrets.token_hex(32)).encode()
        self.ttl_s = ttl_s
        self.static_token = static_token

    def _sign(self, payload: str) -> str:
        return hmac.new(self._key, payload.encode(), hashlib.sha256).hexdigest()

    def issue(self, username: str) -> str:
        """A new token for ``username``, valid for ``ttl_s`` seconds."""
        expiry = int(time.time() + self.ttl_s)
        payload = base64.urlsafe_b64encode(f"{username}:{expiry}".encode()).decode()
        return f"{payload}.{self._sign(payload)}"

    def valid(self, token: str) -> bool:
        """Whether ``token`` was issued here and has not expired."""
        if self.static_token is not None and _same(token, self.static_token):
            return True
        payload, _, signature = token.partition(".")
        if not _same(signature, self._sign(payload)):
            return False
        try:
            expiry = int(base64.urlsafe_b64decode(payload).decode().rsplit(":", 1)[1])
        except (ValueError, IndexError):
            return False
        return time.time() < expiry


class RequestMetrics:
    """Counts of finished requests by method, route and status, and their time."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, str, int]] = Counter()
        self.seconds: defaultdict[tuple[str, str], float] = defaultdict(float)
        self.in_progress = 0


class ServiceState:
    """Everything one app instance keeps between requests."""

    def __init__(self, settings: ServiceSettings) -> None:
        self.settings = settings
        self.pool = db.ConnectionPool(
            settings.database,
            settings.pool_size,
            query_delay_ms=settings.query_delay_ms,
            timeout_s=settings.pool_timeout_s,
        )
        self.tokens = Tokens(
            settings.token_secret, settings.token_ttl_s, settings.static_token
        )
        self.bucket = (
            None
            if settings.rate_limit_rps is None
            else TokenBucket(settings.rate_limit_rps)
        )
        self.metrics = RequestMetrics()
        self.started = time.time()
        self.redis = None
        self.cache: Cache | None = None
        self.queue: JobQueue | None = None

    async def open(self) -> None:
        """Create the schema, open the pool, and connect the cache when there is one.

        Raises
        ------
        LaunchError
            When the database or the cache cannot be reached.
        """
        settings = self.settings
        db.create_schema(settings.database)
        self.pool.open()
        if settings.cache_url:
            try:
                self.redis, self.cache, self.queue = await open_cache(
                    settings.cache_url,
                    settings.cache_ttl_s,
                    settings.queue_name,
                    settings.queue_workers,
                    settings.queue_job_ms,
                    namespace=hashlib.sha256(
                        db.describe(settings.database).encode()
                    ).hexdigest()[:8],
                )
            except BaseException:
                self.pool.close()
                raise

    async def close(self) -> None:
        """Stop the queue's workers and close the cache and the pool."""
        if self.queue is not None:
            await self.queue.stop()
        if self.redis is not None:
            await self.redis.aclose()
        self.pool.close()

    async def cached(self, key: str, work, *args):
        """``query(work, *args)`` through the cache when there is one."""
        if self.cache is None:
            return await self.query(work, *args)
        return await self.cache.get_or_load(key, lambda: self.query(work, *args))

    async def query(self, work, *args, **kwargs):
        """Run a query function of :mod:`database` on a pooled connection."""
        try:
            return await self.pool.run(lambda conn: work(conn, *args, **kwargs))
        except db.PoolTimeout as exc:
            raise HTTPException(
                503,
                f"The service is overloaded: {exc}.",
                headers={"Retry-After": "1"},
            ) from None


# ---------------------------------------------------------------------------
# Dependencies (all async: a sync dependency would take a thread per request)


async def state_of(request: Request) -> ServiceState:
    """The :class:`ServiceState` of the app serving ``request``."""
    return request.app.state.service


State = Annotated[ServiceState, Depends(state_of)]


async def rate_limit(state: State) -> None:
    """Refuse the request with 429 when the global rate limit is used up."""
    if state.bucket is not None and not state.bucket.take():
        raise HTTPException(
            429,
            f"Rate limit of {state.settings.rate_limit_rps:g} requests per second "
            "exceeded; retry later.",
            headers={"Retry-After": str(state.bucket.retry_after_s())},
        )


async def require_token(request: Request, state: State) -> None:
    """Refuse the request with 401 unless it carries a valid bearer token."""
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        detail = "Log in at POST /auth/login and send Authorization: Bearer <token>."
    elif not state.tokens.valid(token.strip()):
        detail = "The bearer token is invalid or expired; log in again."
    else:
        return
    raise HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


# ---------------------------------------------------------------------------
# Routes

public = APIRouter()
login_router = APIRouter()
api = APIRouter(
    prefix="/api/v1", dependencies=[Depends(rate_limit), Depends(require_token)]
)


@public.get("/health")
async def health(state: State) -> dict[str, Any]:
    """Readiness: answers 200 once the pool is open; needs no login."""
    return {
        "status": "ok",
        "pool_size": state.pool.size,
        "database": "postgresql" if db.is_postgres(state.pool.database) else "sqlite",
        "cache": state.cache is not None,
        "uptime_s": round(time.time() - state.started, 3),
    }


@public.get("/metrics", response_class=PlainTextResponse)
async def metrics(state: State) -> PlainTextResponse:
    """Pool and request metrics in the Prometheus text format; needs no login."""
    queue_length = None
    if state.queue is not None:
        try:
            queue_length = await state.queue.length()
        except Exception as exc:  # a metrics page must answer even so
            log.warning("The queue's length cannot be read: %s", exc)
    return PlainTextResponse(
        render_metrics(state, queue_length),
        media_type="text/plain; version=0.0.4; charset=utf-8",
    )


@login_router.post("/auth/login")
async def login(body: Login, state: State) -> dict[str, Any]:
    """Exchange the configured username and password for a bearer token."""
    settings = state.settings
    good_user = _same(body.username, settings.username)
    good_password = _same(body.password, settings.password)
    if not (good_user and good_password):
        raise HTTPException(401, "Wrong username or password.")
    return {
        "token": state.tokens.issue(body.username),
        "token_type": "bearer",
        "expires_in": settings.token_ttl_s,
    }


@api.post("/publications", status_code=201)
async def create_publication(body: NewPublication, state: State) -> dict[str, Any]:
    """Store a draft publication; answers 201 with it and its new id."""
    return await state.query(
        db.insert_publication, body.publication_type, body.content_ids, body.channels
    )


@api.get("/publications")
async def list_publications(
    state: State,
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> dict[str, Any]:
    """One page of publications, newest first, with the total count."""
    return await state.query(db.list_publications, limit, offset)


@api.get("/publications/{publication_id}")
async def get_publication(publication_id: int, state: State) -> dict[str, Any]:
    """One publication; 404 when there is no such id."""
    found = await state.cached(
        f"publication:{publication_id}", db.get_publication, publication_id
    )
    if found is None:
        raise HTTPException(404, f"There is no publication {publication_id}.")
    return found


@api.post("/publications/newsletter/schedule", status_code=202)
async def schedule_newsletter(body: NewsletterSchedule, state: State) -> dict[str, Any]:
    """Schedule a newsletter to every active subscriber; answers 202.

    With a cache, a delivery job also goes onto the queue; a queue that cannot be
    reached makes the request fail (500), as it would in a Celery deployment.
    """
    scheduled = await state.query(
        db.schedule_newsletter,
        body.content_ids,
        body.channels,
        body.scheduled_time.isoformat(),
    )
    if state.queue is not None:
        await state.queue.push(
            {
                "task": "publishing.deliver_newsletter",
                "publication_id": scheduled["id"],
                "recipients": scheduled["recipients"],
            }
        )
    return scheduled


@api.post("/alerts", status_code=201)
async def create_alert(body: NewAlert, state: State) -> dict[str, Any]:
    """Queue an alert; answers 201."""
    return await state.query(
        db.insert_alert, body.content_id, body.priority, body.channels
    )


@api.post("/subscribers", status_code=201)
async def create_subscriber(body: NewSubscriber, state: State) -> dict[str, Any]:
    """Subscribe an email address; 201, or 409 when it is already subscribed."""
    created = await state.query(
        db.insert_subscriber,
        body.email,
        body.preferred_channels,
        body.topic_interests,
    )
    if created is None:
        raise HTTPException(409, f"{body.email} is already subscribed.")
    return created


def _check_window(start_date: date, end_date: date) -> None:
    """422, shaped like FastAPI's own, when the window ends before it starts."""
    if end_date < start_date:
        raise RequestValidationError(
            [
                {
                    "type": "value_error",
                    "loc": ("query", "end_date"),
                    "msg": f"end_date {end_date} is before start_date {start_date}; "
                    "swap them or fix one.",
                    "input": end_date.isoformat(),
                }
            ]
        )


@api.get("/analytics/engagement")
async def engagement(
    state: State,
    start_date: date,
    end_date: date,
    channel_type: ChannelType | None = None,
) -> dict[str, Any]:
    """Engagement funnel per day over a window of whole days, both included."""
    _check_window(start_date, end_date)
    return await state.cached(
        f"engagement:{start_date}:{end_date}:{channel_type or 'all'}",
        db.engagement,
        start_date,
        end_date,
        channel_type,
    )


@api.get("/analytics/performance")
async def performance(state: State, start_date: date, end_date: date) -> dict[str, Any]:
    """Funnel per publication type and channel, and the most clicked publications."""
    _check_window(start_date, end_date)
    return await state.cached(
        f"performance:{start_date}:{end_date}", db.performance, start_date, end_date
    )


# ---------------------------------------------------------------------------
# Request counting, as pure ASGI middleware (cheaper than BaseHTTPMiddleware)


class CountRequests:
    """Count every HTTP request by method, route template and status."""

    def __init__(self, app, metrics: RequestMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        status = 500  # what the client sees if the app fails before answering

        async def send_and_note(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        started = time.perf_counter()
        self.metrics.in_progress += 1
        try:
            await self.app(scope, receive, send_and_note)
        finally:
            self.metrics.in_progress -= 1
            route = scope.get("route")
            # Templates, not raw paths, keep the label set small.
            name = getattr(route, "path", None) or "unmatched"
            method = scope["method"]
            self.metrics.requests[(method, name, status)] += 1
            self.metrics.seconds[(method, name)] += time.perf_counter() - started


def _label(value: object) -> str:
    """A Prometheus label value, escaped."""
    text = str(value).replace("\\", "\\\\").replace('"', '\\"')
    return text.replace("\n", "\\n")


def render_metrics(state: ServiceState, queue_length: int | None = None) -> str:
    """The service's metrics in the Prometheus text exposition format.

    Parameters
    ----------
    state
        The app's state.
    queue_length
        Jobs waiting in the queue now, when there is a queue and it was read.

    Returns
    -------
    str
        Pool gauges and counters (``perflab_db_pool_*``), request counts and time by
        method, route template and status (``perflab_http_*``), and rate-limit
        refusals; with a cache, its hits, misses and errors (``perflab_cache_*``)
        and the queue's jobs (``perflab_queue_*``).
    """
    pool = state.pool
    lines: list[str] = []

    def metric(name: str, kind: str, help_text: str, samples) -> None:
        lines.append(f"# HELP {name} {help_text}")
        lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            if labels:
                text = ",".join(f'{k}="{_label(v)}"' for k, v in labels.items())
                lines.append(f"{name}{{{text}}} {value}")
            else:
                lines.append(f"{name} {value}")

    def one(name: str, kind: str, help_text: str, value) -> None:
        metric(name, kind, help_text, [({}, value)])

    one("perflab_db_pool_size", "gauge", "Pooled database connections.", pool.size)
    one(
        "perflab_db_pool_in_use",
        "gauge",
        "Connections lent to a request now.",
        pool.in_use,
    )
    one(
        "perflab_db_pool_waiting",
        "gauge",
        "Requests waiting for a free connection now.",
        pool.waiting,
    )
    one(
        "perflab_db_pool_in_use_max",
        "gauge",
        "Most connections lent at once since the service started.",
        pool.in_use_max,
    )
    one(
        "perflab_db_pool_waiting_max",
        "gauge",
        "Most requests waiting at once since the service started.",
        pool.waiting_max,
    )
    one(
        "perflab_db_pool_acquired_total",
        "counter",
        "Connections lent since the service started.",
        pool.acquired_total,
    )
    one(
        "perflab_db_pool_timeouts_total",
        "counter",
        "Requests refused with 503 after waiting pool_timeout_s for a connection.",
        pool.timeouts_total,
    )
    one(
        "perflab_db_pool_wait_seconds_total",
        "counter",
        "Time requests spent waiting for a connection, in seconds.",
        f"{pool.wait_seconds_total:.6f}",
    )
    one(
        "perflab_db_pool_held_seconds_total",
        "counter",
        "Time connections were lent, in seconds (query plus query_delay_ms).",
        f"{pool.held_seconds_total:.6f}",
    )

    requests = state.metrics
    one(
        "perflab_http_requests_in_progress",
        "gauge",
        "HTTP requests being handled now.",
        requests.in_progress,
    )
    metric(
        "perflab_http_requests_total",
        "counter",
        "Finished HTTP requests by method, route and status.",
        [
            ({"method": m, "route": r, "status": s}, n)
            for (m, r, s), n in sorted(requests.requests.items())
        ],
    )
    metric(
        "perflab_http_request_seconds_total",
        "counter",
        "Time spent handling HTTP requests by method and route, in seconds.",
        [
            ({"method": m, "route": r}, f"{t:.6f}")
            for (m, r), t in sorted(requests.seconds.items())
        ],
    )
    refused = sum(n for (_, _, s), n in requests.requests.items() if s == 429)
    one(
        "perflab_rate_limited_total",
        "counter",
        "Requests refused with 429 by the rate limit.",
        refused,
    )
    one(
        "perflab_rate_limit_rps",
        "gauge",
        "The configured rate limit in requests per second (0: none).",
        state.settings.rate_limit_rps or 0,
    )

    cache = state.cache
    if cache is not None:
        one(
            "perflab_cache_hits_total",
            "counter",
            "Reads answered from the Redis cache.",
            cache.hits,
        )
        one(
            "perflab_cache_misses_total",
            "counter",
            "Cacheable reads that went to the database.",
            cache.misses,
        )
        one(
            "perflab_cache_errors_total",
            "counter",
            "Redis commands of the cache that failed.",
            cache.errors,
        )
    queue = state.queue
    if queue is not None:
        if queue_length is not None:
            one(
                "perflab_queue_length",
                "gauge",
                "Jobs waiting in the queue now.",
                queue_length,
            )
        one("perflab_queue_workers", "gauge", "Queue workers.", queue.workers)
        one(
            "perflab_queue_enqueued_total",
            "counter",
            "Jobs pushed onto the queue.",
            queue.enqueued,
        )
        one(
            "perflab_queue_done_total",
            "counter",
            "Jobs the workers finished.",
            queue.done,
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------


def create_app(settings: ServiceSettings | None = None) -> FastAPI:
    """Build the sample publishing service.

    The schema is created and the connection pool opened when the app starts (its
    lifespan), not here, so building an app touches no file.

    Parameters
    ----------
    settings
        How to configure it; the defaults of :class:`ServiceSettings` when omitted.

    Returns
    -------
    FastAPI
        The app; its ``state.service`` is the :class:`ServiceState` (pool, metrics).
    """
    settings = ServiceSettings() if settings is None else settings
    state = ServiceState(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        await state.open()
        log.info(
            "Sample service ready: pool_size=%d, query_delay_ms=%g, "
            "rate_limit_rps=%s, database %s, cache %s",
            settings.pool_size,
            settings.query_delay_ms,
            settings.rate_limit_rps,
            db.describe(settings.database),
            "on" if state.cache is not None else "off",
        )
        try:
            yield
        finally:
            await state.close()
            log.info("Sample service stopped")

    app = FastAPI(
        title="perflab sample publishing service",
        version="1",
        lifespan=lifespan,
    )
    app.state.service = state
    app.include_router(public)
    app.include_router(login_router)
    app.include_router(api)
    app.add_middleware(CountRequests, metrics=state.metrics)
    return app

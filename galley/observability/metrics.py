"""Prometheus metrics (prometheus-client): what this process counts as it works, and what the
database says at scrape time.

Counted where the work happens (one process is one node; its counters are process-wide):
  galley_http_requests_total / galley_http_request_duration_seconds   {method, route, status}
      route is the route's template (`/subscriptions/{subscriptionId}/…`), never the raw path,
      so the number of series stays bounded whatever clients send
  galley_replication_bytes_total / …_seconds_total / …_throughput_bytes_per_second
      {source_region, target_region}
  galley_build_phase_duration_seconds {phase, result}, galley_build_duration_seconds {result}
  galley_tokens_issued_total, galley_token_requests_refused_total {status}   (from the token
      route's answers, whatever the grant)
  galley_authentication_failures_total {code}

Read from the database when scraped (one grouped query; chunk bytes at most once a minute):
  galley_jobs {kind, state}, galley_jobs_oldest_age_seconds {kind}
  galley_chunk_store_bytes {region, measure}
"""

from __future__ import annotations

import logging
import threading
import time
from datetime import datetime

from prometheus_client import (REGISTRY, CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics,
                               generate_latest)
from prometheus_client.core import GaugeMetricFamily
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from ..api.paths import canonical_path

log = logging.getLogger("galley.metrics")
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
disable_created_metrics()  # the `_created` series double the output and no dashboard reads them
_METHODS = frozenset({"GET", "HEAD", "PUT", "PATCH", "POST", "DELETE", "OPTIONS"})
_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)
_BUILD_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1200, 3600)

REQUESTS = Counter("galley_http_requests", "HTTP requests answered, by route template and status.",
                   ("method", "route", "status"))
LATENCY = Histogram("galley_http_request_duration_seconds", "Time to answer HTTP requests.",
                    ("method", "route", "status"), buckets=_LATENCY_BUCKETS)
REPLICATED_BYTES = Counter("galley_replication_bytes", "Bytes replication copied between stores.",
                           ("source_region", "target_region"))
REPLICATION_SECONDS = Counter("galley_replication_seconds", "Time replication spent copying.",
                              ("source_region", "target_region"))
REPLICATION_THROUGHPUT = Gauge("galley_replication_throughput_bytes_per_second",
                               "Throughput of the last finished copy between these regions.",
                               ("source_region", "target_region"))
BUILD_PHASES = Histogram("galley_build_phase_duration_seconds", "Time image builds spent in each phase.",
                         ("phase", "result"), buckets=_BUILD_BUCKETS)
BUILDS = Histogram("galley_build_duration_seconds", "Time image builds took, by result.", ("result",),
                   buckets=_BUILD_BUCKETS)
TOKEN_ROUTE = "/{tenant}/oauth2/v2.0/token"
TOKENS_ISSUED = Counter("galley_tokens_issued", "Access tokens issued by Galley's authority (any grant).")
TOKENS_REFUSED = Counter("galley_token_requests_refused", "Token requests the authority refused, by status.",
                         ("status",))
AUTHENTICATION_FAILURES = Counter("galley_authentication_failures",
                                  "Requests refused with 401: no, malformed or invalid bearer token.", ("code",))


# ---- requests --------------------------------------------------------------------------------

def _route_template(scope: Scope) -> str:
    state = scope.get("state") or {}
    if "route_template" in state:
        return state["route_template"]
    # Not routed (refused before routing, a 404, the blob data plane): match the app's routes.
    for path in dict.fromkeys((scope["path"], canonical_path(scope["path"]))):  # ARM's words in any case
        probe = {"type": "http", "method": scope["method"], "path": path, "root_path": "", "headers": []}
        for route in _leaf_routes(scope["app"]):
            if route.matches(probe)[0] != Match.NONE:
                return route.path
    return "blob" if scope["path"].startswith("/blob/") else "unmatched"


def _leaf_routes(app) -> list:
    """The app's routes with a path, also those inside included routers (listed once per app)."""
    found = getattr(app.state, "leaf_routes", None)
    if found is None:
        found, pending = [], list(app.router.routes)
        while pending:
            route = pending.pop(0)
            if hasattr(route, "original_router"):
                pending[:0] = route.original_router.routes
            elif hasattr(route, "path"):
                found.append(route)
        app.state.leaf_routes = found
    return found


class RouteCapture:
    """Innermost middleware: notes the matched route's template where the outer layers see it
    (CanonicalPathMiddleware hands a copy of the scope inward; the `state` dict is shared)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            route = scope.get("route")
            if route is not None and hasattr(route, "path") and "state" in scope:
                scope["state"]["route_template"] = route.path


class RequestMetrics:
    """Counts every answer and its duration, by method, route template and status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 0

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _route_template(scope)
            method = scope["method"] if scope["method"] in _METHODS else "other"  # clients may send any word
            labels = (method, route, str(status or 499))
            REQUESTS.labels(*labels).inc()
            LATENCY.labels(*labels).observe(time.perf_counter() - started)
            if route == TOKEN_ROUTE and method == "POST":
                if status == 200:
                    TOKENS_ISSUED.inc()
                else:
                    TOKENS_REFUSED.labels(str(status or 499)).inc()


# ---- work ------------------------------------------------------------------------------------

class ReplicationMeter:
    """One copy into one store: feed it the copy's bytes moved so far; it counts the new ones."""

    def __init__(self, source_region: str, target_region: str) -> None:
        self.labels = (source_region, target_region)
        self.counted = 0
        self.started = time.monotonic()

    def update(self, bytes_moved: int) -> None:
        if bytes_moved > self.counted:
            REPLICATED_BYTES.labels(*self.labels).inc(bytes_moved - self.counted)
            self.counted = bytes_moved

    def finish(self, bytes_moved: int) -> None:
        self.update(bytes_moved)
        seconds = max(time.monotonic() - self.started, 1e-6)
        REPLICATION_SECONDS.labels(*self.labels).inc(seconds)
        REPLICATION_THROUGHPUT.labels(*self.labels).set(self.counted / seconds)


def build_finished(phases: dict[str, float], result: str, total_seconds: float) -> None:
    for phase, seconds in phases.items():
        BUILD_PHASES.labels(phase, result).observe(seconds)
    BUILDS.labels(result).observe(total_seconds)


# ---- read at scrape time ---------------------------------------------------------------------

def _age(iso_time: str | None, now: float) -> float:
    if not iso_time:
        return 0.0
    try:
        return max(0.0, now - datetime.fromisoformat(iso_time.replace("Z", "+00:00")).timestamp())
    except ValueError:
        return 0.0


def job_kind(action: str, resource_type: str) -> str:
    """`versions/create`: the resource type's last word and the action (a bounded set)."""
    return f"{resource_type.rsplit('/', 1)[-1]}/{action}"


class DatabaseCollector:
    """Job queue depth and age, and chunk-store bytes, read from the database when scraped."""

    CHUNK_BYTES_SECONDS = 60.0  # a sum over every stored chunk: not at each scrape

    def __init__(self, nodes, content_repository, region_of) -> None:
        self.nodes = nodes
        self.repository = content_repository
        self.region_of = region_of
        self._chunk_bytes: tuple[float, dict] = (0.0, {})
        self._lock = threading.Lock()

    def collect(self):
        try:
            yield from self._collect(time.time())
        except Exception as error:  # noqa: BLE001 - the process's own counters are still worth a scrape
            log.warning("metrics from the database are missing from this scrape: %r", error)

    def _collect(self, now: float):
        depth = GaugeMetricFamily("galley_jobs", "Unfinished operations: queued (waiting for a worker) or "
                                  "running (claimed under a live lease).", labels=("kind", "state"))
        oldest = GaugeMetricFamily("galley_jobs_oldest_age_seconds",
                                   "Age of the oldest unfinished operation of each kind.", labels=("kind",))
        counts: dict[tuple[str, str], int] = {}
        ages: dict[str, float] = {}
        for row in self.nodes.queue(now):
            kind = job_kind(row.action, row.resource_type)
            state = "running" if row.claimed else "queued"
            counts[kind, state] = counts.get((kind, state), 0) + row.count
            ages[kind] = max(ages.get(kind, 0.0), _age(row.oldest, now))
        for (kind, state), count in sorted(counts.items()):
            depth.add_metric((kind, state), count)
        for kind, age in sorted(ages.items()):
            oldest.add_metric((kind,), age)
        yield depth
        yield oldest
        chunks = GaugeMetricFamily("galley_chunk_store_bytes", "Bytes of chunks in each region's stores: "
                                   "stored (compressed) and raw, deduplicated.", labels=("region", "measure"))
        for region, (stored, raw) in sorted(self._chunk_bytes_by_region(now).items()):
            chunks.add_metric((region, "stored"), stored)
            chunks.add_metric((region, "raw"), raw)
        yield chunks

    def _chunk_bytes_by_region(self, now: float) -> dict[str, tuple[int, int]]:
        with self._lock:
            at, cached = self._chunk_bytes
            if now - at < self.CHUNK_BYTES_SECONDS:
                return cached
            by_region: dict[str, tuple[int, int]] = {}
            for store, (stored, raw) in self.repository.physical_by_store().items():
                before = by_region.get(self.region_of(store), (0, 0))
                by_region[self.region_of(store)] = (before[0] + stored, before[1] + raw)
            self._chunk_bytes = (now, by_region)
            return by_region


class Exposition:
    """What GET /metrics answers: this process's counters and the database's figures."""

    def __init__(self, collector: DatabaseCollector) -> None:
        self.database = CollectorRegistry(auto_describe=False)
        self.database.register(collector)

    def render(self) -> bytes:
        return generate_latest(REGISTRY) + generate_latest(self.database)

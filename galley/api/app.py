"""The FastAPI application: wiring of settings, store, service, worker and routes."""

from __future__ import annotations

import logging
from pathlib import Path
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import __version__
from ..config import Settings, load_settings
from ..content.engine import ContentEngine
from ..content.locations import Locations
from ..domain.errors import ArmError
from ..domain.service import ResourceService
from ..domain.vm_service import VmService
from ..jobs.build import workspace as build_workspace
from ..jobs.build.run import run_template
from ..jobs.wakeups import Wakeups
from ..jobs.worker import Worker
from ..jobs import vm_work
from ..jobs.context import JobContext
from ..store.content_repository import ContentRepository
from ..store.database import make_engine, migrate
from ..store.sql_store import BUILD_ACTIONS, VM_ACTIONS, VM_TYPES, SqlStore
from .. import uploads
from ..identity.authority import Authority
from ..identity.external import ExternalIssuers
from ..identity.keys import KeyRing
from ..identity.tokens import Audience, Tokens
from ..access.service import AccessService
from ..activity.log import ActivityLog
from ..store.activity_store import ActivityStore
from ..store.user_store import UserStore
from ..identity.sign_in import SignIn
from ..identity.users import Users
from ..observability import metrics as observability_metrics
from ..observability.health import Health
from ..observability.logs import node_name as default_node_name
from ..observability.nodes import API, BUILDER, WORKER, ROLES, Node
from ..store.node_store import NodeStore, lease_owner
from .access_log import AccessLog
from .authentication import Authentication
from .authorization import Authorizer
from .fast_reads import FastResourceReads
from .node_roles import RoleGate
from .paths import CanonicalPathMiddleware
from . import outages
from . import openapi
from . import request_ids
from .request_ids import RequestIdMiddleware
from .slow_clients import SlowClientLimits, client_gone
from .routes import content as content_routes
from .routes import blobs, image_templates, maintenance, operations, resource_groups, resources
from .routes import access as access_routes
from .routes import graph as graph_routes
from .routes import activity_log as activity_log_routes
from .routes import accounts, authority, directory, platform_images, sharing
from .routes import sign_in as sign_in_routes
from .routes import users as user_routes
from .routes import storage_account_actions
from .routes import disk_access as disk_access_routes
from .routes import virtual_machines as vm_routes
from .routes import deployments as deployment_routes
from .routes import subnets as subnet_routes
from .routes import providers as provider_routes
from .routes import observability as observability_routes
from .. import blobservice
from ..portal import routes as portal
from ..blobservice import storage_accounts
from ..store.account_key_store import AccountKeyStore
from ..store import refused_values
from .wire import error_response

log = logging.getLogger("galley.api")


class GalleyApp(FastAPI):
    def build_middleware_stack(self):
        # Outside Starlette's error middleware, so that a 500 too carries the request ids, is
        # logged with them and counted in the access log.
        stack = _HandledErrorsEndHere(super().build_middleware_stack())
        return RequestIdMiddleware(observability_metrics.RequestMetrics(AccessLog(SlowClientLimits(RoleGate(stack)))))


class _HandledErrorsEndHere:
    """Starlette's error middleware has answered (500) and `unexpected` has logged every error that
    reaches here; it re-raises them for the server, which would log each a second time."""

    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        try:
            await self.app(scope, receive, send)
        except Exception:  # noqa: BLE001 - logged once already
            pass


def create_app(settings: Settings | None = None, *, run_worker: bool = True,
               roles: frozenset[str] | None = None, node_name: str | None = None,
               node_url: str | None = None) -> FastAPI:
    """`roles` (galley.observability.nodes.ROLES) say which workers start; by default all, or
    only api when `run_worker` is false. The node registers as `node_name` reached at `node_url`."""
    settings = settings or load_settings()
    roles = roles if roles is not None else (frozenset(ROLES) if run_worker else frozenset({API}))
    settings.home.mkdir(parents=True, exist_ok=True)
    engine = make_engine(settings.database_url)
    migrate(engine)
    store = SqlStore(engine)
    locations = Locations(settings)
    nodes = NodeStore(engine)
    node = Node(nodes, node_name or default_node_name(), roles, node_url or settings.public_url)
    content = ContentEngine(ContentRepository(store), locations, bandwidth=settings.replication_bandwidth)
    compute = vm_work.Compute.at(settings.home, content, stop_grace=settings.vm_stop_grace,
                                 provisioning_timeout=settings.vm_provisioning_timeout)
    worker = Worker(store, content, settings.worker_poll_seconds, extras={"home": settings.home, "compute": compute},
                    owner=lease_owner(node.id, "worker"))
    builds = Worker(store, content, settings.worker_poll_seconds, threads=settings.build_threads,
                    actions=BUILD_ACTIONS, handler=run_template, name="builder", owner=lease_owner(node.id, "builder"))
    # VMs' operations wait for guests (a boot, an ACPI shutdown, a run-command): their own threads.
    vms = Worker(store, content, settings.worker_poll_seconds, threads=4, actions=VM_ACTIONS, types=VM_TYPES,
                 handler=vm_work.handle, name="vms", extras={"home": settings.home, "compute": compute},
                 owner=lease_owner(node.id, "vms"))

    def wake_workers() -> None:
        worker.wake()
        builds.wake()
        vms.wake()

    wakeups = Wakeups(engine)  # other nodes' workers, woken through the database

    def work_queued() -> None:
        wake_workers()
        wakeups.announce()

    service = ResourceService(store, settings, on_queued=work_queued)
    builds.extras.update(service=service, home=settings.home)
    service.release_dead_uploads(uploads.owner_alive)
    identity_store = UserStore(engine)  # an AccessStore that also keeps users and sign-in state
    keys = KeyRing(identity_store, settings.token_lifetime)
    tokens = Tokens(identity_store, keys, Audience(settings.origins, settings.extra_audiences),
                    settings.token_lifetime, ExternalIssuers(settings.trusted_issuers, settings.issuer_ca_bundle))
    access = AccessService(identity_store)
    builds.extras.update(access=access)
    activity = ActivityLog(ActivityStore(engine), settings.activity_retention_days)
    identity = Authority(identity_store, keys, tokens, access)
    credentials = identity.bootstrap(settings.home, settings.public_url,
                                     Path(settings.ca_bundle) if settings.ca_bundle else None,
                                     settings.default_subscription_id)

    health = Health(engine, locations, settings.regions)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        if WORKER in roles:
            log.info("virtual machines after start: %s", vm_work.reconcile(
                JobContext(store, content, locations, compute=compute, home=settings.home)))
            worker.start()
            vms.start()
            _app.state.disk_access.start_sweeping()  # lost nodes' disk SAS sessions that ran out
        if BUILDER in roles:
            reclaimed = build_workspace.reclaim(settings.home)
            if reclaimed:
                log.info("builds of the previous server on this home, undone: %s", "; ".join(reclaimed))
            builds.start()
        if roles & {WORKER, BUILDER}:
            wakeups.listen(wake_workers)
        activity.start()
        node.start()
        try:
            yield
        finally:
            health.draining.set()
            _app.state.disk_access.stop_sweeping()
            wakeups.stop()
            builds.stop()
            vms.stop()
            worker.stop()
            if WORKER in roles:
                vm_work.shut_down(compute)
            activity.stop()
            node.stop()
            health.close()
            engine.dispose()

    app = GalleyApp(title="Galley", version=__version__, lifespan=lifespan,
                    description="Azure Resource Manager API for Compute Gallery, managed images, disks "
                                "and snapshots, served by Galley.",
                    docs_url=None, redoc_url=None)  # galley.api.openapi serves /docs offline
    app.state.settings = settings
    app.state.roles = roles
    app.state.node = node
    app.state.nodes = nodes
    app.state.health = health
    app.state.metrics = observability_metrics.Exposition(observability_metrics.DatabaseCollector(
        nodes, content.repo, locations.region_of))
    app.state.store = store
    app.state.service = service
    app.state.worker = worker
    app.state.builds = builds
    app.state.vms = vms
    app.state.compute = compute
    app.state.vm_service = VmService(service)
    app.state.content = content
    app.state.max_body_bytes = settings.max_body_bytes
    app.state.identity_store = identity_store
    app.state.keys = keys
    app.state.tokens = tokens
    app.state.authority = identity
    app.state.users = Users(identity_store, tokens, access)
    app.state.sign_in = SignIn(identity_store, app.state.users, tokens)
    app.state.access = access
    app.state.activity = activity
    app.state.account_keys = AccountKeyStore(engine)
    app.state.authorizer = Authorizer(identity, access, service)
    app.state.credentials_written = credentials
    # Added last, runs first: paths are made canonical, then the caller is authenticated, then
    # the fast reads may answer.
    app.add_middleware(observability_metrics.RouteCapture)  # innermost: sees the matched route
    app.add_middleware(FastResourceReads)
    app.add_middleware(Authentication)
    app.add_middleware(CanonicalPathMiddleware)
    # Runs before all of the above: blob account URLs (disk SAS, storage accounts) are not ARM.
    blobservice.install(app, settings, service, content)
    storage_accounts.install(app, settings, store, content)
    app.include_router(observability_routes.router)
    app.include_router(authority.router)
    app.include_router(sign_in_routes.router)
    app.include_router(user_routes.router)
    app.include_router(accounts.router)
    app.include_router(access_routes.router)
    app.include_router(activity_log_routes.router)
    app.include_router(sharing.router)
    app.include_router(directory.router)
    app.include_router(vm_routes.router)  # before the item routes: …/virtualMachines/{vm}/start is not a child
    app.include_router(resources.build_router())
    app.include_router(image_templates.router)
    app.include_router(resource_groups.router)
    app.include_router(deployment_routes.router)
    app.include_router(subnet_routes.router)
    app.include_router(provider_routes.router)
    app.include_router(operations.router)
    app.include_router(content_routes.router)
    app.include_router(blobs.router)
    app.include_router(disk_access_routes.router)
    app.include_router(storage_account_actions.router)
    app.include_router(maintenance.router)
    app.include_router(platform_images.router)
    app.include_router(graph_routes.router)
    _install_error_handlers(app)
    openapi.install(app)
    portal.install(app)
    app.state.authorizer.routes = app.routes
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ArmError)
    async def arm_error(_request: Request, error: ArmError):
        return error_response(error)

    @app.exception_handler(RequestValidationError)
    async def invalid_request(_request: Request, error: RequestValidationError):
        first = error.errors()[0] if error.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()) if p not in ("query", "path", "body"))
        return error_response(ArmError(f"Invalid request parameter '{where}': {first.get('msg', 'invalid')}.",
                                       code="InvalidParameter", target=where or None))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        if error.status_code == 404:
            return error_response(ArmError(
                f"No resource or operation matches {request.method} {request.url.path}.",
                code="NotFound", status=404))
        if error.status_code == 405:
            return error_response(ArmError(
                f"The method {request.method} is not supported on {request.url.path}.",
                code="MethodNotAllowed", status=405))
        return error_response(ArmError(str(error.detail), code="BadRequest", status=error.status_code))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception):
        outage = outages.outage_of(error)  # wherever it was raised: a route, a middleware, a stream's start
        if outage is not None:
            return outages.answer(request, error, outage)
        refused = refused_values.refused_value(error)
        if refused is not None:
            log.warning("%s %s: the database refused a value of the request: %s", request.method, request.url.path,
                        refused)
            return error_response(ArmError(refused_values.message(refused), code="InvalidParameter", status=400))
        if client_gone(error):
            log.debug("%s %s: the client went away (%s): %r", request.method, request.url.path,
                      request_ids.describe_current(), error)
        else:
            log.exception("unhandled error in %s %s (%s)", request.method, request.url.path,
                          request_ids.describe_current())
        return error_response(ArmError("An internal error occurred; it has been logged.",
                                       code="InternalServerError", status=500))

"""The ASGI application: Orthanc's REST API over the services, secured and compressed."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio.to_thread
from fastapi import APIRouter, FastAPI
from starlette.middleware.gzip import GZipMiddleware
from starlette.routing import BaseRoute
from starlette.types import ASGIApp, Receive, Scope, Send

from pharos import __version__
from pharos.http import dicomweb
from pharos.http.dicomweb import servers as dicomweb_servers
from pharos.http.dicomweb import wado_uri
from pharos.http.dicomweb.cors import CorsMiddleware, cors_paths
from pharos.http.errors import install_error_handlers
from pharos.http.in_process import InProcessCaller
from pharos.http.plugin_filter import PluginRequestFilter
from pharos.http.rest import (
    annotate,
    archive,
    create,
    find,
    images,
    instances,
    logs,
    modalities,
    modify,
    peers,
    plugins,
    queries,
    resources,
    split_merge,
    storage_commitment,
    system,
    thumbnails,
    tools,
    upload,
)
from pharos.http.rest import jobs as jobs_routes
from pharos.http.rest import scripts as lua_scripts
from pharos.http.security import SecurityMiddleware
from pharos.jobs.engine import JobsEngine
from pharos.plugins.lua import LuaPlugin
from pharos.services.container import Services


@dataclass(frozen=True, slots=True)
class HttpOptions:
    remote_access_allowed: bool = False
    authentication_enabled: bool = False
    users: dict[str, str] = field(default_factory=dict)
    compression: bool = True
    describe_errors: bool = True
    threads: int = 50


def create_app(
    services: Services,
    options: HttpOptions,
    on_startup: Callable[[], None] | None = None,
    on_shutdown: Callable[[], None] | None = None,
    *,
    jobs: JobsEngine,
    request_exit: Callable[[bool], None] | None = None,
    in_process: InProcessCaller | None = None,
    lua: LuaPlugin | None = None,
    execute_lua_enabled: bool = False,
) -> ASGIApp:
    """The REST API behind the security checks; uploads take a shortcut (see UploadEndpoint)."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Services are synchronous; handlers run them on this many worker threads.
        anyio.to_thread.current_default_thread_limiter().total_tokens = options.threads
        if in_process is not None:
            in_process.bind_loop(asyncio.get_running_loop())
        if on_startup is not None:
            on_startup()
        try:
            yield
        finally:
            if in_process is not None:  # the loop is busy shutting down: plugins' own loop
                in_process.bind_loop(None)
            uploads.close()
            if on_shutdown is not None:
                on_shutdown()

    app = FastAPI(
        title="Pharos",
        version=__version__,
        summary="A lightweight, RESTful DICOM server that speaks Orthanc's API",
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.describe_errors = options.describe_errors
    install_error_handlers(app)
    uploads = upload.UploadEndpoint(services, options.describe_errors, options.threads)
    add_routes(app, upload.router(uploads))
    for module in (resources, instances, images, logs, system, find, annotate):
        add_routes(app, module.router(services))
    for networking in (modalities, queries):  # they may submit jobs
        add_routes(app, networking.router(services, jobs))
    if services.commitment is not None:
        add_routes(app, storage_commitment.router(services.commitment))
    add_routes(app, jobs_routes.router(jobs))
    add_routes(app, split_merge.router(services.split_merge, jobs))
    add_routes(app, modify.router(services, jobs))
    if services.archives is not None:
        add_routes(app, archive.router(services, services.archives, jobs))
    for module in (create, thumbnails):  # images, part 2
        add_routes(app, module.router(services))
    if services.peers is not None and services.peer_jobs is not None:
        add_routes(app, peers.router(services.peers, services.peer_jobs, jobs))
    if services.dicomweb is not None:
        client = None
        if services.dicomweb_client is not None and services.dicomweb_client_jobs is not None:
            client = dicomweb_servers.router(
                services.dicomweb_client,
                services.dicomweb_client_jobs,
                jobs,
                services.dicomweb.root,
            )
        add_routes(app, dicomweb.router(services.dicomweb, client))
        if services.dicomweb.wado_root is not None:
            add_routes(app, wado_uri.router(services.dicomweb, services.dicomweb.wado_root))
    add_routes(app, plugins.router(services.plugins))
    add_routes(app, tools.router(services.scp, request_exit))  # run-time tools, reset
    add_routes(app, lua_scripts.router(lua, execute_lua_enabled))
    plugin_routes: list[BaseRoute] = []
    for plugin_router in services.plugins.routers():  # after the built-in routes: they win
        app.include_router(plugin_router)
        plugin_routes.extend(plugin_router.routes)
    if options.compression:
        app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)

    shortcut = Shortcuts(app, {("POST", "/instances"): uploads})
    if in_process is not None:  # past the security checks and the request filters, as Orthanc
        in_process.attach(shortcut, plugin_routes)
    filtered = PluginRequestFilter(shortcut, services.plugins, options.describe_errors)
    secured = SecurityMiddleware(
        filtered,
        remote_access_allowed=options.remote_access_allowed,
        authentication_enabled=options.authentication_enabled,
        users=options.users,
    )
    if services.dicomweb is not None and services.dicomweb.cors is not None:
        # Outside the security checks: a preflight carries no credentials, and a browser
        # shows a page an error (401) only with the CORS headers.
        return CorsMiddleware(secured, services.dicomweb.cors, cors_paths(services.dicomweb))
    return secured


class Shortcuts:
    """Sends a few hot routes straight to their ASGI endpoint; everything else to the app."""

    def __init__(self, app: ASGIApp, routes: dict[tuple[str, str], ASGIApp]):
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            endpoint = self.routes.get((scope["method"], scope["path"]))
            if endpoint is not None:
                await endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """The router's routes, added to the application's own list. `include_router` keeps a
    router as one route that, in FastAPI 0.16x, works out its routes' versions and contexts
    again on every request; through 22 of them, a 100-study QIDO-RS search took 17 ms
    in-process instead of 11. Pharos's routers carry their prefixes on their routes."""
    app.router.routes.extend(router.routes)

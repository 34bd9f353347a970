"""The ASGI application: Orthanc's REST API over the services, secured and compressed."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import anyio.to_thread
from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from pharos import __version__
from pharos.http.errors import install_error_handlers
from pharos.http.rest import instances, logs, resources, system, upload
from pharos.http.security import SecurityMiddleware
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
) -> FastAPI:
    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        # Services are synchronous; handlers run them on this many worker threads.
        anyio.to_thread.current_default_thread_limiter().total_tokens = options.threads
        if on_startup is not None:
            on_startup()
        try:
            yield
        finally:
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
    for module in (upload, resources, instances, logs, system):
        app.include_router(module.router(services))

    if options.compression:
        app.add_middleware(GZipMiddleware, minimum_size=1024, compresslevel=6)
    app.add_middleware(
        SecurityMiddleware,
        remote_access_allowed=options.remote_access_allowed,
        authentication_enabled=options.authentication_enabled,
        users=options.users,
    )
    return app

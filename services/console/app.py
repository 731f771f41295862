"""The console, wired: `create_app()` for uvicorn and tests."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

from backbone import http, logs
from services.console import errors
from services.console.i18n import Catalogues
from services.console.pages import ROUTERS
from services.console.render import Pages, badge, drop_badges
from services.console.session import COOKIE, LIFETIME_SECONDS, Sealer, Session
from services.console.settings import ConsoleSettings
from services.console.upstream import Upstream
from services.console.web import Refresher

STATIC = Path(__file__).parent / "static"
MAX_UPLOAD_BYTES = 16 * 1024 * 1024  # as the registry takes for an import
# Nothing a page loads comes from anywhere but the console itself: no CDN, no font service, no analytics.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; font-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"
)


def create_app(settings: ConsoleSettings | None = None) -> FastAPI:
    settings = settings or ConsoleSettings()
    logs.configure("console", fmt=settings.log_format, level=settings.log_level)
    logging.getLogger("httpx").setLevel(logging.WARNING)  # its request lines carry the query: filters, purposes
    upstream = Upstream(settings)
    sealer = Sealer(settings.session_secret.get_secret_value())

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await upstream.close()

    app = FastAPI(title="console", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.upstream = upstream
    app.state.runtime = upstream  # what /ready asks for its problems: the APIs it cannot reach
    app.state.refresher = Refresher(upstream)
    app.state.catalogues = catalogues = Catalogues()
    app.state.pages = Pages(catalogues)
    errors.install(app)

    @app.middleware("http")
    async def _session(request: Request, call_next: object) -> Response:
        opened = sealer.open(request.cookies.get(COOKIE))
        request.state.session = opened or Session()
        if request.method == "GET" and not request.url.path.startswith("/static/"):
            badge(request)  # the menu's unread count, asked for now: it comes while the page makes its own calls
        try:
            response: Response = await call_next(request)  # type: ignore[operator]
        finally:
            drop_badges(request)  # a page waited for its own; what else was asked (an export's, say) is not needed
        if request.state.session is not opened and not request.url.path.startswith("/static/"):
            response.set_cookie(
                COOKIE,
                sealer.seal(request.state.session),
                max_age=LIFETIME_SECONDS,
                httponly=True,
                secure=settings.secure_cookies,
                samesite="lax",
            )
        response.headers.setdefault("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "same-origin")
        if response.headers.get("content-type", "").startswith("text/html"):
            response.headers["Cache-Control"] = "no-store"  # pages may hold personal data: never kept by a cache
        return response

    http.install(app, "console", max_body_bytes=1_048_576, max_upload_bytes=MAX_UPLOAD_BYTES)
    app.include_router(http.operational_routes("console"))
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    for router in ROUTERS:
        app.include_router(router)
    return app

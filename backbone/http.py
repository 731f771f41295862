"""What every service's HTTP side has: correlation ids, request metrics, a body limit, health, ready, metrics."""

from __future__ import annotations

import time

import structlog
from fastapi import APIRouter, FastAPI, Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from backbone import context
from backbone.errors import error_response
from backbone.metrics import REQUEST_SECONDS, REQUESTS

log = structlog.get_logger("http")


class BodyLimit:
    """Refuse a request body over `limit` bytes with 413, whether it declares its length or streams."""

    def __init__(self, app: ASGIApp, limit: int, upload_limit: int) -> None:
        self.app, self.default, self.upload_limit = app, limit, upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        # bulk imports (…/import) carry files of thousands of rows; everything else is one record
        limit = self.upload_limit if scope["path"].endswith("/import") else self.default
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._refuse(scope, receive, send, limit)
            return
        seen, refused = 0, False

        async def counted() -> Message:
            nonlocal seen, refused
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > limit and not refused:
                refused = True
                await self._refuse(scope, receive, send, limit)
                return {"type": "http.disconnect"}  # the app stops reading; what it answers is dropped
            return message

        async def guarded(message: Message) -> None:
            if not refused:
                await send(message)

        await self.app(scope, counted, guarded)

    async def _refuse(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        response = error_response(413, "payload_too_large", f"the request body is over {limit} bytes")
        await response(scope, receive, send)


class Observed:
    """Every request counted, timed and logged under its correlation id, which its answer carries back.

    Plain ASGI (not Starlette's BaseHTTPMiddleware, which runs the app in a task of its own and streams the answer
    through a memory channel: measured, a tenth of a registration's CPU)."""

    def __init__(self, app: ASGIApp, service: str) -> None:
        self.app, self.service = app, service

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        # A header of another shape is replaced, never echoed: it could carry a name or a phone (backbone.context).
        causes = context.received(headers.get("x-correlation-id"), None, headers.get("traceparent"))
        correlation = (b"x-correlation-id", causes.correlation_id.encode())
        started, status = time.perf_counter(), 500

        async def answering(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                kept = [(name, value) for name, value in message.get("headers", ()) if name != correlation[0]]
                message = {**message, "headers": [*kept, correlation]}
            await send(message)

        try:
            await self.app(scope, receive, answering)
        except Exception:
            # Answered 500 already (backbone.errors); counted and logged here too. The context stays bound so that
            # the server's own report of the exception carries the correlation id; the next request rebinds it.
            self._observed(scope, 500, started)
            raise
        self._observed(scope, status, started)
        context.clear()

    def _observed(self, scope: Scope, status: int, started: float) -> None:
        route = getattr(scope.get("route"), "path", "unmatched")
        elapsed = time.perf_counter() - started
        REQUESTS.labels(self.service, scope["method"], route, str(status)).inc()
        REQUEST_SECONDS.labels(self.service, route).observe(elapsed)
        log.info("http.request", method=scope["method"], route=route, status=status, ms=round(elapsed * 1000, 1))


def install(app: FastAPI, service: str, max_body_bytes: int, max_upload_bytes: int) -> None:
    app.add_middleware(BodyLimit, limit=max_body_bytes, upload_limit=max_upload_bytes)
    app.add_middleware(Observed, service=service)


def operational_routes(service: str) -> APIRouter:
    router = APIRouter(tags=["operations"])

    @router.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok", "service": service}

    @router.get("/ready")
    async def ready(request: Request) -> Response:
        problems = await request.app.state.runtime.problems()
        if problems:
            return error_response(503, "not_ready", "a dependency is unreachable", {"problems": problems})
        return Response('{"status":"ready"}', media_type="application/json")

    @router.get("/metrics")
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    return router

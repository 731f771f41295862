"""Errors as every service answers them: `{"error": {"code", "message", "details"}}`, never a 500 for bad input."""

from __future__ import annotations

from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from backbone.database import retryable
from backbone.store import ConcurrencyConflict

log = structlog.get_logger("http")


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(status: int, code: str, message: str, details: Any = None) -> JSONResponse:
    body = {"error": {"code": code, "message": message, "details": details if details is not None else {}}}
    return JSONResponse(body, status_code=status)


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid",
}


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, error: ApiError) -> JSONResponse:
        return error_response(error.status, error.code, error.message, error.details)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, error: RequestValidationError) -> JSONResponse:
        # The offending input is left out on purpose: it may be a child's name or ID number.
        problems = [
            {"field": ".".join(str(part) for part in problem["loc"]), "problem": problem["msg"]}
            for problem in error.errors()
        ]
        return error_response(422, "invalid", "the request does not match the schema", {"problems": problems})

    @app.exception_handler(HTTPException)
    async def _http(_: Request, error: HTTPException) -> JSONResponse:
        return error_response(error.status_code, _HTTP_CODES.get(error.status_code, "error"), str(error.detail))

    @app.exception_handler(ConcurrencyConflict)
    async def _conflict(_: Request, error: ConcurrencyConflict) -> JSONResponse:
        details = {"stream_id": error.stream_id, "expected_version": error.expected}
        return error_response(409, "conflict", "someone changed this record meanwhile; reload and retry", details)

    @app.exception_handler(DataError)
    async def _data(_: Request, error: DataError) -> JSONResponse:
        # A value the database cannot store that validation let through: still the request's fault.
        log.warning("http.data_error", error=type(error.orig).__name__)
        return error_response(422, "invalid", "a value cannot be stored as given")

    @app.exception_handler(DBAPIError)
    async def _contended(request: Request, error: DBAPIError) -> JSONResponse:
        if retryable(error):  # a deadlock with another transaction: nothing was written, the client may retry
            log.info("http.contended", error=type(error.orig).__name__)
            return error_response(409, "busy", "others changed the same records at the same moment; retry")
        return await _unexpected(request, error)

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, error: ClientDisconnect) -> JSONResponse:
        log.info("http.client_disconnected")  # or a body over the limit, already answered with 413
        return error_response(400, "bad_request", "the request body did not arrive")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("http.unexpected_error", error=type(error).__name__)
        return error_response(500, "internal_error", "something went wrong on our side; it has been logged")

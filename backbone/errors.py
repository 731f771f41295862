"""Errors as every service answers them: `{"error": {"code", "message", "details"}}`, never a 500 for bad input."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic_core import PydanticKnownError
from sqlalchemy.exc import DataError, DBAPIError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from backbone.database import retryable
from backbone.store import ConcurrencyConflict, OutOfOrder

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
        problems = invalid_problems(error.errors())
        return error_response(422, "invalid", "the request does not match the schema", {"problems": problems})

    @app.exception_handler(HTTPException)
    async def _http(_: Request, error: HTTPException) -> JSONResponse:
        # Raised by the framework only (a route or method that does not exist, a multipart body it cannot parse),
        # whose words are fixed; the headers carry what the status needs, such as a 405's Allow.
        response = error_response(error.status_code, _HTTP_CODES.get(error.status_code, "error"), str(error.detail))
        response.headers.update(error.headers or {})
        return response

    @app.exception_handler(ConcurrencyConflict)
    async def _conflict(_: Request, error: ConcurrencyConflict) -> JSONResponse:
        if isinstance(error, OutOfOrder):  # nothing the client read has changed: the same request may simply retry
            return _busy()
        # The version the server holds, not the one expected: that came from the client's If-Match, any number.
        details = {"stream_id": error.stream_id, "current_version": error.actual}
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
            return _busy()
        return await _unexpected(request, error)

    @app.exception_handler(ClientDisconnect)
    async def _gone(_: Request, error: ClientDisconnect) -> JSONResponse:
        log.info("http.client_disconnected")  # or a body over the limit, already answered with 413
        return error_response(400, "bad_request", "the request body did not arrive")

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, error: Exception) -> JSONResponse:
        log.exception("http.unexpected_error", error=type(error).__name__)
        return error_response(500, "internal_error", "something went wrong on our side; it has been logged")


# What pydantic's context takes from the input itself: a character of a bad UUID, a tag no union knows, the parser's
# view of a JSON fragment, a time zone offset, a validator's own words.
_FROM_INPUT = ("error", "tag", "tz_actual", "encoding_error")


def invalid_problems(errors: Sequence[Any]) -> list[dict[str, str]]:
    """Each problem of a request as its field and what is wrong, without a character of what was sent: the input may
    be a child's name or ID number, and so may an unknown key (counted under its object, never named)."""
    problems, unknown = [], Counter[str]()
    for problem in errors:
        path = [str(part) for part in problem["loc"]]
        if problem["type"] == "extra_forbidden":
            unknown[".".join(path[:-1])] += 1
        else:
            problems.append({"field": ".".join(path), "problem": _message(problem)})
    for parent, count in unknown.items():
        fields = "a field" if count == 1 else f"{count} fields"
        problems.append({"field": parent, "problem": f"{fields} not in the schema (unknown names are not repeated)"})
    return problems


def _message(problem: Any) -> str:
    """Pydantic's message where it names only what is expected (allowed values, limits, a pattern), else the same
    message with whatever it took from the input left out."""
    context = problem.get("ctx") or {}
    taken = [key for key in _FROM_INPUT if key in context]
    if not taken:
        return str(problem["msg"])
    if problem["type"] in ("value_error", "assertion_error") and not _quotes(problem["msg"], problem.get("input")):
        return str(problem["msg"])  # a validator's own words that name its rule, as ours all do
    try:
        return PydanticKnownError(problem["type"], {**context, **dict.fromkeys(taken, "…")}).message()
    except (KeyError, TypeError, ValueError):  # a custom error type: nothing of it is known to be safe
        return "the value is not valid"


def _quotes(message: str, value: Any) -> bool:
    """Whether `message` repeats any text or number of `value`: any text outside ASCII (a two-character name), else
    three characters or more (shorter ones occur by chance in any sentence and say nothing of a person)."""
    if isinstance(value, dict):
        return any(_quotes(message, item) for item in value.values())
    if isinstance(value, list | tuple):
        return any(_quotes(message, item) for item in value)
    text = str(value) if isinstance(value, str | int | float) and not isinstance(value, bool) else ""
    return len(text) >= (3 if text.isascii() else 1) and text in message


def _busy() -> JSONResponse:
    return error_response(409, "busy", "others changed the same records at the same moment; retry")

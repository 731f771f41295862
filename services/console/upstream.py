"""The other services' APIs as the console calls them: one HTTP client, the caller's token, the request's correlation
id, and every refusal as an `ApiFailure` carrying the API's own error code."""

from __future__ import annotations

import asyncio
from typing import Any, Literal

import httpx
import structlog

from backbone import context
from services.console.settings import ConsoleSettings

log = structlog.get_logger("console.upstream")
Service = Literal["registry", "matching", "notifications"]
SERVICES: tuple[Service, ...] = ("registry", "matching", "notifications")


class ApiFailure(Exception):
    """An API's refusal (`status`, its error `code`, and `details` such as the fields at fault), or, with status 503
    and code `unreachable`, no answer at all."""

    def __init__(self, status: int, code: str, message: str = "", details: Any = None) -> None:
        super().__init__(f"{status} {code}")
        self.status, self.code, self.message = status, code, message
        self.details = details if isinstance(details, dict) else {}

    @property
    def problems(self) -> dict[str, str]:
        """The fields at fault of a 422 (`registry`'s `{"problems": [{"field", "problem"}]}`), by the field's last
        name: what a form shows beside each input."""
        found: dict[str, str] = {}
        for problem in self.details.get("problems", []):
            if isinstance(problem, dict) and isinstance(problem.get("field"), str):
                name = problem["field"].split(".")[-1] if problem["field"] != "body" else ""
                found.setdefault(name, str(problem.get("problem", "")))
        return found


class Upstream:
    """The registry, matching and notifications, by name. `problems()` is what the console's /ready reports."""

    def __init__(self, settings: ConsoleSettings, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.bases: dict[Service, str] = {
            "registry": settings.registry_url.rstrip("/"),
            "matching": settings.matching_url.rstrip("/"),
            "notifications": settings.notifications_url.rstrip("/"),
        }
        self.http = httpx.AsyncClient(timeout=settings.upstream_timeout_seconds, transport=transport)

    async def call(
        self,
        method: str,
        service: Service,
        path: str,
        *,
        token: str | None = None,
        params: dict[str, Any] | None = None,
        json: Any = None,
        files: dict[str, tuple[str, bytes, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        """The API's answer when it is a success; an `ApiFailure` when it refuses or does not answer."""
        sent = {"X-Correlation-ID": context.current().correlation_id, **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
        kept = {key: value for key, value in (params or {}).items() if value not in (None, "", [])}
        try:
            answer = await self.http.request(
                method, self.bases[service] + path, params=kept, json=json, files=files, headers=sent
            )
        except httpx.HTTPError as error:
            log.warning("upstream.unreachable", service=service, error=type(error).__name__)
            raise ApiFailure(503, "unreachable") from error
        if answer.is_success:
            return answer
        raise _failure(answer)

    async def json(self, method: str, service: Service, path: str, **options: Any) -> Any:
        answer = await self.call(method, service, path, **options)
        return answer.json() if answer.content else None

    async def problems(self) -> dict[str, str]:
        """Each API the console cannot reach (its /health), all asked at once."""

        async def health(service: Service) -> str | None:
            try:
                answer = await self.http.get(self.bases[service] + "/health", timeout=1.0)
            except httpx.HTTPError as error:
                return f"unreachable ({type(error).__name__})"
            return None if answer.is_success else f"answered {answer.status_code}"

        answers = await asyncio.gather(*(health(service) for service in SERVICES))
        return {service: problem for service, problem in zip(SERVICES, answers, strict=True) if problem}

    async def close(self) -> None:
        await self.http.aclose()


def _failure(answer: httpx.Response) -> ApiFailure:
    try:
        error = answer.json()["error"]
        return ApiFailure(answer.status_code, str(error["code"]), str(error.get("message", "")), error.get("details"))
    except (ValueError, KeyError, TypeError):
        return ApiFailure(answer.status_code, "error")

"""A service's own access token by client credentials (OAuth 2.0): fetched from the registry's `POST /auth/token`,
kept until shortly before it expires, then fetched again. Give it to an httpx client as its `auth`."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from datetime import datetime, timedelta
from typing import Self

import httpx
from pydantic import SecretStr

from backbone.clock import Clock, SystemClock
from backbone.settings import Settings

RENEW_BEFORE = timedelta(seconds=60)  # or half-way through a shorter lifetime: never use a token near its end


class ServiceTokenRefused(Exception):
    """The token endpoint gave no token. The message names the endpoint, the client and the refusal; never the
    secret."""


class ServiceToken(httpx.Auth):
    """Bearer auth with this service's own token, for sync and async clients alike. The token request goes through
    the client it serves (its transport, its timeouts). Requests that find the token due at the same moment may each
    fetch one: both are valid."""

    def __init__(self, token_url: str, client_id: str, client_secret: SecretStr, clock: Clock | None = None) -> None:
        self.token_url, self.client_id, self._secret = token_url, client_id, client_secret
        self.clock = clock or SystemClock()
        self._token: SecretStr | None = None
        self._renew_at: datetime | None = None

    @classmethod
    def from_settings(cls, settings: Settings, clock: Clock | None = None) -> Self:
        """TOKEN_URL, SERVICE_CLIENT_ID and SERVICE_CLIENT_SECRET."""
        if settings.service_client_id is None or settings.service_client_secret is None:
            raise ValueError("a service token needs SERVICE_CLIENT_ID and SERVICE_CLIENT_SECRET")
        return cls(settings.token_url, settings.service_client_id, settings.service_client_secret, clock)

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        if self._due():
            asked = self.clock.now()
            answer = yield self._token_request()
            answer.read()
            self._keep(answer, asked)
        yield self._bearing(request)

    async def async_auth_flow(self, request: httpx.Request) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if self._due():
            asked = self.clock.now()
            answer = yield self._token_request()
            await answer.aread()
            self._keep(answer, asked)
        yield self._bearing(request)

    def _due(self) -> bool:
        return self._renew_at is None or self.clock.now() >= self._renew_at

    def _token_request(self) -> httpx.Request:
        form = {
            "grant_type": "client_credentials",
            "client_id": self.client_id,
            "client_secret": self._secret.get_secret_value(),
        }
        return httpx.Request("POST", self.token_url, data=form)

    def _keep(self, answer: httpx.Response, asked: datetime) -> None:
        """The new token, and when to fetch the next: RENEW_BEFORE its expiry, counted from when it was asked for."""
        try:
            body = answer.json() if answer.status_code == 200 else {}
            token, seconds = body["access_token"], int(body["expires_in"])
        except (ValueError, KeyError, TypeError):
            raise ServiceTokenRefused(self._refusal(answer)) from None  # nothing of the answer's body in the trace
        if not isinstance(token, str) or seconds <= 0:
            raise ServiceTokenRefused(self._refusal(answer))
        lifetime = timedelta(seconds=seconds)
        self._token, self._renew_at = SecretStr(token), asked + lifetime - min(RENEW_BEFORE, lifetime / 2)

    def _refusal(self, answer: httpx.Response) -> str:
        try:
            error = answer.json()["error"]
            why = f"{error['code']}: {error['message']}"
        except (ValueError, KeyError, TypeError):
            why = "no token in the answer"
        return f"{self.token_url} gave client {self.client_id!r} no token ({answer.status_code} {why})"

    def _bearing(self, request: httpx.Request) -> httpx.Request:
        assert self._token is not None  # kept by _keep, or it raised
        request.headers["Authorization"] = f"Bearer {self._token.get_secret_value()}"
        return request

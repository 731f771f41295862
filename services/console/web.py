"""What every page's route needs: the reader's session and language, the check of a form's CSRF token, the caller
that talks to the APIs with the reader's token (refreshing it when it is about to expire), and the rendering."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from dataclasses import dataclass, replace
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.datastructures import FormData

from backbone import freshness
from services.console.i18n import COOKIE as LANGUAGE_COOKIE
from services.console.i18n import Language, language_of
from services.console.session import Session
from services.console.upstream import ApiFailure, Service, Upstream

REFRESH_BEFORE_SECONDS = 60  # an access token this close to its expiry is renewed before it is used
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
# What a person wrote, the views they read next wait for (X-Wait-For) this long after; within moments they show it.
FOLLOW_WRITE_SECONDS = 30
KEPT_TOKEN_CHARS = 600  # the session is one cookie (4 KB at most): a longer token (many records at once) is not kept


class SignInRequired(Exception):
    """Nobody is signed in, or their session ended: answered with the sign-in page, coming back to `next` after."""

    def __init__(self, next_path: str = "/") -> None:
        super().__init__("sign in")
        self.next_path = next_path


class Refused(Exception):
    """A request the console itself refuses (a missing or wrong CSRF token): 403 with the reason's message."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def local_path(value: str | None, default: str = "/") -> str:
    """`value` if it is a path on this site (where a sign-in may go back to), else `default`: never another site."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return default
    return value


def session_of(request: Request) -> Session:
    session: Session = request.state.session
    return session


def language(request: Request) -> Language:
    return language_of(request.cookies.get(LANGUAGE_COOKIE))


async def form(request: Request) -> FormData:
    """The submitted form, once its CSRF token is checked against the session's (also accepted as the X-CSRF-Token
    header, which the phone page's queued visits send)."""
    sent = await request.form()
    token = request.headers.get("x-csrf-token") or sent.get("csrf")
    if not isinstance(token, str) or not hmac.compare_digest(token, session_of(request).csrf):
        raise Refused("csrf")
    return sent


async def csrf_checked(request: Request) -> None:
    """A router's dependency: every request that changes something carries the session's CSRF token."""
    if request.method not in SAFE_METHODS:
        await form(request)


class Refresher:
    """Renews access tokens. Rotating refresh tokens work once, and a browser may send several requests with the same
    expiring session at once: one renewal per refresh token is made, and its answer shared for a minute."""

    KEEP_SECONDS = 60.0

    def __init__(self, upstream: Upstream) -> None:
        self.upstream = upstream
        self._made: dict[str, tuple[float, asyncio.Task[Any]]] = {}

    async def renew(self, refresh_token: str) -> Any:
        now = time.monotonic()
        self._made = {key: made for key, made in self._made.items() if now - made[0] < self.KEEP_SECONDS}
        key = hashlib.sha256(refresh_token.encode()).hexdigest()
        if key not in self._made:
            call = self.upstream.json("POST", "registry", "/auth/refresh", json={"refresh_token": refresh_token})
            self._made[key] = (now, asyncio.ensure_future(call))
        return await asyncio.shield(self._made[key][1])


@dataclass
class Caller:
    """The APIs, called as the signed-in person."""

    request: Request

    @property
    def upstream(self) -> Upstream:
        upstream: Upstream = self.request.app.state.upstream
        return upstream

    @property
    def session(self) -> Session:
        return session_of(self.request)

    async def token(self) -> str:
        session = self.session
        if session.access_token is None:
            raise SignInRequired(self.request.url.path)
        if session.expires_at - time.time() > REFRESH_BEFORE_SECONDS:
            return session.access_token
        if session.refresh_token is None:
            raise SignInRequired(self.request.url.path)
        refresher: Refresher = self.request.app.state.refresher
        try:
            tokens = await refresher.renew(session.refresh_token)
        except ApiFailure as failure:
            if failure.status == 401:
                self.request.state.session = Session()
                raise SignInRequired(self.request.url.path) from failure
            raise
        renewed = session.with_tokens(
            tokens["access_token"], tokens["refresh_token"], time.time() + tokens["expires_in"]
        )
        self.request.state.session = renewed
        return tokens["access_token"]  # type: ignore[no-any-return]

    async def call(self, method: str, service: Service, path: str, **options: Any) -> Any:
        """The API's answer, as JSON. A read waits for the person's last write to show (if made moments ago); a write
        answered with the token of what it wrote keeps it in the session for the reads that follow."""
        reading = method in SAFE_METHODS
        written = self.session.written
        if reading and written and time.time() - self.session.written_at < FOLLOW_WRITE_SECONDS:
            options["headers"] = {freshness.WAIT_FOR: written, **(options.get("headers") or {})}
        try:
            answer = await self.upstream.call(method, service, path, token=await self.token(), **options)
        except ApiFailure as failure:
            if failure.status == 401:  # the account was disabled, or the session ended elsewhere
                self.request.state.session = Session()
                raise SignInRequired(self.request.url.path) from failure
            raise
        if not reading:
            self.remember_written(answer.headers.get(freshness.WRITTEN))
        return answer.json() if answer.content else None

    def remember_written(self, token: str | None) -> None:
        """Keep the token of what a write wrote, if it is one (a bulk write's, too long for the cookie, is not)."""
        if token is None or len(token) > KEPT_TOKEN_CHARS:
            return
        try:
            freshness.parse(token)
        except ValueError:
            return
        self.request.state.session = replace(self.session, written=token, written_at=time.time())

    async def get(self, service: Service, path: str, **params: Any) -> Any:
        return await self.call("GET", service, path, params=params)

    async def post(self, service: Service, path: str, body: Any = None, **options: Any) -> Any:
        return await self.call("POST", service, path, json=body, **options)


def caller_of(request: Request) -> Caller:
    """The signed-in caller; anyone else is sent to sign in, and comes back here after."""
    if not session_of(request).signed_in:
        raise SignInRequired(request.url.path + (f"?{request.url.query}" if request.url.query else ""))
    return Caller(request)


# The page dependencies are coroutines: FastAPI runs a plain function in its thread pool, a thread hop per request.
async def signed_in(request: Request) -> Caller:
    """A page for the signed-in only."""
    return caller_of(request)


CallerDep = Annotated[Caller, Depends(signed_in)]


def sign_in_url(next_path: str) -> str:
    return "/sign-in?next=" + quote(local_path(next_path), safe="/")


def county_in_view(request: Request, asked: str | None) -> str | None:
    """The county a coordinator's page shows: the one asked for (the API refuses, and audits, one outside their
    scope), else their first. None for an admin who has not chosen one."""
    if asked:
        return asked
    counties = session_of(request).counties
    return counties[0] if counties else None


async def staff(request: Request) -> Caller:
    """A page for coordinators (and admins) only."""
    caller = caller_of(request)
    if caller.session.role not in ("coordinator", "admin"):
        raise Refused("forbidden")
    return caller


StaffDep = Annotated[Caller, Depends(staff)]

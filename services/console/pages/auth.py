"""Signing in and out, the language switch, and the front door that sends each person to their own first page."""

from __future__ import annotations

import contextlib
import time
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console.i18n import COOKIE as LANGUAGE_COOKIE
from services.console.i18n import LANGUAGES
from services.console.session import Session
from services.console.upstream import ApiFailure, Upstream
from services.console.web import csrf_checked, form, local_path, session_of

router = APIRouter(dependencies=[Depends(csrf_checked)])
HOME = {"admin": "/today", "coordinator": "/today", "donor": "/board", "volunteer": "/my", "child_director": "/inbox"}
YEAR_SECONDS = 365 * 24 * 3600


def _upstream(request: Request) -> Upstream:
    upstream: Upstream = request.app.state.upstream
    return upstream


@router.get("/", include_in_schema=False)
async def front_door(request: Request) -> Response:
    session = session_of(request)
    if not session.signed_in:
        return RedirectResponse("/sign-in", status_code=303)
    return RedirectResponse(HOME.get(session.role or "", "/account"), status_code=303)


@router.get("/sign-in", response_class=HTMLResponse)
async def sign_in_page(request: Request, next: Annotated[str | None, Query(max_length=2000)] = None) -> Response:
    return request.app.state.pages.render(request, "sign_in.html", next=local_path(next), login="", error=None)  # type: ignore[no-any-return]


@router.post("/sign-in", response_class=HTMLResponse)
async def sign_in(request: Request) -> Response:
    sent = await form(request)
    login, password = str(sent.get("login", "")).strip(), str(sent.get("password", ""))
    next_path = local_path(str(sent.get("next", "")))
    upstream = _upstream(request)
    # The registry counts failed sign-ins per client address: the browser's, which this proxy passes on.
    client = {"X-Forwarded-For": request.client.host} if request.client else {}
    try:
        tokens = await upstream.json(
            "POST", "registry", "/auth/sign-in", json={"login": login, "password": password}, headers=client
        )
        me = await upstream.json("GET", "registry", "/me", token=tokens["access_token"])
    except ApiFailure as failure:
        status = failure.status if failure.status in (401, 422, 429, 503) else 502
        pages = request.app.state.pages
        return pages.render(request, "sign_in.html", status=status, next=next_path, login=login, error=failure.code)  # type: ignore[no-any-return]
    # A new session (and CSRF token) for the person signed in: nothing of the anonymous one carries over.
    request.state.session = Session(
        access_token=tokens["access_token"],
        refresh_token=tokens.get("refresh_token"),
        expires_at=time.time() + tokens["expires_in"],
        sub=me["sub"],
        role=me["role"],
        name=me.get("name"),
        counties=tuple(me.get("counties") or ()),
    )
    target = next_path if next_path != "/" else HOME.get(me["role"], "/")
    return RedirectResponse(target, status_code=303)


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    session = session_of(request)
    if session.refresh_token:
        # The session ends here either way; at the registry, when its refresh token lapses if it cannot be told now.
        with contextlib.suppress(ApiFailure):
            await _upstream(request).call(
                "POST", "registry", "/auth/sign-out", json={"refresh_token": session.refresh_token}
            )
    request.state.session = Session()
    return RedirectResponse("/sign-in", status_code=303)


# The registry's invitation and reset links end in `#<token>`: a browser never sends what follows `#`, so the token
# stays out of every server's log; static/link.js puts it in the form (or the reader pastes it).
LINKS = {
    "/accept-invitation": ("/auth/invitations/accept", "invitation"),
    "/reset-password": ("/auth/password-resets/complete", "reset"),
}


@router.get("/accept-invitation", response_class=HTMLResponse)
@router.get("/reset-password", response_class=HTMLResponse)
async def link_page(request: Request) -> Response:
    kind = LINKS[request.url.path][1]
    return request.app.state.pages.render(request, "link.html", kind=kind, error=None, done=False)  # type: ignore[no-any-return]


@router.post("/accept-invitation", response_class=HTMLResponse)
@router.post("/reset-password", response_class=HTMLResponse)
async def use_link(request: Request) -> Response:
    """Choose a password with an invitation or reset link; the registry checks the link and the password."""
    sent = await form(request)
    api_path, kind = LINKS[request.url.path]
    token, password = str(sent.get("token", "")).strip(), str(sent.get("password", ""))
    pages = request.app.state.pages
    if password != str(sent.get("repeat", "")):
        return pages.render(request, "link.html", status=422, kind=kind, error="passwords_differ", done=False)  # type: ignore[no-any-return]
    try:
        await _upstream(request).call("POST", "registry", api_path, json={"token": token, "password": password})
    except ApiFailure as failure:
        if failure.status >= 500:
            raise
        return pages.render(request, "link.html", status=failure.status, kind=kind, error=failure.code, done=False)  # type: ignore[no-any-return]
    return pages.render(request, "link.html", kind=kind, error=None, done=True)  # type: ignore[no-any-return]


@router.get("/forgot-password", response_class=HTMLResponse)
async def forgot_page(request: Request) -> Response:
    return request.app.state.pages.render(request, "forgot.html", asked=False)  # type: ignore[no-any-return]


@router.post("/forgot-password", response_class=HTMLResponse)
async def forgot(request: Request) -> Response:
    """Ask for a reset: the registry has a link sent to the account's owner (and shows the request to its admin or
    coordinator); the answer is the same whether the login exists or not."""
    sent = await form(request)
    login = str(sent.get("login", "")).strip()[:64]
    if login:
        client = {"X-Forwarded-For": request.client.host} if request.client else {}
        with contextlib.suppress(ApiFailure):
            await _upstream(request).call(
                "POST", "registry", "/auth/password-resets", json={"login": login}, headers=client
            )
    return request.app.state.pages.render(request, "forgot.html", asked=True)  # type: ignore[no-any-return]


@router.get("/language")
async def switch_language(
    to: Annotated[str, Query(max_length=8)], next: Annotated[str | None, Query(max_length=2000)] = None
) -> Response:
    """Switch the page's language (kept in a cookie for a year) and go back where the reader was."""
    response = RedirectResponse(local_path(next), status_code=303)
    if to in LANGUAGES:
        response.set_cookie(LANGUAGE_COOKIE, to, max_age=YEAR_SECONDS, samesite="lax", httponly=True)
    return response

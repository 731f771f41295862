"""A volunteer's page, made for a phone: the children of their confirmed pairings with what a visit needs (name,
township, village, the guardian's name and phone), the visits due, a visit logged in a few taps, and their calendar
link. A visit logged without signal is kept on the phone (static/visits.js) and sent when the signal returns, once:
each visit carries the id the phone gave it, and matching records an id once however often it is sent."""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime
from typing import Annotated, Any
from urllib.parse import parse_qs, urlsplit
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from services.console.errors import message
from services.console.upstream import ApiFailure
from services.console.web import Caller, CallerDep, Refused, csrf_checked, form, language

router = APIRouter(dependencies=[Depends(csrf_checked)])
CHINA = ZoneInfo("Asia/Shanghai")
CONTACT_KINDS = ("visit", "call", "video_call", "family_call", "tutoring", "counselling", "birthday", "gift")


def volunteer(caller: CallerDep) -> Caller:
    if caller.session.role != "volunteer":
        raise Refused("forbidden")
    return caller


VolunteerDep = Annotated[Caller, Depends(volunteer)]


@router.get("/my", response_class=HTMLResponse)
async def my_children(
    request: Request,
    caller: VolunteerDep,
    logged: Annotated[str | None, Query(max_length=1)] = None,
    refused: Annotated[str | None, Query(max_length=40)] = None,
) -> Any:
    me = caller.session.sub
    await caller.token()
    children, cards = await asyncio.gather(
        caller.get("matching", f"/volunteers/{me}/children"),
        caller.get("registry", f"/volunteers/{me}/visit-cards"),
    )
    by_pairing = {card["pairing_id"]: card for card in cards}
    now = datetime.now(CHINA).strftime("%Y-%m-%dT%H:%M")
    return request.app.state.pages.render(
        request,
        "my.html",
        children=[{**child, "card": by_pairing.get(child["pairing_id"], {})} for child in children],
        kinds=CONTACT_KINDS,
        now=now,
        new_id=lambda: str(uuid.uuid4()),
        logged=logged,
        refused=refused,
    )


def _contact(sent: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    """The pairing and the contact a visit form or a queued visit describes; `occurred_at` is the phone's own time
    of the visit (a queued visit keeps it), read as China time when it carries no zone."""
    occurred = datetime.fromisoformat(str(sent.get("occurred_at", "")))
    if occurred.tzinfo is None:
        occurred = occurred.replace(tzinfo=CHINA)
    in_person = sent.get("in_person") in (True, "true", "on", "1")
    body = {
        "contact_id": str(uuid.UUID(str(sent.get("contact_id")))),
        "kind": str(sent.get("kind", "visit")),
        "in_person": in_person,
        "occurred_at": occurred.isoformat(),
        "duration_minutes": int(str(sent.get("duration_minutes") or 0)),
        "note": str(sent.get("note") or "").strip() or None,
    }
    return str(uuid.UUID(str(sent.get("pairing_id")))), body


@router.post("/my/visits")
async def log_visit(request: Request, caller: VolunteerDep) -> Response:
    """A visit from the phone page: a plain form (answered with the page again) or, from the phone's queue, JSON
    (answered with JSON: `recorded` the first time, `already` when this visit's id was recorded before)."""
    queued = request.headers.get("content-type", "").startswith("application/json")
    sent = dict(await request.json()) if queued else dict(await form(request))
    try:
        pairing_id, body = _contact(sent)
    except (TypeError, ValueError):
        return _answer(request, queued, 422, "invalid")
    try:
        answer = await caller.call("POST", "matching", f"/pairings/{pairing_id}/contacts", json=body)
    except ApiFailure as failure:
        if failure.status >= 500:
            raise
        return _answer(request, queued, failure.status, failure.code)
    if not queued:
        return RedirectResponse("/my?logged=1", status_code=303)
    return JSONResponse({"status": "recorded", "contact_id": answer["contact_id"]})


def _answer(request: Request, queued: bool, status: int, code: str) -> Response:
    if not queued:
        return RedirectResponse(f"/my?refused={code}", status_code=303)
    gettext = request.app.state.catalogues.translator(language(request))
    return JSONResponse({"error": {"code": code, "message": message(code, gettext)}}, status_code=status)


@router.post("/my/calendar")
async def calendar_link(request: Request, caller: VolunteerDep) -> Response:
    """A new link to the volunteer's calendar of due visits, for a calendar app; shown once."""
    await form(request)
    made = await caller.post("matching", f"/volunteers/{caller.session.sub}/calendar-feeds")
    feed = parse_qs(urlsplit(made["url"]).query)["feed"][0]
    link = f"{request.base_url}calendar/{caller.session.sub}.ics?feed={feed}"
    return request.app.state.pages.render(request, "my_calendar.html", link=link, expires_at=made.get("expires_at"))  # type: ignore[no-any-return]


@router.get("/calendar/{volunteer_id}.ics")
async def calendar(request: Request, volunteer_id: uuid.UUID, feed: Annotated[str, Query(max_length=100)]) -> Response:
    """The calendar feed on the console's own address: a calendar app reaches the console, never the services."""
    answer = await request.app.state.upstream.call(
        "GET", "matching", f"/volunteers/{volunteer_id}/calendar.ics", params={"feed": feed}
    )
    return Response(answer.content, media_type="text/calendar; charset=utf-8")

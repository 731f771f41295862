"""A coordinator's day: overdue children by risk (high first), visits due this week, proposals waiting, volunteers
whose vetting or training expires within 30 days, wishes claimed but not fulfilled; each with its count. And how
many SMS and emails of the county failed in the last 7 days, when the notifications service answers."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from services.console.upstream import ApiFailure
from services.console.web import Caller, StaffDep, county_in_view, csrf_checked

router = APIRouter(dependencies=[Depends(csrf_checked)])
SHOWN = 10  # rows of each list on the page; the count links to all of them
RISKS = ("high", "medium", "low")
FAILED_DAYS = 7  # the failed messages counted: those decided this many days back
FAILED_READ = 100  # the newest failed messages read to count them; more is shown as "100+"
FAILED_WAIT_SECONDS = 2.0  # the day's page goes without the count rather than wait longer for it


@router.get("/today", response_class=HTMLResponse)
async def today(request: Request, caller: StaffDep, county: Annotated[str | None, Query(max_length=6)] = None) -> Any:
    code = county_in_view(request, county)
    if code is None:
        return request.app.state.pages.render(request, "choose_county.html", target="/today")
    await caller.token()  # renewed once, before the calls that follow go out together
    now = datetime.now(UTC)
    week = (now + timedelta(days=7)).isoformat()
    month = (now + timedelta(days=30)).isoformat()
    page = {"limit": SHOWN}
    overdue_by_risk, due, proposals, expiring, claimed, failed = await asyncio.gather(
        asyncio.gather(
            *(
                caller.get("matching", "/views/engagement", county_code=code, overdue=True, risk_level=risk, **page)
                for risk in RISKS
            )
        ),
        caller.get("matching", "/views/engagement", county_code=code, overdue=False, due_before=week, **page),
        caller.get("matching", "/views/pairings", county_code=code, status="proposed", **page),
        caller.get("registry", "/volunteers", county_code=code, expiring_before=month, **page),
        caller.get("matching", "/views/wishes", county_code=code, status="claimed", **page),
        failed_lately(caller, code, now - timedelta(days=FAILED_DAYS)),
    )
    return request.app.state.pages.render(
        request,
        "today.html",
        county=code,
        overdue=dict(zip(RISKS, overdue_by_risk, strict=True)),
        due=due,
        proposals=proposals,
        expiring=expiring,
        expiries={v["id"]: soonest_expiry(v) for v in expiring["items"]},
        claimed=claimed,
        failed=failed,
        now=now,
    )


async def failed_lately(caller: Caller, code: str, since: datetime) -> tuple[int, bool] | None:
    """How many of the county's messages decided since `since` failed, and whether there are more than were read;
    None when the notifications service does not answer in time (or refuses), and the day's page goes without it."""
    try:
        async with asyncio.timeout(FAILED_WAIT_SECONDS):
            found = await caller.get(
                "notifications", "/views/messages", county_code=code, status="failed", limit=FAILED_READ
            )
        recent = [m for m in found["items"] if datetime.fromisoformat(m["decided_at"]) >= since]
    except (TimeoutError, ApiFailure, KeyError, TypeError, ValueError):
        return None
    return len(recent), len(recent) == FAILED_READ < found["total"]


def soonest_expiry(volunteer: dict[str, Any]) -> tuple[str, str, str] | None:
    """What of a volunteer's vetting or training expires first: ("screening", step, when) or ("training", course,
    when)."""
    dated = [
        ("screening", step, passed["expires_at"])
        for step, passed in (volunteer.get("screenings") or {}).items()
        if passed.get("result") == "passed" and passed.get("expires_at")
    ]
    dated += [
        ("training", t["course"], t["expires_at"]) for t in volunteer.get("trainings") or [] if t.get("expires_at")
    ]
    return min(dated, key=lambda item: item[2]) if dated else None

"""Messages sent: a county's messages by SMS and email, newest first, for its coordinators (and admins): what went,
what waits for quiet hours to end or for another try, and what failed and why."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse

from services.console import deliveries
from services.console.web import StaffDep, county_in_view, csrf_checked

router = APIRouter(dependencies=[Depends(csrf_checked)])


@router.get("/messages", response_class=HTMLResponse)
async def messages(
    request: Request,
    caller: StaffDep,
    county: Annotated[str | None, Query(max_length=6)] = None,
    status: Annotated[str | None, Query(max_length=8)] = None,
    page: Annotated[int, Query(ge=1, le=100_000)] = 1,
) -> Any:
    """The notifications service's order (newest first); the filter chooses a status (one no list knows is
    ignored). A county outside the coordinator's is the API's to refuse."""
    code = county_in_view(request, county)
    pages = request.app.state.pages
    if code is None:
        return pages.render(request, "choose_county.html", target="/messages")
    chosen = status if status in deliveries.STATUSES else ""
    size: int = request.app.state.settings.page_size
    found = await caller.get(
        "notifications",
        "/views/messages",
        county_code=code,
        status=chosen,
        limit=size,
        offset=(page - 1) * size,
    )
    rows = [deliveries.shown(message, caller.session.sub) for message in found["items"]]
    return pages.render(
        request, "messages.html", county=code, found=found, rows=rows, chosen=chosen, page=page, size=size
    )

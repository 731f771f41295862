"""The inbox, for everyone signed in: their notices newest first (a coordinator's counties' merged), each in the
reader's words, marked read one by one or a page at once."""

from __future__ import annotations

import asyncio
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.console import inbox
from services.console.render import badge
from services.console.upstream import ApiFailure
from services.console.web import Caller, CallerDep, csrf_checked, form, local_path

router = APIRouter(dependencies=[Depends(csrf_checked)])
MERGED_PAGES = 20  # how far back the merged inbox of several counties pages: each page reads every county's first rows
MOST_MARKED = 500  # notices marked read at once


@router.get("/inbox", response_class=HTMLResponse)
async def inbox_page(request: Request, caller: CallerDep, page: Annotated[int, Query(ge=1, le=100_000)] = 1) -> Any:
    size: int = request.app.state.settings.page_size
    ids = inbox.recipients(caller.session)
    if len(ids) > 1:
        page = min(page, MERGED_PAGES)
    await caller.token()  # renewed once, before the calls that follow go out together
    found, unread = await asyncio.gather(notices(caller, ids, page, size), inbox.awaited(badge(request)))
    if len(ids) > 1:
        found["total"] = min(found["total"], MERGED_PAGES * size)  # the pager's last page
    shown = [notice | {"link": inbox.link(caller.session.role, notice)} for notice in found["items"]]
    return request.app.state.pages.render(
        request, "inbox.html", found=found, notices=shown, unread_total=unread, page=page, size=size
    )


async def notices(caller: Caller, ids: tuple[str, ...], page: int, size: int) -> dict[str, Any]:
    """One page of the person's notices, newest first. Of one recipient, as the API pages it; of several, each one's
    newest up to this page's end, merged, and this page's part of them."""
    if not ids:
        return {"items": [], "total": 0}
    if len(ids) == 1:
        listed = await caller.get(
            "notifications", "/notifications", recipient_id=ids[0], order="newest", limit=size, offset=(page - 1) * size
        )
        return {"items": listed["items"], "total": listed["total"]}
    each = await asyncio.gather(*(newest(caller, recipient, page * size) for recipient in ids))
    merged = inbox.newest_first(items for items, _ in each)
    return {"items": merged[(page - 1) * size : page * size], "total": sum(total for _, total in each)}


async def newest(caller: Caller, recipient: str, rows: int) -> tuple[list[dict[str, Any]], int]:
    """The recipient's newest `rows` notices (fewer if they have fewer), and how many they have in all."""
    items: list[dict[str, Any]] = []
    total = rows
    while len(items) < min(rows, total):
        listed = await caller.get(
            "notifications",
            "/notifications",
            recipient_id=recipient,
            order="newest",
            limit=min(inbox.MOST_ROWS, rows - len(items)),
            offset=len(items),
        )
        items += listed["items"]
        total = listed["total"]
        if not listed["items"]:
            break
    return items, total


@router.post("/inbox/read")
async def mark_page_read(request: Request, caller: CallerDep) -> Response:
    """Every notice the page listed unread, marked read (one already gone, or never the reader's, is passed over)."""
    sent = await form(request)
    marked = [value for value in sent.getlist("notice") if isinstance(value, str)][:MOST_MARKED]
    ids = list(dict.fromkeys(str(notice) for value in marked if (notice := _uuid(value)) is not None))
    await caller.token()

    async def mark(notice_id: str) -> None:
        try:
            await caller.post("notifications", f"/notifications/{notice_id}/read")
        except ApiFailure as failure:
            if failure.status != 404:  # 404: not a notice the reader may read
                raise

    await asyncio.gather(*(mark(notice_id) for notice_id in ids))
    return RedirectResponse(_back(sent.get("back")), status_code=303)


@router.post("/inbox/{notice_id}/read")
async def mark_read(request: Request, caller: CallerDep, notice_id: uuid.UUID) -> Response:
    sent = await form(request)
    await caller.post("notifications", f"/notifications/{notice_id}/read")
    return RedirectResponse(_back(sent.get("back")), status_code=303)


def _back(value: Any) -> str:
    """Back to the inbox page the form was on."""
    path = local_path(value if isinstance(value, str) else None, "/inbox")
    return path if path == "/inbox" or path.startswith("/inbox?") else "/inbox"


def _uuid(value: str) -> uuid.UUID | None:
    try:
        return uuid.UUID(value)
    except ValueError:
        return None

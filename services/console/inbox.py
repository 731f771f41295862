"""The in-app inbox as the console reads it: whose notices a person reads (their own, or their counties' group), the
unread count the menu's badge shows, notices of several recipients merged newest first, and where a notice leads
(only to a page the reader may see: a donor is never led to a child)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from services.console.session import Session
from services.console.upstream import ApiFailure, Upstream

GROUPS = {"coordinator": "coordinators", "child_director": "child_directors"}  # county-scoped roles read their group
BADGE_WAIT_SECONDS = 1.0  # a page is sent without its badge rather than wait longer for the notifications service
FRESH_SECONDS = 5  # an access token this close to its expiry is not used for the badge (the page renews it)
MOST_ROWS = 500  # the largest page the notifications API gives

# Where a notice leads, by the reader's role and the notice's reason; `{}` is the notice's `about_id` (the pairing,
# wish, aid distribution, volunteer or child it is about). A reason not named leads nowhere.
_CHILD, _PAIRING, _VOLUNTEER = "/children/{}", "/pairings/{}", "/volunteers/{}"
STAFF_LINKS = {
    "child_registered": _CHILD,
    "pairing_proposed": _PAIRING,
    "pairing_confirmed": _PAIRING,
    "pairing_suspended": _PAIRING,
    "pairing_closed": _PAIRING,
    "visit_overdue": _CHILD,
    "overdue_escalated": _CHILD,
    "visit_due_tomorrow": _CHILD,
    "aid_distributed": "/aid/receipts/{}",
    "screening_expiring": _VOLUNTEER,
    "screening_expired": _VOLUNTEER,
    "training_expiring": _VOLUNTEER,
    "training_expired": _VOLUNTEER,
}
LINKS: dict[str, dict[str, str]] = {
    "coordinator": STAFF_LINKS,
    "admin": STAFF_LINKS,
    # A donor's own wishes, which show the item and "girl, 9-11": never a child's page, id or name.
    "donor": {
        "wish_claimed": "/wishes/mine#wish-{}",
        "wish_fulfilled": "/wishes/mine#wish-{}",
        "wish_thanked": "/wishes/mine#wish-{}",
        "claim_lapsing": "/wishes/mine#wish-{}",
    },
    # A volunteer's phone page lists their own children; it is where a pairing or a visit of theirs is.
    "volunteer": {
        "pairing_confirmed": "/my",
        "pairing_suspended": "/my",
        "visit_overdue": "/my",
        "visit_due_tomorrow": "/my",
    },
    # A child director is told, and has no reach into the records: no link.
}


def recipients(session: Session) -> tuple[str, ...]:
    """The recipient ids whose notices the person reads: a coordinator's or child director's counties' group, anyone
    else's own (their token's subject)."""
    group = GROUPS.get(session.role or "")
    if group is not None:
        return tuple(f"county:{code}:{group}" for code in session.counties)
    return (session.sub,) if session.sub else ()


def link(role: str | None, notice: dict[str, Any]) -> str | None:
    """The page a notice leads its reader to, if the console has one they may see."""
    target = LINKS.get(role or "", {}).get(str(notice.get("reason")))
    return target.format(notice["about_id"]) if target and notice.get("about_id") else None


def newest_first(pages: Iterable[Sequence[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Notices of several recipients as one list, newest first (the API's own order within each)."""
    notices = [notice for page in pages for notice in page]
    return sorted(notices, key=lambda n: (datetime.fromisoformat(n["recorded_at"]), n["notice_id"]), reverse=True)


async def unread(upstream: Upstream, session: Session) -> int | None:
    """How many notices the person has not read, over all their recipient ids (one small call each, at once); None
    when it cannot be told (the service does not answer, or refuses), and the page goes without its badge."""
    token, ids = session.access_token, recipients(session)
    if token is None or not ids or session.expires_at - time.time() < FRESH_SECONDS:
        return None

    async def count(recipient: str) -> int:
        answer = await upstream.json(
            "GET", "notifications", "/notifications/unread", token=token, params={"recipient_id": recipient}
        )
        return int(answer["unread"])

    try:
        return sum(await asyncio.gather(*(count(recipient) for recipient in ids)))
    except (ApiFailure, KeyError, TypeError, ValueError):
        return None


async def awaited(badge: asyncio.Future[int | None] | None) -> int | None:
    """The badge's count if it arrives in time; else None, and the calls still out are dropped."""
    if badge is None:
        return None
    done, _ = await asyncio.wait({badge}, timeout=BADGE_WAIT_SECONDS)
    if not done:
        badge.cancel()
        return None
    return None if badge.cancelled() or badge.exception() else badge.result()

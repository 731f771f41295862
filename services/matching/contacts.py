"""Contacts with a child: by the paired volunteer, or by a child director, cadre or coordinator outside a pairing.

A contact may carry the id its sender chose (a phone that kept a visit logged without signal, and sends it when the
signal returns): sending it again, after an answer lost on the way, returns the contact recorded the first time.

Each contact is an event on the bus (kind, in person or not, when, how long, campaign) and a row here; its note,
free text that may say anything about the child, stays in that row and never leaves the service, and is cleared when
the registry erases the child's personal data. An in-person contact moves the child's next due visit.
"""

from __future__ import annotations

import uuid
from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from sqlalchemy import Index, String, Text, Uuid, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.orm import Mapped, mapped_column

from backbone import scrub
from backbone.auth import Principal
from backbone.database import UtcDateTime
from backbone.deps import RuntimeDep, require, require_county
from backbone.errors import ApiError
from backbone.paging import Page, Paging, fetch_page
from backbone.runtime import Runtime
from backbone.store import Append, ConcurrencyConflict, OutOfOrder
from contracts.matching import ContactKind, ContactRecorded, Official
from services.matching import pairings, schedule
from services.matching.candidates import CandidateChild, CandidateVolunteer, allows, no_consent, require_campaign
from services.matching.views import ContactFacts, Views

router = APIRouter(tags=["contacts"])
CLOCK_SKEW = timedelta(minutes=5)  # a phone's clock a little ahead is not a contact in the future
ORDER_ATTEMPTS = 3  # a contact written again when the timer wrote the same schedule in a younger transaction


class ContactRecord(ContactFacts, Views):
    __tablename__ = "contacts"
    __table_args__ = (Index("ix_contacts_child", "child_id", "occurred_at"),)

    pairing_id: Mapped[uuid.UUID | None] = mapped_column(Uuid, nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)  # never on the bus, never in a log
    recorded_by: Mapped[str] = mapped_column(String(80))
    recorded_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ContactIn(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    contact_id: uuid.UUID | None = Field(
        default=None,
        description="the sender's own id for this contact: the same id sent again records nothing more, and is "
        "answered 200 with the contact recorded the first time (201 when new)",
    )
    kind: ContactKind
    in_person: bool
    occurred_at: AwareDatetime
    duration_minutes: int = Field(ge=0, le=24 * 60)
    campaign_id: uuid.UUID | None = None
    note: Annotated[str, Field(max_length=2000)] | None = None


class VisitIn(ContactIn):
    """A contact outside a pairing: who made it."""

    visitor: Official = Field(description="child_director, cadre, social_worker or coordinator")
    volunteer_id: uuid.UUID | None = Field(
        default=None, description="the visitor, if registered (as a cadre, child director, social worker...)"
    )


class ContactOut(BaseModel):
    contact_id: uuid.UUID
    child_id: uuid.UUID
    county_code: str
    pairing_id: uuid.UUID | None
    volunteer_id: uuid.UUID | None
    visitor: str
    kind: str
    in_person: bool
    occurred_at: datetime
    duration_minutes: int
    campaign_id: uuid.UUID | None
    note: str | None


@router.post("/pairings/{pairing_id}/contacts", status_code=201, response_model=ContactOut)
async def record_pairing_contact(
    pairing_id: uuid.UUID,
    body: ContactIn,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator", "volunteer"))],
    response: Response,
) -> ContactOut:
    """A contact by the paired volunteer (or recorded for them by a coordinator) in a confirmed pairing; in person
    only with the child's consent to home visits (a call needs no more than the pairing's own consent)."""
    async with runtime.db.read() as conn:
        pairing = await pairings.load(conn, pairing_id)
        child = (await conn.execute(select(CandidateChild).where(CandidateChild.child_id == pairing.child_id))).first()
    if principal.role == "volunteer":
        if principal.sub != str(pairing.volunteer_id):
            raise ApiError(403, "forbidden", "a volunteer records contacts in their own pairings only")
    else:
        require_county(principal, pairing.county_code)
    sent = _Sent(body.contact_id, pairing.child_id, pairing_id, principal.sub)
    if (first := await _sent_before(runtime, sent, response)) is not None:
        return first  # whatever became of the pairing since: this contact is recorded already
    if pairing.status != "confirmed":
        raise ApiError(409, f"pairing_{pairing.status}", f"the pairing is {pairing.status}; contacts need it confirmed")
    if body.in_person and (child is None or not allows(child, "home_visits")):  # unknown to the view: none known
        raise no_consent("home_visits", [pairing.child_id])
    contact = _contact(
        runtime, body, pairing.child_id, pairing.county_code, "volunteer", pairing_id, pairing.volunteer_id
    )
    return await _record(runtime, sent, contact, body.note, response)


@router.post("/children/{child_id}/contacts", status_code=201, response_model=ContactOut)
async def record_visit(
    child_id: uuid.UUID,
    body: VisitIn,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    response: Response,
) -> ContactOut:
    """A contact outside a pairing: the county's child director, a visiting cadre, a social worker. These are
    statutory duties (Minors Protection Law), not purposes a guardian consents to: no consent is asked."""
    async with runtime.db.read() as conn:
        child = (await conn.execute(select(CandidateChild).where(CandidateChild.child_id == child_id))).first()
        visitor = None
        if body.volunteer_id is not None:
            visitor = (
                await conn.execute(
                    select(CandidateVolunteer.county_code, CandidateVolunteer.kind).where(
                        CandidateVolunteer.volunteer_id == body.volunteer_id
                    )
                )
            ).first()
    if child is None:
        raise ApiError(404, "not_found", f"no child {child_id} known to matching")
    require_county(principal, child.county_code)
    sent = _Sent(body.contact_id, child_id, None, principal.sub)
    if (first := await _sent_before(runtime, sent, response)) is not None:
        return first
    if not child.active:
        raise ApiError(409, "left_programme", "the child has left the programme")
    if body.volunteer_id is not None:
        if visitor is None or visitor.county_code != child.county_code:
            raise ApiError(422, "unknown_visitor", f"no volunteer {body.volunteer_id} in county {child.county_code}")
        if visitor.kind != body.visitor:
            raise ApiError(
                422, "visitor_mismatch", f"volunteer {body.volunteer_id} is a {visitor.kind}, not a {body.visitor}"
            )
    contact = _contact(runtime, body, child_id, child.county_code, body.visitor, None, body.volunteer_id)
    return await _record(runtime, sent, contact, body.note, response)


def _contact(
    runtime: Runtime,
    body: ContactIn,
    child_id: uuid.UUID,
    county_code: str,
    visitor: Any,
    pairing_id: uuid.UUID | None,
    volunteer_id: uuid.UUID | None,
) -> ContactRecorded:
    if body.occurred_at > runtime.clock.now() + CLOCK_SKEW:
        raise ApiError(422, "in_future", "a contact is recorded after it happened")
    return ContactRecorded(
        contact_id=body.contact_id or uuid.uuid4(),
        child_id=child_id,
        county_code=county_code,
        pairing_id=pairing_id,
        volunteer_id=volunteer_id,
        visitor=visitor,
        kind=body.kind,
        in_person=body.in_person,
        occurred_at=body.occurred_at,
        duration_minutes=body.duration_minutes,
        campaign_id=body.campaign_id,
    )


@dataclass(frozen=True)
class _Sent:
    """Where a contact was sent: the sender's id for it (if any), the child, the pairing (None: none), by whom."""

    contact_id: uuid.UUID | None
    child_id: uuid.UUID
    pairing_id: uuid.UUID | None
    recorded_by: str


async def _sent_before(runtime: Runtime, sent: _Sent, response: Response) -> ContactOut | None:
    """The contact recorded under the id the sender chose, if it was sent before (then answered 200, not 201); an id
    that names a contact of another child or pairing, or one someone else recorded, is refused."""
    if sent.contact_id is None:
        return None
    async with runtime.db.read() as conn:
        row = (await conn.execute(select(ContactRecord).where(ContactRecord.contact_id == sent.contact_id))).first()
    if row is None:
        return None
    if (row.child_id, row.pairing_id, row.recorded_by) != (sent.child_id, sent.pairing_id, sent.recorded_by):
        raise _taken()
    response.status_code = 200
    return ContactOut.model_validate(row._mapping)


def _taken() -> ApiError:
    return ApiError(409, "contact_id_taken", "another contact has this id; a new contact needs an id of its own")


async def _record(
    runtime: Runtime, sent: _Sent, contact: ContactRecorded, note: str | None, response: Response
) -> ContactOut:
    try:
        return await _write_in_order(runtime, sent.recorded_by, contact, note)
    except ConcurrencyConflict:
        if sent.contact_id is None:
            raise
        # The same id sent twice at once (a phone retrying while its first request is still on its way): the first
        # to commit recorded it, and this one answers with what it recorded.
        if (first := await _sent_before(runtime, sent, response)) is not None:
            return first
        async with runtime.db.read() as conn:
            if await runtime.store.version(conn, str(sent.contact_id)):
                raise _taken() from None  # the id of something else in the event log (a child's schedule, say)
        raise


async def _write_in_order(runtime: Runtime, recorded_by: str, contact: ContactRecorded, note: str | None) -> ContactOut:
    """The contact written, again if the visit timer moved the child's schedule on in a transaction younger than
    ours (its lock made us wait): a race of the server's own, not a change the sender has to look at."""
    for _ in range(ORDER_ATTEMPTS - 1):
        try:
            return await _write(runtime, recorded_by, contact, note)
        except OutOfOrder:
            continue
    return await _write(runtime, recorded_by, contact, note)


async def _write(runtime: Runtime, recorded_by: str, contact: ContactRecorded, note: str | None) -> ContactOut:
    async with runtime.transaction() as conn:
        # The child's row, held: an erasure arriving meanwhile waits, then clears this note with the others.
        held = select(CandidateChild.erased).where(CandidateChild.child_id == contact.child_id).with_for_update()
        if await conn.scalar(held):
            note = None  # the registry erased the child's personal data: no note about them is kept
        await require_campaign(conn, contact.campaign_id, contact.county_code)
        if contact.in_person:
            # First, before this transaction writes anything: on PostgreSQL the event store refuses to append to a
            # stream behind a transaction younger than this one, and the timer may hold this child's schedule.
            await schedule.visited(runtime, conn, contact.child_id, contact.occurred_at)
        await runtime.append(conn, Append(str(contact.contact_id), 0, [contact]))
        row = {**contact.model_dump(), "note": note, "recorded_by": recorded_by, "recorded_at": runtime.clock.now()}
        await conn.execute(insert(ContactRecord).values(**row))
    return ContactOut.model_validate(row)


@router.get("/children/{child_id}/contacts", response_model=Page[ContactOut])
async def contacts_of(
    child_id: uuid.UUID,
    runtime: RuntimeDep,
    principal: Annotated[Principal, Depends(require("coordinator"))],
    paging: Paging,
) -> Page[ContactOut]:
    """The child's contacts with their notes, newest first, for a coordinator of the child's county."""
    async with runtime.db.read() as conn:
        county = await conn.scalar(select(CandidateChild.county_code).where(CandidateChild.child_id == child_id))
        if county is None:
            raise ApiError(404, "not_found", f"no child {child_id} known to matching")
        require_county(principal, county)
        query = select(ContactRecord).where(ContactRecord.child_id == child_id)
        order = (ContactRecord.occurred_at.desc(), ContactRecord.contact_id)
        return await fetch_page(
            conn, query.order_by(*order), paging, lambda row: ContactOut.model_validate(row._mapping)
        )


async def forget_notes(conn: AsyncConnection, children: Collection[uuid.UUID] | None = None) -> None:
    """The notes of children (all, if None) whose personal data the registry erased are cleared: free text about a
    child is personal data. Run in the candidate view's transaction, as it learns of the erasure; the old text is
    scrubbed from the files once that commits (`backbone.scrub`, by its timer)."""
    erased = select(CandidateChild.child_id).where(CandidateChild.erased.is_(True))
    if children is not None:
        erased = erased.where(CandidateChild.child_id.in_(children))
    noted = ContactRecord.note.is_not(None)
    cleared = await conn.execute(
        update(ContactRecord).where(ContactRecord.child_id.in_(erased), noted).values(note=None)
    )
    if cleared.rowcount:
        await scrub.owe(conn, ContactRecord)

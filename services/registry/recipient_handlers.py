"""A service looks up where people are reached: the active accounts, volunteers and owners of working links the
recipients name, found in a few queries whatever their number, unsealed only for those, and the lookup audit-logged
by its counts."""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Sequence

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.auth import Principal
from backbone.runtime import Runtime
from services.registry import audit, recipients, vault
from services.registry.account_handlers import profiles, sent_links
from services.registry.account_records import AccountRecord, serves
from services.registry.recipients import Found, Reachable
from services.registry.records import VolunteerRecord

ACTION = "contacts_lookup"


async def look_up(runtime: Runtime, principal: Principal, asked: Sequence[str]) -> list[Found]:
    """The people `asked` names (checked by `recipients.check`, each once), with their phone and email address, and
    a link's owner with its token too, for a service allowed to send links (`may_read_links`). Audit-logged by its
    counts, and each link's token handed out on its own (`link_handover`, by the link's account)."""
    now = runtime.clock.now()
    async with runtime.db.read() as conn:
        accounts = await _active_accounts(conn, asked)
        answered = {account.sub for account in accounts}
        phones = await _volunteer_phones(conn, [p for p in recipients.person_ids(asked) if p not in answered])
        ids = [uuid.UUID(link_id) for link_id in recipients.link_ids(asked)]
        links = await sent_links(conn, runtime.settings.secret, ids, now)
    people = recipients.found(asked, accounts, phones, {str(link_id): link for link_id, link in links.items()})
    note = f"{len(asked)} recipients; {len({person.person_id for person in people})} people found; {len(links)} links"
    async with runtime.db.begin() as conn:
        await audit.record_account(conn, now, principal.sub, principal.role, ACTION, None, note=note)
        for link in links.values():
            await audit.record_account(
                conn, now, principal.sub, principal.role, "link_handover", link.account_id, note=link.kind
            )
    return people


def may_read_links(runtime: Runtime, principal: Principal) -> bool:
    """Whether a service may be given links' tokens: only those named in LINK_READERS (the notifications service),
    for a token is a password of its owner's to choose."""
    readers = {f"service:{name}" for name in runtime.settings.link_readers}
    return principal.role == "service" and principal.sub in readers


async def refused(runtime: Runtime, principal: Principal, why: str = "not a service") -> None:
    """Anyone but a service asking (for links: but a service allowed to send them) is refused, and audit-logged:
    contact details and links are not theirs to collect."""
    async with runtime.db.begin() as conn:
        now = runtime.clock.now()
        await audit.record_account(conn, now, principal.sub, principal.role, ACTION, None, "denied", why)


async def _active_accounts(conn: AsyncConnection, asked: Sequence[str]) -> list[Reachable]:
    """The active accounts whose `sub` is one of the ids asked for, or that are in a group asked for (by role and
    one county: the rules check the county exactly), oldest first, in one query."""
    wanted: list[ColumnElement[bool]] = []
    ids = [uuid.UUID(person_id) for person_id in recipients.person_ids(asked)]
    if ids:
        by_account_id = and_(AccountRecord.person_id.is_(None), AccountRecord.id.in_(ids))
        # A service's tokens name it service:<login>, not by its id: no one to write to.
        wanted.append(or_(AccountRecord.person_id.in_(ids), and_(by_account_id, AccountRecord.role != "service")))
    counties = defaultdict(set)
    for group in recipients.groups(asked):
        counties[group.role].add(group.county_code)
    for role, codes in counties.items():
        wanted.append(and_(AccountRecord.role == role, or_(*(serves(code) for code in sorted(codes)))))
    if not wanted:
        return []
    query = (
        select(AccountRecord)
        .where(AccountRecord.state == "active", or_(*wanted))
        .order_by(AccountRecord.created_at, AccountRecord.id)
    )
    opened = await profiles(conn, (await conn.execute(query)).all())
    return [
        Reachable(p.sub, p.role, p.counties, p.login, p.email)
        for p in opened
        if p.login  # its key destroyed (its person erased): nothing to reach it by
    ]


async def _volunteer_phones(conn: AsyncConnection, person_ids: Sequence[str]) -> dict[str, str | None]:
    """The registered phone of each of these volunteers not erased (people with no active account)."""
    if not person_ids:
        return {}
    query = select(VolunteerRecord.id, VolunteerRecord.sealed).where(
        VolunteerRecord.id.in_([uuid.UUID(person_id) for person_id in person_ids]), VolunteerRecord.erased_at.is_(None)
    )
    rows = (await conn.execute(query)).all()
    keys = await vault.keys_of(conn, [row.id for row in rows])
    phones: dict[str, str | None] = {}
    for row in rows:
        personal = vault.unseal(keys.get(row.id), row.id, row.sealed)
        if personal is not None:
            phones[str(row.id)] = personal.get("phone")
    return phones

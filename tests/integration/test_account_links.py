"""Invitations and reset links reach their owners, on the in-process registry, on SQLite and PostgreSQL: each link
sent is announced (`registry.link.issued`) with no token and no contact in it, and the sending service (and no other)
looks up `link:<id>` for the owner's phone, email address and the token, while the link can still be used and never
after; the database keeps no token; a self-service reset request sends a link only while none works, three a day at
most, and tells the caller nothing either way."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta
from typing import Any

import httpx
from fastapi import FastAPI
from nats.aio.client import Client as NATS
from sqlalchemy import event, select

from backbone.clock import SettableClock
from backbone.database import Database
from backbone.freshness import WRITTEN
from backbone.store import EventRecord
from contracts.registry import LinkIssued
from services.registry.account_records import AccountLink
from tests.helpers import auth, read_stream, wait_until
from tests.integration.account_steps import ADMIN, PASSWORD, accept, active, audit, create, signed_in, volunteer
from tests.integration.test_contacts_lookup import entry, lookup, people, service
from tests.integration.test_http import assert_error

LOGIN, EMAIL, NAME = "13907731234", "wei@xingan.gov.cn", "韦小梅"
XINGAN = "450325"
UNKNOWN_LINK = "link:00000000-0000-4000-8000-00000000abcd"


async def links(db: Database) -> list[dict[str, Any]]:
    """The `LinkIssued` events in the registry's log (its outbox), oldest first, each with its stream and version."""
    async with db.read() as conn:
        found = await conn.execute(
            select(EventRecord.stream_id, EventRecord.version, EventRecord.data, EventRecord.sealed)
            .where(EventRecord.type == LinkIssued.type_name)
            .order_by(EventRecord.position)
        )
        return [{"stream_id": s, "version": v, "sealed": sealed, **data} for s, v, data, sealed in found]


async def event_log(db: Database) -> str:
    """Every column of every event in the registry's log, as text."""
    return await table_text(db, EventRecord)


async def table_text(db: Database, table: Any) -> str:
    async with db.read() as conn:
        return json.dumps([[str(value) for value in row] for row in await conn.execute(select(table))])


async def resets(db: Database) -> list[dict[str, Any]]:
    return [link for link in await links(db) if link["kind"] == "reset"]


async def reset_request(registry: httpx.AsyncClient, login: str) -> None:
    """Ask for a reset as anyone may: 202, and nothing in the answer tells whether a link was made."""
    answer = await registry.post("/auth/password-resets", json={"login": login})
    assert (answer.status_code, answer.content) == (202, b"")
    assert WRITTEN not in answer.headers


async def test_an_invitation_is_announced_without_its_token_and_its_owner_reached_through_the_link(
    registry: httpx.AsyncClient, db: Database, nc: NATS
) -> None:
    notifications = await service(registry)  # a service account: a client secret, no link
    created = await create(registry, login=LOGIN, role="coordinator", counties=[XINGAN], name=NAME, email=EMAIL)
    account, handover = created["account"], created["handover"]

    (issued,) = await links(db)
    link_id = issued["stream_id"]
    assert issued == {
        "stream_id": link_id,
        "version": 1,
        "sealed": None,
        "link_id": link_id,
        "account_id": account["id"],
        "kind": "invitation",
        "role": "coordinator",
        "county_code": XINGAN,
        "expires_at": issued["expires_at"],
    }
    assert datetime.fromisoformat(issued["expires_at"]) == datetime.fromisoformat(handover["expires_at"])
    everything = await event_log(db)
    for secret in (handover["token"], LOGIN, EMAIL, NAME, "xingan.gov.cn"):
        assert secret not in everything
    assert handover["token"] not in await table_text(db, AccountLink)  # its hash only

    found = await people(registry, notifications, f"link:{link_id}", UNKNOWN_LINK)
    assert found == [
        entry(f"link:{link_id}", account["id"], LOGIN, EMAIL, handover["token"], "invitation"),  # invited, not active
    ]
    assert (await accept(registry, {"token": found[0]["token"]})).status_code == 204  # the token sent works
    await signed_in(registry, LOGIN)
    assert await people(registry, notifications, f"link:{link_id}") == []  # used: nobody

    logged = [e for e in await audit(registry) if e["action"] == "contacts_lookup"]
    assert [e["purpose"] for e in logged] == [
        "2 recipients; 1 people found; 1 links",
        "1 recipients; 0 people found; 0 links",
    ]
    handed = [e for e in await audit(registry) if e["action"] == "link_handover"]
    assert [(e["actor"], e["account_id"], e["purpose"]) for e in handed] == [
        ("service:notifications", account["id"], "invitation")
    ]
    told = json.dumps(await audit(registry))
    assert not [secret for secret in (handover["token"], link_id, LOGIN, EMAIL) if secret in told]

    async def published() -> bool:
        messages = await read_stream(nc.jetstream(), "REGISTRY", "registry.link.>")
        return [json.loads(message.data)["data"]["link_id"] for message in messages] == [link_id]

    await wait_until(published, what="the relay to publish the link")


async def test_a_replaced_expired_or_disabled_accounts_link_answers_nobody(
    registry: httpx.AsyncClient, db: Database, clock: SettableClock
) -> None:
    notifications = await service(registry)
    volunteer_id = await volunteer(registry, XINGAN)
    invited = await create(registry, login="13977310011", role="volunteer", person_id=volunteer_id)
    path = f"/accounts/{invited['account']['id']}"
    again = await registry.post(f"{path}/invitation", headers=ADMIN)
    assert again.status_code == 201, again.text
    first, second = [f"link:{link['link_id']}" for link in await links(db)]
    assert [(link["role"], link["county_code"]) for link in await links(db)] == [("volunteer", XINGAN)] * 2

    assert await people(registry, notifications, first, second) == [  # a volunteer answers as their registered id
        entry(second, volunteer_id, "13977310011", None, again.json()["token"], "invitation")
    ]
    clock.advance(timedelta(hours=72))
    assert await people(registry, notifications, second) == []  # expired
    assert_error(await accept(registry, again.json()), 400, "invalid_link")

    coordinator = await active(registry, LOGIN, counties=[XINGAN], email=EMAIL)
    reset = await registry.post(f"/accounts/{coordinator['id']}/password-reset", headers=ADMIN)
    assert reset.status_code == 201, reset.text
    by_admin = f"link:{(await links(db))[-1]['link_id']}"
    assert (await links(db))[-1]["kind"] == "reset"
    assert await people(registry, notifications, by_admin) == [
        entry(by_admin, coordinator["id"], LOGIN, EMAIL, reset.json()["token"], "reset")
    ]
    assert (await registry.post(f"/accounts/{coordinator['id']}/disable", headers=ADMIN)).status_code == 200
    assert await people(registry, notifications, by_admin) == []

    # An erased volunteer's account: its link goes with the erasure.
    erased_id = await volunteer(registry, XINGAN, "13977310002")
    await create(registry, login="13977310022", role="volunteer", person_id=erased_id)
    erased_link = f"link:{(await links(db))[-1]['link_id']}"
    assert len(await people(registry, notifications, erased_link)) == 1
    assert (await registry.delete(f"/volunteers/{erased_id}/personal-data", headers=ADMIN)).status_code == 204
    assert await people(registry, notifications, erased_link) == []


async def test_only_the_sending_service_looks_up_a_link(registry: httpx.AsyncClient, db: Database) -> None:
    created = await create(registry, login=LOGIN, role="coordinator", counties=[XINGAN])
    link = f"link:{(await links(db))[0]['link_id']}"
    await active(registry, "13907730001", counties=[XINGAN])
    signed_in_coordinator = {"Authorization": f"Bearer {(await signed_in(registry, '13907730001'))['access_token']}"}
    other_service = await service(registry, "demo-loader")  # a service, but not the one LINK_READERS names

    assert_error(await registry.post("/contacts/lookup", json={"recipients": [link]}), 401, "unauthorized")
    for headers in (ADMIN, auth("coordinator", [XINGAN]), signed_in_coordinator, other_service):
        answer = await lookup(registry, headers, link)
        assert_error(answer, 403, "forbidden")
        assert created["handover"]["token"] not in answer.text
    assert await people(registry, other_service, "county:450325:coordinators")  # contacts, yes; links, no
    logged = [e for e in await audit(registry) if e["action"] == "contacts_lookup"]
    denied = [e["purpose"] for e in logged if e["outcome"] == "denied"]
    assert denied == ["not a service"] * 3 + ["not a reader of links"]


async def test_a_reset_request_sends_a_link_only_while_none_works_and_three_a_day(
    registry: httpx.AsyncClient, db: Database, clock: SettableClock
) -> None:
    notifications = await service(registry)
    account = await active(registry, LOGIN, counties=[XINGAN], email=EMAIL)
    asked_at = clock.now()
    await reset_request(registry, "139 0773 1234")  # however it is typed

    (issued,) = [link for link in await links(db) if link["kind"] == "reset"]
    assert (issued["account_id"], issued["role"], issued["county_code"]) == (account["id"], "coordinator", XINGAN)
    first = f"link:{issued['link_id']}"
    (sent,) = await people(registry, notifications, first)
    assert (sent["person_id"], sent["phone"], sent["email"], sent["kind"]) == (account["id"], LOGIN, EMAIL, "reset")

    clock.advance(timedelta(minutes=59))
    await reset_request(registry, LOGIN)  # the first still works: it is not replaced, and no second SMS goes
    assert len(await resets(db)) == 1
    assert len(await people(registry, notifications, first)) == 1
    clock.advance(timedelta(minutes=1))  # the first expired, unused: a new one
    await reset_request(registry, LOGIN)
    assert len(await resets(db)) == 2
    (newer,) = await people(registry, notifications, f"link:{(await resets(db))[1]['link_id']}")
    listed = (await registry.get("/accounts", headers=ADMIN)).json()["items"]
    (shown,) = [a for a in listed if a["id"] == account["id"]]
    assert datetime.fromisoformat(shown["reset_requested_at"]) == asked_at  # the first request not yet answered

    complete = {"token": newer["token"], "password": "a-new-and-better-one"}
    assert (await registry.post("/auth/password-resets/complete", json=complete)).status_code == 204
    await signed_in(registry, LOGIN, "a-new-and-better-one")
    listed = (await registry.get("/accounts", headers=ADMIN)).json()["items"]
    assert [a["reset_requested_at"] for a in listed if a["id"] == account["id"]] == [None]
    await reset_request(registry, LOGIN)  # the last link was used: none works, so a new one goes at once
    assert len(await resets(db)) == 3
    clock.advance(timedelta(hours=2))
    await reset_request(registry, LOGIN)  # but three today are enough: only the request shows
    assert len(await resets(db)) == 3
    clock.advance(timedelta(hours=22))  # a day after the first
    await reset_request(registry, LOGIN)
    assert len(await resets(db)) == 4

    asked = [(e["actor"], e["purpose"]) for e in await audit(registry) if e["action"] == "reset_request"]
    assert asked == [("anonymous", "link sent")] * 4  # a request that wrote nothing is not logged either


async def test_a_reset_request_leaves_a_link_an_admin_handed_over_and_sends_none_to_the_unreachable(
    registry: httpx.AsyncClient, db: Database
) -> None:
    account = await active(registry, LOGIN, counties=[XINGAN])
    handed = await registry.post(f"/accounts/{account['id']}/password-reset", headers=ADMIN)
    assert handed.status_code == 201, handed.text
    named = await active(registry, "wei.admin", role="admin", counties=[])  # a name for a login, and no email

    await reset_request(registry, LOGIN)
    await reset_request(registry, "wei.admin")

    assert len(await resets(db)) == 1  # the admin's, announced when made; none for the one nobody can reach
    use = {"token": handed.json()["token"], "password": "a-new-and-better-one"}
    assert (await registry.post("/auth/password-resets/complete", json=use)).status_code == 204
    listed = (await registry.get("/accounts", headers=ADMIN)).json()["items"]
    assert [a["reset_requested_at"] is not None for a in listed if a["id"] == named["id"]] == [True]
    asked = [(e["account_id"], e["purpose"]) for e in await audit(registry) if e["action"] == "reset_request"]
    assert asked == [(account["id"], "no link sent"), (named["id"], "no link sent")]


async def test_reset_requests_for_one_login_at_the_same_moment_make_one_link(
    registry: httpx.AsyncClient, db: Database
) -> None:
    await active(registry, LOGIN, counties=[XINGAN])

    await asyncio.gather(*(reset_request(registry, LOGIN) for _ in range(5)))

    assert len(await resets(db)) == 1


async def test_a_reset_request_for_no_active_persons_account_makes_no_link(
    registry: httpx.AsyncClient, db: Database
) -> None:
    await service(registry, "sms-sender")
    await create(registry, login="13907730002", role="coordinator", counties=[XINGAN], send_link=False)  # invited
    disabled = await active(registry, "13907730003", counties=[XINGAN])
    assert (await registry.post(f"/accounts/{disabled['id']}/disable", headers=ADMIN)).status_code == 200
    before = await links(db)

    for login in ("sms-sender", "13907730002", "13907730003", "13907739999", "not a login", PASSWORD):
        await reset_request(registry, login)

    assert await links(db) == before
    assert [e for e in await audit(registry) if e["action"] == "reset_request"] == []
    listed = (await registry.get("/accounts", headers=ADMIN)).json()["items"]
    assert [a["reset_requested_at"] for a in listed] == [None] * 3


async def test_a_lookup_of_links_takes_as_many_queries_for_many_as_for_one(
    registry: httpx.AsyncClient, registry_app: FastAPI, db: Database
) -> None:
    notifications = await service(registry)
    for n in range(6):
        await create(registry, login=f"139077300{n:02d}", role="coordinator", counties=[XINGAN])
    asked = [f"link:{link['link_id']}" for link in await links(db)]
    statements: list[str] = []

    def seen(conn: Any, cursor: Any, statement: str, *_: Any) -> None:
        statements.append(statement)

    async def selects(*recipients: str) -> tuple[int, int]:
        """How many people the lookup found, in how many queries of the tables it reads (the relay and the timers
        query their own meanwhile)."""
        statements.clear()
        found = await people(registry, notifications, *recipients)
        tables = ("accounts", "account_link", "person_keys")
        return len(found), len(
            [s for s in statements if s.lstrip().upper().startswith("SELECT") and any(t in s for t in tables)]
        )

    engine = registry_app.state.runtime.db.reader.sync_engine  # the engine's too, on PostgreSQL
    event.listen(engine, "before_cursor_execute", seen)
    try:
        one, many = await selects(asked[0]), await selects(*asked, UNKNOWN_LINK)
    finally:
        event.remove(engine, "before_cursor_execute", seen)
    assert (one[0], many[0]) == (1, 6)
    assert one[1] == many[1] <= 3  # the links with their accounts, and the accounts' keys


async def test_a_link_goes_out_only_when_asked_and_its_owner_can_be_reached(
    registry: httpx.AsyncClient, db: Database
) -> None:
    handed = await create(registry, login=LOGIN, role="coordinator", counties=[XINGAN], send_link=False)
    no_contact = await create(registry, login="wei.admin", role="admin")  # a name for a login, and no email address
    by_email = await create(registry, login="li.admin", role="admin", email=EMAIL)

    assert [made["handover"]["sent"] for made in (handed, no_contact, by_email)] == [False, False, True]
    [issued] = await links(db)
    assert (issued["account_id"], issued["county_code"]) == (by_email["account"]["id"], None)
    again = await registry.post(f"/accounts/{handed['account']['id']}/invitation", headers=ADMIN)
    assert again.status_code == 201, again.text
    assert again.json()["sent"] is True  # a new invitation for a mobile number: on its way
    assert len(await links(db)) == 2

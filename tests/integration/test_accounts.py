"""Managing accounts on the in-process registry over HTTP, on SQLite and PostgreSQL: invitations, reset links,
disabling, role and county changes, and a coordinator's reach."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime, timedelta

import httpx

from backbone.clock import SettableClock
from backbone.database import Database
from backbone.store import EventRecord
from services.registry.account_records import AccountRecord
from tests.helpers import auth, child_registration, rows
from tests.integration.account_steps import (
    ADMIN,
    PASSWORD,
    accept,
    active,
    audit,
    bearer,
    create,
    refresh,
    refused_refresh,
    sign_in,
    signed_in,
    volunteer,
)
from tests.integration.test_http import assert_error

LOGIN = "13907731234"
XINGAN, LINGSHAN = "450325", "450721"


async def test_an_invitation_works_once_and_not_after_it_expires(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    created = await create(registry, login=LOGIN, role="coordinator", counties=[XINGAN])
    account, handover = created["account"], created["handover"]
    assert (account["state"], account["login"], account["counties"]) == ("invited", LOGIN, [XINGAN])
    assert handover["kind"] == "invitation"
    assert handover["path"] == f"/accept-invitation#{handover['token']}"
    assert datetime.fromisoformat(handover["expires_at"]) == clock.now() + timedelta(hours=72)
    assert_error(await sign_in(registry, LOGIN), 401, "invalid_credentials")  # no password yet: as a wrong one

    assert_error(await accept(registry, handover, "password12"), 422, "password_common")  # refused: link kept
    assert (await accept(registry, handover)).status_code == 204
    assert_error(await accept(registry, handover, "another-fine-password"), 400, "invalid_link")
    await signed_in(registry, LOGIN)

    late = await create(registry, login="13907735678", role="coordinator", counties=[XINGAN])
    clock.advance(timedelta(hours=72))
    assert_error(await accept(registry, late["handover"]), 400, "invalid_link")
    again = await registry.post(f"/accounts/{late['account']['id']}/invitation", headers=ADMIN)
    assert again.status_code == 201
    clock.advance(timedelta(hours=71))
    assert (await accept(registry, again.json())).status_code == 204
    await signed_in(registry, "13907735678")
    assert_error(
        await registry.post(f"/accounts/{late['account']['id']}/invitation", headers=ADMIN), 409, "already_active"
    )

    entries = [e for e in await audit(registry) if e["account_id"] == account["id"]]
    assert [(e["action"], e["actor"]) for e in entries] == [
        ("account_create", "admin"),
        ("sign_in", account["id"]),  # the attempt before acceptance
        ("invite_accept", account["id"]),
        ("sign_in", account["id"]),
    ]
    assert "invited account" in entries[1]["purpose"]


async def test_a_reset_link_lasts_an_hour_and_ends_every_session(
    registry: httpx.AsyncClient, clock: SettableClock
) -> None:
    account = await active(registry, LOGIN)
    tokens = await signed_in(registry, LOGIN)
    for login in (LOGIN, "13907739999", "not a login"):  # whether anyone has it or not: 202
        assert (await registry.post("/auth/password-resets", json={"login": login})).status_code == 202
    listed = (await registry.get("/accounts", headers=ADMIN)).json()["items"]
    assert [a["reset_requested_at"] is not None for a in listed] == [True]

    link = await registry.post(f"/accounts/{account['id']}/password-reset", headers=ADMIN)
    assert link.status_code == 201
    assert link.json()["path"] == f"/reset-password#{link.json()['token']}"
    assert datetime.fromisoformat(link.json()["expires_at"]) == clock.now() + timedelta(hours=1)
    clock.advance(timedelta(hours=1))
    complete = {"token": link.json()["token"], "password": "a-new-and-better-one"}
    assert_error(await registry.post("/auth/password-resets/complete", json=complete), 400, "invalid_link")

    newer = (await registry.post(f"/accounts/{account['id']}/password-reset", headers=ADMIN)).json()
    await signed_in(registry, LOGIN)  # the password works until the link is used
    complete["token"] = newer["token"]
    assert (await registry.post("/auth/password-resets/complete", json=complete)).status_code == 204
    assert_error(await registry.post("/auth/password-resets/complete", json=complete), 400, "invalid_link")
    await refused_refresh(registry, tokens)
    assert_error(await sign_in(registry, LOGIN), 401, "invalid_credentials")
    await signed_in(registry, LOGIN, "a-new-and-better-one")
    assert (await registry.get("/accounts", headers=ADMIN)).json()["items"][0]["reset_requested_at"] is None

    entries = [e for e in await audit(registry) if e["account_id"] == account["id"]]
    actions = [e["action"] for e in entries]
    asked = [(e["actor"], e["role"]) for e in entries if e["action"] == "reset_request"]
    assert asked == [("anonymous", "none")]  # anyone may ask for anyone's login: not its owner's act
    assert [a for a in actions if "reset" in a and a != "reset_request"] == [
        "reset_link",
        "reset_link",
        "password_reset",
    ]
    invited = await create(registry, login="13907735678", role="coordinator", counties=[XINGAN])
    path = f"/accounts/{invited['account']['id']}/password-reset"
    assert_error(await registry.post(path, headers=ADMIN), 409, "not_active")


async def test_disabling_ends_the_sessions_at_once_its_access_tokens_at_their_expiry(
    registry: httpx.AsyncClient,
) -> None:
    account = await active(registry, LOGIN)
    tokens = await signed_in(registry, LOGIN)
    disabled = await registry.post(f"/accounts/{account['id']}/disable", headers=ADMIN)
    assert disabled.status_code == 200
    assert disabled.json()["state"] == "disabled"
    await refused_refresh(registry, tokens)
    assert (await registry.get("/me", headers=bearer(tokens))).status_code == 200  # until it expires: the bound
    assert_error(await sign_in(registry, LOGIN), 401, "invalid_credentials")
    assert_error(await registry.post(f"/accounts/{account['id']}/password-reset", headers=ADMIN), 409, "not_active")

    back = await registry.post(f"/accounts/{account['id']}/invitation", headers=ADMIN)
    assert back.status_code == 201
    assert_error(await sign_in(registry, LOGIN), 401, "invalid_credentials")  # the old password is gone
    assert (await accept(registry, back.json(), "a-new-and-better-one")).status_code == 204
    await signed_in(registry, LOGIN, "a-new-and-better-one")
    actions = [e["action"] for e in await audit(registry, actor="admin") if e["account_id"] == account["id"]]
    assert actions == ["account_create", "account_disable", "reinvite"]


async def test_a_coordinator_whose_counties_change_cannot_act_in_the_old_one_once_signed_in_again(
    registry: httpx.AsyncClient,
) -> None:
    account = await active(registry, LOGIN, counties=[XINGAN])
    before = await signed_in(registry, LOGIN)
    changed = await registry.patch(f"/accounts/{account['id']}", json={"counties": [LINGSHAN]}, headers=ADMIN)
    assert changed.status_code == 200
    assert changed.json()["counties"] == [LINGSHAN]
    await refused_refresh(registry, before)  # the session ended: no new token with the old counties

    after = await signed_in(registry, LOGIN)
    assert (await registry.get("/me", headers=bearer(after))).json()["counties"] == [LINGSHAN]
    assert_error(await registry.get(f"/children?county_code={XINGAN}", headers=bearer(after)), 403, "forbidden")
    assert (await registry.get(f"/children?county_code={LINGSHAN}", headers=bearer(after))).status_code == 200

    renamed = await registry.patch(f"/accounts/{account['id']}", json={"name": "韦主任"}, headers=ADMIN)
    assert renamed.json()["name"] == "韦主任"
    assert (await refresh(registry, after)).status_code == 200  # a new name ends no session
    promoted = await registry.patch(f"/accounts/{account['id']}", json={"role": "admin"}, headers=ADMIN)
    assert (promoted.json()["role"], promoted.json()["counties"]) == ("admin", [])
    await refused_refresh(registry, after)

    entries = [e for e in await audit(registry, actor="admin") if e["account_id"] == account["id"]]
    assert [(e["action"], e["purpose"]) for e in entries[1:]] == [
        ("counties_change", f"{XINGAN} -> {LINGSHAN}"),
        ("name_change", "name_change"),  # the names themselves stay out of the log
        ("role_change", "coordinator -> admin"),
        ("counties_change", f"{LINGSHAN} -> -"),
    ]
    assert "韦" not in json.dumps(await audit(registry))


async def test_a_coordinator_manages_volunteer_accounts_of_their_counties_only(registry: httpx.AsyncClient) -> None:
    await active(registry, LOGIN, counties=[XINGAN])
    coordinator = bearer(await signed_in(registry, LOGIN))
    ours, theirs = await volunteer(registry, XINGAN), await volunteer(registry, LINGSHAN, "13977310002")

    created = await create(registry, by=coordinator, login="13977310001", role="volunteer", person_id=ours)
    assert (created["account"]["counties"], created["account"]["person_id"]) == ([XINGAN], ours)
    refused = await registry.post(
        "/accounts",
        json={"login": "13977310002", "name": "黄志明", "role": "volunteer", "person_id": theirs},
        headers=coordinator,
    )
    assert_error(refused, 403, "forbidden")
    other = {"login": "13977310003", "name": "韦小梅", "role": "coordinator", "counties": [XINGAN]}
    assert_error(await registry.post("/accounts", json=other, headers=coordinator), 403, "forbidden")
    elsewhere = await create(registry, login="13977310002", role="volunteer", person_id=theirs)  # by an admin

    listed = (await registry.get("/accounts", headers=coordinator)).json()
    assert [a["id"] for a in listed["items"]] == [created["account"]["id"]]
    assert listed["total"] == 1
    assert (await registry.get("/accounts", headers=ADMIN)).json()["total"] == 3
    path = f"/accounts/{elsewhere['account']['id']}"
    assert_error(await registry.post(f"{path}/disable", headers=coordinator), 403, "forbidden")
    assert_error(await registry.patch(path, json={"name": "黄"}, headers=coordinator), 403, "forbidden")
    promote = await registry.patch(f"/accounts/{created['account']['id']}", json={"role": "admin"}, headers=coordinator)
    assert_error(promote, 403, "forbidden")
    assert_error(await registry.get("/accounts", headers=auth("volunteer")), 403, "forbidden")

    # The volunteer signs in as the registered volunteer the other services know: their own record opens.
    assert (await accept(registry, created["handover"])).status_code == 204
    mine = bearer(await signed_in(registry, "13977310001"))
    assert (await registry.get("/me", headers=mine)).json()["sub"] == ours
    assert (await registry.get(f"/volunteers/{ours}", headers=mine)).status_code == 200
    disabled = await registry.post(f"/accounts/{created['account']['id']}/disable", headers=coordinator)
    assert disabled.json()["state"] == "disabled"


async def test_refused_accounts_answer_in_the_error_shape_repeating_nothing(registry: httpx.AsyncClient) -> None:
    async def refused(status: int, code: str, **body: object) -> None:
        answer = await registry.post("/accounts", json={"name": "韦小梅", **body}, headers=ADMIN)
        assert_error(answer, status, code)
        assert str(body["login"]) not in answer.text
        assert str(body.get("person_id")) not in answer.text

    await refused(422, "invalid_login", login="李伟", role="admin")
    await refused(422, "mobile_login_required", login="ops.li", role="coordinator", counties=[XINGAN])
    await refused(422, "counties_required", login=LOGIN, role="coordinator")
    await refused(422, "person_required", login=LOGIN, role="donor")
    await refused(
        422, "person_not_found", login=LOGIN, role="volunteer", person_id="00000000-0000-0000-0000-00000000abcd"
    )
    await active(registry, LOGIN)
    await refused(409, "login_taken", login="139 0773 1234", role="admin")
    ours = await volunteer(registry, XINGAN)
    await create(registry, login="13977310001", role="volunteer", person_id=ours)
    await refused(409, "person_has_account", login="13977310009", role="volunteer", person_id=ours)
    service = await create(registry, login="svc-demo", role="service")
    answer = await registry.patch(f"/accounts/{service['account']['id']}", json={"role": "admin"}, headers=ADMIN)
    assert_error(answer, 409, "service_role_fixed")
    assert_error(await registry.patch(f"/accounts/{service['account']['id']}", json={}, headers=ADMIN), 422, "invalid")
    unknown = "/accounts/00000000-0000-0000-0000-00000000abcd/disable"
    assert_error(await registry.post(unknown, headers=ADMIN), 404, "not_found")
    assert PASSWORD not in json.dumps(await audit(registry))


async def test_erasing_a_volunteer_closes_their_account_and_its_login_no_longer_finds_it(
    registry: httpx.AsyncClient,
) -> None:
    volunteer_id = await volunteer(registry, XINGAN)
    account = await active(registry, LOGIN, role="volunteer", counties=[], person_id=volunteer_id)
    tokens = await signed_in(registry, LOGIN)
    erased = await registry.delete(f"/volunteers/{volunteer_id}/personal-data", headers=ADMIN)
    assert erased.status_code == 204, erased.text

    await refused_refresh(registry, tokens)
    assert_error(await sign_in(registry, LOGIN), 401, "invalid_credentials")  # as for a login nobody has
    listed = (await registry.get("/accounts", params={"limit": 500}, headers=ADMIN)).json()["items"]
    (closed,) = [a for a in listed if a["id"] == account["id"]]
    assert (closed["state"], closed["login"], closed["name"]) == ("disabled", "", "")
    actions = [e["action"] for e in await audit(registry) if e["account_id"] == account["id"]]
    assert "account_erase" in actions
    again = await active(registry, LOGIN, role="coordinator", counties=[XINGAN])  # the number is free again
    assert again["id"] != account["id"]


async def test_an_erased_persons_account_cannot_be_changed_or_reopened(registry: httpx.AsyncClient) -> None:
    volunteer_id = await volunteer(registry, XINGAN)
    account = await active(registry, LOGIN, role="volunteer", counties=[], person_id=volunteer_id)
    erased = await registry.delete(f"/volunteers/{volunteer_id}/personal-data", headers=ADMIN)
    assert erased.status_code == 204, erased.text

    path = f"/accounts/{account['id']}"
    for answer in [
        await registry.patch(path, json={"name": "黄志明"}, headers=ADMIN),
        await registry.patch(path, json={"role": "admin"}, headers=ADMIN),
        await registry.post(f"{path}/disable", headers=ADMIN),
        await registry.post(f"{path}/invitation", headers=ADMIN),
        await registry.post(f"{path}/password-reset", headers=ADMIN),
    ]:
        assert_error(answer, 409, "account_erased")
    listed = (await registry.get("/accounts", params={"limit": 500}, headers=ADMIN)).json()["items"]
    (closed,) = [a for a in listed if a["id"] == account["id"]]
    assert (closed["state"], closed["role"], closed["name"]) == ("disabled", "volunteer", "")


async def test_two_accounts_made_at_once_for_one_login_or_one_person_make_one_and_a_409(
    registry: httpx.AsyncClient,
) -> None:
    async def at_once(*bodies: dict[str, object]) -> list[httpx.Response]:
        posts = [registry.post("/accounts", json={"name": "韦小梅", **body}, headers=ADMIN) for body in bodies]
        return sorted(await asyncio.gather(*posts), key=lambda answer: answer.status_code)

    same_login = {"login": LOGIN, "role": "coordinator", "counties": [XINGAN]}
    made, refused = await at_once(same_login, same_login)
    assert made.status_code == 201, made.text
    assert_error(refused, 409, "login_taken")
    assert LOGIN not in refused.text

    ours = await volunteer(registry, XINGAN)
    made, refused = await at_once(
        {"login": "13977310001", "role": "volunteer", "person_id": ours},
        {"login": "13977310002", "role": "volunteer", "person_id": ours},
    )
    assert made.status_code == 201, made.text
    assert_error(refused, 409, "person_has_account")
    listed = (await registry.get("/accounts", params={"limit": 500}, headers=ADMIN)).json()["items"]
    assert [a["person_id"] for a in listed].count(ours) == 1


async def test_two_accounts_linked_at_once_to_one_person_make_one_link_and_a_409(registry: httpx.AsyncClient) -> None:
    ours = await volunteer(registry, XINGAN)
    first = await create(
        registry, login="13977310005", role="volunteer", person_id=await volunteer(registry, XINGAN, "13977310006")
    )
    second = await create(
        registry, login="13977310007", role="volunteer", person_id=await volunteer(registry, XINGAN, "13977310008")
    )
    patches = [
        registry.patch(f"/accounts/{created['account']['id']}", json={"person_id": ours}, headers=ADMIN)
        for created in (first, second)
    ]
    made, refused = sorted(await asyncio.gather(*patches), key=lambda answer: answer.status_code)
    assert made.status_code == 200, made.text
    assert_error(refused, 409, "person_has_account")
    listed = (await registry.get("/accounts", params={"limit": 500}, headers=ADMIN)).json()["items"]
    assert [a["person_id"] for a in listed].count(ours) == 1


async def test_an_email_address_is_kept_normalised_changed_removed_and_erased_with_the_account(
    registry: httpx.AsyncClient, db: Database
) -> None:
    created = await create(registry, login=LOGIN, role="coordinator", counties=[XINGAN], email=" Wei@XingAn.Gov.CN ")
    account = created["account"]
    assert account["email"] == "Wei@xingan.gov.cn"
    path = f"/accounts/{account['id']}"
    renamed = await registry.patch(path, json={"name": "韦小兰"}, headers=ADMIN)
    assert (renamed.json()["name"], renamed.json()["email"]) == ("韦小兰", "Wei@xingan.gov.cn")  # kept
    changed = await registry.patch(path, json={"email": "lan@xingan.gov.cn"}, headers=ADMIN)
    assert changed.json()["email"] == "lan@xingan.gov.cn"
    removed = await registry.patch(path, json={"email": None}, headers=ADMIN)
    assert (removed.status_code, removed.json()["email"], removed.json()["name"]) == (200, None, "韦小兰")
    listed = (await registry.get("/accounts", headers=ADMIN)).json()["items"]
    assert [(a["id"], a["email"]) for a in listed] == [(account["id"], None)]
    changes = [(e["action"], e["purpose"]) for e in await audit(registry) if e["account_id"] == account["id"]]
    assert changes[-2:] == [("email_change", "email_change"), ("email_change", "email_change")]  # not the address

    volunteer_id = await volunteer(registry, XINGAN)
    linked = await create(
        registry, login="13977310001", role="volunteer", person_id=volunteer_id, email="huang@example.org"
    )
    erased = await registry.delete(f"/volunteers/{volunteer_id}/personal-data", headers=ADMIN)
    assert erased.status_code == 204, erased.text
    listed = (await registry.get("/accounts", params={"limit": 500}, headers=ADMIN)).json()["items"]
    (closed,) = [a for a in listed if a["id"] == linked["account"]["id"]]
    assert (closed["login"], closed["name"], closed["email"]) == ("", "", None)  # its key is gone, and the address

    # Nothing of an address was ever stored readable, put in an event, or audit-logged.
    stored = json.dumps(
        [
            [str(value) for value in row]
            for table in (AccountRecord, EventRecord)
            for row in await rows(db, table.__table__)
        ]
    )
    for address in ("xingan.gov.cn", "huang@example.org", "Wei@", "lan@"):
        assert address not in stored
        assert address not in json.dumps(await audit(registry))


async def test_a_child_director_is_invited_for_their_counties_by_an_admin_or_their_coordinator(
    registry: httpx.AsyncClient,
) -> None:
    await active(registry, LOGIN, counties=[XINGAN])
    coordinator = bearer(await signed_in(registry, LOGIN))
    ours = await create(
        registry, by=coordinator, login="13907730006", role="child_director", counties=[XINGAN], email="lan@example.org"
    )
    account = ours["account"]
    assert (account["role"], account["counties"], account["person_id"]) == ("child_director", [XINGAN], None)
    assert (account["state"], account["email"]) == ("invited", "lan@example.org")
    for counties in ([LINGSHAN], [XINGAN, LINGSHAN]):
        body = {"login": "13907730007", "name": "蓝海", "role": "child_director", "counties": counties}
        assert_error(await registry.post("/accounts", json=body, headers=coordinator), 403, "forbidden")
    theirs = await create(registry, login="13907730007", role="child_director", counties=[XINGAN, LINGSHAN])
    listed = (await registry.get("/accounts", headers=coordinator)).json()
    assert ([a["id"] for a in listed["items"]], listed["total"]) == ([account["id"]], 1)  # not one also of Lingshan

    path = f"/accounts/{account['id']}"
    renamed = await registry.patch(path, json={"name": "蓝小海"}, headers=coordinator)
    assert renamed.status_code == 200, renamed.text
    widened = await registry.patch(path, json={"counties": [XINGAN, LINGSHAN]}, headers=coordinator)
    assert_error(widened, 403, "forbidden")
    assert_error(await registry.patch(path, json={"role": "coordinator"}, headers=coordinator), 403, "forbidden")
    other = f"/accounts/{theirs['account']['id']}"
    assert_error(await registry.post(f"{other}/disable", headers=coordinator), 403, "forbidden")
    reinvited = await registry.post(f"{path}/invitation", headers=coordinator)
    assert reinvited.status_code == 201, reinvited.text

    # An admin makes one any county's; and every child director names a county and signs in with a mobile number.
    async def refused(status: int, code: str, **body: object) -> None:
        answer = await registry.post(
            "/accounts", json={"name": "蓝海", "role": "child_director", **body}, headers=ADMIN
        )
        assert_error(answer, status, code)

    await refused(422, "counties_required", login="13907730008")
    await refused(422, "mobile_login_required", login="director.lan", counties=[XINGAN])
    volunteer_id = await volunteer(registry, XINGAN)
    await refused(422, "person_not_allowed", login="13907730008", counties=[XINGAN], person_id=volunteer_id)
    await refused(422, "invalid", login="13907730008", counties=["999999"])
    # An admin may make a child director a coordinator: the counties carry over.
    promoted = await registry.patch(other, json={"role": "coordinator"}, headers=ADMIN)
    assert (promoted.json()["role"], promoted.json()["counties"]) == ("coordinator", [XINGAN, LINGSHAN])


async def test_a_child_director_signed_in_may_do_nothing_any_signed_in_account_may_not(
    registry: httpx.AsyncClient, matching: httpx.AsyncClient
) -> None:
    director = await active(registry, "13907730006", role="child_director", counties=[XINGAN])
    tokens = await signed_in(registry, "13907730006")
    mine = bearer(tokens)
    me = (await registry.get("/me", headers=mine)).json()
    assert (me["sub"], me["role"], me["counties"]) == (director["id"], "child_director", [XINGAN])
    changed = await registry.post(
        "/me/password", json={"current_password": PASSWORD, "new_password": "river-lantern-copper-58"}, headers=mine
    )
    assert changed.status_code == 204, changed.text

    county = {"county_code": XINGAN}
    refused = {
        "children": await registry.get("/children", params=county, headers=mine),
        "a child registered": await registry.post("/children", json=child_registration(), headers=mine),
        "volunteers": await registry.get("/volunteers", params=county, headers=mine),
        "a volunteer registered": await registry.post(
            "/volunteers",
            json={
                "name": "黄志明",
                "phone": "13977310001",
                "kind": "child_director",
                "county_code": XINGAN,
                "township": "湘漓镇",
            },
            headers=mine,
        ),
        "accounts": await registry.get("/accounts", headers=mine),
        "an account made": await registry.post(
            "/accounts",
            json={"login": "13977310001", "name": "黄", "role": "child_director", "counties": [XINGAN]},
            headers=mine,
        ),
        "the audit log": await registry.get("/audit", headers=mine),
        "contact details": await registry.post("/contacts/lookup", json={"recipients": [director["id"]]}, headers=mine),
        "engagement": await matching.get("/views/engagement", params=county, headers=mine),
        "pairings": await matching.get("/views/pairings", params=county, headers=mine),
        "a matching run": await matching.post("/matching-runs", json=county, headers=mine),
        "the wish board": await matching.get("/wishes", headers=mine),
        "figures": await matching.get("/views/summary", params={"code": XINGAN}, headers=mine),
    }
    for what, answer in refused.items():
        assert answer.status_code == 403, f"{what}: {answer.status_code} {answer.text}"

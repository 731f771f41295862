"""The notifications service applies its rules to matching's events: the county's child directors hear of every
overdue high-risk child and of no other, urgently; a paired volunteer hears that their visit is overdue, and no
longer once the pairing is closed; a donor hears of their wish and nothing of the child."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS

from backbone.clock import SettableClock
from backbone.natsserver import NatsServer
from backbone.settings import Settings
from contracts.matching import (
    ChildOverdue,
    ChildVisitDue,
    PairingClosed,
    PairingConfirmed,
    WishAcknowledged,
    WishClaimed,
    WishFulfilled,
    WishPosted,
)
from tests.helpers import RegistryEvents, auth, keys, token, wait_until
from tests.integration.conftest import serve_notifications

XINGAN = "450325"


@pytest.fixture
async def notifications(
    nats_server: NatsServer, database_url: str, clock: SettableClock
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=database_url, nats_url=nats_server.url, **keys().settings())
    async with serve_notifications(settings, clock) as (_, client):
        yield client


async def test_an_overdue_high_risk_child_is_escalated_to_the_child_directors_and_a_medium_one_not(
    notifications: httpx.AsyncClient, nc: NATS
) -> None:
    bus = RegistryEvents(nc.jetstream())
    high, medium, later = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    due = datetime(2023, 1, 17, 9, 0, tzinfo=UTC)
    risks = {high: "high", medium: "medium", later: "high"}
    planned = [  # each schedule's history before it is overdue: the reactions follow whole aggregates
        ChildVisitDue(child_id=child, county_code=XINGAN, risk_level=risk, due_at=due, because="registered")
        for child, risk in risks.items()
    ]
    await bus.emit(*planned)
    await bus.emit(
        *(
            ChildOverdue(
                child_id=child,
                county_code=XINGAN,
                risk_level=risk,
                due_at=due,
                escalated_to="child_director" if risk == "high" else None,
            )
            for child, risk in risks.items()
        )
    )
    headers = auth("coordinator", [XINGAN])
    params = {"recipient_id": f"county:{XINGAN}:child_directors", "limit": 500}
    about: list[str] = []

    async def told_of_the_later_one() -> bool:
        page = await notifications.get("/notifications", params=params, headers=headers)
        about[:] = [notice["about_id"] for notice in page.json()["items"]] if page.status_code == 200 else []
        return str(later) in about

    # The medium-risk child's overdue event comes between the two high-risk ones': once the later one is told,
    # whatever the medium one would have brought is in the list too.
    await wait_until(told_of_the_later_one, what="the child directors' notice of the later high-risk child")
    assert sorted(about) == sorted([str(high), str(later)])
    page = (await notifications.get("/notifications", params=params, headers=headers)).json()
    assert {(notice["reason"], notice["urgency"]) for notice in page["items"]} == {("overdue_escalated", "urgent")}
    assert all(notice["channels"] == ["sms", "email", "inbox"] for notice in page["items"])
    director = {"Authorization": f"Bearer {token('child_director', counties=[XINGAN], sub='director-1')}"}
    elsewhere = {"Authorization": f"Bearer {token('child_director', counties=['450721'], sub='director-2')}"}
    coordinators = {"recipient_id": f"county:{XINGAN}:coordinators"}
    assert (await notifications.get("/notifications", params=params, headers=director)).json()["total"] == 2
    assert (await notifications.get("/notifications", params=params, headers=elsewhere)).status_code == 403
    assert (await notifications.get("/notifications", params=coordinators, headers=director)).status_code == 403


async def test_a_paired_volunteer_hears_their_visit_is_overdue_until_the_pairing_is_closed(
    notifications: httpx.AsyncClient, nc: NATS
) -> None:
    bus = RegistryEvents(nc.jetstream())
    child, volunteer, pairing = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    pair = {"pairing_id": pairing, "child_id": child, "volunteer_id": volunteer, "county_code": XINGAN}
    due = datetime(2023, 1, 17, 9, 0, tzinfo=UTC)
    late = {"child_id": child, "county_code": XINGAN, "risk_level": "medium", "due_at": due}
    await bus.emit(PairingConfirmed(**pair))
    mine = {"Authorization": f"Bearer {token('volunteer', sub=str(volunteer))}"}
    coordinators = {"recipient_id": f"county:{XINGAN}:coordinators", "limit": 500}
    headers = auth("coordinator", [XINGAN])

    async def reasons(params: dict[str, Any], auth_headers: dict[str, str]) -> list[str]:
        page = await notifications.get("/notifications", params=params, headers=auth_headers)
        return [notice["reason"] for notice in page.json()["items"]] if page.status_code == 200 else []

    async def confirmed() -> bool:
        return "pairing_confirmed" in await reasons({"recipient_id": str(volunteer)}, mine)

    await wait_until(confirmed, what="the volunteer told of the confirmed pairing")
    await bus.emit(ChildVisitDue(**late, because="registered"), ChildOverdue(**late))

    async def overdue_told(times: int) -> bool:
        return (await reasons(coordinators, headers)).count("visit_overdue") == times

    await wait_until(lambda: overdue_told(1), what="the coordinators told of the overdue visit")
    assert sorted(await reasons({"recipient_id": str(volunteer)}, mine)) == ["pairing_confirmed", "visit_overdue"]
    await bus.emit(PairingClosed(**pair, reason="volunteer_withdrew"))
    await wait_until(
        lambda: _has(notifications, str(volunteer), mine, "pairing_closed"), what="the volunteer told of the closing"
    )
    await bus.emit(ChildOverdue(**{**late, "due_at": datetime(2023, 1, 24, 9, 0, tzinfo=UTC)}))
    await wait_until(lambda: overdue_told(2), what="the coordinators told of the second overdue visit")
    told = sorted(await reasons({"recipient_id": str(volunteer)}, mine))
    assert told == ["pairing_closed", "pairing_confirmed", "visit_overdue"]


async def _has(client: httpx.AsyncClient, recipient: str, headers: dict[str, str], reason: str) -> bool:
    page = await client.get("/notifications", params={"recipient_id": recipient}, headers=headers)
    return page.status_code == 200 and reason in [notice["reason"] for notice in page.json()["items"]]


async def test_a_donor_hears_of_the_thank_you_for_their_wish_and_nothing_of_the_child(
    notifications: httpx.AsyncClient, nc: NATS
) -> None:
    wish, child = uuid.uuid4(), uuid.uuid4()
    facts = {"wish_id": wish, "child_id": child, "county_code": XINGAN}
    await RegistryEvents(nc.jetstream()).emit(
        WishPosted(**facts, item="一个书包", category="study", estimated_value_yuan=Decimal(80)),
        WishClaimed(**facts, donor_id="donor-7", claim_deadline=datetime(2023, 2, 1, tzinfo=UTC)),
        WishFulfilled(**facts, donor_id="donor-7"),
        WishAcknowledged(**facts, donor_id="donor-7"),
    )
    mine = {"Authorization": f"Bearer {token('donor', sub='donor-7')}"}

    async def told() -> bool:
        page = await notifications.get("/notifications", params={"recipient_id": "donor-7"}, headers=mine)
        return page.status_code == 200 and page.json()["total"] == 3

    await wait_until(told, what="the donor's notices of the claim, the gift and the thank-you")
    answer = await notifications.get("/notifications", params={"recipient_id": "donor-7"}, headers=mine)
    notices = answer.json()["items"]
    assert {notice["reason"] for notice in notices} == {"wish_claimed", "wish_fulfilled", "wish_thanked"}
    assert {notice["about_id"] for notice in notices} == {str(wish)}
    assert str(child) not in answer.text
    someone_else = {"Authorization": f"Bearer {token('donor', sub='donor-8')}"}
    refused = await notifications.get("/notifications", params={"recipient_id": "donor-7"}, headers=someone_else)
    assert refused.status_code == 403


async def test_each_person_marks_what_they_have_read_and_the_unread_count_follows(
    notifications: httpx.AsyncClient, nc: NATS
) -> None:
    # Two coordinators share their county's group inbox; each reads it on their own.
    due = datetime(2023, 1, 17, 9, 0, tzinfo=UTC)
    children = [uuid.uuid4() for _ in range(3)]
    late = [{"child_id": c, "county_code": XINGAN, "risk_level": "low", "due_at": due} for c in children]
    await RegistryEvents(nc.jetstream()).emit(
        *(ChildVisitDue(**one, because="registered") for one in late), *(ChildOverdue(**one) for one in late)
    )
    group = {"recipient_id": f"county:{XINGAN}:coordinators"}
    wei = {"Authorization": f"Bearer {token('coordinator', counties=[XINGAN], sub='coordinator-wei')}"}
    lan = {"Authorization": f"Bearer {token('coordinator', counties=[XINGAN], sub='coordinator-lan')}"}

    async def unread(headers: dict[str, str]) -> int:
        answer = await notifications.get("/notifications/unread", params=group, headers=headers)
        assert answer.status_code == 200, answer.text
        return int(answer.json()["unread"])

    async def all_three() -> bool:
        return await unread(wei) == 3

    await wait_until(all_three, what="three overdue notices for the coordinators")
    page = (await notifications.get("/notifications", params=group, headers=wei)).json()
    first = page["items"][0]["notice_id"]
    assert [item["read"] for item in page["items"]] == [False, False, False]
    for _ in range(2):  # reading it again changes nothing
        assert (await notifications.post(f"/notifications/{first}/read", headers=wei)).status_code == 204
    assert (await unread(wei), await unread(lan)) == (2, 3)
    page = (await notifications.get("/notifications", params=group, headers=wei)).json()
    assert [item["read"] for item in page["items"]] == [True, False, False]
    others = {"Authorization": f"Bearer {token('coordinator', counties=['450721'], sub='coordinator-x')}"}
    assert (await notifications.post(f"/notifications/{first}/read", headers=others)).status_code == 404
    assert (await notifications.post(f"/notifications/{uuid.uuid4()}/read", headers=wei)).status_code == 404
    refused = await notifications.get("/notifications/unread", params=group, headers=others)
    assert refused.status_code == 403

"""Calendar feed links over real HTTP, on each database: a link opens one volunteer's iCal feed and nothing else, until
it expires or is revoked (by a person, or by the volunteer's erasure); it is kept only as a hash and never logged; a
bearer token in the address is refused."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from nats.aio.client import Client as NATS

from backbone.clock import SettableClock
from backbone.database import Database
from backbone.natsserver import NatsServer
from contracts.volunteers import VolunteerPersonalDataErased
from services.matching.calendar_feeds import CalendarFeed
from tests.helpers import RegistryEvents, ServiceProcess, auth, rows, token, wait_until
from tests.integration.test_engagement import COORDINATOR, XINGAN, paired_child


def _feed_of(created: httpx.Response) -> str:
    """The token of a new feed link, from the URL the answer gives."""
    url = httpx.URL(created.json()["url"])
    assert list(url.params) == ["feed"]
    return url.params["feed"]


async def _calendar(matching: httpx.AsyncClient, volunteer: uuid.UUID, **params: str) -> httpx.Response:
    return await matching.get(f"/volunteers/{volunteer}/calendar.ics", params=params)


async def _known(matching: httpx.AsyncClient, volunteer: uuid.UUID) -> bool:
    """Whether matching knows the volunteer yet (a coordinator of the county reads their calendar)."""
    return (await matching.get(f"/volunteers/{volunteer}/calendar.ics", headers=COORDINATOR)).status_code == 200


async def _due_visits(matching: httpx.AsyncClient, volunteer: uuid.UUID, headers: dict[str, str]) -> str:
    """The volunteer's calendar read with a bearer header, once it shows the paired child's due visit."""
    feed = httpx.Response(404)

    async def shown() -> bool:
        nonlocal feed
        feed = await matching.get(f"/volunteers/{volunteer}/calendar.ics", headers=headers)
        return feed.status_code == 200 and feed.text.count("BEGIN:VEVENT") == 1

    await wait_until(shown, what="the due visit in the calendar")
    return feed.text


async def test_a_feed_link_opens_the_volunteers_calendar_until_revoked_and_is_stored_only_as_a_hash(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, database_url: str
) -> None:
    volunteer, _ = await paired_child(matching, registry_events)
    as_volunteer = {"Authorization": f"Bearer {token('volunteer', sub=str(volunteer))}"}
    expected = await _due_visits(matching, volunteer, as_volunteer)

    created = await matching.post(f"/volunteers/{volunteer}/calendar-feeds", headers=as_volunteer)
    assert created.status_code == 201, created.text
    feed = _feed_of(created)
    assert httpx.URL(created.json()["url"]).path == f"/volunteers/{volunteer}/calendar.ics"
    subscribed = await _calendar(matching, volunteer, feed=feed)  # as a calendar app fetches it: no headers

    assert subscribed.status_code == 200, subscribed.text
    assert subscribed.headers["content-type"].startswith("text/calendar")
    assert subscribed.text == expected
    assert len(base64.urlsafe_b64decode(feed + "=" * (-len(feed) % 4))) * 8 >= 128
    database = Database(database_url)
    try:
        (stored,) = await rows(database, CalendarFeed.__table__)
    finally:
        await database.dispose()
    assert hashlib.sha256(feed.encode()).hexdigest() in stored
    assert feed not in str(stored)

    listed = await matching.get(f"/volunteers/{volunteer}/calendar-feeds", headers=as_volunteer)
    assert listed.status_code == 200
    (item,) = listed.json()["items"]
    assert (item["feed_id"], item["created_by"], item["expires_at"], item["revoked_at"]) == (
        created.json()["feed_id"],
        str(volunteer),
        created.json()["expires_at"],
        None,
    )
    assert feed not in listed.text

    revoked = await matching.delete(f"/volunteers/{volunteer}/calendar-feeds/{item['feed_id']}", headers=COORDINATOR)
    assert revoked.status_code == 200, revoked.text
    assert revoked.json()["revoked_at"] is not None

    refused = await _calendar(matching, volunteer, feed=feed)
    assert refused.status_code == 401
    assert refused.json()["error"]["code"] == "unauthorized"
    assert feed not in refused.text
    (item,) = (await matching.get(f"/volunteers/{volunteer}/calendar-feeds", headers=COORDINATOR)).json()["items"]
    assert item["revoked_at"] == revoked.json()["revoked_at"]
    again = await matching.delete(f"/volunteers/{volunteer}/calendar-feeds/{item['feed_id']}", headers=as_volunteer)
    assert again.json()["revoked_at"] == revoked.json()["revoked_at"]  # revoking twice keeps the first time


async def test_a_feed_link_opens_no_other_calendar_and_is_no_bearer_token(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    volunteer, _ = await paired_child(matching, registry_events)
    other = await registry_events.volunteer()
    as_volunteer = {"Authorization": f"Bearer {token('volunteer', sub=str(volunteer))}"}
    await _due_visits(matching, volunteer, as_volunteer)
    created = await matching.post(f"/volunteers/{volunteer}/calendar-feeds", headers=COORDINATOR)
    assert created.status_code == 201, created.text
    assert created.json()["created_by"] == "coordinator"
    feed = _feed_of(created)
    assert (await _calendar(matching, volunteer, feed=feed)).status_code == 200

    await wait_until(lambda: _known(matching, other), what="the other volunteer in matching")
    elsewhere = await _calendar(matching, other, feed=feed)
    assert elsewhere.status_code == 401, elsewhere.text
    as_bearer = {"Authorization": f"Bearer {feed}"}
    refused = await matching.get(f"/volunteers/{volunteer}/calendar.ics", headers=as_bearer)
    assert refused.status_code == 401, refused.text  # as a bearer token, not even on its own feed
    for method, path, params in (
        ("GET", f"/volunteers/{volunteer}/calendar-feeds", {}),
        ("POST", f"/volunteers/{volunteer}/calendar-feeds", {}),
        ("GET", "/views/volunteers", {"county_code": XINGAN}),
        ("GET", "/views/engagement", {"county_code": XINGAN}),
    ):
        answer = await matching.request(method, path, params=params, headers=as_bearer)
        assert answer.status_code == 401, (path, answer.text)
        assert answer.json()["error"]["code"] == "unauthorized"
        # nor does the link's own parameter open anything but the feed
        assert (await matching.request(method, path, params={**params, "feed": feed})).status_code == 401, path


async def test_a_bearer_token_in_the_address_is_refused_with_a_pointer_to_feed_links(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    volunteer = await registry_events.volunteer()
    bearer = token("volunteer", sub=str(volunteer))

    await wait_until(lambda: _known(matching, volunteer), what="the volunteer in matching")
    for params in ({"token": bearer}, {"token": "not-a-token"}):
        answer = await _calendar(matching, volunteer, **params)

        assert answer.status_code == 401, answer.text
        error: dict[str, Any] = answer.json()["error"]
        assert error["code"] == "unauthorized"
        assert "feed link" in error["message"]
        assert bearer not in answer.text


async def test_only_the_volunteer_and_their_countys_coordinators_hand_out_and_revoke_feed_links(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    volunteer = await registry_events.volunteer()
    as_volunteer = {"Authorization": f"Bearer {token('volunteer', sub=str(volunteer))}"}
    feeds = f"/volunteers/{volunteer}/calendar-feeds"

    await wait_until(lambda: _known(matching, volunteer), what="the volunteer in matching")
    created = await matching.post(feeds, headers=as_volunteer)
    assert created.status_code == 201, created.text
    feed_id = created.json()["feed_id"]
    strangers = (
        {"Authorization": f"Bearer {token('volunteer', sub=str(uuid.uuid4()))}"},
        auth("coordinator", ["450721"]),
        auth("donor"),
    )
    for stranger in strangers:
        for method, path in (("POST", feeds), ("GET", feeds), ("DELETE", f"{feeds}/{feed_id}")):
            answer = await matching.request(method, path, headers=stranger)
            assert answer.status_code == 403, (method, answer.text)
    assert (await matching.delete(f"{feeds}/{uuid.uuid4()}", headers=as_volunteer)).status_code == 404
    unknown = await matching.post(f"/volunteers/{uuid.uuid4()}/calendar-feeds", headers=COORDINATOR)
    assert unknown.status_code == 404
    (item,) = (await matching.get(feeds, headers=as_volunteer)).json()["items"]
    assert item["revoked_at"] is None  # none of the refused calls touched it


async def test_neither_a_feed_link_nor_a_bearer_token_in_the_address_reaches_the_services_log(
    database_url: str, nats_server: NatsServer, nc: NATS, tmp_path: Path
) -> None:
    service = ServiceProcess("matching", nats_url=nats_server.url, database_url=database_url, data_dir=tmp_path)
    service.start()
    try:
        volunteer = await RegistryEvents(nc.jetstream()).volunteer()
        bearer = token("volunteer", sub=str(volunteer))
        async with httpx.AsyncClient(base_url=service.url, timeout=30) as matching:
            await wait_until(lambda: _known(matching, volunteer), what="the volunteer in matching")
            created = await matching.post(
                f"/volunteers/{volunteer}/calendar-feeds", headers={"Authorization": f"Bearer {bearer}"}
            )
            assert created.status_code == 201, created.text
            feed = _feed_of(created)
            assert (await matching.get(created.json()["url"])).status_code == 200
            assert (await _calendar(matching, volunteer, token=bearer)).status_code == 401
    finally:
        service.stop()
    lines = [json.loads(line) for line in service.log.read_text().splitlines() if line.startswith("{")]
    calendar = [line for line in lines if line.get("route") == "/volunteers/{volunteer_id}/calendar.ics"]
    statuses = [line["status"] for line in calendar if line["event"] == "http.request"]
    assert [status for status in statuses if status != 404] == [200, 200, 401]  # (404s: matching did not know it yet)
    written = service.log.read_text()
    assert feed not in written
    assert bearer not in written


@pytest.mark.timer_seconds(3600)  # no healing timer after start-up: the candidate view's own transaction revokes them
async def test_an_erased_volunteers_feed_links_stop_working_and_no_new_one_is_handed_out(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    volunteer, other = await registry_events.volunteer(), await registry_events.volunteer()
    for known in (volunteer, other):
        await wait_until(lambda known=known: _known(matching, known), what="the volunteers in matching")
    theirs = f"/volunteers/{volunteer}/calendar-feeds"
    feeds = [_feed_of(await matching.post(theirs, headers=COORDINATOR)) for _ in range(2)]
    kept = _feed_of(await matching.post(f"/volunteers/{other}/calendar-feeds", headers=COORDINATOR))
    for feed in feeds:
        assert (await _calendar(matching, volunteer, feed=feed)).status_code == 200

    await registry_events.emit(VolunteerPersonalDataErased(volunteer_id=volunteer))

    async def refused(feed: str) -> bool:
        return (await _calendar(matching, volunteer, feed=feed)).status_code == 401

    await wait_until(lambda: refused(feeds[0]), what="the erased volunteer's feed link refused")
    assert await refused(feeds[1])  # every link of theirs, in the same transaction
    assert (await _calendar(matching, other, feed=kept)).status_code == 200  # nobody else's
    listed = (await matching.get(theirs, headers=COORDINATOR)).json()["items"]
    assert [item["revoked_at"] is not None for item in listed] == [True, True]
    again = await matching.post(theirs, headers=COORDINATOR)
    assert again.status_code == 409, again.text
    assert again.json()["error"]["code"] == "volunteer_erased"
    assert len((await matching.get(theirs, headers=COORDINATOR)).json()["items"]) == 2


async def test_a_feed_link_stops_working_when_it_expires_after_365_days_or_fewer_if_asked(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    volunteer = await registry_events.volunteer()
    feeds = f"/volunteers/{volunteer}/calendar-feeds"
    await wait_until(lambda: _known(matching, volunteer), what="the volunteer in matching")
    year = await matching.post(feeds, headers=COORDINATOR)
    month = await matching.post(feeds, json={"days": 30}, headers=COORDINATOR)
    assert (year.status_code, month.status_code) == (201, 201), (year.text, month.text)
    created = datetime.fromisoformat(year.json()["created_at"])
    expires = {days: datetime.fromisoformat(answer.json()["expires_at"]) for days, answer in ((365, year), (30, month))}
    assert expires == {365: created + timedelta(days=365), 30: created + timedelta(days=30)}
    listed = (await matching.get(feeds, headers=COORDINATOR)).json()["items"]
    assert sorted(item["expires_at"] for item in listed) == sorted(a.json()["expires_at"] for a in (year, month))

    async def opens(answer: httpx.Response) -> int:
        return (await _calendar(matching, volunteer, feed=_feed_of(answer))).status_code

    clock.set(expires[30] - timedelta(seconds=1))
    assert (await opens(month), await opens(year)) == (200, 200)
    clock.set(expires[30])
    assert (await opens(month), await opens(year)) == (401, 200)
    clock.set(expires[365] - timedelta(seconds=1))
    assert await opens(year) == 200
    clock.set(expires[365])
    expired = await _calendar(matching, volunteer, feed=_feed_of(year))
    assert expired.status_code == 401, expired.text
    assert expired.json()["error"]["code"] == "unauthorized"
    assert [item["revoked_at"] for item in (await matching.get(feeds, headers=COORDINATOR)).json()["items"]] == [
        None,
        None,
    ]  # expired, not revoked: the list tells them apart by expires_at

    for body in ({"days": 0}, {"days": 366}, {"days": "a year"}, {"days": 30, "forever": True}):
        refused = await matching.post(feeds, json=body, headers=COORDINATOR)
        assert refused.status_code == 422, (body, refused.text)
    assert len((await matching.get(feeds, headers=COORDINATOR)).json()["items"]) == 2

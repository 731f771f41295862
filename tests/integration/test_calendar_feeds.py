"""Calendar feed links over real HTTP, on each database: a link opens one volunteer's iCal feed and nothing else, until
revoked; it is kept only as a hash and never logged; a bearer token in the address is refused."""

from __future__ import annotations

import base64
import hashlib
import json
import uuid
from pathlib import Path
from typing import Any

import httpx
from nats.aio.client import Client as NATS

from backbone.database import Database
from backbone.natsserver import NatsServer
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
    assert (item["feed_id"], item["created_by"], item["revoked_at"]) == (
        created.json()["feed_id"],
        str(volunteer),
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

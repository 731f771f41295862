"""A person's notification preferences through the notifications API, on SQLite and PostgreSQL: the defaults until
they choose, their own choice only, an event on the NOTIFICATIONS stream with no personal data, bad input a 422."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator

import httpx
import pytest
from nats.aio.client import Client as NATS

from backbone.clock import SettableClock
from backbone.natsserver import NatsServer
from backbone.settings import Settings
from tests.helpers import keys, read_stream, token, wait_until
from tests.integration.conftest import serve_notifications

ME = {"Authorization": f"Bearer {token('volunteer', sub='volunteer-1')}"}
SOMEONE = {"Authorization": f"Bearer {token('donor', sub='donor-2')}"}
CHOSEN = {"channels": ["email"], "language": "en", "quiet_from": "21:30", "quiet_until": "08:00"}


@pytest.fixture
async def notifications(
    nats_server: NatsServer, database_url: str, clock: SettableClock
) -> AsyncIterator[httpx.AsyncClient]:
    settings = Settings(database_url=database_url, nats_url=nats_server.url, **keys().settings())
    async with serve_notifications(settings, clock) as (_, client):
        yield client


async def test_a_person_has_the_defaults_until_they_choose_and_then_their_choice(
    notifications: httpx.AsyncClient,
) -> None:
    default = await notifications.get("/preferences/me", headers=ME)
    assert default.json() == {
        "channels": ["sms", "email"],
        "language": "zh-CN",
        "quiet_from": "22:00",
        "quiet_until": "07:00",
    }
    chosen = await notifications.put("/preferences/me", json=CHOSEN, headers=ME)
    assert chosen.status_code == 200, chosen.text
    assert (await notifications.get("/preferences/me", headers=ME)).json() == CHOSEN
    again = {**CHOSEN, "channels": ["sms", "sms"], "language": "zh-CN"}
    assert (await notifications.put("/preferences/me", json=again, headers=ME)).json()["channels"] == ["sms"]
    assert (await notifications.get("/preferences/me", headers=ME)).json()["language"] == "zh-CN"
    assert (await notifications.get("/preferences/me", headers=SOMEONE)).json()["language"] == "zh-CN"
    assert (await notifications.get("/preferences/me", headers=SOMEONE)).json()["channels"] == ["sms", "email"]


async def test_each_choice_is_an_event_on_the_bus_with_ids_and_choices_only(
    notifications: httpx.AsyncClient, nc: NATS
) -> None:
    await notifications.put("/preferences/me", json=CHOSEN, headers=ME)
    await notifications.put("/preferences/me", json={**CHOSEN, "channels": []}, headers=ME)
    js = nc.jetstream()

    async def published() -> bool:
        return len(await read_stream(js, "NOTIFICATIONS", "notifications.person.>")) == 2

    await wait_until(published, what="both choices on the NOTIFICATIONS stream")
    events = [json.loads(m.data) for m in await read_stream(js, "NOTIFICATIONS", "notifications.person.>")]
    assert [event["type"] for event in events] == ["notifications.person.preferences_set.v1"] * 2
    assert [int(event["sequence"]) for event in events] == [1, 2]
    assert events[1]["data"] == {"person_id": "volunteer-1", **CHOSEN, "channels": []}


@pytest.mark.parametrize(
    "body",
    [
        {**CHOSEN, "channels": ["fax"]},
        {**CHOSEN, "language": "fr"},
        {**CHOSEN, "quiet_from": "24:00"},
        {**CHOSEN, "quiet_until": "7am"},
        {**CHOSEN, "phone": "13907731234"},
        {key: value for key, value in CHOSEN.items() if key != "language"},
    ],
)
async def test_bad_preferences_are_a_422_in_the_documented_shape_and_change_nothing(
    notifications: httpx.AsyncClient, body: dict[str, object]
) -> None:
    refused = await notifications.put("/preferences/me", json=body, headers=ME)
    assert refused.status_code == 422
    assert set(refused.json()["error"]) >= {"code", "message"}
    assert "13907731234" not in refused.text
    assert (await notifications.get("/preferences/me", headers=ME)).json()["language"] == "zh-CN"


async def test_preferences_need_a_person(notifications: httpx.AsyncClient) -> None:
    assert (await notifications.get("/preferences/me")).status_code == 401

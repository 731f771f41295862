"""`POST /contacts/lookup` on the in-process registry, on SQLite and PostgreSQL: a service (by its client-credentials
token) learns where the people it names are reached, people by their tokens' `sub` or a county's coordinators or
child directors; nobody else may ask; nothing it answers goes into an error, the audit log or a log line."""

from __future__ import annotations

import json
from typing import Any

import httpx
import pytest
from structlog.testing import capture_logs

from tests.helpers import assert_nothing_told, auth
from tests.integration.account_steps import ADMIN, active, audit, bearer, create, signed_in, volunteer
from tests.integration.test_http import assert_error

XINGAN, LINGSHAN = "450325", "450721"
UNKNOWN = "00000000-0000-4000-8000-00000000abcd"


async def service(registry: httpx.AsyncClient, login: str = "notifications") -> dict[str, str]:
    """The bearer header of a service account's own token (client credentials)."""
    created = await create(registry, login=login, role="service", name="notifications")
    body = {"grant_type": "client_credentials", "client_id": login, "client_secret": created["handover"]["token"]}
    answer = await registry.post("/auth/token", json=body)
    assert answer.status_code == 200, answer.text
    return bearer(answer.json())


async def lookup(registry: httpx.AsyncClient, headers: dict[str, str], *recipients: str) -> httpx.Response:
    return await registry.post("/contacts/lookup", json={"recipients": list(recipients)}, headers=headers)


async def people(registry: httpx.AsyncClient, headers: dict[str, str], *recipients: str) -> list[dict[str, Any]]:
    answer = await lookup(registry, headers, *recipients)
    assert answer.status_code == 200, answer.text
    found: list[dict[str, Any]] = answer.json()["people"]
    return found


async def donor(registry: httpx.AsyncClient, phone: str = "13907710520") -> str:
    body = {"name": "壹基金", "kind": "foundation", "contact_name": "李梅", "phone": phone}
    answer = await registry.post("/donors", json=body, headers=ADMIN)
    assert answer.status_code == 201, answer.text
    donor_id: str = answer.json()["id"]
    return donor_id


def entry(
    recipient: str,
    person_id: str,
    phone: str | None,
    email: str | None,
    token: str | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """An answer's entry: a link's owner's has the link's token and kind, anyone else's neither."""
    return {
        "recipient": recipient,
        "person_id": person_id,
        "phone": phone,
        "email": email,
        "token": token,
        "kind": kind,
    }


async def test_a_service_gets_a_volunteers_a_donors_and_a_coordinators_phone_and_email(
    registry: httpx.AsyncClient,
) -> None:
    notifications = await service(registry)
    volunteer_id = await volunteer(registry, XINGAN, "13977310001")
    await active(
        registry, "13977310011", role="volunteer", counties=[], person_id=volunteer_id, email="Huang@Example.ORG"
    )
    donor_id = await donor(registry)
    await active(
        registry, "13907710520", role="donor", counties=[], person_id=donor_id, email="thanks@onefoundation.cn"
    )
    coordinator = await active(registry, "13907730325", counties=[XINGAN], email="wei@xingan.gov.cn")
    no_email = await active(registry, "13907730326", counties=[LINGSHAN])

    found = await people(registry, notifications, volunteer_id, donor_id, coordinator["id"], no_email["id"], UNKNOWN)

    assert found == [
        # the account's login (their own number), not the registration's: the account is whom they answer as
        entry(volunteer_id, volunteer_id, "13977310011", "Huang@example.org"),
        entry(donor_id, donor_id, "13907710520", "thanks@onefoundation.cn"),
        entry(coordinator["id"], coordinator["id"], "13907730325", "wei@xingan.gov.cn"),
        entry(no_email["id"], no_email["id"], "13907730326", None),
    ]


async def test_a_volunteer_without_an_active_account_is_reached_at_their_registered_mobile_until_erased(
    registry: httpx.AsyncClient,
) -> None:
    notifications = await service(registry)
    no_account = await volunteer(registry, XINGAN, "13977310001")
    invited = await volunteer(registry, XINGAN, "13977310002")
    await create(registry, login="13977310022", role="volunteer", person_id=invited, email="invited@example.org")
    landline = await volunteer(registry, XINGAN, "0773-6221234")
    erased = await volunteer(registry, XINGAN, "13977310004")
    await active(registry, "13977310044", role="volunteer", counties=[], person_id=erased, email="gone@example.org")
    assert (await people(registry, notifications, erased))[0]["phone"] == "13977310044"
    answer = await registry.delete(f"/volunteers/{erased}/personal-data", headers=ADMIN)
    assert answer.status_code == 204, answer.text

    found = await people(registry, notifications, no_account, invited, landline, erased)

    assert found == [
        entry(no_account, no_account, "13977310001", None),
        entry(invited, invited, "13977310002", None),  # not the invited account's login or email: not theirs yet
        entry(landline, landline, None, None),  # a landline takes no SMS
    ]


async def test_a_county_group_is_its_active_coordinators_or_child_directors_only(registry: httpx.AsyncClient) -> None:
    notifications = await service(registry)
    first = await active(registry, "13907730001", counties=[XINGAN], email="first@xingan.gov.cn")
    both = await active(registry, "13907730002", counties=[LINGSHAN, XINGAN])
    await active(registry, "13907730003", counties=[LINGSHAN])  # another county's
    disabled = await active(registry, "13907730004", counties=[XINGAN])
    assert (await registry.post(f"/accounts/{disabled['id']}/disable", headers=ADMIN)).status_code == 200
    await create(registry, login="13907730005", role="coordinator", counties=[XINGAN])  # invited, not yet active
    director = await active(
        registry, "13907730006", role="child_director", counties=[XINGAN], email="director@example.org"
    )
    await active(registry, "13907730007", role="child_director", counties=[LINGSHAN])
    await create(registry, login="13907730008", role="child_director", counties=[XINGAN])  # invited
    await volunteer(registry, XINGAN)  # a volunteer of the county is in neither group

    coordinators, directors = f"county:{XINGAN}:coordinators", f"county:{XINGAN}:child_directors"
    found = await people(registry, notifications, directors, coordinators, "county:450100:coordinators")

    assert found[0] == entry(directors, director["id"], "13907730006", "director@example.org")
    assert sorted(found[1:], key=lambda person: person["phone"]) == [  # the test's clock stands still: any order
        entry(coordinators, first["id"], "13907730001", "first@xingan.gov.cn"),
        entry(coordinators, both["id"], "13907730002", None),
    ]
    # A person asked for by id and as a group's member answers for each.
    assert await people(registry, notifications, director["id"], directors) == [
        entry(director["id"], director["id"], "13907730006", "director@example.org"),
        entry(directors, director["id"], "13907730006", "director@example.org"),
    ]


async def test_invited_disabled_and_service_accounts_and_unknown_ids_give_no_entry(
    registry: httpx.AsyncClient,
) -> None:
    notifications = await service(registry)
    invited = await create(registry, login="13907730001", role="coordinator", counties=[XINGAN])
    disabled = await active(registry, "13907730002", counties=[XINGAN], email="old@example.org")
    assert (await registry.post(f"/accounts/{disabled['id']}/disable", headers=ADMIN)).status_code == 200
    other_service = await create(registry, login="matching", role="service", name="matching")
    volunteer_id = await volunteer(registry, XINGAN)
    linked = await active(registry, "13977310011", role="volunteer", counties=[], person_id=volunteer_id)

    asked = (invited["account"]["id"], disabled["id"], other_service["account"]["id"], UNKNOWN, linked["id"])
    assert await people(registry, notifications, *asked) == []  # a linked account answers by its person's id only


async def test_only_a_service_may_look_up_and_a_refusal_is_audit_logged(registry: httpx.AsyncClient) -> None:
    await active(registry, "13907730001", counties=[XINGAN])
    signed_in_coordinator = bearer(await signed_in(registry, "13907730001"))
    recipients = [f"county:{XINGAN}:coordinators"]

    assert_error(await registry.post("/contacts/lookup", json={"recipients": recipients}), 401, "unauthorized")
    for headers in (ADMIN, auth("coordinator", [XINGAN]), signed_in_coordinator, auth("child_director", [XINGAN])):
        assert_error(await lookup(registry, headers, *recipients), 403, "forbidden")
    # Refused before the body is looked at: a non-service learns nothing of what a lookup takes.
    assert_error(await registry.post("/contacts/lookup", json={}, headers=ADMIN), 403, "forbidden")
    denied = [e for e in await audit(registry) if e["action"] == "contacts_lookup"]
    assert [(e["role"], e["outcome"]) for e in denied] == [
        ("admin", "denied"),
        ("coordinator", "denied"),
        ("coordinator", "denied"),
        ("child_director", "denied"),
        ("admin", "denied"),
    ]


NAME, PHONE = "韦小芳", "13907730001"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"recipients": []}, "body.recipients"),
        ({"recipients": [f"county:{450000 + n}:coordinators" for n in range(501)]}, "body.recipients"),
        ({"recipients": [f"00000000-0000-4000-8000-{n:012d}" for n in range(501)]}, "body.recipients"),
        ({"recipients": [f"county:{PHONE}:coordinators"]}, "body.recipients.0"),
        ({"recipients": ["county:450325:volunteers"]}, "body.recipients.0"),
        ({"recipients": [f"county:{NAME}:child_directors"]}, "body.recipients.0"),
        ({"recipients": [NAME]}, "body.recipients.0"),
        ({"recipients": [PHONE]}, "body.recipients.0"),
        ({"recipients": ["service:matching"]}, "body.recipients.0"),
        ({"recipients": [UNKNOWN.upper()]}, "body.recipients.0"),
        ({"recipients": [f"link:{UNKNOWN.upper()}"]}, "body.recipients.0"),
        ({"recipients": [f"LINK:{UNKNOWN}"]}, "body.recipients.0"),
        ({"recipients": [f"link:{PHONE}"]}, "body.recipients.0"),
        ({"recipients": [f"link:{UNKNOWN}:{NAME}"]}, "body.recipients.0"),
        ({"recipients": ["link:"]}, "body.recipients.0"),
        ({"recipients": [UNKNOWN, UNKNOWN]}, "body.recipients"),
        ({"recipients": [7]}, "body.recipients.0"),
        ({"recipients": f"county:{XINGAN}:coordinators"}, "body.recipients"),
        ({"recipients": [UNKNOWN], NAME: PHONE}, "body"),
        ({}, "body.recipients"),
    ],
)
async def test_what_is_not_one_to_500_distinct_recipients_is_a_422_repeating_nothing(
    registry: httpx.AsyncClient, body: dict[str, Any], field: str
) -> None:
    notifications = await service(registry)
    with capture_logs() as logs:
        answer = await registry.post("/contacts/lookup", json=body, headers=notifications)

    assert_error(answer, 422, "invalid")
    assert [problem["field"] for problem in answer.json()["error"]["details"]["problems"]][:1] == [field]
    for sent in (NAME, PHONE, "volunteers", "service:matching", UNKNOWN, UNKNOWN.upper()):
        assert sent not in answer.text
    assert not [sent for sent in (NAME, PHONE) if sent in str(logs)]
    assert [e for e in await audit(registry) if e["action"] == "contacts_lookup"] == []  # nothing looked up


async def test_a_lookup_is_audit_logged_by_its_counts_and_nothing_it_answers_is_logged(
    registry: httpx.AsyncClient, capsys: pytest.CaptureFixture[str]
) -> None:
    notifications = await service(registry)
    volunteer_id = await volunteer(registry, XINGAN, "13977310001")
    await active(
        registry, "13977310011", role="volunteer", counties=[], person_id=volunteer_id, email="vol@example.org"
    )
    await active(registry, "13907730001", counties=[XINGAN], email="coord@xingan.gov.cn")
    await active(registry, "13907730002", role="child_director", counties=[XINGAN], email="dir@xingan.gov.cn")
    capsys.readouterr()
    asked = [volunteer_id, f"county:{XINGAN}:coordinators", f"county:{XINGAN}:child_directors", UNKNOWN]

    with capture_logs() as logs:
        found = await people(registry, notifications, *asked)

    assert len(found) == 3
    secrets = ("13977310011", "vol@example.org", "13907730001", "coord@xingan.gov.cn", "13907730002", "dir@xingan")
    assert_nothing_told([], logs, secrets, "")
    assert not [secret for secret in secrets if secret in capsys.readouterr().err]
    (logged,) = [e for e in await audit(registry) if e["action"] == "contacts_lookup"]
    assert (logged["actor"], logged["role"], logged["outcome"]) == ("service:notifications", "service", "allowed")
    assert logged["purpose"] == "4 recipients; 3 people found; 0 links"
    assert (logged["account_id"], logged["child_id"], logged["county_code"]) == (None, None, None)
    assert not [asked for asked in (volunteer_id, UNKNOWN, XINGAN) if asked in json.dumps(logged)]
    told = json.dumps(await audit(registry))  # no entry of the whole log holds a number or an address
    assert not [secret for secret in (*secrets, "example.org", "gov.cn") if secret in told]


async def test_a_lookup_of_500_recipients_answers_each_in_one_call(registry: httpx.AsyncClient) -> None:
    notifications = await service(registry)
    coordinators = [await active(registry, f"139077300{n:02d}", counties=[XINGAN]) for n in range(3)]
    asked = [a["id"] for a in coordinators] + [f"00000000-0000-4000-8000-{n:012d}" for n in range(497)]

    found = await people(registry, notifications, *asked)

    assert [person["person_id"] for person in found] == [a["id"] for a in coordinators]

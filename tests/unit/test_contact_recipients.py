"""Whom a contact lookup names and what it answers (services.registry.recipients): people by their tokens' sub, a
county's coordinators or child directors, a link's owner (with its token); the phone only a mobile number."""

from __future__ import annotations

import uuid

import pytest

from services.registry import recipients
from services.registry.recipients import Found, Group, OpenLink, Reachable

XINGAN, LINGSHAN = "450325", "450721"
VOLUNTEER = "7d6f3c2a-0b1e-4c5d-9e8f-0a1b2c3d4e5f"
WEI = Reachable("11111111-1111-4111-8111-111111111111", "coordinator", [XINGAN], "13907730001", "wei@xingan.gov.cn")
MO = Reachable("22222222-2222-4222-8222-222222222222", "coordinator", [LINGSHAN, XINGAN], "13907730002", None)
LAN = Reachable("33333333-3333-4333-8333-333333333333", "child_director", [XINGAN], "13907730003", None)
ADMIN = Reachable("44444444-4444-4444-8444-444444444444", "admin", [], "ops.li", "ops@example.org")
LINK = "5e1f0a2b-3c4d-4e5f-8a9b-0c1d2e3f4a5b"


@pytest.mark.parametrize(
    ("recipient", "group"),
    [
        (f"county:{XINGAN}:coordinators", Group(XINGAN, "coordinator")),
        (f"county:{XINGAN}:child_directors", Group(XINGAN, "child_director")),
        (VOLUNTEER, None),
        (f"link:{LINK}", None),
    ],
)
def test_a_recipient_is_a_person_a_county_s_group_or_a_link_s_owner(recipient: str, group: Group | None) -> None:
    assert recipients.check(recipient) == recipient
    assert recipients.group_of(recipient) == group


def test_people_groups_and_links_are_told_apart() -> None:
    asked = [VOLUNTEER, f"county:{XINGAN}:coordinators", f"link:{LINK}"]
    assert recipients.person_ids(asked) == [VOLUNTEER]
    assert recipients.groups(asked) == [Group(XINGAN, "coordinator")]
    assert recipients.link_ids(asked) == [LINK]


@pytest.mark.parametrize(
    "recipient",
    [
        "",
        VOLUNTEER.upper(),
        VOLUNTEER.replace("-", ""),
        f"{{{VOLUNTEER}}}",
        "service:matching",
        "13907730001",
        "county:4503:coordinators",
        "county:450325:volunteers",
        "county:450325:coordinators:x",
        "County:450325:coordinators",
        "county:४५०३२५:coordinators",  # Devanagari digits: [0-9], not \d
        f"link:{LINK.upper()}",
        f"Link:{LINK}",
        f"link:{LINK}:x",
        f"link: {LINK}",
        f"link:county:{XINGAN}:coordinators",
        "link:13907730001",
        "link:",
    ],
)
def test_anything_else_is_refused_in_words_that_do_not_repeat_it(recipient: str) -> None:
    with pytest.raises(ValueError, match="a recipient is a person's id") as refused:
        recipients.check(recipient)
    assert recipient not in str(refused.value) or recipient in ("", "link:")


def test_each_recipient_is_named_once() -> None:
    assert recipients.check_distinct([VOLUNTEER, WEI.sub]) == [VOLUNTEER, WEI.sub]
    with pytest.raises(ValueError, match="at most once"):
        recipients.check_distinct([VOLUNTEER, VOLUNTEER])


def test_people_are_found_in_the_order_asked_groups_by_role_and_exact_county() -> None:
    asked = [f"county:{XINGAN}:coordinators", LAN.sub, f"county:{LINGSHAN}:child_directors", ADMIN.sub, VOLUNTEER]
    found = recipients.found(asked, [WEI, MO, LAN, ADMIN], {VOLUNTEER: "13977310001"})

    assert found == [
        Found(asked[0], WEI.sub, "13907730001", "wei@xingan.gov.cn"),
        Found(asked[0], MO.sub, "13907730002", None),
        Found(LAN.sub, LAN.sub, "13907730003", None),
        Found(ADMIN.sub, ADMIN.sub, None, "ops@example.org"),  # a name for a login: no phone
        Found(VOLUNTEER, VOLUNTEER, "13977310001", None),
    ]


def test_an_active_account_answers_before_the_registration_and_a_landline_is_no_phone() -> None:
    account = Reachable(VOLUNTEER, "volunteer", [XINGAN], "13977310011", "huang@example.org")
    assert recipients.found([VOLUNTEER], [account], {}) == [
        Found(VOLUNTEER, VOLUNTEER, "13977310011", "huang@example.org")
    ]
    assert recipients.found([VOLUNTEER], [], {VOLUNTEER: "0773-6221234"}) == [Found(VOLUNTEER, VOLUNTEER, None, None)]
    assert recipients.found([VOLUNTEER, f"county:{LINGSHAN}:coordinators"], [WEI], {}) == []


def test_a_link_s_owner_is_found_with_the_token_invited_or_active_and_a_dead_link_is_nobody() -> None:
    # No active account: invited.
    invited = OpenLink(uuid.UUID(WEI.sub), WEI.sub, "13907730009", "new@xingan.gov.cn", "invitation", "tok-en")
    dead = "66666666-6666-4666-8666-666666666666"
    asked = [f"link:{dead}", WEI.sub, f"link:{LINK}", f"county:{XINGAN}:child_directors"]

    found = recipients.found(asked, [LAN], {}, {LINK: invited})

    assert found == [
        Found(f"link:{LINK}", WEI.sub, "13907730009", "new@xingan.gov.cn", "tok-en", "invitation"),
        Found(asked[3], LAN.sub, "13907730003", None),  # anyone else: no token, no kind
    ]
    assert "tok-en" not in repr(found)  # a token is in no repr, should one reach a log line
    admin = OpenLink(uuid.UUID(ADMIN.sub), ADMIN.sub, "ops.li", None, "reset", "tok-en")
    assert recipients.found([f"link:{LINK}"], [], {}, {LINK: admin}) == [
        Found(f"link:{LINK}", ADMIN.sub, None, None, "tok-en", "reset")  # a name for a login: no phone
    ]

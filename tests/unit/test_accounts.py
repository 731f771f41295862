"""Accounts' rules: logins, email addresses, passwords, throttling and lockout, who manages whom, states, links,
refresh tokens."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest

from services.registry import accounts
from services.registry.accounts import Failures, Link, Person, Refresh, TryLater
from services.registry.domain import DomainError

NOW = datetime(2026, 3, 1, 9, 0, tzinfo=UTC)
VOLUNTEER = Person(uuid.UUID(int=7), "volunteer", "450325")
DONOR = Person(uuid.UUID(int=8), "donor")


def refused(code: str) -> pytest.RaisesExc[DomainError]:
    return pytest.raises(DomainError, check=lambda error: error.code == code)


@pytest.mark.parametrize(
    ("typed", "login"),
    [
        ("13907730001", "13907730001"),
        (" 139 0773 0001 ", "13907730001"),
        ("+86 139-0773-0001", "13907730001"),
        ("008613907730001", "13907730001"),
        ("１３９０７７３０００１", "13907730001"),  # full-width digits, as a Chinese input method types them
        ("Admin.Li", "admin.li"),
        ("svc-matching_2", "svc-matching_2"),
    ],
)
def test_a_login_is_the_same_however_it_is_typed(typed: str, login: str) -> None:
    assert accounts.normal_login(typed) == login


@pytest.mark.parametrize(
    "typed",
    [
        "12907730001",
        "1390773000",
        "139077300011",
        "ab",
        "a" * 33,
        "li wei",
        "李伟",
        "",
        "13\u0661\u0662\u0663\u0664\u0665\u0666\u0667\u0668\u0669",  # Arabic-Indic digits: NFKC keeps them
        "13\u09e7\u09e8\u09e9\u09ea\u09eb\u09ec\u09ed\u09ee\u09ef",  # Bengali digits, the same
    ],
)
def test_a_login_is_a_mobile_number_or_a_plain_name(typed: str) -> None:
    with refused("invalid_login"):
        accounts.normal_login(typed)


def test_only_admins_and_services_sign_in_with_a_name() -> None:
    for role in ("admin", "service"):
        accounts.check_login("ops.li", role)  # type: ignore[arg-type]
    for role in ("coordinator", "volunteer", "donor", "child_director"):
        accounts.check_login("13907730001", role)  # type: ignore[arg-type]
        with refused("mobile_login_required"):
            accounts.check_login("ops.li", role)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("password", "code"),
    [
        ("Sh0rt!pw", "password_too_short"),
        ("iloveyou12", "password_common"),
        ("1234567890", "password_common"),
        ("QWERTYUIOP", "password_common"),  # the list is checked without regard to case
        ("aaaaaaaaaaaa", "password_weak"),
        ("abcdefghijkl", "password_weak"),
    ],
)
def test_short_common_and_guessable_passwords_are_refused(password: str, code: str) -> None:
    with refused(code):
        accounts.check_password(password)


def test_a_password_made_of_the_login_or_name_is_guessable() -> None:
    accounts.check_password("moxiaolan13907730001")
    with refused("password_weak"):
        accounts.check_password("moxiaolan13907730001", hints=["13907730001", "moxiaolan"])


def test_strong_passwords_pass_also_past_the_scored_length() -> None:
    accounts.check_password("lamp-quiet-orbit-91")
    accounts.check_password("lamp-quiet-orbit-91 " * 6)  # longer than zxcvbn takes: its start is scored


def test_three_failures_slow_a_login_down_doubling_each_time() -> None:
    accounts.admit(Failures(), NOW)
    accounts.admit(Failures(2, NOW), NOW)  # two failures: no wait yet
    with pytest.raises(TryLater) as third:
        accounts.admit(Failures(3, NOW), NOW)
    assert third.value.retry_after == 1
    accounts.admit(Failures(3, NOW), NOW + timedelta(seconds=1))
    with pytest.raises(TryLater) as fourth:
        accounts.admit(Failures(4, NOW), NOW + timedelta(seconds=1.5))
    assert fourth.value.retry_after == 1  # 2 s after the last failure, half a second of it gone: rounded up
    accounts.admit(Failures(4, NOW), NOW + timedelta(seconds=2))


def test_five_failures_lock_a_login_for_fifteen_minutes_and_each_later_failure_again() -> None:
    assert [accounts.locks(n) for n in range(1, 8)] == [False, False, False, False, True, True, True]
    with pytest.raises(TryLater) as locked:
        accounts.admit(Failures(5, NOW), NOW + timedelta(minutes=1))
    assert locked.value.retry_after == 14 * 60
    with pytest.raises(TryLater):
        accounts.admit(Failures(6, NOW), NOW + timedelta(minutes=14, seconds=59))
    accounts.admit(Failures(6, NOW), NOW + timedelta(minutes=accounts.LOCKOUT_MINUTES))


def test_an_address_waits_once_more_than_twenty_failures_lie_in_fifteen_minutes() -> None:
    failures = [NOW + timedelta(seconds=n) for n in range(20)]
    accounts.admit_source(failures, NOW + timedelta(minutes=1))
    failures.append(NOW + timedelta(minutes=1))
    with pytest.raises(TryLater) as waiting:
        accounts.admit_source(failures, NOW + timedelta(minutes=2))
    assert waiting.value.retry_after == 13 * 60  # until the oldest leaves the window
    accounts.admit_source(failures[1:], NOW + timedelta(minutes=15))


@pytest.mark.parametrize(
    ("typed", "email"),
    [
        ("wei.xiao@xingan.gov.cn", "wei.xiao@xingan.gov.cn"),
        ("  Wei.Xiao@XingAn.Gov.CN ", "Wei.Xiao@xingan.gov.cn"),  # the domain in lower case, the local part as typed
        ("１２３４５６７８＠ｑｑ．ｃｏｍ", "12345678@qq.com"),  # full-width, as a Chinese input method may type it
        ("li+visits@mail.example.org", "li+visits@mail.example.org"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("li@xn--fiqs8s.xn--fiqs8s", "li@xn--fiqs8s.xn--fiqs8s"),  # a punycode domain (中国.中国)
        (f"{'l' * 64}@example.org", f"{'l' * 64}@example.org"),
    ],
)
def test_an_email_address_is_kept_with_its_domain_in_lower_case(typed: str, email: str) -> None:
    assert accounts.normal_email(typed) == email


@pytest.mark.parametrize(
    "typed",
    [
        "",
        "wei",
        "wei@",
        "@example.org",
        "wei@localhost",
        "wei@@example.org",
        "wei xiao@example.org",
        "wei.@example.org",
        ".wei@example.org",
        "wei..xiao@example.org",
        "wei@example..org",
        "wei@-example.org",
        "wei@example.o",
        "wei@example.123",
        "韦小@example.org",
        "wei@例子.中国",
        '"wei"@example.org',
        "<wei@example.org>",
        "韦小 <wei@example.org>",
        "wei@example.org, li@example.org",
        "wei@example.org\r\nBcc: li@example.org",
        "wei@[192.168.0.1]",
        f"{'l' * 65}@example.org",
        f"wei@{'a' * 63}.{'b' * 63}.{'c' * 63}.{'d' * 60}.org",  # 258 characters
    ],
)
def test_what_is_not_a_plain_email_address_is_refused(typed: str) -> None:
    with refused("invalid_email"):
        accounts.normal_email(typed)


def test_a_child_director_serves_counties_signs_in_by_mobile_and_stands_for_no_registered_person() -> None:
    assert accounts.settle("child_director", ["450721", "450325"], None, "13907730001") == ("450325", "450721")
    with refused("counties_required"):
        accounts.settle("child_director", [], None, "13907730001")
    with refused("mobile_login_required"):
        accounts.settle("child_director", ["450325"], None, "director.li")
    with refused("person_not_allowed"):
        accounts.settle("child_director", ["450325"], VOLUNTEER, "13907730001")
    with refused("counties_not_allowed"):
        accounts.settle("donor", ["450325"], DONOR, "13907730001")


def test_a_coordinator_manages_child_directors_whose_counties_are_all_their_own() -> None:
    assert accounts.may_manage("admin", [], "child_director", ["450325"])
    assert accounts.may_manage("coordinator", ["450325", "450721"], "child_director", ["450325"])
    assert accounts.may_manage("coordinator", ["450325", "450721"], "child_director", ["450325", "450721"])
    assert not accounts.may_manage("coordinator", ["450325"], "child_director", ["450325", "450721"])
    assert not accounts.may_manage("coordinator", ["450721"], "child_director", ["450325"])
    assert not accounts.may_manage("child_director", ["450325"], "child_director", ["450325"])
    assert not accounts.may_manage("child_director", ["450325"], "volunteer", ["450325"])


def test_an_admin_manages_every_account_a_coordinator_volunteers_of_their_counties() -> None:
    assert accounts.may_manage("admin", [], "coordinator", ["450325"])
    assert accounts.may_manage("coordinator", ["450325", "450721"], "volunteer", ["450325"])
    assert not accounts.may_manage("coordinator", ["450721"], "volunteer", ["450325"])
    assert not accounts.may_manage("coordinator", ["450325"], "coordinator", ["450325"])
    assert not accounts.may_manage("coordinator", ["450325"], "donor", [])
    assert not accounts.may_manage("volunteer", ["450325"], "volunteer", ["450325"])


def test_an_account_s_counties_follow_its_role() -> None:
    assert accounts.settle("coordinator", ["450721", "450325", "450325"], None, "13907730001") == ("450325", "450721")
    assert accounts.settle("volunteer", [], VOLUNTEER, "13907730001") == ("450325",)
    assert accounts.settle("volunteer", ["450325"], VOLUNTEER, "13907730001") == ("450325",)
    assert accounts.settle("donor", [], DONOR, "13907730001") == ()
    assert accounts.settle("admin", [], None, "ops.li") == ()
    with refused("counties_required"):
        accounts.settle("coordinator", [], None, "13907730001")
    with refused("counties_not_allowed"):
        accounts.settle("volunteer", ["450721"], VOLUNTEER, "13907730001")
    with refused("counties_not_allowed"):
        accounts.settle("admin", ["450325"], None, "ops.li")


def test_volunteers_and_donors_are_linked_to_their_registration_and_nobody_else_is() -> None:
    with refused("person_required"):
        accounts.settle("volunteer", [], None, "13907730001")
    with refused("person_required"):
        accounts.settle("volunteer", [], DONOR, "13907730001")
    with refused("person_not_allowed"):
        accounts.settle("coordinator", ["450325"], VOLUNTEER, "13907730001")
    with refused("person_erased"):
        accounts.settle("donor", [], Person(DONOR.id, "donor", erased=True), "13907730001")
    with refused("mobile_login_required"):
        accounts.settle("coordinator", ["450325"], None, "ops.li")


def test_a_change_of_role_counties_or_person_ends_the_sessions_a_change_of_nothing_else_does_not() -> None:
    assert accounts.sessions_end_for(("coordinator", ["450325"], None), ("admin", [], None)) == "role_changed"
    assert (
        accounts.sessions_end_for(("coordinator", ["450325"], None), ("coordinator", ["450721"], None))
        == "counties_changed"
    )
    assert (
        accounts.sessions_end_for(
            ("coordinator", ["450325", "450721"], None), ("coordinator", ["450721", "450325"], None)
        )
        is None
    )
    # a volunteer's or donor's token names the person as its sub: relinked, the old tokens would act as the old person
    other = uuid.UUID(int=9)
    assert accounts.sessions_end_for(("donor", [], DONOR.id), ("donor", [], other)) == "person_changed"
    assert accounts.sessions_end_for(("donor", [], DONOR.id), ("donor", [], DONOR.id)) is None
    accounts.change_role("coordinator", "admin")
    with refused("service_role_fixed"):
        accounts.change_role("service", "admin")
    with refused("service_role_fixed"):
        accounts.change_role("admin", "service")


def test_invited_and_disabled_accounts_are_re_invited_active_ones_get_a_reset() -> None:
    assert accounts.reinvite("invited", "coordinator") == "invited"
    assert accounts.reinvite("disabled", "coordinator") == "invited"
    with refused("already_active"):
        accounts.reinvite("active", "coordinator")
    accounts.may_reset("active", "volunteer")
    for state in ("invited", "disabled"):
        with refused("not_active"):
            accounts.may_reset(state, "volunteer")  # type: ignore[arg-type]
    with refused("service_account"):
        accounts.may_reset("active", "service")
    with refused("service_account"):
        accounts.reinvite("disabled", "service")
    assert accounts.link_role("child_director") == "child_director"
    with refused("service_account"):
        accounts.link_role("service")  # no link: a client secret


def test_a_link_works_once_before_it_expires_for_the_account_it_was_made_for() -> None:
    invitation = Link("invitation", accounts.link_expiry("invitation", NOW), None, "invited")
    assert invitation.expires_at == NOW + timedelta(hours=72)
    assert accounts.link_expiry("reset", NOW) == NOW + timedelta(hours=1)
    assert accounts.use_link(invitation, "invitation", NOW + timedelta(hours=71)) == "active"
    for link, kind, moment in [
        (None, "invitation", NOW),
        (invitation, "invitation", invitation.expires_at),
        (invitation, "reset", NOW),  # an invitation is no reset link
        (Link("invitation", invitation.expires_at, NOW, "invited"), "invitation", NOW),  # used
        (Link("invitation", invitation.expires_at, None, "disabled"), "invitation", NOW),  # disabled since
        (Link("reset", invitation.expires_at, None, "invited"), "reset", NOW),
    ]:
        with refused("invalid_link"):
            accounts.use_link(link, kind, moment)  # type: ignore[arg-type]


def test_a_link_is_usable_unused_unexpired_and_while_its_account_is_as_it_was_made_for() -> None:
    invitation = Link("invitation", NOW + timedelta(hours=72), None, "invited")
    reset = Link("reset", NOW + timedelta(hours=1), None, "active")
    assert accounts.usable(invitation, NOW)
    assert accounts.usable(reset, NOW + timedelta(minutes=59))
    for link, moment in [
        (reset, reset.expires_at),
        (Link("reset", reset.expires_at, NOW, "active"), NOW),  # used, or replaced by a newer one
        (Link("reset", reset.expires_at, None, "disabled"), NOW),
        (Link("reset", reset.expires_at, None, "invited"), NOW),
        (Link("invitation", invitation.expires_at, None, "active"), NOW),  # accepted by now
        (Link("invitation", invitation.expires_at, None, "disabled"), NOW),
    ]:
        assert not accounts.usable(link, moment)


def test_a_reset_request_sends_a_link_to_the_reachable_while_none_works_three_a_day() -> None:
    day = timedelta(days=1)
    assert accounts.sends_reset(True, 0, [], NOW)  # asked for the first time, or the last link used or expired
    assert not accounts.sends_reset(False, 0, [], NOW)  # no mobile-number login and no email: nobody to send to
    assert not accounts.sends_reset(True, 1, [], NOW)  # one works (perhaps an admin's): it is not replaced
    two = [NOW - day + timedelta(seconds=1), NOW - timedelta(hours=2)]
    assert accounts.sends_reset(True, 0, two, NOW)
    assert not accounts.sends_reset(True, 0, [*two, NOW - timedelta(hours=1)], NOW)  # three within the day
    assert accounts.sends_reset(True, 0, [NOW - day, *two[1:], NOW - timedelta(hours=1)], NOW)  # the first a day ago


def test_a_refresh_token_rotates_once_and_a_second_use_is_reuse() -> None:
    fresh = Refresh(NOW + timedelta(days=1), used=False, session_open=True, account_state="active")
    assert accounts.refresh(fresh, NOW) == "rotate"
    assert accounts.refresh(Refresh(fresh.expires_at, True, True, "active"), NOW) == "reuse"
    assert accounts.refresh(Refresh(NOW, True, True, "active"), NOW) == "reuse"  # expired, but its copy is out there
    for token in [
        None,
        Refresh(NOW, False, True, "active"),  # expired
        Refresh(fresh.expires_at, True, False, "active"),  # its session has ended: nothing more to end
        Refresh(fresh.expires_at, False, True, "disabled"),
    ]:
        with refused("invalid_refresh_token"):
            accounts.refresh(token, NOW)


def test_a_session_lasts_fourteen_days_unused_thirty_at_most() -> None:
    assert accounts.refresh_expiry(NOW, NOW) == NOW + timedelta(days=14)
    assert accounts.refresh_expiry(NOW, NOW + timedelta(days=20)) == NOW + timedelta(days=30)

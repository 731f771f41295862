"""The notification rules and their words, without I/O: who is told what because of which event, the same message
decided again for the same cause, every rule's templates in both languages, HTML escaped, nothing about a child's
identity in what a donor gets."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from markupsafe import escape

from backbone.runtime import Runtime
from backbone.settings import Settings
from contracts.catalogue import Event
from contracts.matching import (
    AidDistributed,
    ChildOverdue,
    ChildVisitDue,
    PairingClosed,
    PairingConfirmed,
    PairingProposed,
    PairingSuspended,
    WishAcknowledged,
    WishClaimed,
    WishFulfilled,
)
from contracts.registry import ChildRegistered, LinkIssued
from contracts.volunteers import VolunteerScreeningRecorded, VolunteerTrainingRecorded
from services.notifications import messages, rules
from services.notifications.app import SPEC
from services.notifications.channels import sms as sms_channel
from services.notifications.sender import Outbound
from services.notifications.settings import ChannelSettings

XINGAN = "450325"
LONGEST_COUNTY = "451226"  # 环江毛南族自治县, Huanjiang Maonanzu Zizhixian: the longest names a message may carry
CHILD, VOLUNTEER, PAIRING, WISH = (uuid.uuid4() for _ in range(4))
WHEN = datetime(2026, 12, 1, 17, 30, tzinfo=UTC)  # 2 December in Asia/Shanghai
CHECKED, EXPIRES = date(2026, 1, 5), date(2026, 12, 31)
LINK = uuid.uuid4()
TOKEN = "T" * 43  # as long as the registry's (32 random bytes, URL-safe base64)
CONSOLE = "https://guanai.mzt.gxzf.gov.cn/console12"  # 40 characters: the longest a link's SMS is sized for
LINK_KINDS = {"invitation": "invitation", "password_reset": "reset"}  # a link's message, by the link's kind


def examples(county: str = XINGAN) -> list[Event]:
    """One event of every type a rule is on."""
    pair = {"pairing_id": PAIRING, "child_id": CHILD, "volunteer_id": VOLUNTEER, "county_code": county}
    wish = {"wish_id": WISH, "child_id": CHILD, "county_code": county, "donor_id": "donor-7"}
    return [
        ChildRegistered(child_id=CHILD, county_code=county, category="orphan", risk_level="high", age_band="9-11"),
        PairingProposed(
            **pair, run_id=uuid.uuid4(), risk_level="high", score=80, score_parts={"distance": 40}, expires_at=WHEN
        ),
        PairingConfirmed(**pair),
        PairingSuspended(**pair, reason="child_ineligible"),
        PairingClosed(**pair, reason="child_left_programme"),
        ChildOverdue(child_id=CHILD, county_code=county, risk_level="medium", due_at=WHEN),
        ChildOverdue(child_id=CHILD, county_code=county, risk_level="high", due_at=WHEN, escalated_to="child_director"),
        WishClaimed(**wish, claim_deadline=WHEN),
        WishFulfilled(**wish),
        WishAcknowledged(**wish),
        AidDistributed(
            distribution_id=uuid.uuid4(),
            child_id=CHILD,
            county_code=county,
            campaign_id=uuid.uuid4(),
            kind="winter_clothes",
            quantity=3,
            value_yuan=Decimal("240.00"),
            donor_id=uuid.uuid4(),
        ),
        ChildVisitDue(child_id=CHILD, county_code=county, risk_level="high", due_at=WHEN, because="visited"),
        VolunteerScreeningRecorded(
            volunteer_id=VOLUNTEER, step="record_check", result="passed", checked_at=CHECKED, expires_at=EXPIRES
        ),
        VolunteerTrainingRecorded(volunteer_id=VOLUNTEER, course="基础培训", completed_at=CHECKED, expires_at=EXPIRES),
        LinkIssued(
            link_id=LINK,
            account_id=uuid.uuid4(),
            kind="invitation",
            role="child_director",
            county_code=county,
            expires_at=WHEN,
        ),
        LinkIssued(link_id=LINK, account_id=uuid.uuid4(), kind="reset", role="donor", expires_at=WHEN),
    ]


def every_decision(event: Event, county: str = XINGAN) -> list[rules.Decision]:
    """What the event decides as it happens and at each of its reminders (in `county`, for events without one)."""
    occasions = [rules.Occasion(county_code=county)]
    occasions += [rules.Occasion(before=r.before, county_code=county) for r in rules.reminders(event)]
    return [d for occasion in occasions for d in rules.decide(event, uuid.uuid4(), VOLUNTEER, occasion)]


def said(event: Event, reason: str, language: messages.Language, county: str = XINGAN) -> dict[str, str]:
    """The facts a message of `reason` is rendered with as it is sent: a link's with the link."""
    facts = messages.facts(event, language, county)
    return messages.with_link(facts, LINK_KINDS[reason], CONSOLE, TOKEN) if reason in LINK_KINDS else facts


def told(event: Event, paired: uuid.UUID | None = None) -> set[tuple[str, str, str]]:
    return {(d.reason, d.recipient, d.urgency) for d in rules.decide(event, uuid.uuid4(), paired)}


def test_every_event_a_rule_is_on_has_an_example_here() -> None:
    assert {rule.on for rule in rules.RULES} == {type(event) for event in examples()}


def test_a_confirmed_pairing_tells_the_volunteer_and_the_county_coordinators() -> None:
    confirmed = PairingConfirmed(pairing_id=PAIRING, child_id=CHILD, volunteer_id=VOLUNTEER, county_code=XINGAN)
    assert told(confirmed) == {
        ("pairing_confirmed", str(VOLUNTEER), "routine"),
        ("pairing_confirmed", "county:450325:coordinators", "routine"),
    }


def test_an_escalated_high_risk_child_is_urgent_for_child_directors_and_coordinators() -> None:
    late = ChildOverdue(
        child_id=CHILD, county_code=XINGAN, risk_level="high", due_at=WHEN, escalated_to="child_director"
    )
    assert told(late, paired=VOLUNTEER) == {
        ("visit_overdue", str(VOLUNTEER), "routine"),
        ("overdue_escalated", "county:450325:child_directors", "urgent"),
        ("overdue_escalated", "county:450325:coordinators", "urgent"),
    }


def test_an_overdue_visit_tells_the_paired_volunteer_only_when_there_is_one() -> None:
    late = ChildOverdue(child_id=CHILD, county_code=XINGAN, risk_level="medium", due_at=WHEN)
    assert told(late, paired=VOLUNTEER) == {
        ("visit_overdue", str(VOLUNTEER), "routine"),
        ("visit_overdue", "county:450325:coordinators", "routine"),
    }
    assert told(late) == {("visit_overdue", "county:450325:coordinators", "routine")}


def test_aid_given_by_no_donor_in_particular_tells_nobody() -> None:
    aid = next(event for event in examples() if isinstance(event, AidDistributed))
    assert told(aid.model_copy(update={"donor_id": None})) == set()


def test_the_same_cause_decides_the_same_messages_and_another_cause_others() -> None:
    event, cause = examples()[2], uuid.uuid4()
    first = rules.decide(event, cause)
    assert rules.decide(event, cause) == first
    again = {d.message_id for d in rules.decide(event, uuid.uuid4())}
    assert again.isdisjoint({d.message_id for d in first})
    assert len({d.message_id for d in first}) == len(first)


def test_a_message_is_about_the_pairing_or_wish_and_names_its_cause() -> None:
    cause = uuid.uuid4()
    (claimed, *_) = rules.decide(examples()[7], cause)
    assert (claimed.about_id, claimed.cause_event_id, claimed.county_code) == (WISH, cause, XINGAN)


@pytest.mark.parametrize("language", messages.LANGUAGES)
@pytest.mark.parametrize("event", examples(LONGEST_COUNTY), ids=lambda event: type(event).__name__)
def test_every_rule_has_its_words_in_both_languages(event: Event, language: messages.Language) -> None:
    decisions = every_decision(event, LONGEST_COUNTY)
    assert decisions
    for decision in decisions:
        words = messages.words(decision.reason, language, said(event, decision.reason, language, LONGEST_COUNTY))
        assert all((words.sms, words.subject, words.text))
        assert str(escape(words.text)) in words.html
        assert f'lang="{language}"' in words.html
        if language == "zh-CN":
            assert any("\u4e00" <= character <= "\u9fff" for character in words.sms)
        else:
            assert words.sms.isascii()


@pytest.mark.parametrize("county", [LONGEST_COUNTY, "451225"])  # the longest names in pinyin, in characters
def test_every_sms_fits_one_segment_with_the_gateways_signature_and_a_link_three(county: str) -> None:
    # The signature is Chinese, so every SMS goes as UCS-2: one segment holds 70 characters, signature included.
    sign = ChannelSettings().sms_sign_name
    sizes = set()
    for event in examples(county):
        for decision in every_decision(event, county):
            for language in messages.LANGUAGES:
                sms = messages.words(decision.reason, language, said(event, decision.reason, language, county)).sms
                size = sms_channel.segments(sms_channel.signed(sign, sms))
                assert size <= messages.sms_segments(decision.reason), sms
                sizes.add((decision.reason in LINK_KINDS, size))
    assert {size for link, size in sizes if not link} == {1}
    assert {size for link, size in sizes if link} == {3}  # with the make run console's address, two


def test_dates_are_the_programmes_own_in_each_language() -> None:
    late = ChildOverdue(child_id=CHILD, county_code=XINGAN, risk_level="medium", due_at=WHEN)
    assert messages.facts(late, "zh-CN") == {"county": "兴安县", "due": "12月2日", "risk": "中风险"}
    assert messages.facts(late, "en") == {"county": "Xing'an Xian", "due": "2 Dec 2026", "risk": "medium-risk"}


def test_the_email_html_is_escaped_and_its_text_is_not() -> None:
    words = messages.words("visit_overdue", "en", {"county": "<b>Xing'an</b>", "due": "2 Dec", "risk": "high-risk"})
    assert "<b>Xing'an</b>" in words.text
    assert "&lt;b&gt;Xing&#39;an&lt;/b&gt;" in words.html
    assert "<b>" not in words.html


def test_a_fact_a_template_needs_and_lacks_is_an_error_not_a_blank() -> None:
    with pytest.raises(Exception, match="due"):
        messages.words("visit_overdue", "zh-CN", {"county": "兴安县", "risk": "高风险"})


def test_what_a_donor_is_told_says_where_when_and_how_much_and_nothing_about_the_child() -> None:
    for event in examples():
        for decision in every_decision(event):
            if decision.recipient == "donor-7" or decision.reason == "aid_distributed":
                for language in messages.LANGUAGES:
                    assert set(messages.facts(event, language)) <= {"county", "deadline", "quantity", "value"}


def test_a_link_goes_to_its_owner_alone_by_sms_and_email_and_a_reset_does_not_wait_for_the_morning() -> None:
    invitation, reset = (event for event in examples() if isinstance(event, LinkIssued))
    cause = uuid.uuid4()
    [invited] = rules.decide(invitation, cause)
    assert (invited.reason, invited.recipient, invited.channels, invited.urgency) == (
        "invitation",
        f"link:{LINK}",
        ("sms", "email"),
        "routine",
    )
    assert (invited.about_id, invited.county_code) == (LINK, XINGAN)
    [told_reset] = rules.decide(reset, cause)
    assert (told_reset.reason, told_reset.urgency, told_reset.county_code) == ("password_reset", "urgent", "")


def test_a_links_facts_hold_no_token_and_the_token_goes_after_the_hash() -> None:
    invitation = next(event for event in examples() if isinstance(event, LinkIssued))
    facts = messages.facts(invitation, "zh-CN")
    assert facts == {"county": "兴安县", "until": "12月2日01:30", "role": "儿童主任"}
    assert messages.facts(invitation, "en")["until"] == "01:30 on 2 Dec"
    linked = messages.with_link(facts, "invitation", CONSOLE + "/", TOKEN)
    assert linked["link"] == f"{CONSOLE}/accept-invitation#{TOKEN}"
    assert messages.with_link(facts, "reset", CONSOLE, TOKEN)["link"] == f"{CONSOLE}/reset-password#{TOKEN}"
    words = messages.words("invitation", "en", linked)
    assert words.sms.endswith(linked["link"])  # last: nothing after it for a phone to take as part of the link
    assert linked["link"] in words.text


def test_the_console_address_is_encrypted_and_short_enough_for_a_links_sms() -> None:
    assert ChannelSettings(console_url=CONSOLE).console_url == CONSOLE
    assert ChannelSettings(console_url="http://127.0.0.1:8000").console_url == "http://127.0.0.1:8000"
    for wrong in ("http://guanai.example.cn", CONSOLE + "/x", "guanai.example.cn"):
        with pytest.raises(ValueError, match="CONSOLE_URL"):
            ChannelSettings(console_url=wrong)


async def test_in_production_the_sender_does_not_start_with_links_leading_to_this_machine(tmp_path: Path) -> None:
    settings = Settings(
        environment="production",
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'notifications.db'}",
        service_client_id="notifications",
        service_client_secret="s" * 43,
    )
    runtime = Runtime(SPEC, settings)
    with pytest.raises(ValueError, match="CONSOLE_URL"):
        Outbound.configured(runtime, ChannelSettings())
    told = Outbound.configured(runtime, ChannelSettings(console_url=CONSOLE))  # told where the console is: it starts
    await told.close()


def test_an_unknown_language_gets_chinese() -> None:
    assert [messages.language_of(x) for x in ("en", "zh-CN", None, "fr")] == ["en", "zh-CN", "zh-CN", "zh-CN"]


def test_a_vetting_step_is_reminded_30_and_7_days_before_it_expires_and_when_it_has() -> None:
    step = next(event for event in examples() if isinstance(event, VolunteerScreeningRecorded))
    midnight = datetime(2026, 12, 30, 16, 0, tzinfo=UTC)  # 31 December begins in China: the step no longer counts
    assert [(r.at, r.before.days) for r in rules.reminders(step)] == [
        (midnight - timedelta(days=30), 30),
        (midnight - timedelta(days=7), 7),
        (midnight, 0),
    ]
    at = {
        r.before.days: {
            (d.reason, d.recipient)
            for d in rules.decide(step, uuid.uuid4(), None, rules.Occasion(before=r.before, county_code=XINGAN))
        }
        for r in rules.reminders(step)
    }
    expiring = {("screening_expiring", str(VOLUNTEER)), ("screening_expiring", "county:450325:coordinators")}
    assert at == {
        30: expiring,
        7: expiring,
        0: {(reason.replace("expiring", "expired"), who) for reason, who in expiring},
    }
    assert rules.decide(step, uuid.uuid4(), None, rules.Occasion(county_code=XINGAN)) == []  # not when recorded
    failed = step.model_copy(update={"result": "failed"})
    assert rules.reminders(failed) == []
    assert rules.reminders(step.model_copy(update={"expires_at": None})) == []


def test_a_visit_due_tomorrow_is_told_to_the_paired_volunteer_a_day_before_and_the_same_message_each_time() -> None:
    due = next(event for event in examples() if isinstance(event, ChildVisitDue))
    [reminder] = rules.reminders(due)
    assert (reminder.at, reminder.before) == (WHEN - timedelta(days=1), timedelta(days=1))
    cause, occasion = uuid.uuid4(), rules.Occasion(before=reminder.before)
    [told] = rules.decide(due, cause, VOLUNTEER, occasion)
    assert (told.reason, told.recipient, told.channels) == ("visit_due_tomorrow", str(VOLUNTEER), ("sms", "inbox"))
    assert rules.decide(due, cause, VOLUNTEER, occasion) == [told]
    assert rules.decide(due, cause, None, occasion) == []  # nobody paired: nobody to remind
    assert told.message_id not in {d.message_id for d in rules.decide(due, cause, VOLUNTEER)}
    assert rules.reminders(due.model_copy(update={"due_at": None})) == []


def test_a_claim_is_reminded_two_days_before_it_lapses_to_the_donor_and_the_coordinators() -> None:
    claimed = next(event for event in examples() if isinstance(event, WishClaimed))
    [reminder] = rules.reminders(claimed)
    assert reminder.at == WHEN - timedelta(days=2)
    told = rules.decide(claimed, uuid.uuid4(), None, rules.Occasion(before=reminder.before))
    assert {(d.reason, d.recipient) for d in told} == {
        ("claim_lapsing", "county:450325:coordinators"),
        ("claim_lapsing", "donor-7"),
    }

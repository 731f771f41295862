"""The inbox in Chromium: the menu's unread badge of a coordinator (both demo counties' notices) and of a foundation
(told of the wish it claims here), the inbox page in Chinese, one notice and then a page marked read with the badge
dropping, and a donor's inbox that leads to no child's page and names no child."""

from __future__ import annotations

import re
import time
from typing import Any

import httpx
import pytest

from services.console.i18n import Catalogues
from services.console.labels import LABELS
from tests.browser.conftest import Stack, Visit, sign_in
from tests.browser.test_console_basics import violations
from tests.browser.test_donor_and_import import shows_nobody, signed_in, who_the_children_are

pytestmark = pytest.mark.browser
CHINESE = Catalogues().translator("zh-CN")  # what the pages say, as the catalogue has it
NOTICE_WAIT_SECONDS = 20.0  # a claim reaches the notifications service through the bus


def badge(tab: Visit) -> int:
    """The unread count the menu shows (none: 0)."""
    shown = tab.page.locator("#unread-badge")
    return int(str(shown.get_attribute("data-unread"))) if shown.count() else 0


def notices(stack: Stack, login: str, password: str) -> tuple[int, int]:
    """(unread, all) of the person's notices over their recipient ids, as the notifications service counts them."""
    headers = signed_in(stack.urls["registry"], login, password)
    me = httpx.get(f"{stack.urls['registry']}/me", headers=headers, timeout=10).json()
    ids = [f"county:{code}:coordinators" for code in me.get("counties") or ()] if me["role"] == "coordinator" else []
    unread = total = 0
    for recipient in ids or [me["sub"]]:
        params: dict[str, Any] = {"recipient_id": recipient}
        base = stack.urls["notifications"]
        counted = httpx.get(f"{base}/notifications/unread", params=params, headers=headers, timeout=10)
        listed = httpx.get(f"{base}/notifications", params=params | {"limit": 1}, headers=headers, timeout=10)
        assert counted.status_code == listed.status_code == 200, counted.text
        unread, total = unread + counted.json()["unread"], total + listed.json()["total"]
    return unread, total


def test_a_coordinator_sees_the_badge_opens_the_inbox_and_marks_notices_read(tab: Visit, stack: Stack) -> None:
    login, password = stack.login_of("coordinator")
    sign_in(tab, login, password)
    tab.page.wait_for_url(re.compile(r"/today$"))
    before = badge(tab)
    assert before > 0, "the demo's children, proposals and pairings told the coordinators"
    assert tab.page.locator("nav a.inbox-link .label-hidden").inner_text() == CHINESE("(%(count)s unread)") % {
        "count": before
    }
    tab.page.locator("nav a.inbox-link").click()
    tab.page.wait_for_url(re.compile(r"/inbox$"))
    assert tab.page.locator("h1").inner_text() == CHINESE("Inbox")
    rows = tab.page.locator("#notice-list tr.notice")
    assert rows.count() > 0
    known = {CHINESE(label) for label in LABELS["notice_reason"].values()}
    first_label = rows.first.locator("td").first.locator("a, span").first.inner_text()
    assert first_label in known  # in the reader's words, not the API's code
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", rows.first.locator("time").inner_text())
    registered = tab.page.locator("#notice-list tr[data-reason='child_registered'] a").first
    if registered.count():
        assert re.fullmatch(r"/children/[0-9a-f-]{36}", str(registered.get_attribute("href")))
    assert violations(tab) == []
    tab.screenshot("inbox")

    unread_before, all_before = notices(stack, login, password)
    row = tab.page.locator("#notice-list tr.notice.unread").first
    notice_id = str(row.get_attribute("data-notice"))
    row.get_by_role("button").click()
    tab.page.wait_for_url(re.compile(r"/inbox$"))
    assert "read" in str(tab.page.locator(f"tr[data-notice='{notice_id}']").get_attribute("class")).split()
    unread_after, all_after = notices(stack, login, password)
    arrived = all_after - all_before  # notices told meanwhile come unread
    assert unread_after == unread_before - 1 + arrived
    assert badge(tab) <= before - 1 + arrived
    assert violations(tab) == []

    on_page = tab.page.locator("#notice-list tr.notice.unread").count()
    if on_page:
        now = badge(tab)
        tab.page.locator("form.mark-all button").click()
        tab.page.wait_for_url(re.compile(r"/inbox$"))
        assert tab.page.locator("#notice-list tr.notice.unread").count() == 0
        assert badge(tab) < now
    tab.screenshot("inbox-read")


def test_a_donor_is_told_of_the_wish_it_claims_and_its_inbox_leads_to_no_child(tab: Visit, stack: Stack) -> None:
    secrets = who_the_children_are(stack)
    login, password = stack.login_of("donor")
    sign_in(tab, login, password)
    tab.page.wait_for_url(re.compile(r"/board$"))
    before = badge(tab)
    wish_id = str(tab.page.locator(".wish-card form").first.get_attribute("action")).split("/")[2]  # …/{id}/claim
    claimed = f"wish-{wish_id}"
    told = tab.page.locator(f"#notice-list tr[data-reason='wish_claimed'] a[href$='#{claimed}']")
    tab.page.goto("/inbox")
    earlier = told.count()  # another test may have claimed the same wish before, and given it back
    tab.page.goto("/board")
    tab.page.locator(f".wish-card:has(form[action$='/{wish_id}/claim']) button[type=submit]").click()
    tab.page.wait_for_url(re.compile(r"/wishes/mine$"))

    deadline = time.monotonic() + NOTICE_WAIT_SECONDS
    while True:
        tab.page.goto("/inbox")
        if told.count() > earlier or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert told.count() > earlier, "the donor was not told of the claim"
    told = told.first  # newest first: this claim's
    assert badge(tab) >= before + 1
    assert told.inner_text() == CHINESE(LABELS["notice_reason"]["wish_claimed"])
    assert tab.page.locator("a[href^='/children']").count() == 0  # a donor never learns who a child is
    links = tab.page.locator("#notice-list a").evaluate_all("links => links.map(link => link.getAttribute('href'))")
    assert all(re.fullmatch(r"/wishes/mine#wish-[0-9a-f-]{36}", href) for href in links), links
    shows_nobody(tab, secrets)
    tab.screenshot("inbox-donor")

    now = badge(tab)
    told.locator("xpath=ancestor::tr").get_by_role("button").click()
    tab.page.wait_for_url(re.compile(r"/inbox$"))
    assert badge(tab) == now - 1
    assert "read" in str(told.locator("xpath=ancestor::tr").get_attribute("class")).split()
    shows_nobody(tab, secrets)

    told.click()  # to the donor's own wishes, where the claim can be given back (as it was before this test)
    tab.page.wait_for_url(re.compile(r"/wishes/mine#wish-"))
    tab.page.locator(f"tr:has(#{claimed}) form[action$='/release'] button").click()
    tab.page.wait_for_url(re.compile(r"/wishes/mine$"))

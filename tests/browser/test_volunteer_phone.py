"""A volunteer on a phone (360 px wide): their children with what a visit needs, and a visit logged without signal
that is sent when the signal returns, once, with the time it was logged at."""

from __future__ import annotations

import httpx
import pytest
from playwright.sync_api import Browser

from tests.browser.conftest import Stack, Visit, open_tab, sign_in
from tests.browser.test_console_basics import violations

pytestmark = pytest.mark.browser
PHONE = {
    "viewport": {"width": 360, "height": 740},
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "timezone_id": "Asia/Shanghai",
}


def api_token(stack: Stack, role: str) -> dict[str, str]:
    login, password = stack.login_of(role)
    answer = httpx.post(f"{stack.urls['registry']}/auth/sign-in", json={"login": login, "password": password})
    return {"Authorization": f"Bearer {answer.raise_for_status().json()['access_token']}"}


def contacts_of(stack: Stack, child_id: str) -> list[dict[str, object]]:
    answer = httpx.get(
        f"{stack.urls['matching']}/children/{child_id}/contacts",
        params={"limit": 500},
        headers=api_token(stack, "coordinator"),
    )
    return answer.raise_for_status().json()["items"]  # type: ignore[no-any-return]


def wait_for_cards(tab: Visit) -> None:
    """Until the registry has heard of the pairings (its view of matching's events is a moment behind): at most 40
    reloads, half a second apart."""
    for _ in range(40):
        if tab.page.locator("article.child-card .facts").count() and tab.page.locator("a[href^='tel:']").count():
            return
        tab.page.wait_for_timeout(500)
        tab.page.reload()
    pytest.fail("no visit card reached the phone page")


@pytest.fixture
def phone(browser: Browser, stack: Stack) -> Visit:
    visit = open_tab(browser, stack, **PHONE)
    yield visit
    assert visit.foreign(stack.console) == []
    visit.page.context.close()


def test_a_volunteer_sees_their_children_with_what_a_visit_needs(phone: Visit, stack: Stack) -> None:
    sign_in(phone, *stack.login_of("volunteer", "caring parent"))
    assert phone.page.url.endswith("/my")
    wait_for_cards(phone)
    card = phone.page.locator("article.child-card").first
    assert card.locator("h2").inner_text()  # the child's name
    assert card.locator("a[href^='tel:']").inner_text().isdigit()  # the guardian's phone, one tap to call
    assert phone.page.evaluate("document.documentElement.scrollWidth") <= 360  # nothing wider than the phone
    assert violations(phone) == []
    phone.screenshot("volunteer-phone")


def test_a_visit_logged_offline_is_sent_once_when_the_signal_returns(phone: Visit, stack: Stack) -> None:
    sign_in(phone, *stack.login_of("volunteer", "caring parent"))
    wait_for_cards(phone)
    card = phone.page.locator("article.child-card").first
    pairing_id = card.get_attribute("id").removeprefix("pairing-")  # type: ignore[union-attr]
    child = (
        httpx.get(f"{stack.urls['matching']}/pairings/{pairing_id}", headers=api_token(stack, "coordinator"))
        .raise_for_status()
        .json()["child_id"]
    )
    before = len(contacts_of(stack, child))

    phone.page.context.set_offline(True)  # in the mountains: no signal
    card.locator("summary").click()
    card.locator("input[name=occurred_at]").fill("2026-11-30T09:15")
    card.locator("input[name=duration_minutes]").fill("45")
    card.locator("textarea[name=note]").fill("带了作业本")
    card.locator("button[type=submit]").click()
    queue = phone.page.locator("#queue")
    queue.wait_for(state="visible")
    assert queue.locator("li.queued").count() == 1
    phone.screenshot("volunteer-offline-queue")
    phone.page.wait_for_timeout(1500)  # the page keeps trying meanwhile: nothing gets through
    assert len(contacts_of(stack, child)) == before

    phone.page.context.set_offline(False)  # the signal returns: the browser says it is online again
    phone.page.locator("#queue li.sent").wait_for(timeout=15_000)
    assert phone.page.locator("#queue li.queued").count() == 0
    for _ in range(2):  # the page loaded again, and its timer fires again: nothing more is sent
        phone.page.reload()
        phone.page.wait_for_timeout(1000)
    contacts = contacts_of(stack, child)
    assert len(contacts) == before + 1
    (logged,) = [c for c in contacts if c["duration_minutes"] == 45 and c["note"] == "带了作业本"]
    assert logged["occurred_at"].startswith("2026-11-30T01:15")  # 09:15 in China, as logged on the phone
    assert logged["in_person"] is True

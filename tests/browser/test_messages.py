"""Messages sent in Chromium: the demo coordinator opens the list from the menu (the SMS and emails the demo's confirmed
pairings became: `make run` sets up no SMS gateway or mail server, so they fail, and say why), reads each row in
Chinese, finds no one's phone number on it, filters the failed ones, and is led there from the day's count."""

from __future__ import annotations

import re
import time

import pytest

from services.console.i18n import Catalogues
from services.console.labels import LABELS
from tests.browser.conftest import Stack, Visit, sign_in
from tests.browser.test_console_basics import violations

pytestmark = pytest.mark.browser
CHINESE = Catalogues().translator("zh-CN")  # what the pages say, as the catalogue has it
COUNTY = "450325"  # Xing'an, the demo coordinator's first county
SENDING_WAIT_SECONDS = 30.0  # the sender looks contacts up at the registry and tries each message once a second


def test_a_coordinator_reads_the_messages_sent_and_filters_the_failed_ones(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    tab.page.wait_for_url(re.compile(r"/today$"))
    tab.page.locator("nav a[href='/messages']").click()
    tab.page.wait_for_url(re.compile(r"/messages$"))
    assert tab.page.locator("h1").inner_text() == CHINESE("Messages sent in %(county)s") % {"county": "兴安县"}
    assert tab.page.locator("nav a[aria-current='page']").inner_text() == CHINESE("Messages sent")

    rows = tab.page.locator("#message-list tr.message")
    deadline = time.monotonic() + SENDING_WAIT_SECONDS
    while not rows.count() and time.monotonic() < deadline:
        time.sleep(0.5)
        tab.page.reload()
    assert rows.count() > 0, "the demo's confirmed pairings became no SMS or email to the coordinators"
    reasons = {CHINESE(label) for label in LABELS["notice_reason"].values()}
    channels = {CHINESE(label) for label in LABELS["channel"].values()}
    for index in range(min(rows.count(), 10)):
        cells = rows.nth(index).locator("td")
        assert re.fullmatch(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}", cells.nth(0).inner_text())
        said = cells.nth(1).inner_text().removeprefix(CHINESE("Urgent")).strip()
        assert said in reasons  # in the inbox's words, not the API's code
        assert cells.nth(2).inner_text() in channels
        assert re.fullmatch(r"[0-9A-Z-]{1,8}", cells.nth(3).inner_text()) or cells.nth(3).inner_text() == CHINESE("You")
        assert cells.nth(4).inner_text().strip()
    content = tab.page.content()
    assert not [login for login in stack.accounts if re.fullmatch(r"1\d{10}", login) and login in content]
    assert not re.search(r"[\w.+-]+@[\w-]+\.[\w.]+", tab.page.locator("main").inner_text())  # no email address
    assert violations(tab) == []
    tab.screenshot("messages")

    tab.page.select_option("#f-status", "failed")
    tab.page.locator("form.filters button[type=submit]").click()
    tab.page.wait_for_url(re.compile(r"/messages\?county=\d{6}&status=failed$"))
    failed = tab.page.locator("#message-list tr.message")
    for index in range(failed.count()):
        row = failed.nth(index)
        assert row.get_attribute("data-status") == "failed"
        assert "failed" in str(row.get_attribute("class")).split()  # stands out
        assert row.locator("td.progress strong.flag").inner_text().startswith(CHINESE("Failed to send"))
    assert violations(tab) == []
    tab.screenshot("messages-failed")

    tab.page.goto("/today")
    count = tab.page.locator("#failed-messages a")
    if count.count():  # the notifications service answered in time
        assert count.get_attribute("href") == f"/messages?county={COUNTY}&status=failed"
        count.click()
        tab.page.wait_for_url(re.compile(rf"/messages\?county={COUNTY}&status=failed$"))
        assert tab.page.locator("#f-status").input_value() == "failed"

"""Campaign aid in Chromium: a coordinator lists the left-behind children of Xing'an for the demo campaign's warm
packs, hands them to two children, reads the receipts (one per child, printable), and finds the two marked as having
received them; handing them out again is refused, in words."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from deploy.demo import CAMPAIGN
from services.console.errors import MESSAGES
from services.console.i18n import Catalogues
from services.console.labels import LABELS
from services.console.render import child_ref
from tests.browser.conftest import Stack, Visit, sign_in
from tests.browser.test_console_basics import violations

pytestmark = pytest.mark.browser
COUNTY = "450325"
CHINESE = Catalogues().translator("zh-CN")  # what the pages say, as the catalogue has it


def registry_get(stack: Stack, path: str, **params: str | int) -> Any:
    """A registry answer to the demo coordinator."""
    login, password = stack.login_of("coordinator")
    registry = stack.urls["registry"]
    token = httpx.post(f"{registry}/auth/sign-in", json={"login": login, "password": password}, timeout=10)
    assert token.status_code == 200, token.text
    headers = {"Authorization": f"Bearer {token.json()['access_token']}"}
    found = httpx.get(f"{registry}{path}", params=params, headers=headers, timeout=10)
    assert found.status_code == 200, found.text
    return found.json()


def personal_data(stack: Stack, child_id: str) -> list[str]:
    child = registry_get(stack, f"/children/{child_id}", purpose="测试：援助名单不含个人信息")
    return [child[key] for key in ("name", "id_number", "birth_date", "village", "guardian_name") if child.get(key)]


def demo_campaign(stack: Stack) -> str:
    """The demo campaign's id, as the registry lists it to the coordinator."""
    found = registry_get(stack, "/campaigns", limit=100)
    return next(campaign["id"] for campaign in found["items"] if campaign["name"] == CAMPAIGN)


def test_a_coordinator_hands_out_warm_packs_and_reads_the_receipts(tab: Visit, stack: Stack) -> None:
    campaign = demo_campaign(stack)
    sign_in(tab, *stack.login_of("coordinator"))
    tab.page.goto(f"/aid?county={COUNTY}")
    assert tab.page.locator("nav a[aria-current=page]").get_attribute("href") == "/aid"
    assert tab.page.input_value("#f-campaign") == campaign  # the latest campaign covering the county
    assert violations(tab) == []

    # The list: warm packs, left-behind children only (the demo gave them to orphans and de-facto unsupported).
    tab.page.select_option("#f-kind", "warm_pack")
    tab.page.check("input[name=category][value=left_behind]")
    tab.page.click("main form.aid-filters button[type=submit]")
    tab.page.wait_for_url(
        re.compile(rf"/aid\?county={COUNTY}&campaign={campaign}&kind=warm_pack&category=left_behind$")
    )
    rows = tab.page.locator("#aid-list tr")
    assert rows.count() > 2
    left_behind = CHINESE(LABELS["category"]["left_behind"])
    assert set(tab.page.locator("#aid-list tr td:nth-child(3)").all_inner_texts()) == {left_behind}
    open_rows = tab.page.locator("#aid-list tr:has(input[name=child]:not([disabled]))")
    assert open_rows.count() >= 2
    chosen = [str(open_rows.nth(n).get_attribute("data-child")) for n in (0, 1)]
    html = tab.page.content()
    for child_id in chosen:  # the list names a child by reference only
        assert child_ref(child_id) in html
        assert [value for value in personal_data(stack, child_id) if value in html] == []
    assert violations(tab) == []

    # Nothing ticked: said in words, nothing given.
    tab.page.fill("#f-value_yuan", "120")
    tab.page.click("main form.aid-form button[type=submit]")
    tab.page.wait_for_load_state()
    assert tab.page.locator("main [role=alert]").inner_text().strip() == CHINESE(MESSAGES["no_children_chosen"])
    assert violations(tab) == []

    tab.page.goto(f"/aid?county={COUNTY}&campaign={campaign}&kind=warm_pack&category=left_behind")
    tab.page.check("#tick-all")  # with JavaScript, every child who can be given it at once
    assert tab.page.locator("input[name=child]:checked").count() == open_rows.count()
    tab.page.uncheck("#tick-all")
    assert tab.page.locator("input[name=child]:checked").count() == 0
    for child_id in chosen:
        tab.page.check(f"#c-{child_id}")
    tab.page.fill("#f-quantity", "2")
    tab.page.fill("#f-value_yuan", "120")
    tab.screenshot("aid-list")
    tab.page.click("main form.aid-form button[type=submit]")
    tab.page.wait_for_url(re.compile(r"/aid/receipts\?id=[0-9a-f-]{36}&id=[0-9a-f-]{36}&done=1$"))
    numbers = parse_qs(urlsplit(tab.page.url).query)["id"]
    assert tab.page.locator("main [role=status]").is_visible()
    listed = tab.page.locator("#receipt-list tr")
    assert sorted(str(listed.nth(n).get_attribute("data-child")) for n in (0, 1)) == sorted(chosen)
    summary = tab.page.locator(".aid-summary").inner_text()
    assert CAMPAIGN in summary
    assert CHINESE(LABELS["aid_kind"]["warm_pack"]) in summary
    assert "240" in tab.page.locator("#aid-total").inner_text()  # 2 children × 120 yuan
    slips = tab.page.locator("article.aid-slip")
    assert slips.count() == 2  # a receipt for each child
    printed = " ".join(slips.all_inner_texts())
    assert all(child_ref(child_id) in printed for child_id in chosen)  # each child by reference, never by name
    assert violations(tab) == []
    tab.screenshot("aid-receipt")

    # One child's receipt on its own page.
    tab.page.goto(f"/aid/receipts/{numbers[0]}")
    assert tab.page.locator("article.aid-slip").count() == 1
    assert numbers[0] in tab.page.locator(".aid-number").inner_text()
    assert violations(tab) == []
    tab.page.emulate_media(media="print")
    tab.screenshot("aid-receipt-print")
    tab.page.emulate_media(media="screen")

    # Back on the list, the two have received it: no box to tick. Handing it to them again is refused, in words.
    tab.page.goto(f"/aid?county={COUNTY}&campaign={campaign}&kind=warm_pack&category=left_behind")
    tab.page.check("#tick-all")  # with JavaScript, every child who can be given it at once
    assert tab.page.locator("input[name=child]:checked").count() == open_rows.count()
    tab.page.uncheck("#tick-all")
    assert tab.page.locator("input[name=child]:checked").count() == 0
    for child_id in chosen:
        row = tab.page.locator(f"#aid-list tr[data-child='{child_id}']")
        assert row.locator("td.received strong").inner_text() == CHINESE("Yes, received")
        assert row.locator("input[name=child]").is_disabled()
    assert violations(tab) == []
    csrf = str(tab.page.locator("main input[name=csrf]").first.get_attribute("value"))
    again = tab.page.request.post(
        f"{stack.console}/aid",
        form={
            "csrf": csrf,
            "county": COUNTY,
            "campaign": campaign,
            "kind": "warm_pack",
            "category": "left_behind",
            "child": chosen[0],
            "quantity": "1",
            "value_yuan": "120",
        },
    )
    assert again.status == 409
    assert CHINESE(MESSAGES["already_received"]) in again.text()

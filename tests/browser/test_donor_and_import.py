"""A foundation's pages in Chromium (the wish board, its own wishes, the campaign's figures), whose HTML never holds a
child's id, name or village; a coordinator's wishes for a child; and CSV imports reported row by row."""

from __future__ import annotations

import re
import uuid
from typing import Any

import httpx
import pytest

from deploy.demo import COUNTIES
from tests.browser.conftest import Stack, Visit, sign_in
from tests.browser.test_console_basics import violations

pytestmark = pytest.mark.browser
HEADER = "姓名,身份证号,出生日期,性别,类别,县区代码,乡镇,村,风险等级,监护情况,监护人,监护人电话,需求,语言"
BAD_ID_NUMBER = "110101201503021234"  # the right length, a wrong check digit


def signed_in(registry: str, login: str, password: str) -> dict[str, str]:
    answer = httpx.post(f"{registry}/auth/sign-in", json={"login": login, "password": password}, timeout=10)
    assert answer.status_code == 200, answer.text
    return {"Authorization": f"Bearer {answer.json()['access_token']}"}


def who_the_children_are(stack: Stack) -> set[str]:
    """Every demo child's id (and the short reference the coordinator's pages show), name and village."""
    headers = signed_in(stack.urls["registry"], *stack.login_of("admin"))
    found: set[str] = set()
    for county_code in COUNTIES:
        params: dict[str, Any] = {"county_code": county_code, "limit": 500, "purpose": "测试：捐赠方页面不含儿童身份"}
        answer = httpx.get(f"{stack.urls['registry']}/children", params=params, headers=headers, timeout=30)
        assert answer.status_code == 200, answer.text
        for child in answer.json()["items"]:
            found |= {child["id"], child["id"][:8].upper()} | {child[k] for k in ("name", "village") if child[k]}
    assert len(found) > 200
    return found


def shows_nobody(tab: Visit, secrets: set[str]) -> None:
    """The whole page (its DOM, attributes and links included) names no child, and passes axe."""
    html = tab.page.content()
    assert [secret for secret in secrets if secret in html] == [], tab.page.url
    assert violations(tab) == []


def test_a_foundation_claims_a_wish_and_no_page_it_reaches_says_who_a_child_is(tab: Visit, stack: Stack) -> None:
    secrets = who_the_children_are(stack)
    sign_in(tab, *stack.login_of("donor"))
    tab.page.wait_for_url(re.compile(r"/board$"))
    cards = tab.page.locator(".wish-card")
    assert cards.count() >= 2
    assert re.search(r"\d+-\d+", cards.first.locator(".who").inner_text())  # "girl, aged 9-11, 兴安县"
    shows_nobody(tab, secrets)
    tab.screenshot("board")

    kept, given_back = (cards.nth(n).locator("h2").inner_text() for n in (0, 1))
    cards.first.locator("button[type=submit]").click()
    tab.page.wait_for_url(re.compile(r"/wishes/mine$"))
    tab.page.goto("/board")
    tab.page.locator(".wish-card").first.locator("button[type=submit]").click()
    tab.page.wait_for_url(re.compile(r"/wishes/mine$"))
    rows = tab.page.locator("tbody tr")
    assert rows.count() == 2
    assert {rows.nth(n).locator("td").first.inner_text().splitlines()[0] for n in (0, 1)} == {kept, given_back}
    assert tab.page.locator("tbody tr form[action$='/release']").count() == 2  # each claimed: a release each
    shows_nobody(tab, secrets)

    second = tab.page.locator("tbody tr", has_text=given_back)
    second.locator("button[type=submit]").click()
    tab.page.wait_for_url(re.compile(r"/wishes/mine$"))
    assert tab.page.locator("tbody tr").count() == 1
    assert tab.page.locator("tbody tr td").first.inner_text().startswith(kept)
    assert tab.page.locator("tbody tr td").nth(4).inner_text()  # the claim's deadline
    shows_nobody(tab, secrets)
    tab.screenshot("mine")

    tab.page.goto("/figures/campaign")
    assert tab.page.locator("#f-campaign option").count() >= 2  # the demo's campaign, and the whole programme
    assert tab.page.locator(".tile .count").count() >= 10
    shows_nobody(tab, secrets)
    tab.screenshot("campaign-figures")
    tab.page.select_option("#f-area", "450325")
    tab.page.click("form[action='/figures/campaign'] button[type=submit]")
    tab.page.wait_for_load_state()
    counts = tab.page.locator(".tile .count").all_inner_texts()
    assert all(re.fullmatch(r"\d+|<5|x", count) for count in counts), counts
    shows_nobody(tab, secrets)

    for href in tab.page.locator("nav a").evaluate_all("links => links.map(link => link.getAttribute('href'))"):
        tab.page.goto(href)
        assert tab.page.url.startswith(stack.console)
        shows_nobody(tab, secrets)


def test_a_coordinator_posts_fulfils_and_acknowledges_a_childs_wishes(tab: Visit, stack: Stack) -> None:
    login, password = stack.login_of("coordinator")
    headers = signed_in(stack.urls["registry"], login, password)
    params: dict[str, Any] = {"county_code": "450325", "status": "claimed", "limit": 1}
    claimed = httpx.get(f"{stack.urls['matching']}/views/wishes", params=params, headers=headers).json()["items"]
    assert claimed, "the demo claims one wish per county"
    child_id = claimed[0]["child_id"]
    sign_in(tab, login, password)
    tab.page.goto(f"/children/{child_id}?purpose=home_visit")
    tab.page.locator(f"a[href^='/children/{child_id}/wishes']").click()
    tab.page.wait_for_load_state()
    assert tab.page.locator(f"#wish-{claimed[0]['id']}").inner_text() == claimed[0]["item"]
    assert violations(tab) == []

    tab.page.locator(f"form[action$='{claimed[0]['id']}/fulfil'] button").click()
    tab.page.wait_for_load_state()
    tab.page.locator(f"form[action$='{claimed[0]['id']}/acknowledge'] button").click()
    tab.page.wait_for_load_state()
    assert tab.page.locator(f"tr:has(#wish-{claimed[0]['id']})").get_attribute("class") == "wish-acknowledged"

    tab.page.fill("#f-item", "一盒彩笔")
    tab.page.select_option("#f-category", "study")
    tab.page.fill("#f-estimated_value_yuan", "500000")  # above what a wish may cost
    tab.page.click("form[action$='/wishes'] button[type=submit]")
    tab.page.wait_for_load_state()
    assert tab.page.locator("[role=alert]").is_visible()
    assert tab.page.locator("#f-estimated_value_yuan").get_attribute("aria-invalid") == "true"
    assert tab.page.locator("#f-item").input_value() == "一盒彩笔"  # what was typed is kept in the form
    assert violations(tab) == []
    tab.page.fill("#f-estimated_value_yuan", "25.50")
    tab.page.click("form[action$='/wishes'] button[type=submit]")
    tab.page.wait_for_url(re.compile(r"posted=1"))
    assert tab.page.locator("tr.wish-posted", has_text="一盒彩笔").count() == 1
    assert violations(tab) == []
    tab.screenshot("child-wishes")


def children_csv(tag: str) -> str:
    """Two good rows (lines 2 and 5) and two bad ones: line 3 a wrong ID number, line 4 a county Guangxi has not."""
    return "\r\n".join(
        [
            HEADER,
            f"导入{tag}甲,,2015-03-02,女,农村留守儿童,450325,兴安镇,城东村,中,祖父母,监护{tag}甲,13900000001,学业辅导,汉语",
            f"导入{tag}乙,{BAD_ID_NUMBER},2015-03-02,男,孤儿,450325,兴安镇,城东村,高,亲属,监护{tag}乙,13900000002,陪伴,汉语",
            f"导入{tag}丙,,2016-04-05,男,孤儿,450399,兴安镇,城西村,低,亲属,监护{tag}丙,13900000003,陪伴,汉语",
            f"导入{tag}丁,,2014-01-01,女,农村留守儿童,450721,某镇,某村,低,父母,监护{tag}丁,13900000004,陪伴,汉语",
            "",
        ]
    )


def upload(tab: Visit, name: str, data: bytes) -> None:
    tab.page.set_input_files("#file", files=[{"name": name, "mimeType": "text/csv", "buffer": data}])
    tab.page.click("form.upload button[type=submit]")
    tab.page.wait_for_load_state()


def reported(tab: Visit) -> dict[int, str]:
    rows = tab.page.locator("table.rejected tbody tr")
    return {
        int(rows.nth(n).locator("td.line").inner_text()): rows.nth(n).locator("ul").inner_text()
        for n in range(rows.count())
    }


@pytest.mark.parametrize("encoding", ["utf-8-sig", "gb18030"])
def test_an_import_reports_each_bad_row_by_its_line_and_reason(tab: Visit, stack: Stack, encoding: str) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    tab.page.goto("/children")
    tab.page.locator("main a[href='/children/import']").click()
    tab.page.wait_for_url(re.compile(r"/children/import$"))
    assert violations(tab) == []
    tag = uuid.uuid4().hex[:4]  # the names of this run's rows: new children, not ones imported before
    upload(tab, f"儿童{encoding}.csv", children_csv(tag).encode(encoding))
    assert re.search(r"\b2\b", tab.page.locator("#report .imported").inner_text())
    rows = reported(tab)
    assert sorted(rows) == [3, 4]
    assert "check digit" in rows[3]
    assert "not a county code of Guangxi" in rows[4]
    html = tab.page.content()
    assert [value for value in (BAD_ID_NUMBER, f"导入{tag}", "450399") if value in html] == []  # no row's values
    assert violations(tab) == []
    tab.screenshot(f"import-report-{encoding}" if encoding != "utf-8-sig" else "import-report")

    upload(tab, "again.csv", children_csv(tag).encode(encoding))  # the same file again adds nobody twice
    assert re.search(r"\b0\b", tab.page.locator("#report .imported").inner_text())
    assert sorted(reported(tab)) == [3, 4]


def test_a_file_that_is_no_table_and_a_volunteers_import_are_answered_on_the_page(tab: Visit, stack: Stack) -> None:
    sign_in(tab, *stack.login_of("coordinator"))
    tab.page.goto("/children/import")
    upload(tab, "empty.csv", b"")
    assert tab.page.locator("[role=alert]").is_visible()
    assert tab.page.locator("#report").count() == 0
    assert violations(tab) == []

    tab.page.goto("/volunteers/import")
    phone = f"138{uuid.uuid4().int % 10**8:08d}"
    volunteers = "\r\n".join(
        [
            "姓名,电话,类型,县区代码,乡镇",
            f"导入志愿者,{phone},爱心家长,450325,兴安镇",
            "导入志愿者乙,123,爱心家长,450325,兴安镇",
        ]
    )
    upload(tab, "volunteers.csv", volunteers.encode("gb18030"))
    assert re.search(r"\b1\b", tab.page.locator("#report .imported").inner_text())
    assert list(reported(tab)) == [3]
    assert phone not in tab.page.content()
    assert violations(tab) == []

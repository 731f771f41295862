"""The console's list of messages sent, over HTTP, against the real notifications service (in this process, on real
NATS and each database): each message's state in the reader's words and China's clock (held for quiet hours, a try
failed and the next one due, failed for good and why, sent), the status filter, paging, whom a message went to by a
reference only, the county's refusal and the page said when the service does not answer; and the day's count of
failed messages, linking to them.

The messages are written straight into the service's `deliveries` table: this is about how the console shows them.
How they come to be, and are sent, retried and failed, is tested against a real registry, SMTP server and SMS gateway
stand-in in tests/integration/test_sending.py."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import insert

from backbone.clock import SettableClock
from backbone.natsserver import NatsServer
from backbone.settings import Settings
from services.console.deliveries import ERRORS
from services.console.i18n import Catalogues
from services.console.labels import LABELS
from services.matching.app import create_app as create_matching_app
from services.notifications.outbox import Delivery
from services.registry.app import create_app as create_registry_app
from tests.helpers import keys, wait_until
from tests.integration.conftest import serve_notifications
from tests.integration.test_console_inbox import browser, console_app, session_of

XINGAN, LINGSHAN = "450325", "450721"
CHINA = ZoneInfo("Asia/Shanghai")
CHINESE = Catalogues().translator("zh-CN")
READER = str(uuid.uuid4())  # the coordinator reading the list: one of the messages went to them
DAY = datetime(2025, 3, 3, tzinfo=CHINA)


def at(hour: int, minute: int = 0, days: int = 0) -> datetime:
    """A moment of the test's day (China's clock), or `days` after it."""
    return DAY + timedelta(days=days, hours=hour, minutes=minute)


def message(name: str, decided_at: datetime, **values: Any) -> dict[str, Any]:
    """A row of the `deliveries` table: a routine SMS to someone of Xing'an, pending and due when decided, unless
    `values` say otherwise. `name` makes its id, so that the test can tell the rows apart."""
    row = {
        "message_id": uuid.uuid5(uuid.NAMESPACE_URL, name),
        "notice_id": uuid.uuid4(),
        "person_id": str(uuid.uuid4()),
        "channel": "sms",
        "reason": "pairing_confirmed",
        "urgency": "routine",
        "county_code": XINGAN,
        "language": "zh-CN",
        "status": "pending",
        "attempts": 0,
        "held": False,
        "due_at": decided_at,
        "error": None,
        "provider_id": None,
        "decided_at": decided_at,
        "sent_at": None,
        "version": 0,
    }
    return row | values


def mid(name: str) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, name))


# Newest first, as the list shows them; then six sent the day before (the second page), and one of another county.
SHOWN = {
    # Decided at 22:30, in the person's quiet hours: held until they end, at 07:00 the next day.
    "held": message("held", at(22, 30), reason="visit_due_tomorrow", held=True, due_at=at(7, days=1)),
    "retrying": message("retrying", at(10), attempts=2, error="gateway_timeout", due_at=at(10, 32)),
    "failed": message(
        "failed",
        at(9),
        reason="overdue_escalated",
        urgency="urgent",
        status="failed",
        attempts=6,
        error="gateway_timeout",
        due_at=at(9, 40),
    ),
    "sent": message("sent", at(8), channel="email", reason="wish_claimed", status="sent", attempts=1, sent_at=at(8, 1)),
    "unknown": message(
        "unknown",
        at(7),
        channel="email",
        reason="pairing_closed",
        status="failed",
        attempts=1,
        error="carrier_pigeon_lost",
    ),
    "refused": message(
        "refused",
        at(6),
        channel="email",
        reason="claim_lapsing",
        status="failed",
        attempts=1,
        error="smtp_status_550",
    ),
    "waiting": message("waiting", at(5), reason="screening_expiring"),
    "sending": message("sending", at(4), channel="email", reason="training_expired", status="sending", attempts=1),
    "mine": message(
        "mine", at(3), reason="child_registered", person_id=READER, status="sent", attempts=1, sent_at=at(3, 2)
    ),
}
EARLIER = {
    f"earlier-{n}": message(f"earlier-{n}", at(20 - n, days=-1), status="sent", attempts=1, sent_at=at(20 - n, 1, -1))
    for n in range(6)
}
ELSEWHERE = message("elsewhere", at(12), county_code=LINGSHAN, status="failed", attempts=6, error="gateway_refused")
ORDER = [*SHOWN, *EARLIER]


@dataclass
class Row:
    message: str
    progress: str
    classes: set[str]
    cells: list[str] = field(default_factory=list)
    times: list[str] = field(default_factory=list)  # each <time datetime=…>


class MessagesPage(HTMLParser):
    """What the tests read of a rendered list: its rows, the filter's chosen status, the pager's links and the
    menu's link to this page."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self.selected: list[str] = []
        self.pager: dict[str, str] = {}
        self.current: list[str] = []  # the menu's links marked as this page
        self.hrefs: list[str] = []
        self._row: Row | None = None
        self._cell: list[str] | None = None
        self._select: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "a":
            self.hrefs.append(found.get("href", ""))
            if "rel" in found:
                self.pager[found["rel"]] = found.get("href", "")
            if found.get("aria-current") == "page":
                self.current.append(found.get("href", ""))
        if tag == "select":
            self._select = found.get("name")
        if tag == "option" and self._select == "status" and "selected" in found:
            self.selected.append(found.get("value", ""))
        if tag == "tr" and "data-message" in found:
            self._row = Row(found["data-message"], found["data-progress"], set(found.get("class", "").split()))
            self.rows.append(self._row)
        if self._row is None:
            return
        if tag == "td":
            self._cell = []
        elif tag == "time":
            self._row.times.append(found.get("datetime", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "select":
            self._select = None
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.cells.append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)

    def by_id(self) -> dict[str, Row]:
        return {row.message: row for row in self.rows}


@pytest.fixture
async def notifications(nats_server: NatsServer, database_url: str, clock: SettableClock) -> AsyncIterator[FastAPI]:
    settings = Settings(database_url=database_url, nats_url=nats_server.url, **keys().settings())
    async with serve_notifications(settings, clock) as (app, _):
        yield app


async def record(notifications: FastAPI, *rows: dict[str, Any]) -> None:
    """Messages as the sender leaves them in the service's `deliveries` table."""
    async with notifications.state.runtime.db.begin() as conn:
        await conn.execute(insert(Delivery), list(rows))


@pytest.fixture
async def console(notifications: FastAPI) -> AsyncIterator[FastAPI]:
    """The console, calling the notifications service in this process as it would over the network."""
    app = console_app(notifications_url="http://notifications", page_size=10)
    await app.state.upstream.http.aclose()
    app.state.upstream.http = httpx.AsyncClient(
        mounts={"http://notifications": httpx.ASGITransport(app=notifications)}, timeout=60
    )
    yield app
    await app.state.upstream.close()


async def listed(web: httpx.AsyncClient, path: str) -> tuple[MessagesPage, str]:
    answer = await web.get(path)
    assert answer.status_code == 200, answer.text[:500]
    return MessagesPage(answer.text), answer.text


def china(value: str) -> str:
    return datetime.fromisoformat(value).astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


async def test_a_coordinator_reads_what_was_sent_what_waits_and_what_failed_and_why_in_both_languages(
    notifications: FastAPI, console: FastAPI
) -> None:
    await record(notifications, *SHOWN.values(), *EARLIER.values(), ELSEWHERE)
    coordinator = session_of("coordinator", READER, (XINGAN,))
    async with browser(console, coordinator) as web:
        page, html = await listed(web, "/messages")
        assert page.current == ["/messages"]  # in the menu, marked as the page shown
        assert f"<h1>{CHINESE('Messages sent in %(county)s') % {'county': '兴安县'}}</h1>" in html
        assert [row.message for row in page.rows] == [mid(name) for name in ORDER[:10]]
        assert mid("elsewhere") not in html  # Lingshan's
        rows = {name: page.by_id()[mid(name)] for name in SHOWN}
        assert {name: row.progress for name, row in rows.items()} == {
            "held": "held",
            "retrying": "retrying",
            "failed": "failed",
            "sent": "sent",
            "unknown": "failed",
            "refused": "failed",
            "waiting": "waiting",
            "sending": "sending",
            "mine": "sent",
        }
        # When decided, in China's clock; then the notice's reason in the inbox's words, the channel, to whom, and
        # where it stands.
        assert rows["held"].cells[0] == "2025-03-03 22:30"
        assert china(rows["held"].times[0]) == "2025-03-03 22:30"
        for name, row in rows.items():
            assert CHINESE(LABELS["notice_reason"][SHOWN[name]["reason"]]) in row.cells[1]
        assert rows["failed"].cells[1] == f"紧急 {CHINESE('Overdue visit escalated')}"
        assert "urgent" in rows["failed"].classes
        assert [name for name, row in rows.items() if "urgent" in row.classes] == ["failed"]
        assert (rows["held"].cells[2], rows["sent"].cells[2]) == ("短信", "邮件")
        assert rows["held"].cells[4] == "等待免打扰时段结束，2025-03-04 07:00 发送"
        assert china(rows["held"].times[1]) == "2025-03-04 07:00"  # the release, in China's clock
        assert rows["retrying"].cells[4] == "第 2 次发送失败（短信网关超时），10:32 重试"
        assert rows["failed"].cells[4] == "发送失败：短信网关超时（共尝试 6 次）"
        assert rows["sent"].cells[4] == "已于 08:01 发出"
        assert rows["unknown"].cells[4] == "发送失败：carrier_pigeon_lost（共尝试 1 次）"  # a code it has no words for
        assert rows["refused"].cells[4] == "发送失败：邮件服务器返回错误 550（共尝试 1 次）"
        assert rows["waiting"].cells[4] == "等待发送"
        assert rows["sending"].cells[4] == "正在发送（第 1 次）"
        # Whom: the reader themself, or a reference; never an id in full, a number or an address.
        assert rows["mine"].cells[3] == "你本人"
        for name in SHOWN.keys() - {"mine"}:
            person = str(SHOWN[name]["person_id"])
            assert rows[name].cells[3] == person[:8].upper()
            assert person not in html
        text = re.sub(r"<[^>]+>", " ", html)
        assert not re.search(r"1\d{10}", text)
        assert "@" not in text
        assert "failed" in rows["failed"].classes  # failed rows stand out
        assert [r.message for r in page.rows if "failed" in r.classes] == [
            mid(n) for n in ("failed", "unknown", "refused")
        ]
        assert "共 15 条" in html
        assert page.selected == [""]

        english = browser(console, coordinator, "en")
        async with english:
            page, html = await listed(english, f"/messages?county={XINGAN}")
        cells = {name: page.by_id()[mid(name)].cells for name in SHOWN}
        assert cells["held"][4] == "Waiting for quiet hours to end, until 2025-03-04 07:00"
        assert cells["retrying"][4] == "Try 2 failed (SMS gateway timed out), next at 10:32"
        assert cells["failed"][4] == "Failed: SMS gateway timed out, after 6 tries"
        assert cells["unknown"][4] == "Failed: carrier_pigeon_lost, after 1 try"
        assert cells["refused"][4] == "Failed: mail server answered 550, after 1 try"
        assert cells["sent"][4] == "Sent 08:01"
        assert (cells["sent"][2], cells["held"][2], cells["mine"][3]) == ("Email", "SMS", "You")
        assert cells["failed"][1] == "Urgent Overdue visit escalated"
        assert "<h1>Messages sent in Xing&#39;an Xian</h1>" in html


async def test_the_list_filters_by_status_and_pages_without_a_gap_or_a_repeat(
    notifications: FastAPI, console: FastAPI
) -> None:
    await record(notifications, *SHOWN.values(), *EARLIER.values(), ELSEWHERE)
    coordinator = session_of("coordinator", READER, (XINGAN,))
    async with browser(console, coordinator) as web:
        failed, _ = await listed(web, f"/messages?county={XINGAN}&status=failed")
        waiting, _ = await listed(web, "/messages?status=pending")
        sent, _ = await listed(web, "/messages?status=sent")
        unknown, _ = await listed(web, "/messages?status=lost")  # no list knows it: all of them
        first, _ = await listed(web, "/messages")
        second, _ = await listed(web, "/messages?page=2")
        none, empty = await listed(web, f"/messages?county={XINGAN}&status=failed&page=9")
    assert [row.message for row in failed.rows] == [mid(name) for name in ("failed", "unknown", "refused")]
    assert failed.selected == ["failed"]
    assert [row.message for row in waiting.rows] == [mid(name) for name in ("held", "retrying", "waiting")]
    assert [row.message for row in sent.rows] == [mid(name) for name in ("sent", "mine", *EARLIER)]
    assert (len(unknown.rows), unknown.selected) == (10, [""])
    assert (len(first.rows), len(second.rows)) == (10, 5)  # the console's page size here is 10
    assert [row.message for row in first.rows + second.rows] == [mid(name) for name in ORDER]
    assert first.pager == {"next": "?page=2"}
    assert second.pager == {"prev": "?page=1"}
    assert (none.rows, CHINESE("No message matches this filter.") in empty) == ([], True)


async def test_only_the_countys_coordinators_and_admins_see_its_messages(
    notifications: FastAPI, console: FastAPI
) -> None:
    await record(notifications, *SHOWN.values(), ELSEWHERE)
    lingshan = session_of("coordinator", "coordinator-lin", (LINGSHAN,))
    async with browser(console, lingshan) as web:
        refused = await web.get(f"/messages?county={XINGAN}")
        own, _ = await listed(web, "/messages")
    assert refused.status_code == 403
    assert CHINESE("You may not see or do this.") in refused.text
    assert mid("failed") not in refused.text
    assert [row.message for row in own.rows] == [mid("elsewhere")]
    assert own.by_id()[mid("elsewhere")].cells[4] == "发送失败：短信网关拒绝发送（共尝试 6 次）"

    both = session_of("coordinator", "coordinator-wei", (XINGAN, LINGSHAN))
    async with browser(console, both) as web:
        first, html = await listed(web, "/messages")
        picked, _ = await listed(web, f"/messages?county={LINGSHAN}&status=failed")
    assert len(first.rows) == len(SHOWN)  # their first county's
    assert '<select id="county-switch" name="county">' in html  # the county picker of the other county pages
    assert re.search(rf'<option value="{LINGSHAN}"\s*>灵山县</option>', html)
    assert [row.message for row in picked.rows] == [mid("elsewhere")]

    async with browser(console, session_of("volunteer", "volunteer-1", (XINGAN,))) as web:
        volunteer = await web.get("/messages")
    assert volunteer.status_code == 403
    assert 'href="/messages"' not in volunteer.text  # not in a volunteer's menu

    async with browser(console, session_of("admin", "admin-1")) as web:
        choose = await web.get("/messages")
        chosen, _ = await listed(web, f"/messages?county={XINGAN}")
    assert (choose.status_code, 'action="/messages"' in choose.text) == (200, True)
    assert len(chosen.rows) == len(SHOWN)


async def test_the_page_says_so_when_the_notifications_service_does_not_answer() -> None:
    app = console_app()  # every API unreachable
    async with app.router.lifespan_context(app), browser(app, session_of("coordinator", READER, (XINGAN,))) as web:
        down = await web.get("/messages")
    assert down.status_code == 503
    assert CHINESE("A service does not answer. Try again in a moment.") in down.text


def test_every_error_the_channels_give_has_words_in_both_languages() -> None:
    english = Catalogues().translator("en")
    for code, words in ERRORS.items():
        assert CHINESE(words) != words, code
        assert english(words) == words
    service = Path(__file__).resolve().parents[2] / "services" / "notifications"
    sources = [service / "channels" / "sms.py", service / "channels" / "email.py", service / "sender.py"]
    named = set(re.findall(r'SendFailed\("([a-z_]+)"', "".join(path.read_text() for path in sources)))
    assert "gateway_timeout" in named
    assert named <= set(ERRORS)  # every fixed code the service gives (the `_status_<n>` ones are said by number)


@pytest.fixture
async def beside(nats_server: NatsServer, clock: SettableClock, tmp_path: Path) -> AsyncIterator[dict[str, FastAPI]]:
    """The registry and matching, which the day's page reads too, each with a database of its own (the notifications
    service has the database under test)."""
    started: dict[str, FastAPI] = {}
    for name, create in (("registry", create_registry_app), ("matching", create_matching_app)):
        database = f"sqlite+aiosqlite:///{tmp_path / f'{name}.db'}"
        settings = Settings(database_url=database, nats_url=nats_server.url, timer_seconds=0.2, **keys().settings())
        started[name] = create(settings, clock)
    async with (
        started["registry"].router.lifespan_context(started["registry"]),
        started["matching"].router.lifespan_context(started["matching"]),
    ):
        for name, app in started.items():
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=f"http://{name}") as client:

                async def ready(client: httpx.AsyncClient = client) -> bool:
                    return (await client.get("/ready")).status_code == 200

                await wait_until(ready, what=f"{name} to be ready")
        yield started


async def test_the_day_counts_the_messages_failed_in_the_last_week_and_leads_to_them(
    notifications: FastAPI, beside: dict[str, FastAPI]
) -> None:
    now = datetime.now(UTC)
    await record(
        notifications,
        *(message(f"lately-{n}", now - timedelta(days=n + 1), status="failed", attempts=6) for n in range(3)),
        message("long-ago", now - timedelta(days=10), status="failed", attempts=6, error="gateway_refused"),
        message("went", now - timedelta(hours=1), status="sent", attempts=1, sent_at=now),
        message("elsewhere-lately", now - timedelta(hours=2), county_code=LINGSHAN, status="failed", attempts=1),
    )
    urls = {"registry_url": "http://registry", "matching_url": "http://matching"}
    apps = {"http://registry": beside["registry"], "http://matching": beside["matching"]}
    coordinator = session_of("coordinator", READER, (XINGAN,))
    for answering in (True, False):
        app = console_app(**urls, notifications_url="http://notifications" if answering else "http://127.0.0.1:9")
        await app.state.upstream.http.aclose()
        mounts = apps | ({"http://notifications": notifications} if answering else {})
        app.state.upstream.http = httpx.AsyncClient(
            mounts={url: httpx.ASGITransport(app=mounted) for url, mounted in mounts.items()}, timeout=60
        )
        async with browser(app, coordinator) as web:
            today = await web.get("/today")
        await app.state.upstream.close()
        assert today.status_code == 200, today.text[:500]
        if answering:
            tile = re.search(r'<li class="tile failed" id="failed-messages">(.*?)</li>', today.text, re.S)
            assert tile is not None, today.text
            assert f'href="/messages?county={XINGAN}&amp;status=failed"' in tile[1]
            assert 'data-failed="3">3<' in tile[1]
            assert CHINESE("Messages failed in the last 7 days") in tile[1]
        else:  # the day's page still comes, without the count
            assert 'id="failed-messages"' not in today.text
            assert CHINESE("Today in %(county)s") % {"county": "兴安县"} in today.text

"""The console's inbox over HTTP, against the real notifications service (in this process, on real NATS and each
database) fed matching's and the registry's events: the menu's unread badge, a coordinator's two counties merged
newest first in the reader's words, links only where the reader may look (never a donor to a child), marking one or
a page read, and pages that still come, without the badge, when the notifications service does not answer."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from html.parser import HTMLParser
from typing import Any
from zoneinfo import ZoneInfo

import httpx
import pytest
from fastapi import FastAPI
from nats.aio.client import Client as NATS

from backbone.auth import Role
from backbone.clock import SettableClock
from backbone.natsserver import NatsServer
from backbone.settings import Settings
from contracts.matching import (
    AidDistributed,
    ChildOverdue,
    ChildVisitDue,
    PairingProposed,
    WishAcknowledged,
    WishClaimed,
    WishFulfilled,
    WishPosted,
)
from contracts.registry import ChildRegistered
from services.console.app import create_app as create_console_app
from services.console.i18n import COOKIE as LANGUAGE_COOKIE
from services.console.i18n import Catalogues
from services.console.inbox import link, recipients
from services.console.labels import LABELS
from services.console.pages.admin import ROLES
from services.console.session import COOKIE, Sealer, Session
from services.console.settings import ConsoleSettings
from services.notifications.rules import RULES
from tests.helpers import RegistryEvents, keys, token, wait_until
from tests.integration.conftest import serve_notifications

XINGAN, LINGSHAN = "450325", "450721"
SECRET = "a-test-secret-of-at-least-thirty-two-characters"
CHINESE = Catalogues().translator("zh-CN")
CHINA = ZoneInfo("Asia/Shanghai")


def reason_in_chinese(reason: str) -> str:
    return CHINESE(LABELS["notice_reason"][reason])


@dataclass
class Row:
    """One notice of the inbox as the page shows it."""

    notice: str
    reason: str
    classes: set[str]
    cells: list[str] = field(default_factory=list)
    links: list[str] = field(default_factory=list)
    times: list[str] = field(default_factory=list)  # <time datetime=…>
    forms: list[str] = field(default_factory=list)  # each form's action
    described_by: list[str] = field(default_factory=list)  # each button's aria-describedby


class InboxPage(HTMLParser):
    """The parts of a rendered page the tests look at: the badge, the unread total, the notices' rows, every link,
    and the mark-all form's notices."""

    def __init__(self, html: str) -> None:
        super().__init__()
        self.rows: list[Row] = []
        self.badge: str | None = None
        self.unread_total: str | None = None
        self.hrefs: list[str] = []
        self.mark_all: list[str] = []
        self.csrf = ""
        self._row: Row | None = None
        self._cell: list[str] | None = None
        self._form: str | None = None
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = {name: value or "" for name, value in attrs}
        if tag == "a":
            self.hrefs.append(found.get("href", ""))
        if found.get("id") == "unread-badge":
            self.badge = found["data-unread"]
        if found.get("id") == "unread-total":
            self.unread_total = found["data-unread"]
        if tag == "form":
            self._form = found.get("action", "")
        if tag == "input" and found.get("name") == "csrf":
            self.csrf = found.get("value", "")
        if tag == "input" and self._form == "/inbox/read" and found.get("name") == "notice":
            self.mark_all.append(found.get("value", ""))
        if tag == "tr" and "data-notice" in found:
            self._row = Row(found["data-notice"], found["data-reason"], set(found.get("class", "").split()))
            self.rows.append(self._row)
        if self._row is None:
            return
        if tag == "td":
            self._cell = []
        elif tag == "a":
            self._row.links.append(found.get("href", ""))
        elif tag == "time":
            self._row.times.append(found.get("datetime", ""))
        elif tag == "form":
            self._row.forms.append(found.get("action", ""))
        elif tag == "button":
            self._row.described_by.append(found.get("aria-describedby", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        if tag == "td" and self._row is not None and self._cell is not None:
            self._row.cells.append(" ".join("".join(self._cell).split()))
            self._cell = None
        if tag == "tr":
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


@pytest.fixture
async def notifications(
    nats_server: NatsServer, database_url: str, clock: SettableClock
) -> AsyncIterator[tuple[FastAPI, httpx.AsyncClient]]:
    settings = Settings(database_url=database_url, nats_url=nats_server.url, **keys().settings())
    async with serve_notifications(settings, clock) as (app, client):
        yield app, client


@pytest.fixture
async def console(notifications: tuple[FastAPI, httpx.AsyncClient]) -> AsyncIterator[FastAPI]:
    """The console, calling the notifications service in this process as it would over the network."""
    app = console_app(notifications_url="http://notifications", page_size=10)
    await app.state.upstream.http.aclose()
    app.state.upstream.http = httpx.AsyncClient(
        mounts={"http://notifications": httpx.ASGITransport(app=notifications[0])}, timeout=60
    )
    yield app
    await app.state.upstream.close()


def console_app(**settings: Any) -> FastAPI:
    unreachable = "http://127.0.0.1:9"  # the discard port: nothing answers there
    chosen = {"registry_url": unreachable, "matching_url": unreachable, "notifications_url": unreachable} | settings
    return create_console_app(ConsoleSettings(session_secret=SECRET, **chosen))


def session_of(role: Role, sub: str, counties: tuple[str, ...] = ()) -> Session:
    return Session(
        access_token=token(role, counties, sub=sub),
        expires_at=time.time() + 3600,
        sub=sub,
        role=role,
        name="测试",
        counties=counties,
    )


def browser(app: FastAPI, session: Session, language: str | None = None) -> httpx.AsyncClient:
    """A browser on the console, signed in with `session` (zh-CN unless `language` is given)."""
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test", timeout=60)
    client.cookies.set(COOKIE, Sealer(SECRET).seal(session), domain="console.test")
    if language:
        client.cookies.set(LANGUAGE_COOKIE, language, domain="console.test")
    return client


async def unread_of(client: httpx.AsyncClient, session: Session) -> int:
    """The person's unread count over their recipient ids, as the notifications service has it."""
    headers = {"Authorization": f"Bearer {session.access_token}"}
    total = 0
    for recipient in recipients(session):
        answer = await client.get("/notifications/unread", params={"recipient_id": recipient}, headers=headers)
        assert answer.status_code == 200, answer.text
        total += int(answer.json()["unread"])
    return total


async def told(client: httpx.AsyncClient, session: Session, count: int) -> None:
    async def arrived() -> bool:
        return await unread_of(client, session) == count

    await wait_until(arrived, what=f"{count} notices for the {session.role}")


@dataclass
class Teller:
    """Events on the bus, a batch at a time: each batch's notices recorded (the service's clock a minute on after
    it), so that they are listed in the order they were told."""

    bus: RegistryEvents
    service: httpx.AsyncClient
    clock: SettableClock
    session: Session
    count: int = 0

    async def tell(self, *events: Any, notices: int = 1) -> None:
        await self.bus.emit(*events)
        self.count += notices
        await told(self.service, self.session, self.count)
        self.clock.advance(timedelta(minutes=1))


async def inbox(client: httpx.AsyncClient, path: str = "/inbox") -> InboxPage:
    answer = await client.get(path)
    assert answer.status_code == 200, answer.text[:500]
    assert answer.headers["content-length"] == str(len(answer.content))
    return InboxPage(answer.text)


def registered(child: uuid.UUID, county_code: str) -> ChildRegistered:
    return ChildRegistered(child_id=child, county_code=county_code, category="orphan", risk_level="low", age_band="6-8")


def shanghai(recorded_at: str) -> str:
    return datetime.fromisoformat(recorded_at).astimezone(CHINA).strftime("%Y-%m-%d %H:%M")


async def test_a_coordinator_of_two_counties_reads_both_newest_first_and_marks_one_then_the_page_read(
    notifications: tuple[FastAPI, httpx.AsyncClient], console: FastAPI, nc: NATS, clock: SettableClock
) -> None:
    _, service = notifications
    coordinator = session_of("coordinator", "coordinator-wei", (XINGAN, LINGSHAN))
    bus = Teller(RegistryEvents(nc.jetstream()), service, clock, coordinator)
    child, overdue_child, pairing, wish = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    due = datetime(2023, 1, 17, 9, 0, tzinfo=UTC)
    late = {"child_id": overdue_child, "county_code": XINGAN, "risk_level": "high", "due_at": due}
    # One at a time, oldest first: child_registered, pairing_proposed (Lingshan), overdue_escalated, wish_claimed.
    await bus.tell(registered(child, XINGAN))
    await bus.tell(
        PairingProposed(
            pairing_id=pairing,
            run_id=uuid.uuid4(),
            child_id=uuid.uuid4(),
            volunteer_id=uuid.uuid4(),
            county_code=LINGSHAN,
            risk_level="medium",
            score=10,
            score_parts={"same_township": 10},
            expires_at=due + timedelta(days=7),
        )
    )
    await bus.tell(ChildVisitDue(**late, because="registered"), ChildOverdue(**late, escalated_to="child_director"))
    facts = {"wish_id": wish, "child_id": uuid.uuid4(), "county_code": XINGAN}
    await bus.tell(
        WishPosted(**facts, item="一个书包", category="study", estimated_value_yuan=Decimal(80)),
        WishClaimed(**facts, donor_id="donor-1", claim_deadline=due + timedelta(days=14)),
    )

    async with browser(console, coordinator) as web:
        page = await inbox(web)
        assert (page.badge, page.unread_total) == ("4", "4")
        reasons = [row.reason for row in page.rows]
        assert reasons == ["wish_claimed", "overdue_escalated", "pairing_proposed", "child_registered"]
        assert all("unread" in row.classes for row in page.rows)
        rows = {row.reason: row for row in page.rows}
        for row in page.rows:
            assert reason_in_chinese(row.reason) in row.cells[0]
            assert row.forms == [f"/inbox/{row.notice}/read"]
            assert row.described_by == [f"notice-{row.notice}"]  # the button says which notice it marks
        assert rows["child_registered"].cells[0].startswith("新登记儿童")
        assert [row.cells[1] for row in page.rows] == ["兴安县", "兴安县", "灵山县", "兴安县"]
        # Urgent: said in words on the escalation, and only there.
        assert "urgent" in rows["overdue_escalated"].classes
        assert rows["overdue_escalated"].cells[0].startswith("紧急")
        assert [row.reason for row in page.rows if "urgent" in row.classes] == ["overdue_escalated"]
        # Where a coordinator may look: the child's record and the pairing; a wish has no page of its own.
        assert rows["child_registered"].links == [f"/children/{child}"]
        assert rows["overdue_escalated"].links == [f"/children/{overdue_child}"]
        assert rows["pairing_proposed"].links == [f"/pairings/{pairing}"]
        assert rows["wish_claimed"].links == []
        # China time, from the notice's own time.
        listed = await service.get(
            "/notifications",
            params={"recipient_id": f"county:{LINGSHAN}:coordinators"},
            headers={"Authorization": f"Bearer {coordinator.access_token}"},
        )
        recorded = listed.json()["items"][0]["recorded_at"]
        assert rows["pairing_proposed"].times == [recorded]
        assert rows["pairing_proposed"].cells[2] == shanghai(recorded)
        assert sorted(page.mark_all) == sorted(row.notice for row in page.rows)

        # A form without the session's CSRF token is refused, and nothing is marked.
        first = rows["pairing_proposed"].notice
        refused = await web.post(f"/inbox/{first}/read", data={"back": "/inbox"})
        assert refused.status_code == 403
        assert (await unread_of(service, coordinator)) == 4

        marked = await web.post(f"/inbox/{first}/read", data={"csrf": coordinator.csrf, "back": "/inbox?page=1"})
        assert (marked.status_code, marked.headers["location"]) == (303, "/inbox?page=1")
        page = await inbox(web)
        assert (page.badge, page.unread_total) == ("3", "3")
        read = {row.reason: row for row in page.rows}["pairing_proposed"]
        assert "read" in read.classes
        assert read.forms == []  # nothing left to mark
        assert "已读" in read.cells[3]
        assert first not in page.mark_all

        # Mark the rest of the page read; the way back goes only to an inbox page of this site.
        done = await web.post(
            "/inbox/read",
            data={"csrf": coordinator.csrf, "back": "https://elsewhere.example/", "notice": page.mark_all},
        )
        assert (done.status_code, done.headers["location"]) == (303, "/inbox")
        page = await inbox(web)
        assert (page.badge, page.unread_total) == (None, "0")  # no badge once all is read
        assert all("read" in row.classes for row in page.rows)
        assert page.mark_all == []
        assert await unread_of(service, coordinator) == 0

        # A notice of another county's is as unknown as none: the API's 404, said in words; in a page's worth, passed
        # over.
        stranger = session_of("coordinator", "coordinator-x", (LINGSHAN,))
        xingan = [rows[reason].notice for reason in ("wish_claimed", "child_registered")]
        async with browser(console, stranger) as other:
            theirs = await other.post(f"/inbox/{xingan[0]}/read", data={"csrf": stranger.csrf})
            assert theirs.status_code == 404
            assert CHINESE("This record does not exist, or no longer exists.") in theirs.text
            ignored = await other.post("/inbox/read", data={"csrf": stranger.csrf, "notice": [*xingan, "not-an-id"]})
            assert (ignored.status_code, ignored.headers["location"]) == (303, "/inbox")
            assert (await inbox(other)).badge == "1"  # Lingshan's notice: Wei read it, they did not (each their own)

        english = browser(console, coordinator, "en")
        async with english:
            page = await inbox(english)
        assert {row.reason: row.cells[0] for row in page.rows}["child_registered"] == "Child registered"
        assert [row.cells[1] for row in page.rows][2] == "Lingshan Xian"


async def test_a_donor_is_told_of_their_wish_and_aid_without_a_child_and_never_led_to_one(
    notifications: tuple[FastAPI, httpx.AsyncClient],
    console: FastAPI,
    nc: NATS,
    clock: SettableClock,
) -> None:
    _, service = notifications
    donor_id = uuid.uuid4()
    wish, child, aid_child, distribution = uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    facts = {"wish_id": wish, "child_id": child, "county_code": XINGAN}
    donor = session_of("donor", str(donor_id))
    bus = Teller(RegistryEvents(nc.jetstream()), service, clock, donor)
    await bus.tell(
        WishPosted(**facts, item="一个书包", category="study", estimated_value_yuan=Decimal(80)),
        WishClaimed(**facts, donor_id=str(donor_id), claim_deadline=datetime(2023, 2, 1, tzinfo=UTC)),
        WishFulfilled(**facts, donor_id=str(donor_id)),
        WishAcknowledged(**facts, donor_id=str(donor_id)),
        notices=3,
    )
    await bus.tell(
        AidDistributed(
            distribution_id=distribution,
            child_id=aid_child,
            county_code=LINGSHAN,
            campaign_id=uuid.uuid4(),
            kind="warm_pack",
            quantity=1,
            value_yuan=Decimal("363.64"),
            donor_id=donor_id,
        )
    )

    async with browser(console, donor) as web:
        answer = await web.get("/inbox")
        page = InboxPage(answer.text)
        assert (page.badge, page.unread_total) == ("4", "4")
        reasons = {row.reason: row for row in page.rows}
        assert set(reasons) == {"wish_claimed", "wish_fulfilled", "wish_thanked", "aid_distributed"}
        assert page.rows[0].reason == "aid_distributed"  # the newest
        for reason in ("wish_claimed", "wish_fulfilled", "wish_thanked"):
            assert reasons[reason].links == [f"/wishes/mine#wish-{wish}"]  # their own wishes: the item, no child
            assert reason_in_chinese(reason) in reasons[reason].cells[0]
        assert reasons["aid_distributed"].links == []  # a receipt names the child by reference: not for a donor
        assert reasons["aid_distributed"].cells[1] == "灵山县"
        # Nothing on the page leads to a child, or names one by id or the reference the coordinators' pages use.
        assert [href for href in page.hrefs if href.startswith("/children")] == []
        for who in (child, aid_child):
            assert str(who) not in answer.text
            assert str(who)[:8].upper() not in answer.text
        assert str(distribution) not in answer.text

        thanked = reasons["wish_thanked"].notice
        marked = await web.post(f"/inbox/{thanked}/read", data={"csrf": donor.csrf, "back": "/inbox"})
        assert marked.status_code == 303
        page = await inbox(web)
        assert (page.badge, page.unread_total) == ("3", "3")
        assert "read" in {row.reason: row for row in page.rows}["wish_thanked"].classes


async def test_a_coordinators_merged_inbox_pages_through_both_counties_without_a_gap_or_a_repeat(
    notifications: tuple[FastAPI, httpx.AsyncClient], console: FastAPI, nc: NATS, clock: SettableClock
) -> None:
    _, service = notifications
    coordinator = session_of("coordinator", "coordinator-lan", (XINGAN, LINGSHAN))
    bus = Teller(RegistryEvents(nc.jetstream()), service, clock, coordinator)
    children = []
    for index in range(14):  # alternating counties, one at a time: newest last
        children.append(child := uuid.uuid4())
        await bus.tell(registered(child, (XINGAN, LINGSHAN)[index % 2]))

    async with browser(console, coordinator) as web:
        first, second = await inbox(web), await inbox(web, "/inbox?page=2")
        answer = await web.get("/inbox?page=2")
    assert 'rel="prev"' in answer.text
    assert (len(first.rows), len(second.rows)) == (10, 4)  # the console's page size here is 10
    shown = [row.links[0].removeprefix("/children/") for row in first.rows + second.rows]
    assert shown == [str(child) for child in reversed(children)]
    assert first.badge == "14"


async def test_pages_come_without_the_badge_when_the_notifications_service_does_not_answer() -> None:
    app = console_app()  # every API unreachable
    coordinator = session_of("coordinator", "coordinator-wei", (XINGAN,))
    async with app.router.lifespan_context(app), browser(app, coordinator) as web:
        started = time.monotonic()
        refused = await web.get("/admin/accounts")  # the console's own 403 page: no API asked for it
        took = time.monotonic() - started
        down = await web.get("/inbox")
    assert refused.status_code == 403
    assert 'href="/inbox"' in refused.text  # the menu's inbox link, without a count
    assert 'id="unread-badge"' not in refused.text
    assert took < 5
    assert down.status_code == 503  # the inbox itself says the service does not answer
    assert 'id="unread-badge"' not in down.text


def test_a_child_director_reads_their_counties_group_and_is_among_the_roles_an_admin_gives() -> None:
    director = session_of("child_director", "director-1", (XINGAN, LINGSHAN))
    assert recipients(director) == (f"county:{XINGAN}:child_directors", f"county:{LINGSHAN}:child_directors")
    assert recipients(session_of("volunteer", "volunteer-1", (XINGAN,))) == ("volunteer-1",)
    assert "child_director" in ROLES
    assert CHINESE(LABELS["role"]["child_director"]) == "儿童主任"


def test_every_reason_has_a_label_and_only_staff_are_led_to_a_child() -> None:
    assert {rule.reason for rule in RULES} <= set(LABELS["notice_reason"])
    for reason in LABELS["notice_reason"]:
        notice = {"reason": reason, "about_id": str(uuid.uuid4())}
        for role in ("donor", "volunteer", "child_director", None):
            assert not (link(role, notice) or "").startswith("/children"), (role, reason)
    assert link("coordinator", {"reason": "child_registered", "about_id": "c"}) == "/children/c"
    assert link("donor", {"reason": "wish_thanked", "about_id": "w"}) == "/wishes/mine#wish-w"
    assert link("donor", {"reason": "aid_distributed", "about_id": "d"}) is None


async def test_an_admin_creates_a_child_directors_account_for_a_county_through_the_console(
    registry_app: FastAPI, registry: httpx.AsyncClient
) -> None:
    app = console_app(registry_url="http://registry")
    await app.state.upstream.http.aclose()
    app.state.upstream.http = httpx.AsyncClient(
        mounts={"http://registry": httpx.ASGITransport(app=registry_app)}, timeout=60
    )
    admin = session_of("admin", "admin-1")
    async with browser(app, admin) as web:
        form = await web.get("/admin/accounts/new")
        assert '<option value="child_director"' in form.text
        assert "儿童主任" in form.text
        account = {"csrf": admin.csrf, "login": "13900001234", "name": "覃主任", "role": "child_director"}
        without = await web.post("/admin/accounts/new", data=account | {"counties": ""})
        assert without.status_code == 422, without.text[:500]
        assert CHINESE("A coordinator or child director serves at least one county: give its county codes.") in (
            without.text
        )
        made = await web.post("/admin/accounts/new", data=account | {"counties": XINGAN})
        assert made.status_code == 200, made.text[:500]
        assert "儿童主任" in made.text
        assert 'id="handover-link"' in made.text
        listed = await web.get("/admin/accounts?role=child_director")
    assert listed.status_code == 200
    assert "13900001234" in listed.text
    assert f'value="{XINGAN}"' in listed.text  # the counties a child director serves, there to change
    await app.state.upstream.close()

"""The programme's figures week by week, for the charts of an area's figures: in-person visits, pairings confirmed
(and their running total), wishes posted and fulfilled, per ISO week (Monday to Sunday, China time).

Each series is one grouped query. The pairing and wish records keep no time of a confirmation or a fulfilment (a
pairing's `changed_at` moves on when it is suspended or closed); the event log does, so those weeks are read from
each record's own `matching.pairing.confirmed` / `matching.wish.fulfilled` event (its `recorded_at`), joined on the
record's stream. Who may ask, how `code` picks a county, city or region, and what donors see are the summary's.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime, time, timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import Date, Select, String, and_, cast, func, literal_column, select
from sqlalchemy.ext.asyncio import AsyncConnection

from backbone.clock import PROGRAMME_TIMEZONE, local_date
from backbone.deps import RuntimeDep
from backbone.store import EventRecord
from contracts.counties import area_name
from contracts.matching import PairingConfirmed, WishFulfilled
from services.matching.pairings import PairingRecord
from services.matching.summary import SCOPES, AreaCode, Caller, Count, _complement, _in, suppressed
from services.matching.views import ContactRow
from services.matching.wishes import WishRecord

router = APIRouter(tags=["views"])
MAX_WEEKS = 104
SERIES = ("visits", "pairings_confirmed", "wishes_posted", "wishes_fulfilled")
Weeks = Annotated[int, Query(ge=1, le=MAX_WEEKS, description="how many weeks, the current one last")]


class WeekFigures(BaseModel):
    week: date = Field(description="the week's Monday (China time)")
    visits: Count = Field(description="in-person contacts that took place in the week")
    pairings_confirmed: Count = Field(description="pairings confirmed in the week (not per campaign)")
    pairings_total: int | None = Field(
        description="pairings confirmed by the week's end, ended ones included (none for donors: a running total "
        "would give away the weekly counts hidden from them)"
    )
    wishes_posted: Count = Field(description="wishes posted in the week (withdrawn ones count nowhere)")
    wishes_fulfilled: Count = Field(description="wishes fulfilled in the week")


class Weekly(BaseModel):
    scope: str
    code: str
    name_zh: str | None
    name_pinyin: str | None
    campaign_id: uuid.UUID | None
    weeks: list[WeekFigures] = Field(description="oldest first; the last is the current week")


@router.get("/views/summary/weekly", response_model=Weekly)
async def weekly(
    runtime: RuntimeDep,
    principal: Caller,
    code: AreaCode,
    campaign_id: Annotated[uuid.UUID | None, Query()] = None,
    weeks: Weeks = 12,
) -> Weekly:
    """Per county, city or region (by the length of `code`) and, with `campaign_id`, per campaign (visits and
    wishes; pairings outlast a campaign). To donors, counts under 5 are "<5" and one more in the series "x"."""
    async with runtime.db.read() as conn:
        series = await figures(conn, code, campaign_id, runtime.clock.now(), weeks)
    name_zh, name_pinyin = area_name(code) or (None, None)
    return Weekly(
        scope=next(name for name, digits in SCOPES.items() if digits == len(code)),
        code=code,
        name_zh=name_zh,
        name_pinyin=name_pinyin,
        campaign_id=campaign_id,
        weeks=[WeekFigures(**week) for week in (for_donors(series) if principal.role == "donor" else series)],
    )


def monday(moment: datetime) -> date:
    """The Monday of the moment's ISO week, by the calendar in China."""
    day = local_date(moment)
    return day - timedelta(days=day.weekday())


async def figures(
    conn: AsyncConnection, code: str, campaign: uuid.UUID | None, now: datetime, weeks: int
) -> list[dict[str, Any]]:
    """The `weeks` weeks up to the current one, each with every series (0 where nothing happened)."""
    mondays = [monday(now) - timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]
    start = datetime.combine(mondays[0], time(), PROGRAMME_TIMEZONE)
    sql = _Sql(conn.dialect.name)
    counted: dict[str, dict[date, int]] = {}
    for name, query in sql.series(code, campaign, start).items():
        counted[name] = {_day(week): int(n) for week, n in await conn.execute(query)}
    total = int(await conn.scalar(sql.confirmed_before(code, start)) or 0)
    found = []
    for week in mondays:
        row: dict[str, Any] = {"week": week} | {name: counted[name].get(week, 0) for name in SERIES}
        total += row["pairings_confirmed"]
        found.append(row | {"pairings_total": total})
    return found


def for_donors(series: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The weeks as a donor sees them: each count from 1 to 4 as "<5" (the summary's rule); in a series holding
    such a week, the smallest week of 5 or more as "x" too (else the area's total, on the summary, would give the
    small week away); no running total."""
    shown = [suppressed({name: week[name] for name in SERIES}) | {"week": week["week"]} for week in series]
    for name in SERIES:
        if (hidden := _complement({str(i): week[name] for i, week in enumerate(series)})) is not None:
            shown[int(hidden)][name] = "x"
    return [week | {"pairings_total": None} for week in shown]


def _day(value: Any) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


class _Sql:
    """The series' queries in the database's own dialect: SQLite and PostgreSQL reckon weeks and print ids
    differently."""

    def __init__(self, dialect: str) -> None:
        self.sqlite = dialect == "sqlite"

    def week(self, moment: Any) -> Any:
        """The Monday (China) of a UTC moment's week. China keeps UTC+8 all year (no summer time since 1991)."""
        if self.sqlite:
            modifiers = ("'+8 hours'", "'-6 days'", "'weekday 1'")  # then forward to the next Monday, or stay
            return func.date(moment, *(literal_column(m) for m in modifiers))
        local = func.timezone(literal_column(f"'{PROGRAMME_TIMEZONE.key}'"), moment)
        return cast(func.date_trunc(literal_column("'week'"), local), Date)

    def stream(self, key: Any) -> Any:
        """A record's event stream id (its uuid as `str(uuid)` prints it): SQLite keeps a uuid as 32 hex digits."""
        if not self.sqlite:
            return cast(key, String)
        parts = [func.substr(key, start, length, type_=String) for start, length in ((1, 8), (9, 4), (13, 4), (17, 4))]
        return func.printf("%s-%s-%s-%s-%s", *parts, func.substr(key, 21, 12), type_=String)

    def counted(self, moment: Any, *source: Any) -> tuple[Any, Select[Any]]:
        week = self.week(moment)
        return week, select(week, func.count()).select_from(*source)

    def series(self, code: str, campaign: uuid.UUID | None, start: datetime) -> dict[str, Select[Any]]:
        week, visits = self.counted(ContactRow.occurred_at, ContactRow)
        visits = visits.where(_in(ContactRow.county_code, code), ContactRow.in_person.is_(True))
        visits = visits.where(ContactRow.occurred_at >= start, *_tagged(ContactRow.campaign_id, campaign))

        confirmed, pairings = self.counted(EventRecord.recorded_at, self._confirmations())
        pairings = pairings.where(_in(PairingRecord.county_code, code), EventRecord.recorded_at >= start)

        posted, wishes = self.counted(WishRecord.posted_at, WishRecord)
        wishes = wishes.where(*self._wishes(code, campaign), WishRecord.posted_at >= start)

        fulfilled_week, fulfilled = self.counted(EventRecord.recorded_at, self._fulfilments())
        fulfilled = fulfilled.where(*self._wishes(code, campaign), EventRecord.recorded_at >= start)
        return {
            "visits": visits.group_by(week),
            "pairings_confirmed": pairings.group_by(confirmed),
            "wishes_posted": wishes.group_by(posted),
            "wishes_fulfilled": fulfilled.group_by(fulfilled_week),
        }

    def confirmed_before(self, code: str, start: datetime) -> Select[Any]:
        """Pairings confirmed before the first week: where the running total starts."""
        query = select(func.count()).select_from(self._confirmations())
        return query.where(_in(PairingRecord.county_code, code), EventRecord.recorded_at < start)

    def _confirmations(self) -> Any:
        on = and_(
            EventRecord.stream_id == self.stream(PairingRecord.pairing_id),
            EventRecord.type == PairingConfirmed.type_name,
        )
        return PairingRecord.__table__.join(EventRecord, on)

    def _fulfilments(self) -> Any:
        on = and_(EventRecord.stream_id == self.stream(WishRecord.wish_id), EventRecord.type == WishFulfilled.type_name)
        return WishRecord.__table__.join(EventRecord, on)

    def _wishes(self, code: str, campaign: uuid.UUID | None) -> list[Any]:
        return [
            _in(WishRecord.county_code, code),
            WishRecord.status != "withdrawn",
            *_tagged(WishRecord.campaign_id, campaign),
        ]


def _tagged(column: Any, campaign: uuid.UUID | None) -> list[Any]:
    return [column == campaign] if campaign else []

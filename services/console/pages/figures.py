"""The figures of a county, city or the region, whole or for one campaign, for coordinators and admins: the seed's
figures as tiles, the weeks and the aid as charts drawn on the server, a printable page for the bureau's report, and
both tables as CSV, all from the console's own address."""

from __future__ import annotations

import asyncio
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, Response

from backbone.clock import local_date
from backbone.csvexport import csv_table
from contracts.counties import COUNTIES, area_name
from services.console import charts
from services.console.charts import Chart, Series
from services.console.i18n import N_
from services.console.labels import labeller
from services.console.session import Session
from services.console.upstream import ApiFailure
from services.console.web import Caller, SignInRequired, StaffDep, county_in_view, csrf_checked, language

router = APIRouter(dependencies=[Depends(csrf_checked)])
REGION = "45"  # Guangxi, where an admin's figures start
WEEKS = (12, 26, 52, 104)
AREA = re.compile(r"[1-8][0-9](?:[0-9]{2}(?:[0-9]{2})?)?")  # a region, city or county code, as matching takes it
WEEK_COLUMNS = ("week", "visits", "pairings_confirmed", "pairings_total", "wishes_posted", "wishes_fulfilled")
Asked = Annotated[str | None, Query(max_length=36)]

TITLES = {
    "visits": N_("In-person visits per week"),
    "pairings": N_("Confirmed pairings, running total"),
    "wishes": N_("Wishes posted and fulfilled per week"),
    "aid_quantity": N_("Aid handed out, by kind (items)"),
    "aid_yuan": N_("Aid handed out, by kind (yuan)"),
}
WEEKS_SUMMARY = N_("%(title)s, %(count)s weeks from %(first)s to %(last)s: %(total)s in all, at most %(most)s a week.")
WISHES_SUMMARY = N_(
    "%(title)s, %(count)s weeks from %(first)s to %(last)s: %(posted)s posted and %(fulfilled)s fulfilled."
)
TOTAL_SUMMARY = N_(
    "%(title)s, %(count)s weeks from %(first)s to %(last)s: %(start)s by the end of the first week, %(end)s by the"
    " end of the last."
)
AID_SUMMARY = N_("%(title)s: %(total)s in all (%(parts)s).")


@dataclass(frozen=True)
class Chosen:
    """The figures asked for: an area, a campaign or none, how many weeks."""

    area: str
    campaign: str | None
    weeks: int

    def query(self, **more: str) -> str:
        asked = {"area": self.area, "campaign": self.campaign or "", "weeks": str(self.weeks)}
        return urlencode({**asked, **more})


def chosen(request: Request, area: str | None, campaign: str | None, weeks: str | None) -> Chosen:
    """What the query asks for; a value no page offers is dropped for the default (the API refuses an area that is
    not the reader's, and the error page says so)."""
    code = area if area and AREA.fullmatch(area) else county_in_view(request, None) or REGION
    try:
        campaign = str(uuid.UUID(campaign)) if campaign else None
    except ValueError:
        campaign = None
    count = int(weeks) if weeks and weeks.isdigit() and int(weeks) in WEEKS else WEEKS[0]
    return Chosen(code, campaign, count)


@router.get("/figures", response_class=HTMLResponse)
async def figures(
    request: Request, caller: StaffDep, area: Asked = None, campaign: Asked = None, weeks: Asked = None
) -> Any:
    asked = chosen(request, area, campaign, weeks)
    values = await _figures(request, caller, asked)
    return request.app.state.pages.render(request, "figures.html", open_tables=False, **values)


@router.get("/figures/print", response_class=HTMLResponse)
async def printable(
    request: Request, caller: StaffDep, area: Asked = None, campaign: Asked = None, weeks: Asked = None
) -> Any:
    """The same figures for the bureau's report: no navigation, the numbers beside every chart, a print style."""
    asked = chosen(request, area, campaign, weeks)
    values = await _figures(request, caller, asked)
    today = local_date(datetime.now(UTC)).isoformat()
    return request.app.state.pages.render(request, "figures_print.html", open_tables=True, today=today, **values)


@router.get("/figures/export.csv")
async def export(
    request: Request,
    caller: StaffDep,
    area: Asked = None,
    campaign: Asked = None,
    weeks: Asked = None,
    table: Annotated[Literal["counties", "weeks"], Query()] = "counties",
) -> Response:
    """The area's figures per county (matching's own export), or its weeks, as CSV."""
    asked = chosen(request, area, campaign, weeks)
    name = f"figures-{asked.area}" + (f"-{asked.campaign[:8]}" if asked.campaign else "")
    if table == "weeks":
        found = await caller.get("matching", "/views/summary/weekly", **_params(asked, weeks=asked.weeks))
        rows = [[week.get(column) for column in WEEK_COLUMNS] for week in found["weeks"]]
        return csv_table(WEEK_COLUMNS, rows, f"{name}-weeks.csv")
    answer = await _csv(caller, "/views/summary/export", _params(asked))
    disposition = f'attachment; filename="{name}-counties.csv"'
    return Response(answer, media_type="text/csv; charset=utf-8", headers={"Content-Disposition": disposition})


async def _figures(request: Request, caller: Caller, asked: Chosen) -> dict[str, Any]:
    await caller.token()  # renewed once, before the calls that follow go out together
    summary, weekly, campaigns = await asyncio.gather(
        caller.get("matching", "/views/summary", **_params(asked)),
        caller.get("matching", "/views/summary/weekly", **_params(asked, weeks=asked.weeks)),
        caller.get("registry", "/campaigns", limit=100),
    )
    gettext = request.app.state.catalogues.translator(language(request))
    lang = language(request)
    return {
        "chosen": asked,
        "area_title": _area_title(asked.area, lang),
        "areas": _areas(caller.session, lang),
        "campaigns": campaigns["items"],
        "campaign": next((c for c in campaigns["items"] if c["id"] == asked.campaign), None),
        "week_choices": WEEKS,
        "summary": summary,
        "tiles": tiles(summary),
        "week_charts": week_charts(weekly["weeks"], gettext),
        "aid_charts": aid_charts(summary["aid"], gettext),
    }


def _params(asked: Chosen, **more: Any) -> dict[str, Any]:
    return {"code": asked.area, "campaign_id": asked.campaign, **more}


async def _csv(caller: Caller, path: str, params: dict[str, Any]) -> bytes:
    """An API's CSV as it is, with the reader's token (a session ended elsewhere signs the reader out, as any call)."""
    try:
        answer = await caller.upstream.call("GET", "matching", path, token=await caller.token(), params=params)
    except ApiFailure as failure:
        if failure.status == 401:
            caller.request.state.session = Session()
            raise SignInRequired(caller.request.url.path) from failure
        raise
    return answer.content


def _area_title(code: str, lang: str) -> str:
    names = area_name(code)
    if names is None:
        return code
    return names[0] if lang == "zh-CN" else names[1]


def _areas(session: Session, lang: str) -> dict[str, list[tuple[str, str]]]:
    """The areas a reader may choose: their counties, the cities around them and the region (all of them for an
    admin), each with its name."""
    counties = list(session.counties) or sorted(COUNTIES)
    groups = {
        "county": counties,
        "city": sorted({code[:4] for code in counties}),
        "region": sorted({code[:2] for code in counties}),
    }
    return {kind: [(code, _area_title(code, lang)) for code in codes] for kind, codes in groups.items()}


def tiles(summary: dict[str, Any]) -> dict[str, str]:
    """The seed's figures, as the tiles write them ("551 caring parents paired with 502 children")."""
    parents = summary["pairings"].get("caring_parent", {})
    warm = summary["aid"].get("warm_pack", {})
    yuan = [aid.get("value_yuan") for aid in summary["aid"].values()]
    return {
        "parents": charts.shown(parents.get("volunteers", 0)),
        "parents_children": charts.shown(parents.get("children", 0)),
        "children": charts.shown(summary["children"]),
        "children_paired": charts.shown(summary["children_paired"]),
        "warm_packs": charts.shown(warm.get("quantity", 0)),
        "warm_pack_yuan": charts.shown(warm.get("value_yuan") or "0.00"),
        "aid_yuan": charts.shown(sum((Decimal(v) for v in yuan if v is not None), Decimal("0.00"))),
        "visits": charts.shown(summary["visits"]),
        "children_visited": charts.shown(int(_total(summary["children_visited"].values()))),
        "overdue_high": charts.shown(summary["overdue_high_risk"]),
        "scheduled_high": charts.shown(summary["scheduled"].get("high", 0)),
    }


def week_charts(weeks: list[dict[str, Any]], gettext: Any) -> list[Chart]:
    """Visits per week, the running total of pairings, wishes posted and fulfilled: one chart each."""
    labels = [str(week["week"])[5:] for week in weeks]  # MM-DD: the table beside gives the whole date
    span = {"count": len(weeks), "first": weeks[0]["week"], "last": weeks[-1]["week"]} if weeks else {}
    column = gettext(N_("Week of"))
    days = [str(week["week"]) for week in weeks]

    def series(name: str) -> list[Any]:
        return [week.get(name) for week in weeks]

    visits, total = series("visits"), series("pairings_total")
    posted, fulfilled = series("wishes_posted"), series("wishes_fulfilled")
    title = {key: gettext(text) for key, text in TITLES.items()}
    said = {
        "visits": gettext(WEEKS_SUMMARY)
        % {"title": title["visits"], "total": _shown_total(visits), "most": _most(visits), **span},
        "pairings": gettext(TOTAL_SUMMARY)
        % {"title": title["pairings"], "start": charts.shown(total[0]), "end": charts.shown(total[-1]), **span},
        "wishes": gettext(WISHES_SUMMARY)
        % {"title": title["wishes"], "posted": _shown_total(posted), "fulfilled": _shown_total(fulfilled), **span},
    }
    named = {"posted": gettext(N_("Posted")), "fulfilled": gettext(N_("Fulfilled"))}
    wishes = [Series(named["posted"], posted), Series(named["fulfilled"], fulfilled)]
    return [
        Chart(
            "visits",
            title["visits"],
            column,
            days,
            [Series(gettext(N_("Visits")), visits)],
            charts.bar_chart(labels, visits, summary=said["visits"]),
        ),
        Chart(
            "pairings",
            title["pairings"],
            column,
            days,
            [Series(gettext(N_("Confirmed pairings")), total)],
            charts.line_chart(labels, total, summary=said["pairings"]),
        ),
        Chart(
            "wishes", title["wishes"], column, days, wishes, charts.grouped_bars(labels, wishes, summary=said["wishes"])
        ),
    ]


def aid_charts(aid: dict[str, dict[str, Any]], gettext: Any) -> list[Chart]:
    """Aid by kind: the items, and their value in yuan (two scales, so two charts)."""
    if not aid:
        return []
    kinds = sorted(aid)
    label = labeller(gettext)
    labels = [label("aid_kind", kind) for kind in kinds]
    column = gettext(N_("Kind of aid"))
    made = []
    for key, part, name in (("aid_quantity", "quantity", N_("Items")), ("aid_yuan", "value_yuan", N_("Yuan"))):
        values = [aid[kind].get(part) for kind in kinds]
        title = gettext(TITLES[key])
        parts = ", ".join(f"{label} {charts.shown(value)}" for label, value in zip(labels, values, strict=True))
        said = gettext(AID_SUMMARY) % {"title": title, "total": _shown_total(values), "parts": parts}
        one = Series(gettext(name), values)
        made.append(Chart(key, title, column, labels, [one], charts.bar_chart(labels, values, summary=said)))
    return made


def _total(values: Any) -> Decimal:
    return sum((Decimal(str(n)) for v in values if (n := charts.number(v)) is not None), Decimal(0))


def _shown_total(values: list[Any]) -> str:
    total = _total(values)
    decimals = any(isinstance(v, str) and "." in v for v in values)
    return charts.shown(f"{total:.2f}" if decimals else int(total))


def _most(values: list[Any]) -> str:
    return charts.shown(max((n for v in values if (n := charts.number(v)) is not None), default=0))

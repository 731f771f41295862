"""A decided message in words, in the recipient's language: the SMS, the email (subject, text, HTML) and the inbox's
line, from the templates in `templates/` (Jinja2, one file a reason and language; the email's HTML autoescaped)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Literal

from jinja2 import Environment, PackageLoader, StrictUndefined

from backbone.clock import PROGRAMME_TIMEZONE
from contracts import counties
from contracts.catalogue import Event

Language = Literal["zh-CN", "en"]
LANGUAGES: tuple[Language, ...] = ("zh-CN", "en")
PARTS = ("sms", "subject", "text")
FOOTER: dict[Language, str] = {
    "zh-CN": "本消息由手拉手关爱系统发送，请勿直接回复。",
    "en": "Sent by the Hand in Hand system; please do not reply.",
}
STEPS: dict[Language, dict[str, str]] = {
    "zh-CN": {
        "application": "申请审核",
        "interview": "面谈",
        "record_check": "无犯罪记录查询",
        "references": "推荐人核实",
    },
    "en": {
        "application": "application",
        "interview": "interview",
        "record_check": "record check",
        "references": "references",
    },
}
ROLES: dict[Language, dict[str, str]] = {
    "zh-CN": {
        "admin": "管理员",
        "coordinator": "协调员",
        "volunteer": "爱心家长",
        "donor": "爱心捐赠人",
        "child_director": "儿童主任",
    },
    "en": {
        "admin": "administrator",
        "coordinator": "coordinator",
        "volunteer": "caring parent",
        "donor": "donor",
        "child_director": "child director",
    },
}
RISK: dict[Language, dict[str, str]] = {
    "zh-CN": {"high": "高风险", "medium": "中风险", "low": "低风险"},
    "en": {"high": "high-risk", "medium": "medium-risk", "low": "low-risk"},
}

LINK_PAGES = {"invitation": "/accept-invitation", "reset": "/reset-password"}  # the console's, by the link's kind
# SMS parts a message may take beyond one: a link with words around it cannot fit one (the phone joins the parts
# again; each is billed). Three hold either link's SMS with a console address of up to 40 characters (settings).
SMS_SEGMENTS = {"invitation": 3, "password_reset": 3}

_loader = PackageLoader("services.notifications", "templates")
_TEXT = Environment(loader=_loader, autoescape=False, undefined=StrictUndefined)  # noqa: S701 (SMS and plain text)
_HTML = Environment(loader=_loader, autoescape=True, undefined=StrictUndefined)


@dataclass(frozen=True)
class Words:
    sms: str
    subject: str
    text: str  # the email's plain-text part and the inbox's line
    html: str


def sms_segments(reason: str) -> int:
    return SMS_SEGMENTS.get(reason, 1)


def language_of(preferred: str | None) -> Language:
    """The recipient's language if we have its templates, else Chinese (the programme's own)."""
    return "en" if preferred == "en" else "zh-CN"


def words(reason: str, language: Language, facts: Mapping[str, str]) -> Words:
    """The message of `reason` in `language`; a fact a template needs and `facts` lacks is an error, not a blank."""
    template = _TEXT.get_template(f"{reason}.{language}.j2")
    context = template.new_context(dict(facts))
    parts = {part: "".join(template.blocks[part](context)).strip() for part in PARTS}
    page = _HTML.get_template("email.html.j2")
    html = page.render(language=language, subject=parts["subject"], text=parts["text"], footer=FOOTER[language])
    return Words(parts["sms"], parts["subject"], parts["text"], html)


def facts(event: Event, language: Language, county_code: str | None = None) -> dict[str, str]:
    """What a message may say about `event`: where, when, how much, which vetting step. Events carry no one's name,
    contact or address, so no message can: a donor never learns who a child is. `county_code`: where it happened,
    for events that do not say (a volunteer's vetting). A link's own address is no fact: it is secret, and added
    only as the message is sent (`with_link`)."""
    found: dict[str, Any] = event.model_dump()
    said = {}
    if code := county_code or found.get("county_code"):  # a link to an admin's or a donor's account: no county
        said["county"] = _county(str(code), language)
    if "link_id" in found:  # a link works until an hour of the day, not a day
        said["until"] = _moment(found["expires_at"], language)
        said["role"] = ROLES[language][found["role"]]
    else:
        for name, field in (("due", "due_at"), ("deadline", "expires_at"), ("deadline", "claim_deadline")):
            if isinstance(found.get(field), date):  # a moment, or (a vetting step's expiry) a day
                said[name] = _date(found[field], language)
    if "risk_level" in found:
        said["risk"] = RISK[language][found["risk_level"]]
    if "quantity" in found:
        said["quantity"] = str(found["quantity"])
        said["value"] = f"{found['value_yuan']:.2f}"
    if "step" in found:
        said["step"] = STEPS[language][found["step"]]
    return said


def with_link(facts: Mapping[str, str], kind: str, console_url: str, token: str) -> dict[str, str]:
    """The facts of a link's message and the link itself: the console's page for the link's kind, the token after
    the `#` (a browser never sends that part to a server, so no web log holds it)."""
    return {**facts, "link": f"{console_url.rstrip('/')}{LINK_PAGES[kind]}#{token}"}


def _county(code: str, language: Language) -> str:
    county = counties.county(code)
    if county is None:
        return code
    return county.name_zh if language == "zh-CN" else county.name_pinyin


def _moment(moment: datetime, language: Language) -> str:
    at = moment.astimezone(PROGRAMME_TIMEZONE)
    return f"{at.month}月{at.day}日{at:%H:%M}" if language == "zh-CN" else f"{at:%H:%M} on {at.day} {at:%b}"


def _date(moment: date, language: Language) -> str:
    day = moment.astimezone(PROGRAMME_TIMEZONE) if isinstance(moment, datetime) else moment
    return f"{day.month}月{day.day}日" if language == "zh-CN" else f"{day.day} {day:%b} {day.year}"

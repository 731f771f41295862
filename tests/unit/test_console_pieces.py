"""The console's pure pieces: the sealed session cookie, where a sign-in may lead back to, and the catalogues."""

from __future__ import annotations

from typing import get_args

import pytest

from contracts.vocabulary import Category, Flag, Gender, Guardianship, Need, RiskLevel
from contracts.volunteers import ScreeningStep, VolunteerKind
from deploy import messages
from services.console.i18n import LANGUAGES, Catalogues
from services.console.labels import LABELS
from services.console.session import Sealer, Session
from services.console.web import local_path

SECRET = "a-test-secret-of-at-least-thirty-two-characters"


def test_a_session_is_read_back_only_with_the_secret_it_was_sealed_with() -> None:
    session = Session(access_token="a.b.c", refresh_token="r", expires_at=1.5, role="coordinator", counties=("450325",))
    sealed = Sealer(SECRET).seal(session)
    assert Sealer(SECRET).open(sealed) == session
    assert "coordinator" not in sealed  # encrypted, not only signed
    assert "450325" not in sealed
    assert Sealer(SECRET + "x").open(sealed) is None
    tampered = sealed[:-6] + ("A" if sealed[-6] != "A" else "B") + sealed[-5:]
    assert Sealer(SECRET).open(tampered) is None
    assert Sealer(SECRET).open("not a cookie") is None


def test_each_session_has_its_own_csrf_token() -> None:
    assert Session().csrf != Session().csrf
    assert len(Session().csrf) >= 32


@pytest.mark.parametrize(
    ("asked", "kept"),
    [
        ("/children?county=450325", "/children?county=450325"),
        ("https://elsewhere.example/", "/"),
        ("//elsewhere.example/today", "/"),
        ("/\\elsewhere.example", "/"),
        ("today", "/"),
        ("", "/"),
        (None, "/"),
    ],
)
def test_a_sign_in_leads_back_only_to_a_page_of_this_site(asked: str | None, kept: str) -> None:
    assert local_path(asked) == kept


def test_both_catalogues_translate_every_message_the_console_shows() -> None:
    assert messages.problems() == []


def test_the_catalogues_load_and_differ() -> None:
    catalogues = Catalogues()
    assert set(catalogues.translations) == set(LANGUAGES)
    assert catalogues.translator("zh-CN")("Sign in") == "登录"
    assert catalogues.translator("en")("Sign in") == "Sign in"


@pytest.mark.parametrize(
    ("kind", "vocabulary"),
    [
        ("category", Category),
        ("risk_level", RiskLevel),
        ("gender", Gender),
        ("guardianship", Guardianship),
        ("need", Need),
        ("flag", Flag),
        ("volunteer_kind", VolunteerKind),
        ("screening_step", ScreeningStep),
    ],
)
def test_every_value_of_a_vocabulary_has_a_label(kind: str, vocabulary: object) -> None:
    assert set(LABELS[kind]) == set(get_args(vocabulary))

"""The volunteers pages' pure pieces: the registry's reasons a volunteer may not be paired, read as labelled codes,
and expiries marked as expired or soon."""

from __future__ import annotations

from datetime import date

import pytest

from services.console.labels import LABELS
from services.console.pages.volunteers import expiry_state, reason_of


@pytest.mark.parametrize(
    ("reason", "code", "step", "on"),
    [
        ("application: not done", "not_done", "application", None),
        ("record_check: failed", "failed", "record_check", None),
        ("interview: expired on 2025-01-31", "expired", "interview", "2025-01-31"),
        ("references: passed without an expiry date", "no_expiry", "references", None),
        ("training: none current", "no_current_training", None, None),
        ("personal data erased", "erased", None, None),
        ("something new: the registry says more", None, None, None),
        ("unknown_step: not done", None, None, None),
    ],
)
def test_each_reason_of_the_registry_is_read_as_a_labelled_code(
    reason: str, code: str | None, step: str | None, on: str | None
) -> None:
    read = reason_of(reason)
    assert (read["code"], read["step"], read["on"], read["text"]) == (code, step, on, reason)
    if code is not None:
        assert code in LABELS["volunteer_reason"]


def test_every_reason_label_takes_the_step_and_date_it_is_given() -> None:
    for text in LABELS["volunteer_reason"].values():
        assert text % {"step": "S", "date": "D"}


@pytest.mark.parametrize(
    ("expires_at", "state"),
    [
        (None, None),
        ("2025-03-01", "expired"),  # on the day itself it no longer counts, as the registry reckons
        ("2025-02-01", "expired"),
        ("2025-03-02", "soon"),
        ("2025-03-31", "soon"),
        ("2025-04-01", None),
    ],
)
def test_an_expiry_is_marked_expired_on_its_day_and_soon_within_thirty_days(
    expires_at: str | None, state: str | None
) -> None:
    assert expiry_state(expires_at, date(2025, 3, 1)) == state

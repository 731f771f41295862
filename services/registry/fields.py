"""Checks on the registry's personal fields: resident ID numbers (GB 11643-1999) and phone numbers."""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated

from pydantic import AfterValidator

_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CHECK = "10X98765432"
_PHONE = re.compile(r"^(1[3-9]\d{9}|0\d{2,3}-?\d{7,8})$")


def check_id_number(value: str) -> str:
    value = value.strip().upper()
    if not re.fullmatch(r"\d{17}[\dX]", value):
        raise ValueError("an ID number has 17 digits and a check digit (0-9 or X)")
    if _CHECK[sum(int(d) * w for d, w in zip(value[:17], _WEIGHTS, strict=True)) % 11] != value[17]:
        raise ValueError("the ID number's check digit does not match")
    try:
        date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        raise ValueError("the ID number holds no valid birth date") from None
    return value


def birth_date_of(id_number: str) -> date:
    return date(int(id_number[6:10]), int(id_number[10:12]), int(id_number[12:14]))


def check_phone(value: str) -> str:
    value = value.strip().replace(" ", "")
    if not _PHONE.match(value):
        raise ValueError("a phone number is a mobile (11 digits, 1[3-9]…) or a landline with its area code (0…)")
    return value


IdNumber = Annotated[str, AfterValidator(check_id_number)]
Phone = Annotated[str, AfterValidator(check_phone)]

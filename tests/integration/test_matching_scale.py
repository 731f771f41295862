"""A county of 5,000 children and 3,000 volunteers is matched in one request, and every hard rule holds.

The time it takes is measured by `make bench`, not asserted here; the client's timeout is the request timeout a
proxy in front of the service would allow (60 s).
"""

from __future__ import annotations

from collections import Counter

import httpx
import pytest
from sqlalchemy import insert

from backbone.database import Database
from services.matching.candidates import CandidateChild, CandidateVolunteer
from services.matching.solver import QUALIFIED_KINDS
from tests.helpers import auth, county_of

XINGAN = "450325"


@pytest.mark.timer_seconds(3600)  # the rows are put in the view directly: no schedules to plan for them
async def test_a_county_of_5000_children_and_3000_volunteers_is_matched_in_one_request(
    matching: httpx.AsyncClient, database_url: str
) -> None:
    children, volunteers = county_of(5000, 3000)
    db = Database(database_url)
    try:
        async with db.begin() as conn:
            await conn.execute(insert(CandidateChild), children)
            await conn.execute(insert(CandidateVolunteer), volunteers)
    finally:
        await db.dispose()

    answer = await matching.post(
        "/matching-runs", json={"county_code": XINGAN}, headers=auth("coordinator", [XINGAN]), timeout=60
    )

    assert answer.status_code == 201, answer.text
    result = answer.json()
    proposals = result["proposals"]
    assert len(proposals) + len(result["unpaired"]) == 5000
    child = {str(c["child_id"]): c for c in children}
    volunteer = {str(v["volunteer_id"]): v for v in volunteers}
    taken = Counter(p["volunteer_id"] for p in proposals)
    assert all(taken[v] <= volunteer[v]["capacity"] for v in taken)
    assert len({p["child_id"] for p in proposals}) == len(proposals)
    for proposal in proposals:
        paired = child[proposal["child_id"]]
        if paired["risk_level"] == "high" or paired["flags"]:
            assert volunteer[proposal["volunteer_id"]]["kind"] in QUALIFIED_KINDS
    # This county has more places than children, and enough ordinary ones: every child is proposed a volunteer.
    assert sum(v["capacity"] for v in volunteers) > 5000
    assert len(proposals) == 5000
    qualified_places = sum(v["capacity"] for v in volunteers if v["kind"] in QUALIFIED_KINDS)
    high = sum(1 for c in children if c["risk_level"] == "high")
    assert result["paired"]["high"] == min(high, qualified_places)

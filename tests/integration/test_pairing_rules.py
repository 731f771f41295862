"""The pairing rules end to end, through the HTTP API, on real NATS and each database: the hard rules a run never
breaks, the pairing lifecycle, lapsing by the clock, reactions to registry events, the pairings view and the bus."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import uuid
from datetime import timedelta
from typing import Any

import httpx
from nats.aio.client import Client as NATS

from backbone.clock import SettableClock
from contracts.registry import ChildLeftProgramme, ChildPairingEligibilityChanged, ChildRiskChanged
from tests.helpers import RegistryEvents, auth, candidates, matching_run, read_stream, volunteer_eligibility, wait_until

XINGAN, OTHER_COUNTY = "450325", "450102"
COORDINATOR = auth("coordinator", [XINGAN])
TOWNSHIP, VILLAGE = "a" * 16, "b" * 16
# Where a child or volunteer lives; a volunteer this close who also speaks the child's languages fits best.
NEARBY = {"township_key": TOWNSHIP, "village_key": VILLAGE}
CLOSE = {"languages": ["zh", "zhuang"], **NEARBY}
LAPSE = timedelta(days=7)  # PROPOSAL_LAPSE_DAYS
PERSONAL_KEYS = {"name", "id_number", "phone", "township", "village", "birth_date"}


def proposed(result: dict[str, Any]) -> dict[str, str]:
    """Child id → the volunteer id proposed for it."""
    return {p["child_id"]: p["volunteer_id"] for p in result["proposals"]}


def unpaired(result: dict[str, Any]) -> dict[str, str]:
    """Child id → why it was left unpaired."""
    return {u["child_id"]: u["reason"] for u in result["unpaired"]}


async def pairing(matching: httpx.AsyncClient, pairing_id: str, county: str = XINGAN) -> dict[str, Any]:
    answer = await matching.get(f"/pairings/{pairing_id}", headers=auth("coordinator", [county]))
    assert answer.status_code == 200, answer.text
    found: dict[str, Any] = answer.json()
    return found


async def reaches(matching: httpx.AsyncClient, pairing_id: str, status: str, county: str = XINGAN) -> dict[str, Any]:
    """Wait until the pairing is in `status` (a timer or a reaction moves it), and return it."""

    async def there() -> bool:
        return (await pairing(matching, pairing_id, county))["status"] == status

    await wait_until(there, what=f"pairing {pairing_id} to be {status}")
    return await pairing(matching, pairing_id, county)


async def confirm(matching: httpx.AsyncClient, pairing_id: str) -> httpx.Response:
    return await matching.post(f"/pairings/{pairing_id}/confirm", headers=COORDINATOR)


async def confirmed(matching: httpx.AsyncClient, pairing_id: str) -> None:
    answer = await confirm(matching, pairing_id)
    assert answer.status_code == 200, answer.text


async def close(matching: httpx.AsyncClient, pairing_id: str, reason: str) -> httpx.Response:
    return await matching.post(f"/pairings/{pairing_id}/close", json={"reason": reason}, headers=COORDINATOR)


async def decline(matching: httpx.AsyncClient, pairing_id: str, declined_by: str, reason: str) -> httpx.Response:
    body = {"declined_by": declined_by, "reason": reason}
    return await matching.post(f"/pairings/{pairing_id}/decline", json=body, headers=COORDINATOR)


# Hard rules.


async def test_only_eligible_volunteers_of_the_childs_county_are_proposed(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    child = await registry_events.child("low", needs=["tutoring"], languages=["zh"], **NEARBY)
    fits = {"skills": ["tutoring"], **CLOSE}
    await registry_events.volunteer(eligible=False, capacity=5, **fits)
    await registry_events.volunteer(county=OTHER_COUNTY, capacity=5, **fits)
    # Eligible when registered, then not (a check or training expired).
    expired = await registry_events.volunteer(capacity=5, **fits)
    await candidates(matching, "volunteers", 1)
    await registry_events.emit(volunteer_eligibility(expired, False))
    await candidates(matching, "volunteers", 2, eligible=False)
    await candidates(matching, "volunteers", 1, county=OTHER_COUNTY)
    await candidates(matching, "children", 1)

    result = await matching_run(matching)

    assert result["proposals"] == []
    assert unpaired(result) == {str(child): "no_eligible_volunteer"}


async def test_capacity_counts_proposed_and_confirmed_pairings(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    volunteer = await registry_events.volunteer(capacity=1)
    children = {str(await registry_events.child("low")) for _ in range(2)}
    await candidates(matching, "children", 2)
    await candidates(matching, "volunteers", 1)

    first = await matching_run(matching)

    (proposal,) = first["proposals"]
    assert proposal["volunteer_id"] == str(volunteer)
    (left,) = children - {proposal["child_id"]}
    assert unpaired(first)[left] in {"all_at_capacity", "places_went_to_others"}

    # The proposal holds the volunteer's only place: a second run proposes nobody for them.
    second = await matching_run(matching)

    assert second["proposals"] == []
    assert unpaired(second) == {left: "all_at_capacity"}

    # Confirmed, the pairing still holds the place.
    await confirmed(matching, proposal["pairing_id"])
    third = await matching_run(matching)

    assert third["proposals"] == []
    assert unpaired(third) == {left: "all_at_capacity"}


async def test_a_run_with_no_place_left_reports_a_child_who_speaks_a_home_language(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    """Every volunteer full (or none eligible), and a child who speaks Zhuang: the run still reports the child."""
    await registry_events.volunteer(capacity=1, languages=["zh", "zhuang"])
    await registry_events.child("low", languages=["zh", "zhuang"])
    await candidates(matching, "children", 1)
    await candidates(matching, "volunteers", 1)
    assert len((await matching_run(matching))["proposals"]) == 1
    waiting = await registry_events.child("low", languages=["zh", "zhuang"])
    await candidates(matching, "children", 2)

    answer = await matching.post("/matching-runs", json={"county_code": XINGAN}, headers=COORDINATOR)

    assert answer.status_code == 201, answer.text
    assert unpaired(answer.json()) == {str(waiting): "all_at_capacity"}


async def test_a_child_with_an_open_pairing_is_not_proposed_again(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    child = await registry_events.child("low", **NEARBY)
    await registry_events.volunteer()
    await candidates(matching, "children", 1)
    await candidates(matching, "volunteers", 1)
    (proposal,) = (await matching_run(matching))["proposals"]
    # A second volunteer with free places, fitting the child better than the first.
    await registry_events.volunteer(capacity=3, **CLOSE)
    await candidates(matching, "volunteers", 2)

    while_proposed = await matching_run(matching)
    named = await matching_run(matching, child_ids=[str(child)])

    assert while_proposed["proposals"] == []
    assert named["proposals"] == []

    await confirmed(matching, proposal["pairing_id"])
    while_confirmed = await matching_run(matching, child_ids=[str(child)])

    assert while_confirmed["proposals"] == []


async def test_a_high_risk_child_or_flagged_family_gets_only_a_social_worker_or_child_director(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    high = await registry_events.child("high", needs=["tutoring"], **CLOSE)
    flagged = await registry_events.child("low", needs=["tutoring"], flags=["drug_involved_family"], **CLOSE)
    plain = await registry_events.child("low", **CLOSE)
    not_eligible = await registry_events.child("low", eligible=False, **CLOSE)
    caring_parent = await registry_events.volunteer("caring_parent", capacity=4, skills=["tutoring"], **CLOSE)
    await candidates(matching, "children", 3)
    await candidates(matching, "children", 1, eligible=False)
    await candidates(matching, "volunteers", 1)

    only_a_caring_parent = await matching_run(matching)

    assert proposed(only_a_caring_parent) == {str(plain): str(caring_parent)}
    assert unpaired(only_a_caring_parent) == {
        str(high): "no_qualified_volunteer",
        str(flagged): "no_qualified_volunteer",
        str(not_eligible): "child_not_eligible",
    }

    # A social worker far away, sharing nothing with the children: still the only one they may have.
    social_worker = await registry_events.volunteer("social_worker", capacity=2, township_key="c" * 16)
    await candidates(matching, "volunteers", 2)

    with_a_social_worker = await matching_run(matching)

    assert proposed(with_a_social_worker) == {str(high): str(social_worker), str(flagged): str(social_worker)}
    assert unpaired(with_a_social_worker) == {str(not_eligible): "child_not_eligible"}


async def test_a_declined_pair_and_a_pair_closed_for_a_safeguarding_concern_are_never_proposed_again(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    volunteer = await registry_events.volunteer(capacity=2, **CLOSE)
    turned_down = await registry_events.child("low", **CLOSE)
    concern = await registry_events.child("low", **CLOSE)
    await candidates(matching, "children", 2)
    await candidates(matching, "volunteers", 1)
    first = {p["child_id"]: p["pairing_id"] for p in (await matching_run(matching))["proposals"]}
    assert set(first) == {str(turned_down), str(concern)}
    assert (await decline(matching, first[str(turned_down)], "guardian", "guardian_preference")).status_code == 200
    await confirmed(matching, first[str(concern)])
    assert (await close(matching, first[str(concern)], "safeguarding_concern")).status_code == 200

    everyone = await matching_run(matching)
    named = await matching_run(matching, child_ids=[str(turned_down), str(concern)])

    for result in (everyone, named):
        assert result["proposals"] == []
        assert unpaired(result) == {str(turned_down): "only_declined_pairs", str(concern): "only_declined_pairs"}
    # The volunteer's places are free: anyone else is proposed to them.
    newcomer = await registry_events.child("low")
    await candidates(matching, "children", 3)
    assert proposed(await matching_run(matching)) == {str(newcomer): str(volunteer)}


async def test_the_last_place_goes_to_the_higher_risk_child_even_if_the_other_fits_better(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    social_worker = await registry_events.volunteer("social_worker", capacity=1, skills=["tutoring"], **CLOSE)
    high = await registry_events.child("high")
    medium = await registry_events.child("medium", needs=["tutoring"], **CLOSE)
    await candidates(matching, "children", 2)
    await candidates(matching, "volunteers", 1)

    result = await matching_run(matching)

    assert proposed(result) == {str(high): str(social_worker)}
    assert unpaired(result) == {str(medium): "places_went_to_others"}
    assert result["paired"] == {"high": 1, "medium": 0, "low": 0}


# The lifecycle.


async def test_a_pairing_moves_only_along_its_transitions_and_a_decline_says_who_and_why(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    volunteer = await registry_events.volunteer(capacity=2)
    for _ in range(2):
        await registry_events.child("low")
    await candidates(matching, "children", 2)
    await candidates(matching, "volunteers", 1)
    first, second = (await matching_run(matching))["proposals"]

    closing_a_proposal = await close(matching, first["pairing_id"], "goals_met")
    assert closing_a_proposal.status_code == 409
    assert closing_a_proposal.json()["error"]["code"] == "pairing_proposed"

    done = await confirm(matching, first["pairing_id"])
    assert done.status_code == 200
    assert done.json()["status"] == "confirmed"

    again = await confirm(matching, first["pairing_id"])
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "pairing_confirmed"
    declining_it = await decline(matching, first["pairing_id"], "volunteer", "availability")
    assert declining_it.status_code == 409
    assert declining_it.json()["error"]["code"] == "pairing_confirmed"
    assert (await pairing(matching, first["pairing_id"]))["status"] == "confirmed"

    declined = await decline(matching, second["pairing_id"], "child", "child_preference")

    assert declined.status_code == 200, declined.text
    record = await pairing(matching, second["pairing_id"])
    assert record["status"] == "declined"
    assert record["declined_by"] == "child"
    assert record["reason"] == "child_preference"
    view = await matching.get(
        "/views/pairings", params={"county_code": XINGAN, "status": "declined"}, headers=COORDINATOR
    )
    (item,) = view.json()["items"]
    assert item["pairing_id"] == second["pairing_id"]
    assert (item["child_id"], item["volunteer_id"]) == (second["child_id"], str(volunteer))
    assert (item["declined_by"], item["reason"]) == ("child", "child_preference")


async def lapsing_timer_ticked(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock, county: str = OTHER_COUNTY
) -> None:
    """Wait for a tick of the lapsing timer that looked at the clock as it stands now: a proposal made in `county` with
    the clock set back by a whole lapse period and a minute, just now, lapses at the first such tick."""
    now = clock.now()
    clock.set(now - LAPSE - timedelta(minutes=1))
    try:
        await registry_events.child("low", county=county)
        await registry_events.volunteer(county=county)
        await candidates(matching, "children", 1, county=county)
        await candidates(matching, "volunteers", 1, county=county)
        (proposal,) = (await matching_run(matching, county))["proposals"]
    finally:
        clock.set(now)
    await reaches(matching, proposal["pairing_id"], "lapsed", county)


async def test_a_lapsed_or_closed_pair_may_be_proposed_again_a_closed_one_for_continuity(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    child = await registry_events.child("low", township_key=TOWNSHIP)
    volunteer = await registry_events.volunteer()
    await candidates(matching, "children", 1)
    await candidates(matching, "volunteers", 1)
    (proposal,) = (await matching_run(matching))["proposals"]
    clock.advance(timedelta(days=6))
    await lapsing_timer_ticked(matching, registry_events, clock)
    assert (await pairing(matching, proposal["pairing_id"]))["status"] == "proposed"

    clock.advance(timedelta(days=2))

    await reaches(matching, proposal["pairing_id"], "lapsed")
    late = await confirm(matching, proposal["pairing_id"])
    assert late.status_code == 409
    assert late.json()["error"]["code"] == "pairing_lapsed"

    (after_lapse,) = (await matching_run(matching))["proposals"]

    assert (after_lapse["child_id"], after_lapse["volunteer_id"]) == (str(child), str(volunteer))
    assert after_lapse["score_parts"] == {}
    await confirmed(matching, after_lapse["pairing_id"])
    closed = await close(matching, after_lapse["pairing_id"], "child_moved")
    assert closed.status_code == 200
    assert (closed.json()["status"], closed.json()["reason"]) == ("closed", "child_moved")
    # A newcomer from the child's township fits less (3) than the volunteer the child knows (continuity, 4).
    await registry_events.volunteer(township_key=TOWNSHIP)
    await candidates(matching, "volunteers", 2)

    (rematch,) = (await matching_run(matching, child_ids=[str(child)]))["proposals"]

    assert rematch["volunteer_id"] == str(volunteer)
    assert rematch["score_parts"] == {"continuity": 4}
    assert rematch["score"] == 4


# Reactions to the registry.


async def test_a_volunteer_losing_eligibility_suspends_confirmed_pairings_and_withdraws_proposals(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    volunteer = await registry_events.volunteer(capacity=2)
    for _ in range(2):
        await registry_events.child("low")
    await candidates(matching, "children", 2)
    await candidates(matching, "volunteers", 1)
    under_way, open_proposal = (p["pairing_id"] for p in (await matching_run(matching))["proposals"])
    await confirmed(matching, under_way)

    await registry_events.emit(volunteer_eligibility(volunteer, False))
    await candidates(matching, "volunteers", 1, eligible=False)

    # Whether or not the reaction has withdrawn the proposal yet, it can no longer be confirmed.
    assert (await confirm(matching, open_proposal)).status_code == 409
    suspended = await reaches(matching, under_way, "suspended")
    assert suspended["reason"] == "volunteer_ineligible"
    withdrawn = await reaches(matching, open_proposal, "withdrawn")
    assert withdrawn["reason"] == "volunteer_ineligible"

    await registry_events.emit(volunteer_eligibility(volunteer, True))

    resumed = await reaches(matching, under_way, "confirmed")
    assert resumed["reason"] is None
    assert (await pairing(matching, open_proposal))["status"] == "withdrawn"


async def test_a_child_leaving_closes_and_a_child_losing_eligibility_suspends_their_pairing(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    await registry_events.volunteer(capacity=2)
    leaving = await registry_events.child("low")
    consent_withdrawn = await registry_events.child("low")
    await candidates(matching, "children", 2)
    await candidates(matching, "volunteers", 1)
    ids = {p["child_id"]: p["pairing_id"] for p in (await matching_run(matching))["proposals"]}
    for pairing_id in ids.values():
        await confirmed(matching, pairing_id)

    await registry_events.emit(
        ChildLeftProgramme(child_id=leaving, reason="moved"),
        ChildPairingEligibilityChanged(child_id=consent_withdrawn, eligible=False),
    )

    closed = await reaches(matching, ids[str(leaving)], "closed")
    assert closed["reason"] == "child_left_programme"
    suspended = await reaches(matching, ids[str(consent_withdrawn)], "suspended")
    assert suspended["reason"] == "child_ineligible"


async def test_a_pairing_suspended_for_both_sides_stays_suspended_until_both_are_eligible_again(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    volunteer = await registry_events.volunteer(capacity=2)
    consent_withdrawn = await registry_events.child("low")
    await registry_events.child("low")
    await candidates(matching, "children", 2)
    await candidates(matching, "volunteers", 1)
    ids = {p["child_id"]: p["pairing_id"] for p in (await matching_run(matching))["proposals"]}
    for pairing_id in ids.values():
        await confirmed(matching, pairing_id)
    await registry_events.emit(volunteer_eligibility(volunteer, False))
    for pairing_id in ids.values():
        await reaches(matching, pairing_id, "suspended")
    # While the pairings are on hold, one child's guardian withdraws consent: that child may not be paired either.
    await registry_events.emit(ChildPairingEligibilityChanged(child_id=consent_withdrawn, eligible=False))
    await candidates(matching, "children", 1, eligible=False)

    await registry_events.emit(volunteer_eligibility(volunteer, True))

    (other,) = set(ids) - {str(consent_withdrawn)}
    await reaches(matching, ids[other], "confirmed")  # the same event resumes both, in one transaction
    on_hold = await pairing(matching, ids[str(consent_withdrawn)])
    assert on_hold["status"] == "suspended", "resumed although the child may not be paired"
    assert on_hold["reason"] == "child_ineligible"  # what stands in the way now, for the coordinator


async def test_a_risk_rising_to_high_suspends_a_pairing_with_a_caring_parent(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    await registry_events.volunteer()
    child = await registry_events.child("medium")
    await candidates(matching, "children", 1)
    await candidates(matching, "volunteers", 1)
    (proposal,) = (await matching_run(matching))["proposals"]
    await confirmed(matching, proposal["pairing_id"])

    await registry_events.emit(
        ChildRiskChanged(child_id=child, county_code=XINGAN, previous_risk_level="medium", risk_level="high")
    )

    held = await reaches(matching, proposal["pairing_id"], "suspended")
    assert held["reason"] == "volunteer_not_qualified"
    await registry_events.emit(
        ChildRiskChanged(child_id=child, county_code=XINGAN, previous_risk_level="high", risk_level="medium")
    )
    await reaches(matching, proposal["pairing_id"], "confirmed")


async def test_a_rematch_names_known_children_of_the_county_only(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    await registry_events.volunteer(capacity=2)
    paired = await registry_events.child("low")
    elsewhere = await registry_events.child("low", county=OTHER_COUNTY)
    await candidates(matching, "children", 1)
    await candidates(matching, "children", 1, county=OTHER_COUNTY)
    await candidates(matching, "volunteers", 1)
    await matching_run(matching)

    unknown = await matching.post(
        "/matching-runs", json={"county_code": XINGAN, "child_ids": [str(elsewhere)]}, headers=COORDINATOR
    )
    assert unknown.status_code == 422
    assert unknown.json()["error"]["code"] == "unknown_children"
    assert unknown.json()["error"]["details"]["child_ids"] == [str(elsewhere)]
    empty = await matching.post("/matching-runs", json={"county_code": XINGAN, "child_ids": []}, headers=COORDINATOR)
    assert empty.status_code == 422
    again = await matching_run(matching, child_ids=[str(paired)])
    assert again["proposals"] == []
    assert unpaired(again) == {str(paired): "has_open_pairing"}


async def test_runs_at_the_same_time_as_proposals_lapse_all_succeed_and_propose_each_child_once(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, clock: SettableClock
) -> None:
    for _ in range(3):
        await registry_events.volunteer(capacity=2)
    for _ in range(6):
        await registry_events.child("low")
    await candidates(matching, "children", 6)
    await candidates(matching, "volunteers", 3)
    assert len((await matching_run(matching))["proposals"]) == 6
    clock.advance(timedelta(days=8))  # every proposal is due to lapse: each run lapses them, as does the timer

    answers = await asyncio.gather(
        *(matching.post("/matching-runs", json={"county_code": XINGAN}, headers=COORDINATOR) for _ in range(3))
    )

    assert [a.status_code for a in answers] == [201, 201, 201]
    assert sum(len(a.json()["proposals"]) for a in answers) == 6
    open_now = await matching.get(
        "/views/pairings", params={"county_code": XINGAN, "status": "proposed"}, headers=COORDINATOR
    )
    assert open_now.json()["total"] == 6


# The pairings view and the bus.


async def test_the_pairings_view_filters_exports_and_keeps_to_the_county(
    matching: httpx.AsyncClient, registry_events: RegistryEvents
) -> None:
    first_volunteer = await registry_events.volunteer(capacity=2, **CLOSE)
    second_volunteer = await registry_events.volunteer(capacity=1)
    children = [await registry_events.child("low", **CLOSE) for _ in range(3)]
    await candidates(matching, "children", 3)
    await candidates(matching, "volunteers", 2)
    proposals = {p["child_id"]: p for p in (await matching_run(matching))["proposals"]}
    assert len(proposals) == 3
    await confirmed(matching, proposals[str(children[0])]["pairing_id"])

    async def view(**params: object) -> dict[str, Any]:
        answer = await matching.get("/views/pairings", params={"county_code": XINGAN, **params}, headers=COORDINATOR)
        assert answer.status_code == 200, answer.text
        page: dict[str, Any] = answer.json()
        return page

    assert (await view())["total"] == 3
    (only_confirmed,) = (await view(status="confirmed"))["items"]
    assert only_confirmed["child_id"] == str(children[0])
    assert (await view(status="proposed"))["total"] == 2
    assert (await view(status="declined"))["total"] == 0
    of_second = await view(volunteer_id=str(second_volunteer))
    assert {item["volunteer_id"] for item in of_second["items"]} == {str(second_volunteer)}
    assert of_second["total"] == 1
    assert (await view(volunteer_id=str(first_volunteer)))["total"] == 2
    (of_child,) = (await view(child_id=str(children[1])))["items"]
    assert of_child["pairing_id"] == proposals[str(children[1])]["pairing_id"]
    assert (await view(child_id=str(uuid.uuid4())))["total"] == 0

    export = await matching.get("/views/pairings/export", params={"county_code": XINGAN}, headers=COORDINATOR)
    assert export.status_code == 200
    assert export.headers["content-type"].startswith("text/csv")
    assert export.content.startswith("\ufeff".encode())
    lines = export.content.decode("utf-8-sig").splitlines()
    assert lines[0].startswith("pairing_id,run_id,child_id,volunteer_id,county_code")
    assert len(lines) == 4
    exported = list(csv.DictReader(io.StringIO(export.content.decode("utf-8-sig"))))
    assert {row["pairing_id"] for row in exported} == {p["pairing_id"] for p in proposals.values()}
    assert {row["status"] for row in exported} == {"confirmed", "proposed"}

    stranger = auth("coordinator", [OTHER_COUNTY])
    params = {"county_code": XINGAN}
    assert (await matching.get("/views/pairings", params=params, headers=stranger)).status_code == 403
    assert (await matching.get("/views/pairings/export", params=params, headers=stranger)).status_code == 403
    one = proposals[str(children[1])]["pairing_id"]
    assert (await matching.get(f"/pairings/{one}", headers=stranger)).status_code == 403
    assert (await matching.post(f"/pairings/{one}/confirm", headers=stranger)).status_code == 403


async def test_runs_and_confirmations_are_on_the_bus_without_personal_data(
    matching: httpx.AsyncClient, registry_events: RegistryEvents, nc: NATS
) -> None:
    await registry_events.child("low", **CLOSE)
    await registry_events.volunteer(**CLOSE)
    await candidates(matching, "children", 1)
    await candidates(matching, "volunteers", 1)
    (proposal,) = (await matching_run(matching))["proposals"]
    await confirmed(matching, proposal["pairing_id"])
    js = nc.jetstream()

    async def published() -> bool:
        return (await js.stream_info("MATCHING")).state.messages >= 4

    await wait_until(published, what="the relay to publish the schedule, the run and the confirmation")
    messages = await read_stream(js, "MATCHING")

    assert sorted(m.subject for m in messages) == [
        "matching.child.visit_due",  # the child's visit schedule, planned when matching heard of the child
        "matching.pairing.confirmed",
        "matching.pairing.proposed",
        "matching.run.completed",
    ]
    envelopes = [json.loads(m.data) for m in messages]
    assert {e["data"]["pairing_id"] for e in envelopes if "pairing_id" in e["data"]} == {proposal["pairing_id"]}
    for envelope in envelopes:
        assert not _keys(envelope) & PERSONAL_KEYS, envelope


def _keys(value: object) -> set[str]:
    """Every key of every mapping nested in a JSON value."""
    if isinstance(value, dict):
        return set(value).union(*(_keys(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_keys(item) for item in value))
    return set()

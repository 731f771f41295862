"""The matching run's optimiser: an optimal assignment of children to volunteers' free places, explained.

Pure: children and volunteers in, proposals and the reasons for every child left unpaired out. The objective is
lexicographic: as many high-risk children paired as possible, then medium, then low, then the greatest total fit.
It is solved exactly as one maximum-weight assignment (SciPy's `linear_sum_assignment`) in which each risk tier
outweighs everything below it; the weights are whole numbers kept below 2**53, so floating point adds them exactly.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import get_args

import numpy as np
import numpy.typing as npt
from scipy.optimize import linear_sum_assignment

from contracts.matching import UnpairedReason
from contracts.vocabulary import Need, RiskLevel

RISK_LEVELS: tuple[RiskLevel, ...] = ("high", "medium", "low")
QUALIFIED_KINDS = frozenset({"social_worker", "child_director"})
MANDARIN = "zh"  # the programme's working language: sharing only it counts for less than a home language

# Points for each part of a pair's fit; a proposal reports the parts it earned.
SAME_TOWNSHIP = 3
SAME_VILLAGE = 2
PER_NEED_MET = 2
SHARED_HOME_LANGUAGE = 2
SHARED_MANDARIN = 1
CONTINUITY = 4
NEEDS: tuple[str, ...] = get_args(Need)
MAX_FIT = SAME_TOWNSHIP + SAME_VILLAGE + PER_NEED_MET * len(NEEDS) + SHARED_HOME_LANGUAGE + CONTINUITY
EXACT = 2**53  # every integer below this is a float64 exactly

Matrix = npt.NDArray[np.int16]


class TooLarge(ValueError):
    """The instance's weights would not add exactly in floating point: run the county in parts."""


@dataclass(frozen=True)
class ChildCase:
    """A child of the county who may be paired now (the registry says eligible, no open pairing)."""

    child_id: uuid.UUID
    risk_level: RiskLevel
    needs: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    flags: frozenset[str] = frozenset()
    township_key: str | None = None
    village_key: str | None = None
    barred: frozenset[uuid.UUID] = frozenset()  # declined before, or closed for a safeguarding concern
    earlier: frozenset[uuid.UUID] = frozenset()  # volunteers the child was paired with before

    @property
    def needs_qualified(self) -> bool:
        """High risk, or a special-case family: only a social worker or a child director."""
        return self.risk_level == "high" or bool(self.flags)


@dataclass(frozen=True)
class VolunteerCase:
    """An eligible volunteer of the county and the places they have left (capacity less open pairings)."""

    volunteer_id: uuid.UUID
    kind: str
    free: int
    skills: frozenset[str] = frozenset()
    languages: frozenset[str] = frozenset()
    township_key: str | None = None
    village_key: str | None = None

    @property
    def qualified(self) -> bool:
        return self.kind in QUALIFIED_KINDS


@dataclass(frozen=True)
class Proposal:
    child_id: uuid.UUID
    volunteer_id: uuid.UUID
    risk_level: RiskLevel
    score: int
    score_parts: dict[str, int]


@dataclass(frozen=True)
class Unpaired:
    child_id: uuid.UUID
    reason: UnpairedReason


@dataclass(frozen=True)
class Solution:
    proposals: list[Proposal]
    unpaired: list[Unpaired]
    paired: dict[RiskLevel, int] = field(default_factory=dict)

    @property
    def fit(self) -> int:
        return sum(p.score for p in self.proposals)


def fit_parts(child: ChildCase, volunteer: VolunteerCase) -> dict[str, int]:
    """Why this pair fits: only the parts that earned points."""
    parts: dict[str, int] = {}
    if child.township_key and child.township_key == volunteer.township_key:
        parts["same_township"] = SAME_TOWNSHIP
        if child.village_key and child.village_key == volunteer.village_key:
            parts["same_village"] = SAME_VILLAGE
    if met := len(child.needs & volunteer.skills):
        parts["needs_met"] = PER_NEED_MET * met
    shared = child.languages & volunteer.languages
    if shared - {MANDARIN}:
        parts["shared_language"] = SHARED_HOME_LANGUAGE
    elif shared:
        parts["shared_language"] = SHARED_MANDARIN
    if volunteer.volunteer_id in child.earlier:
        parts["continuity"] = CONTINUITY
    return parts


def tier_weights(counts: dict[RiskLevel, int], places: int) -> dict[RiskLevel, int]:
    """Weights so that one more child of a tier outweighs any change below it: one more low-risk child beats all
    fit, one more medium beats every low-risk child plus all fit, one more high beats all medium and below."""
    low = min(sum(counts.values()), places) * MAX_FIT + 1
    medium = (counts.get("low", 0) + 1) * low
    high = (counts.get("medium", 0) + 1) * medium
    if (counts.get("high", 0) + 1) * high >= EXACT:
        raise TooLarge("the county is too large to solve exactly in one run")
    return {"high": high, "medium": medium, "low": low}


def solve(children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]) -> Solution:
    """The optimal proposals, deterministic for the same children and volunteers in any order."""
    children = sorted(children, key=lambda c: c.child_id)
    volunteers = sorted(volunteers, key=lambda v: v.volunteer_id)
    with_places = [v for v in volunteers if v.free > 0]
    fit, feasible = _pair_matrices(children, with_places)
    reachable = feasible.any(axis=1)
    rows = np.flatnonzero(reachable)
    columns = np.repeat(np.arange(len(with_places)), [v.free for v in with_places])
    proposals: list[Proposal] = []
    if len(rows) and len(columns):
        counts = {level: sum(1 for i in rows if children[i].risk_level == level) for level in RISK_LEVELS}
        weights = tier_weights(counts, len(columns))
        weight = np.array([weights[children[i].risk_level] for i in rows], dtype=np.float64)
        # Costs (negated gains), built in place: one float matrix of children by places, no copies of it.
        cost = fit[np.ix_(rows, columns)].astype(np.float64)
        cost += weight[:, None]
        cost *= feasible[np.ix_(rows, columns)]  # zero: "not paired", what a disallowed pair amounts to
        np.negative(cost, out=cost)
        for row, column in zip(*linear_sum_assignment(cost), strict=True):
            if cost[row, column] < 0:
                child, volunteer = children[rows[row]], with_places[columns[column]]
                parts = fit_parts(child, volunteer)
                proposals.append(
                    Proposal(child.child_id, volunteer.volunteer_id, child.risk_level, sum(parts.values()), parts)
                )
    proposed = {p.child_id for p in proposals}
    unpaired = _reasons([c for c in children if c.child_id not in proposed], volunteers)
    paired = {level: sum(1 for p in proposals if p.risk_level == level) for level in RISK_LEVELS}
    return Solution(sorted(proposals, key=lambda p: p.child_id), unpaired, paired)


def _reasons(children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]) -> list[Unpaired]:
    """Why each of these children was left unpaired, the first reason that holds."""
    qualified = any(v.qualified for v in volunteers)
    with_places = frozenset(v.volunteer_id for v in volunteers if v.free > 0)
    qualified_with_places = frozenset(v.volunteer_id for v in volunteers if v.free > 0 and v.qualified)
    reasons: list[Unpaired] = []
    for child in children:
        places = qualified_with_places if child.needs_qualified else with_places
        reason: UnpairedReason
        if not volunteers:
            reason = "no_eligible_volunteer"
        elif child.needs_qualified and not qualified:
            reason = "no_qualified_volunteer"
        elif not places:
            reason = "all_at_capacity"
        elif places <= child.barred:
            reason = "only_declined_pairs"
        else:
            reason = "places_went_to_others"
        reasons.append(Unpaired(child.child_id, reason))
    return reasons


def _pair_matrices(
    children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]
) -> tuple[Matrix, npt.NDArray[np.bool_]]:
    """Every pair's fit (as `fit_parts` sums it) and whether the hard rules allow it, computed a column at a time
    for the whole county at once."""
    n, m = len(children), len(volunteers)
    places = _codes([c.township_key for c in children] + [v.township_key for v in volunteers])
    villages = _codes([c.village_key for c in children] + [v.village_key for v in volunteers])
    fit = np.zeros((n, m), dtype=np.int16)  # MAX_FIT is small; a county's matrix stays small too
    same_township = (places[:n, None] == places[None, n:]) & (places[:n, None] >= 0)
    fit += SAME_TOWNSHIP * same_township
    fit += SAME_VILLAGE * (same_township & (villages[:n, None] == villages[None, n:]) & (villages[:n, None] >= 0))
    needs = np.array([_mask(c.needs) for c in children], dtype=np.int64).reshape(n)
    skills = np.array([_mask(v.skills) for v in volunteers], dtype=np.int64).reshape(m)
    fit += PER_NEED_MET * _POPCOUNT[np.bitwise_and.outer(needs, skills)]
    shared_home = np.zeros((n, m), dtype=bool)
    for language in sorted({lang for c in children for lang in c.languages} - {MANDARIN}):
        shared_home |= np.outer(_has(language, children), _has(language, volunteers))
    shared_mandarin = np.outer(_has(MANDARIN, children), _has(MANDARIN, volunteers))
    fit += np.where(shared_home, SHARED_HOME_LANGUAGE, np.where(shared_mandarin, SHARED_MANDARIN, 0)).astype(np.int16)
    qualified = np.array([v.qualified for v in volunteers], dtype=bool).reshape(m)
    needs_qualified = np.array([c.needs_qualified for c in children], dtype=bool).reshape(n)
    feasible = qualified[None, :] | ~needs_qualified[:, None]
    column = {v.volunteer_id: j for j, v in enumerate(volunteers)}
    for i, child in enumerate(children):
        for volunteer_id in child.barred:
            if volunteer_id in column:
                feasible[i, column[volunteer_id]] = False
        for volunteer_id in child.earlier:
            if volunteer_id in column:
                fit[i, column[volunteer_id]] += CONTINUITY
    return fit, feasible


def _codes(keys: Sequence[str | None]) -> npt.NDArray[np.int64]:
    """Each distinct key as a number; a missing key is -1 and equals nothing."""
    numbers: dict[str, int] = {}
    return np.array([numbers.setdefault(key, len(numbers)) if key else -1 for key in keys], dtype=np.int64)


def _has(language: str, people: Sequence[ChildCase] | Sequence[VolunteerCase]) -> npt.NDArray[np.bool_]:
    """Who speaks `language`, as a vector (of the right length and type even when there is nobody)."""
    return np.fromiter((language in person.languages for person in people), dtype=bool, count=len(people))


def _mask(needs: frozenset[str]) -> int:
    return sum(1 << NEEDS.index(need) for need in needs if need in NEEDS)


_POPCOUNT = np.array([bin(mask).count("1") for mask in range(1 << len(NEEDS))], dtype=np.int64)

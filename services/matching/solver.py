"""The matching run's optimiser: an optimal assignment of children to volunteers' free places, explained.

Pure: children and volunteers in, proposals and the reasons for every child left unpaired out. The objective is
lexicographic: as many high-risk children paired as possible, then medium, then low, then the greatest total fit.
It is solved exactly as one maximum-weight assignment in which each risk tier outweighs everything below it; the
weights are whole numbers kept below 2**53, so floating point adds them exactly. The assignment is solved over
candidate pairs (SciPy's sparse `min_weight_full_bipartite_matching`) and proven optimal over every allowed pair by
whole-number duals (`_assign`), so a county of thousands needs a byte per pair, not a float per child and place.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import get_args

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_array
from scipy.sparse.csgraph import min_weight_full_bipartite_matching

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

Matrix = npt.NDArray[np.int8]  # fits, 0 to MAX_FIT (in the solver, -1 for a pair the hard rules do not allow)
assert MAX_FIT < 128, "a fit must fit in a byte"
assert len(NEEDS) <= 16, "needs are the bits of a uint16"
BLOCK_CELLS = 1 << 19  # pairs per block of rows when building or checking the matrices: 4 MB as 64-bit numbers
FIRST_CANDIDATES = 64  # each child's best volunteers are the first candidates; others only where they could help


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
    proposals: list[Proposal] = []
    if children and with_places:
        assigned = _assign(children, with_places)
        for i in np.flatnonzero(assigned >= 0):
            child, volunteer = children[i], with_places[assigned[i]]
            parts = fit_parts(child, volunteer)
            proposals.append(
                Proposal(child.child_id, volunteer.volunteer_id, child.risk_level, sum(parts.values()), parts)
            )
    proposed = {p.child_id for p in proposals}
    unpaired = _reasons([c for c in children if c.child_id not in proposed], volunteers)
    paired = {level: sum(1 for p in proposals if p.risk_level == level) for level in RISK_LEVELS}
    return Solution(sorted(proposals, key=lambda p: p.child_id), unpaired, paired)


def _assign(children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]) -> npt.NDArray[np.int64]:
    """Each child's volunteer in an optimal assignment (an index into `volunteers`), or -1.

    The gain of a pair is its child's tier weight plus its fit; no place may be overused. Few of a county's pairs
    can be in an optimal assignment, so it is solved over candidate pairs only, and proven optimal over all of them:
    solve exactly over the candidates (SciPy's sparse `min_weight_full_bipartite_matching`, one column per place and
    one "left unpaired" column per child), derive whole-number duals that certify that optimum (`_prices`), then
    check every allowed pair against them (`_violations`). A pair the duals do not cover could improve the
    assignment: it becomes a candidate and the candidates are solved again. When no pair is left uncovered, the
    duals prove the assignment optimal over every allowed pair (linear programming duality, in whole numbers).
    Memory: a byte per pair of child and volunteer, plus the candidates; no float matrix of children by places."""
    score = _scores(children, volunteers)
    allowed_any = (score.max(axis=1) >= 0).tolist()
    reachable = [c.risk_level for c, allowed in zip(children, allowed_any, strict=True) if allowed]
    assigned = np.full(len(children), -1, dtype=np.int64)
    if not reachable:
        return assigned
    counts = {level: reachable.count(level) for level in RISK_LEVELS}
    capacity = np.minimum(np.array([v.free for v in volunteers], dtype=np.int64), len(reachable))
    weights = tier_weights(counts, int(capacity.sum()))
    tier = np.array([weights[c.risk_level] for c in children], dtype=np.int64)
    # No assignment and no prices yet: the first candidates are each child's best pairs.
    base = np.zeros(len(children), dtype=np.int64)
    prices = np.zeros(len(volunteers), dtype=np.int64)
    candidates = np.zeros(0, dtype=np.int64)
    limit = FIRST_CANDIDATES
    while (more := _violations(score, tier, assigned, base, prices, limit)) is not None:
        candidates = np.sort(np.concatenate((candidates, more)))  # new: every candidate is covered by the duals
        assigned = _restricted_optimum(candidates, score, tier, capacity)
        prices, base = _prices(candidates, score, tier, capacity, assigned)
        limit *= 2  # rarely needed more than once; doubling bounds the rounds however contested the county
    return assigned


def _restricted_optimum(
    candidates: npt.NDArray[np.int64], score: Matrix, tier: npt.NDArray[np.int64], capacity: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """The optimal assignment using only the candidate pairs (`child * volunteers + volunteer`, in order): each
    volunteer's places are columns, and each child has a column of their own, last in its row, that leaves them
    unpaired. Costs are `top - gain` (whole numbers below 2**53, none zero; every child takes exactly one column,
    so the constant changes nothing)."""
    n, m = score.shape
    child, volunteer = np.divmod(candidates, m)
    places = int(capacity.sum())
    top = float(tier.max() + MAX_FIT + 1)
    repeats = capacity[volunteer]
    pairs = int(repeats.sum())
    indptr = np.zeros(n + 1, dtype=np.int64)
    np.cumsum(np.bincount(child, weights=repeats, minlength=n).astype(np.int64) + 1, out=indptr[1:])
    own = np.zeros(pairs + n, dtype=bool)
    own[indptr[1:] - 1] = True
    place = ~own
    data = np.empty(pairs + n, dtype=np.float64)
    data[own] = top
    data[place] = np.repeat(top - (tier[child] + score[child, volunteer]), repeats)
    indices = np.empty(pairs + n, dtype=np.int32)
    indices[own] = places + np.arange(n, dtype=np.int32)
    first_place = (np.cumsum(capacity) - capacity).astype(np.int32)
    start = (np.cumsum(repeats) - repeats).astype(np.int32)
    indices[place] = np.repeat(first_place[volunteer] - start, repeats) + np.arange(pairs, dtype=np.int32)
    del child, volunteer, repeats, own, place, start
    rows, columns = min_weight_full_bipartite_matching(csr_array((data, indices, indptr), shape=(n, places + n)))
    del data, indices
    owner = np.repeat(np.arange(m), capacity)
    assigned = np.full(n, -1, dtype=np.int64)
    paired = columns < places
    assigned[rows[paired]] = owner[columns[paired]]
    return assigned


def _prices(
    candidates: npt.NDArray[np.int64],
    score: Matrix,
    tier: npt.NDArray[np.int64],
    capacity: npt.NDArray[np.int64],
    assigned: npt.NDArray[np.int64],
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """Whole-number duals proving `assigned` optimal over the candidate pairs: a price per volunteer's place (zero
    where a place is left free) and each child's fit where assigned. A child's share is its gain less its
    volunteer's price (nothing if unpaired); each candidate pair's gain is at most its child's share plus its
    volunteer's price. The least such prices are the longest paths of moving an assigned child to another of its
    candidates, from the gains of unpaired children; they exist exactly when the assignment is optimal."""
    n, m = score.shape
    child, volunteer = np.divmod(candidates, m)
    fit = score[child, volunteer].astype(np.int64)
    paired = assigned >= 0
    base = np.zeros(n, dtype=np.int64)
    base[paired] = score[np.flatnonzero(paired), assigned[paired]]
    prices = np.zeros(m, dtype=np.int64)
    unpaired = ~paired[child]
    np.maximum.at(prices, volunteer[unpaired], tier[child[unpaired]] + fit[unpaired])
    moves = paired[child] & (assigned[child] != volunteer)
    order = np.argsort(volunteer[moves], kind="stable")
    source = assigned[child[moves]][order]
    target = volunteer[moves][order]
    gain = (fit[moves] - base[child[moves]])[order]
    del child, volunteer, fit, unpaired, moves, order
    heads = np.flatnonzero(np.concatenate(([True], target[1:] != target[:-1]))) if len(target) else target
    targets = target[heads]
    room = np.bincount(assigned[paired], minlength=m) < capacity
    for _ in range(m + 1):  # Bellman-Ford: settled within m rounds unless a cycle gains (the assignment is not optimal)
        if (prices[room] > 0).any():
            break
        raised = prices.copy()
        if len(heads):
            raised[targets] = np.maximum(prices[targets], np.maximum.reduceat(prices[source] + gain, heads))
        if np.array_equal(raised, prices):
            if (prices[assigned[paired]] <= tier[paired] + base[paired]).all():
                return prices, base
            break
        prices = raised
    raise TooLarge("the assignment could not be proven optimal: its weights did not add exactly")


def _violations(
    score: Matrix,
    tier: npt.NDArray[np.int64],
    assigned: npt.NDArray[np.int64],
    base: npt.NDArray[np.int64],
    prices: npt.NDArray[np.int64],
    limit: int,
) -> npt.NDArray[np.int64] | None:
    """The allowed pairs whose gain exceeds their child's share plus their volunteer's price (at most `limit` of a
    child's, the most exceeding), as `child * volunteers + volunteer`; None if there are none: the duals cover every
    allowed pair, and the assignment is optimal over all of them. Checked a block of rows at a time."""
    n, m = score.shape
    # gain - share - price = fit + (price of the child's volunteer - its fit there, or the tier if unpaired) - price
    offset = np.where(assigned >= 0, prices[np.maximum(assigned, 0)] - base, tier)
    found = []
    step = max(1, BLOCK_CELLS // m)
    for lo in range(0, n, step):
        block = score[lo : lo + step]
        excess = block.astype(np.int64)
        excess += offset[lo : lo + step, None]
        excess -= prices
        excess[block < 0] = 0
        rows = np.flatnonzero((excess > 0).any(axis=1))
        if not len(rows):
            continue
        excess = excess[rows]
        if limit < m:
            best = np.argpartition(excess, m - limit, axis=1)[:, m - limit :]
        else:
            best = np.broadcast_to(np.arange(m), excess.shape)
        keep = np.take_along_axis(excess, best, axis=1) > 0
        found.append(((lo + rows)[:, None] * m + best)[keep])
    return np.concatenate(found) if found else None


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
    """Every pair's fit (as `fit_parts` sums it) and whether the hard rules allow it, for the whole county at once:
    one byte per pair each."""
    fit = _fits(children, volunteers)
    needs_qualified, qualified, barred = _rules(children, volunteers)
    feasible = qualified[None, :] | ~needs_qualified[:, None]
    feasible[barred] = False
    return fit, feasible


def _scores(children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]) -> Matrix:
    """Every pair's fit, and -1 where the hard rules do not allow the pair: one byte per pair in all."""
    score = _fits(children, volunteers)
    needs_qualified, qualified, barred = _rules(children, volunteers)
    score[np.ix_(needs_qualified, ~qualified)] = -1
    score[barred] = -1
    return score


def _fits(children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]) -> Matrix:
    """Every pair's fit, computed a block of rows at a time (no temporary larger than a block)."""
    n, m = len(children), len(volunteers)
    places = _codes([c.township_key for c in children] + [v.township_key for v in volunteers])
    villages = _codes([c.village_key for c in children] + [v.village_key for v in volunteers])
    needs = np.array([_mask(c.needs) for c in children], dtype=np.uint16).reshape(n)
    skills = np.array([_mask(v.skills) for v in volunteers], dtype=np.uint16).reshape(m)
    # The points for language, for each pair of language sets the county has (a few), then looked up per pair.
    spoken: dict[frozenset[str], int] = {}
    understood: dict[frozenset[str], int] = {}
    speaks = np.array([spoken.setdefault(c.languages, len(spoken)) for c in children], dtype=np.intp).reshape(n)
    understands = np.array([understood.setdefault(v.languages, len(understood)) for v in volunteers], dtype=np.intp)
    points = np.zeros((len(spoken), len(understood)), dtype=np.int8)
    for a, child_languages in enumerate(spoken):
        for b, volunteer_languages in enumerate(understood):
            shared = child_languages & volunteer_languages
            points[a, b] = SHARED_HOME_LANGUAGE if shared - {MANDARIN} else SHARED_MANDARIN if shared else 0
    fit = np.empty((n, m), dtype=np.int8)
    step = max(1, BLOCK_CELLS // max(m, 1))
    for lo in range(0, n, step):
        hi = min(n, lo + step)
        block = fit[lo:hi]
        np.take(points[speaks[lo:hi]], understands.reshape(m), axis=1, out=block)
        same = places[lo:hi, None] == places[None, n:]
        same &= places[lo:hi, None] >= 0
        block += same * np.int8(SAME_TOWNSHIP)
        same &= villages[lo:hi, None] == villages[None, n:]
        same &= villages[lo:hi, None] >= 0
        block += same * np.int8(SAME_VILLAGE)
        block += _POPCOUNT[needs[lo:hi, None] & skills[None, :]] * np.int8(PER_NEED_MET)
    column = {v.volunteer_id: j for j, v in enumerate(volunteers)}
    for i, child in enumerate(children):
        for volunteer_id in child.earlier:
            if volunteer_id in column:
                fit[i, column[volunteer_id]] += CONTINUITY
    return fit


def _rules(
    children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]
) -> tuple[npt.NDArray[np.bool_], npt.NDArray[np.bool_], tuple[npt.NDArray[np.intp], npt.NDArray[np.intp]]]:
    """The hard rules: which children need a qualified volunteer, which volunteers are qualified, and the barred
    pairs (row and column indices)."""
    needs_qualified = np.array([c.needs_qualified for c in children], dtype=bool).reshape(len(children))
    qualified = np.array([v.qualified for v in volunteers], dtype=bool).reshape(len(volunteers))
    column = {v.volunteer_id: j for j, v in enumerate(volunteers)}
    pairs = [(i, column[v]) for i, child in enumerate(children) for v in child.barred if v in column]
    rows = np.array([i for i, _ in pairs], dtype=np.intp)
    columns = np.array([j for _, j in pairs], dtype=np.intp)
    return needs_qualified, qualified, (rows, columns)


def _codes(keys: Sequence[str | None]) -> npt.NDArray[np.int64]:
    """Each distinct key as a number; a missing key is -1 and equals nothing."""
    numbers: dict[str, int] = {}
    return np.array([numbers.setdefault(key, len(numbers)) if key else -1 for key in keys], dtype=np.int64)


def _mask(needs: frozenset[str]) -> int:
    return sum(1 << NEEDS.index(need) for need in needs if need in NEEDS)


_POPCOUNT = np.array([bin(mask).count("1") for mask in range(1 << len(NEEDS))], dtype=np.int8)

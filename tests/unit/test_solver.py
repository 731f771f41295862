"""The matching run's optimiser: optimal against an independent solver, exhaustively right on tiny counties, better
than greedy, faithful to every hard rule and to the lexicographic priority, deterministic. Pure: no database, no bus."""

from __future__ import annotations

import random
import uuid
from collections import Counter
from collections.abc import Sequence

import numpy as np
import pytest
from scipy.optimize import Bounds, LinearConstraint, milp
from scipy.sparse import csr_array

from services.matching import solver
from services.matching.solver import ChildCase, Solution, VolunteerCase, fit_parts, solve

RANK = {"high": 3, "medium": 2, "low": 1}
LANGUAGES = [frozenset({"zh"}), frozenset({"zh", "zhuang"}), frozenset({"zhuang"}), frozenset({"zh", "yao"})]
FLAGS = ["drug_involved_family", "cross_border_marriage_family"]
KINDS = ["caring_parent", "association_volunteer", "cadre", "social_worker", "child_director"]
KIND_WEIGHTS = [70, 5, 5, 12, 8]
TOWNSHIPS = [f"{n:016x}" for n in range(1, 5)]
VILLAGES = [f"{n:016x}" for n in range(0xA0, 0xA6)]  # shared across townships: a village counts only with its township
TOWN, OTHER_TOWN, VILLAGE = TOWNSHIPS[0], TOWNSHIPS[1], VILLAGES[0]


# ----------------------------------------------------------------------------------------------------------------
# Builders


def allowed(c: ChildCase, v: VolunteerCase) -> bool:
    """The hard rules between one child and one volunteer, as the issue states them (independent of the solver)."""
    needs_qualified = c.risk_level == "high" or bool(c.flags)
    return (v.kind in ("social_worker", "child_director") or not needs_qualified) and v.volunteer_id not in c.barred


def ident(n: int) -> uuid.UUID:
    return uuid.UUID(int=n)


def child(n: int, risk: str = "low", **fields: object) -> ChildCase:
    return ChildCase(child_id=ident(n), risk_level=risk, **fields)  # type: ignore[arg-type]


def volunteer(n: int, kind: str = "caring_parent", free: int = 1, **fields: object) -> VolunteerCase:
    return VolunteerCase(volunteer_id=ident(n), kind=kind, free=free, **fields)  # type: ignore[arg-type]


def place(rng: random.Random, pool: Sequence[str]) -> str | None:
    return None if rng.random() < 0.1 else rng.choice(pool)


def random_county(
    seed: int, n_children: int, n_volunteers: int, max_free: int = 3, qualified_share: float = 0.2
) -> tuple[list[ChildCase], list[VolunteerCase]]:
    rng = random.Random(seed)
    weights = [
        *(w * (1 - qualified_share) / 80 for w in KIND_WEIGHTS[:3]),
        *(w * qualified_share / 20 for w in KIND_WEIGHTS[3:]),
    ]
    volunteers = [
        VolunteerCase(
            volunteer_id=uuid.UUID(int=rng.getrandbits(128)),
            kind=rng.choices(KINDS, weights)[0],
            free=rng.randint(0, max_free),
            skills=frozenset(rng.sample(solver.NEEDS, rng.randint(0, 3))),
            languages=rng.choice(LANGUAGES),
            township_key=place(rng, TOWNSHIPS),
            village_key=place(rng, VILLAGES),
        )
        for _ in range(n_volunteers)
    ]
    ids = [v.volunteer_id for v in volunteers]
    children = [
        ChildCase(
            child_id=uuid.UUID(int=rng.getrandbits(128)),
            risk_level=rng.choices(["high", "medium", "low"], [3, 3, 4])[0],  # type: ignore[arg-type]
            needs=frozenset(rng.sample(solver.NEEDS, rng.randint(0, 3))),
            languages=rng.choice(LANGUAGES),
            flags=frozenset({rng.choice(FLAGS)}) if rng.random() < 0.05 else frozenset(),
            township_key=place(rng, TOWNSHIPS),
            village_key=place(rng, VILLAGES),
            barred=frozenset(rng.sample(ids, min(len(ids), rng.randint(0, 2)))),
            earlier=frozenset(rng.sample(ids, min(len(ids), rng.randint(0, 2)))),
        )
        for _ in range(n_children)
    ]
    return children, volunteers


def fit(c: ChildCase, v: VolunteerCase) -> int:
    return sum(fit_parts(c, v).values())


def pairs_of(solution: Solution) -> list[tuple[uuid.UUID, uuid.UUID]]:
    return [(p.child_id, p.volunteer_id) for p in solution.proposals]


def reasons_of(solution: Solution) -> dict[uuid.UUID, str]:
    return {u.child_id: u.reason for u in solution.unpaired}


def key_of(solution: Solution) -> tuple[int, int, int, int]:
    return (solution.paired["high"], solution.paired["medium"], solution.paired["low"], solution.fit)


def assert_feasible_and_explained(
    solution: Solution, children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]
) -> None:
    """Every proposal allowed and scored as `fit_parts` says, no place overused, every child accounted for once,
    and every "places went to higher priority" true: each allowed volunteer with places is full, of children at
    least as much at risk."""
    by_child = {c.child_id: c for c in children}
    by_volunteer = {v.volunteer_id: v for v in volunteers}
    proposed = [p.child_id for p in solution.proposals]
    assert len(proposed) == len(set(proposed))
    unpaired = [u.child_id for u in solution.unpaired]
    assert len(unpaired) == len(set(unpaired))
    assert set(proposed).isdisjoint(unpaired)
    assert set(proposed) | set(unpaired) == set(by_child)
    holders: dict[uuid.UUID, list[ChildCase]] = {}
    for p in solution.proposals:
        c, v = by_child[p.child_id], by_volunteer[p.volunteer_id]
        assert allowed(c, v)
        assert p.risk_level == c.risk_level
        assert p.score_parts == fit_parts(c, v)
        assert p.score == sum(p.score_parts.values()) == fit(c, v)
        holders.setdefault(v.volunteer_id, []).append(c)
    for volunteer_id, held in holders.items():
        assert len(held) <= by_volunteer[volunteer_id].free
    assert solution.paired == {level: sum(p.risk_level == level for p in solution.proposals) for level in RANK}
    assert solution.fit == sum(p.score for p in solution.proposals)
    for u in solution.unpaired:
        c = by_child[u.child_id]
        open_places = [v for v in volunteers if v.free > 0 and allowed(c, v)]
        if u.reason == "places_went_to_others":
            assert open_places
            for v in open_places:
                held = holders.get(v.volunteer_id, [])
                assert len(held) == v.free
                assert all(RANK[h.risk_level] >= RANK[c.risk_level] for h in held)
        else:
            assert not open_places, (u, "left unpaired with an allowed free place")


# ----------------------------------------------------------------------------------------------------------------
# 1. Optimal against an independent, sequential (stage by stage) MILP


def lexicographic_milp(
    children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]
) -> tuple[dict[str, int], int]:
    """Maximise paired high, fix it; medium, fix it; low, fix it; then total fit. Binary x[c, v] per allowed pair."""
    pairs = [(i, j) for i, c in enumerate(children) for j, v in enumerate(volunteers) if allowed(c, v)]
    n = len(pairs)
    if not n:
        return dict.fromkeys(RANK, 0), 0
    columns = np.arange(n)
    per_child = csr_array((np.ones(n), ([i for i, _ in pairs], columns)), shape=(len(children), n))
    per_volunteer = csr_array((np.ones(n), ([j for _, j in pairs], columns)), shape=(len(volunteers), n))
    constraints = [
        LinearConstraint(per_child, 0, 1),
        LinearConstraint(per_volunteer, 0, np.array([v.free for v in volunteers], dtype=float)),
    ]
    options = {"mip_rel_gap": 0, "presolve": True}

    def maximise(gain: np.ndarray) -> int:
        result = milp(-gain, constraints=constraints, integrality=np.ones(n), bounds=Bounds(0, 1), options=options)
        assert result.success, result.message
        value = -result.fun
        assert abs(value - round(value)) < 1e-6
        return round(value)

    counts: dict[str, int] = {}
    for level in ("high", "medium", "low"):
        is_level = np.array([children[i].risk_level == level for i, _ in pairs], dtype=float)
        counts[level] = maximise(is_level)
        constraints.append(LinearConstraint(is_level[None, :], counts[level], counts[level]))
    gains = np.array([fit(children[i], volunteers[j]) for i, j in pairs], dtype=float)
    return counts, maximise(gains)


@pytest.mark.parametrize(
    ("seed", "n_children", "n_volunteers"), [(1, 200, 100), (2, 250, 120), (3, 300, 150), (4, 240, 110)]
)
def test_optimal_against_a_sequential_milp(seed: int, n_children: int, n_volunteers: int) -> None:
    children, volunteers = random_county(seed, n_children, n_volunteers)
    solution = solve(children, volunteers)
    counts, best_fit = lexicographic_milp(children, volunteers)
    assert solution.paired == counts
    assert solution.fit == best_fit
    assert_feasible_and_explained(solution, children, volunteers)
    # The county really is contested: not everyone can be paired, at every level of risk.
    assert solution.unpaired
    assert {p.risk_level for p in solution.proposals} == set(RANK)
    assert {"places_went_to_others"} <= set(reasons_of(solution).values())


# ----------------------------------------------------------------------------------------------------------------
# 2. Exhaustive on tiny counties


def brute_force(children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]) -> tuple[tuple[int, ...], int]:
    """The best (high, medium, low, fit) over every feasible assignment, and the most children any pairs."""
    free = [v.free for v in volunteers]
    best: list[tuple[int, ...]] = [(0, 0, 0, 0)]
    most = [0]

    def walk(i: int, high: int, medium: int, low: int, total_fit: int) -> None:
        if i == len(children):
            best[0] = max(best[0], (high, medium, low, total_fit))
            most[0] = max(most[0], high + medium + low)
            return
        walk(i + 1, high, medium, low, total_fit)
        c = children[i]
        for j, v in enumerate(volunteers):
            if free[j] > 0 and allowed(c, v):
                free[j] -= 1
                walk(
                    i + 1,
                    high + (c.risk_level == "high"),
                    medium + (c.risk_level == "medium"),
                    low + (c.risk_level == "low"),
                    total_fit + fit(c, v),
                )
                free[j] += 1

    walk(0, 0, 0, 0, 0)
    return best[0], most[0]


@pytest.mark.parametrize("seed", range(60))
def test_tiny_counties_reach_the_best_assignment_there_is(seed: int) -> None:
    rng = random.Random(1000 + seed)
    children, volunteers = random_county(
        2000 + seed, rng.randint(1, 6), rng.randint(0, 4), max_free=2, qualified_share=0.4
    )
    solution = solve(children, volunteers)
    best, most = brute_force(children, volunteers)
    assert key_of(solution) == best
    # Risk first never costs a child: the children a county can pair form a matroid, priority picks a largest set.
    assert sum(solution.paired.values()) == most
    assert_feasible_and_explained(solution, children, volunteers)


# ----------------------------------------------------------------------------------------------------------------
# 3. Greedy by fit is not enough


def greedy_by_pair(children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]) -> set[uuid.UUID]:
    """Take allowed pairs best fit first while the child is free and the volunteer has a place."""
    free = {v.volunteer_id: v.free for v in volunteers}
    paired: set[uuid.UUID] = set()
    ranked = sorted(
        ((fit(c, v), c, v) for c in children for v in volunteers if allowed(c, v)),
        key=lambda t: -t[0],
    )
    for _, c, v in ranked:
        if c.child_id not in paired and free[v.volunteer_id] > 0:
            paired.add(c.child_id)
            free[v.volunteer_id] -= 1
    return paired


def greedy_by_child(children: Sequence[ChildCase], volunteers: Sequence[VolunteerCase]) -> set[uuid.UUID]:
    """Each child in turn takes their best allowed volunteer with a place left."""
    free = {v.volunteer_id: v.free for v in volunteers}
    paired: set[uuid.UUID] = set()
    for c in children:
        options = [v for v in volunteers if allowed(c, v) and free[v.volunteer_id] > 0]
        if options:
            best = max(options, key=lambda v: fit(c, v))
            free[best.volunteer_id] -= 1
            paired.add(c.child_id)
    return paired


def test_greedy_by_fit_strands_a_high_risk_child_the_solver_pairs() -> None:
    skills, languages = frozenset({"tutoring"}), frozenset({"zh", "zhuang"})
    worker = volunteer(
        11, "social_worker", 1, township_key=TOWN, village_key=VILLAGE, skills=skills, languages=languages
    )
    parent = volunteer(12, "caring_parent", 1, township_key=OTHER_TOWN, languages=frozenset({"yao"}))
    low = child(1, "low", township_key=TOWN, village_key=VILLAGE, needs=skills, languages=frozenset({"zhuang"}))
    high = child(2, "high", languages=frozenset({"zh"}))
    children, volunteers = [low, high], [worker, parent]
    assert fit(low, worker) > fit(high, worker) > fit(low, parent) == 0
    assert not allowed(high, parent)

    assert high.child_id not in greedy_by_pair(children, volunteers)
    assert high.child_id not in greedy_by_child(children, volunteers)

    solution = solve(children, volunteers)
    assert sorted(pairs_of(solution)) == [(low.child_id, parent.volunteer_id), (high.child_id, worker.volunteer_id)]
    assert solution.unpaired == []
    assert solution.paired == {"high": 1, "medium": 0, "low": 1}


# ----------------------------------------------------------------------------------------------------------------
# 4. The hard rules


PERFECT = {
    "township_key": TOWN,
    "village_key": VILLAGE,
    "languages": frozenset({"zhuang"}),
}


def perfect_volunteer(n: int, kind: str = "caring_parent", free: int = 1) -> VolunteerCase:
    return volunteer(n, kind, free, skills=frozenset(solver.NEEDS), **PERFECT)


def needy_child(n: int, risk: str = "low", **fields: object) -> ChildCase:
    return child(n, risk, needs=frozenset(solver.NEEDS), **{**PERFECT, **fields})


@pytest.mark.parametrize("kind", ["social_worker", "child_director"])
def test_a_high_risk_child_goes_only_to_a_qualified_volunteer(kind: str) -> None:
    c = needy_child(1, "high")
    qualified = volunteer(20, kind, 1)  # fits nothing
    unqualified = [perfect_volunteer(n, k) for n, k in enumerate(KINDS[:3], start=10)]
    assert all(fit(c, v) > fit(c, qualified) for v in unqualified)
    solution = solve([c], [*unqualified, qualified])
    assert pairs_of(solution) == [(c.child_id, qualified.volunteer_id)]


@pytest.mark.parametrize("flag", FLAGS)
@pytest.mark.parametrize("risk", ["medium", "low"])
def test_a_flagged_family_child_goes_only_to_a_qualified_volunteer(flag: str, risk: str) -> None:
    c = needy_child(1, risk, flags=frozenset({flag}))
    director = volunteer(20, "child_director", 1)
    parent = perfect_volunteer(10)
    assert solve([c], [parent, director]).proposals[0].volunteer_id == director.volunteer_id
    alone = solve([c], [parent])
    assert alone.proposals == []
    assert reasons_of(alone) == {c.child_id: "no_qualified_volunteer"}


def test_an_unflagged_medium_child_may_go_to_a_caring_parent() -> None:
    c = needy_child(1, "medium")
    solution = solve([c], [perfect_volunteer(10), volunteer(20, "social_worker")])
    assert pairs_of(solution) == [(c.child_id, ident(10))]


def test_a_volunteer_never_takes_more_children_than_places_left() -> None:
    favourite = perfect_volunteer(10, free=1)
    other = volunteer(20, free=5)
    children = [needy_child(n, "low") for n in (1, 2, 3)]
    solution = solve(children, [favourite, other])
    assert Counter(p.volunteer_id for p in solution.proposals) == {favourite.volunteer_id: 1, other.volunteer_id: 2}


def test_a_volunteer_with_two_places_takes_two() -> None:
    children = [needy_child(n, "low") for n in (1, 2, 3)]
    solution = solve(children, [perfect_volunteer(10, free=2)])
    assert len(solution.proposals) == 2
    assert list(reasons_of(solution).values()) == ["places_went_to_others"]


def test_a_barred_pair_is_never_proposed_even_as_the_best_fit() -> None:
    declined = perfect_volunteer(10, "social_worker")
    other = volunteer(20, "child_director")
    c = needy_child(1, "high", barred=frozenset({declined.volunteer_id}), earlier=frozenset({declined.volunteer_id}))
    assert fit(c, declined) == solver.MAX_FIT > fit(c, other)
    assert pairs_of(solve([c], [declined, other])) == [(c.child_id, other.volunteer_id)]


def test_a_child_whose_only_volunteer_is_barred_is_unpaired_as_only_declined_pairs() -> None:
    c = needy_child(1, "medium", barred=frozenset({ident(10)}))
    solution = solve([c], [perfect_volunteer(10, free=3), volunteer(20, free=0)])
    assert solution.proposals == []
    assert reasons_of(solution) == {c.child_id: "only_declined_pairs"}


def test_a_volunteer_with_no_place_left_is_never_proposed() -> None:
    c = needy_child(1, "low")
    full = perfect_volunteer(10, free=0)
    solution = solve([c], [full])
    assert solution.proposals == []
    assert reasons_of(solution) == {c.child_id: "all_at_capacity"}
    assert pairs_of(solve([c], [full, volunteer(20)])) == [(c.child_id, ident(20))]


def test_no_volunteers_at_all_is_no_eligible_volunteer() -> None:
    children = [needy_child(1, "high"), needy_child(2, "low")]
    solution = solve(children, [])
    assert solution.proposals == []
    assert reasons_of(solution) == dict.fromkeys((ident(1), ident(2)), "no_eligible_volunteer")
    assert solution.paired == {"high": 0, "medium": 0, "low": 0}


def test_a_high_risk_child_among_caring_parents_only_is_no_qualified_volunteer() -> None:
    high, low = needy_child(1, "high"), needy_child(2, "low")
    solution = solve([high, low], [perfect_volunteer(10, free=2), perfect_volunteer(11, "cadre")])
    assert [p.child_id for p in solution.proposals] == [low.child_id]
    assert reasons_of(solution) == {high.child_id: "no_qualified_volunteer"}


def test_a_medium_child_losing_the_only_place_to_a_high_risk_child() -> None:
    worker = perfect_volunteer(10, "social_worker")
    medium = needy_child(1, "medium")
    high = child(2, "high")  # fits nothing
    assert fit(medium, worker) > fit(high, worker)
    solution = solve([medium, high], [worker])
    assert pairs_of(solution) == [(high.child_id, worker.volunteer_id)]
    assert reasons_of(solution) == {medium.child_id: "places_went_to_others"}


@pytest.mark.parametrize("free", [None, 0])
def test_a_county_without_a_free_place_explains_a_home_language_speaker(free: int | None) -> None:
    """Children speaking a home language (not only Mandarin), and no volunteer with a place left."""
    c = child(1, "low", languages=frozenset({"zhuang"}))
    volunteers = [] if free is None else [volunteer(10, free=free, languages=frozenset({"zhuang"}))]
    solution = solve([c], volunteers)
    assert solution.proposals == []
    assert reasons_of(solution) == {c.child_id: "no_eligible_volunteer" if free is None else "all_at_capacity"}


def test_no_children_no_proposals() -> None:
    solution = solve([], [perfect_volunteer(10)])
    assert solution.proposals == solution.unpaired == []
    assert solution.fit == 0


# ----------------------------------------------------------------------------------------------------------------
# 5. Lexicographic priority


def test_one_more_high_risk_child_beats_a_medium_child_and_all_fit() -> None:
    """The worker is the only volunteer for the high-risk child and for the flagged medium child, who would fit
    perfectly: high wins."""
    worker = perfect_volunteer(10, "social_worker")
    high = child(1, "high")
    flagged = needy_child(2, "medium", flags=frozenset({"cross_border_marriage_family"}))
    solution = solve([high, flagged], [worker])
    assert pairs_of(solution) == [(high.child_id, worker.volunteer_id)]
    assert solution.paired == {"high": 1, "medium": 0, "low": 0}
    assert solution.fit < fit(flagged, worker)


def test_the_high_risk_child_is_paired_at_the_cost_of_a_medium_child_and_fit() -> None:
    """Without the high-risk child both medium children are paired, one perfectly; with it, one medium child loses
    their place and most of the fit goes."""
    worker = perfect_volunteer(10, "social_worker")
    parent = volunteer(20, "caring_parent", township_key=OTHER_TOWN)
    high = child(1, "high")  # only the worker may take them
    displaced = needy_child(2, "medium")  # perfect with the worker, nothing with the parent
    other = child(3, "medium", township_key=OTHER_TOWN)  # fits the parent a little, both places open to them
    assert fit(displaced, worker) > fit(other, worker)
    assert fit(other, parent) > fit(displaced, parent) == 0
    without = solve([displaced, other], [worker, parent])
    assert sorted(pairs_of(without)) == [
        (displaced.child_id, worker.volunteer_id),
        (other.child_id, parent.volunteer_id),
    ]
    solution = solve([high, displaced, other], [worker, parent])
    assert sorted(pairs_of(solution)) == [(high.child_id, worker.volunteer_id), (other.child_id, parent.volunteer_id)]
    assert solution.paired == {"high": 1, "medium": 1, "low": 0}
    assert reasons_of(solution) == {displaced.child_id: "places_went_to_others"}
    assert solution.fit < without.fit


def test_one_more_medium_child_beats_a_low_risk_child_of_much_better_fit() -> None:
    parent = perfect_volunteer(10)
    medium, low = child(1, "medium"), needy_child(2, "low")
    solution = solve([medium, low], [parent])
    assert pairs_of(solution) == [(medium.child_id, parent.volunteer_id)]
    assert reasons_of(solution) == {low.child_id: "places_went_to_others"}


def test_one_more_low_risk_child_beats_a_greater_total_fit() -> None:
    """Alone, the first child fits the first volunteer best; but the second can only go there."""
    favourite, plain = perfect_volunteer(10), volunteer(20)
    first = needy_child(1, "low")
    second = child(2, "low", barred=frozenset({plain.volunteer_id}))
    solution = solve([first, second], [favourite, plain])
    assert sorted(pairs_of(solution)) == [
        (first.child_id, plain.volunteer_id),
        (second.child_id, favourite.volunteer_id),
    ]
    assert solution.fit == 0 < fit(first, favourite)
    assert second.child_id not in greedy_by_pair([first, second], [favourite, plain])


def test_among_equals_the_better_fit_wins() -> None:
    parent = perfect_volunteer(10)
    poor, good = child(1, "medium"), needy_child(2, "medium")
    solution = solve([poor, good], [parent])
    assert pairs_of(solution) == [(good.child_id, parent.volunteer_id)]
    assert solution.fit == fit(good, parent) == solver.MAX_FIT - solver.CONTINUITY


# ----------------------------------------------------------------------------------------------------------------
# 6. Deterministic whatever the order


def test_same_county_in_any_order_gives_the_same_proposals() -> None:
    children, volunteers = random_county(7, 120, 60)
    expected = solve(children, volunteers)
    rng = random.Random(8)
    for _ in range(5):
        shuffled_children, shuffled_volunteers = children[:], volunteers[:]
        rng.shuffle(shuffled_children)
        rng.shuffle(shuffled_volunteers)
        again = solve(shuffled_children, shuffled_volunteers)
        assert pairs_of(again) == pairs_of(expected)
        assert again.unpaired == expected.unpaired


def test_ties_are_broken_the_same_way_in_any_order() -> None:
    """Interchangeable children and volunteers: many optima, always the same one."""
    children = [child(n, "medium", township_key=TOWN) for n in range(1, 13)]
    volunteers = [volunteer(n, free=2, township_key=TOWN) for n in range(100, 105)]
    expected = pairs_of(solve(children, volunteers))
    assert len(expected) == 10
    rng = random.Random(9)
    for _ in range(10):
        rng.shuffle(children)
        rng.shuffle(volunteers)
        assert pairs_of(solve(children, volunteers)) == expected


# ----------------------------------------------------------------------------------------------------------------
# 7. fit_parts


def test_same_township_scores() -> None:
    assert fit_parts(child(1, township_key=TOWN), volunteer(2, township_key=TOWN)) == {"same_township": 3}
    assert fit_parts(child(1, township_key=TOWN), volunteer(2, township_key=OTHER_TOWN)) == {}


def test_same_village_counts_only_within_the_same_township() -> None:
    c = child(1, township_key=TOWN, village_key=VILLAGE)
    assert fit_parts(c, volunteer(2, township_key=TOWN, village_key=VILLAGE)) == {"same_township": 3, "same_village": 2}
    assert fit_parts(c, volunteer(2, township_key=OTHER_TOWN, village_key=VILLAGE)) == {}
    assert fit_parts(c, volunteer(2, township_key=None, village_key=VILLAGE)) == {}


def test_missing_places_never_match() -> None:
    assert fit_parts(child(1), volunteer(2)) == {}
    assert fit_parts(child(1, township_key=TOWN), volunteer(2, township_key=TOWN)) == {"same_township": 3}
    assert fit_parts(child(1, township_key=TOWN), volunteer(2, township_key=TOWN, village_key=VILLAGE)) == {
        "same_township": 3
    }


def test_missing_places_never_match_in_the_optimiser_either() -> None:
    """Two volunteers, one place-less like the child, one in the child's township: the township one wins."""
    placeless = child(1, "low")
    solution = solve([placeless], [volunteer(10), volunteer(20, township_key=TOWN)])
    assert solution.fit == 0
    located = child(2, "low", township_key=TOWN)
    solution = solve([located], [volunteer(10), volunteer(20, township_key=TOWN)])
    assert pairs_of(solution) == [(located.child_id, ident(20))]
    assert solution.fit == solver.SAME_TOWNSHIP


def test_each_need_met_scores_two() -> None:
    c = child(1, needs=frozenset({"tutoring", "psychological", "safety"}))
    assert fit_parts(c, volunteer(2, skills=frozenset({"tutoring", "safety", "material"}))) == {"needs_met": 4}
    assert fit_parts(c, volunteer(2, skills=frozenset({"material"}))) == {}
    everything = child(1, needs=frozenset(solver.NEEDS))
    assert fit_parts(everything, volunteer(2, skills=frozenset(solver.NEEDS))) == {"needs_met": 2 * len(solver.NEEDS)}


@pytest.mark.parametrize(
    ("child_languages", "volunteer_languages", "points"),
    [
        ({"zh", "zhuang"}, {"zhuang"}, 2),
        ({"zhuang"}, {"zh", "zhuang"}, 2),
        ({"zh", "yao"}, {"zh", "yao"}, 2),
        ({"zh", "zhuang"}, {"zh", "yao"}, 1),
        ({"zh"}, {"zh"}, 1),
        ({"zhuang"}, {"zh", "yao"}, None),
        ({"zh"}, {"zhuang"}, None),
        (set(), {"zh"}, None),
    ],
)
def test_a_shared_home_language_counts_more_than_mandarin_alone(
    child_languages: set[str], volunteer_languages: set[str], points: int | None
) -> None:
    parts = fit_parts(
        child(1, languages=frozenset(child_languages)), volunteer(2, languages=frozenset(volunteer_languages))
    )
    assert parts.get("shared_language") == points
    assert set(parts) <= {"shared_language"}


def test_an_earlier_volunteer_scores_continuity() -> None:
    c = child(1, earlier=frozenset({ident(2)}))
    assert fit_parts(c, volunteer(2)) == {"continuity": 4}
    assert fit_parts(c, volunteer(3)) == {}


def test_every_part_together_is_max_fit() -> None:
    c = needy_child(1, earlier=frozenset({ident(2)}))
    assert sum(fit_parts(c, perfect_volunteer(2)).values()) == solver.MAX_FIT


# ----------------------------------------------------------------------------------------------------------------
# 8. Tier weights


def test_tier_weights_refuse_a_county_too_large_to_add_exactly() -> None:
    with pytest.raises(solver.TooLarge):
        solver.tier_weights({"high": 10**6, "medium": 10**6, "low": 10**6}, 10**6)


@pytest.mark.parametrize(
    ("counts", "places"), [({"high": 80, "medium": 90, "low": 110}, 190), ({"high": 0, "medium": 5, "low": 0}, 3)]
)
def test_each_tier_outweighs_everything_below_it(counts: dict[str, int], places: int) -> None:
    w = solver.tier_weights(counts, places)  # type: ignore[arg-type]
    all_fit = min(sum(counts.values()), places) * solver.MAX_FIT
    assert w["low"] > all_fit
    assert w["medium"] > counts["low"] * w["low"] + all_fit
    assert w["high"] > counts["medium"] * w["medium"] + counts["low"] * w["low"] + all_fit
    assert (counts["high"] + 1) * w["high"] < solver.EXACT


# ----------------------------------------------------------------------------------------------------------------
# 9. Solved over candidate pairs, proven optimal over every allowed pair


@pytest.mark.parametrize(("seed", "n_children", "n_volunteers"), [(5, 200, 100), (6, 150, 60)])
def test_optimal_when_the_first_candidates_are_far_too_few(
    seed: int, n_children: int, n_volunteers: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One candidate volunteer per child to start with: the pairs the duals do not cover must bring in the rest."""
    monkeypatch.setattr(solver, "FIRST_CANDIDATES", 1)
    children, volunteers = random_county(seed, n_children, n_volunteers)
    solution = solve(children, volunteers)
    counts, best_fit = lexicographic_milp(children, volunteers)
    assert solution.paired == counts
    assert solution.fit == best_fit
    assert_feasible_and_explained(solution, children, volunteers)


@pytest.mark.parametrize("seed", range(30))
def test_tiny_counties_from_one_candidate_each_reach_the_best_assignment(
    seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(solver, "FIRST_CANDIDATES", 1)
    rng = random.Random(3000 + seed)
    children, volunteers = random_county(
        4000 + seed, rng.randint(1, 6), rng.randint(1, 4), max_free=3, qualified_share=0.4
    )
    assert key_of(solve(children, volunteers)) == brute_force(children, volunteers)[0]


def test_the_duals_find_the_pair_the_candidates_missed_and_refuse_an_assignment_that_is_not_optimal() -> None:
    """One place, a high-risk child and a low-risk child who fits it better. With the low-risk child's pair as the
    only candidate, the restricted optimum pairs them; the duals prove that much, and show the high-risk child's pair
    could do better. Over both pairs the high-risk child's assignment is proven optimal, the other one refused."""
    worker = perfect_volunteer(10, "social_worker")
    children, volunteers = [child(1, "high"), needy_child(2, "low")], [worker]
    score = solver._scores(children, volunteers)
    weights = solver.tier_weights({"high": 1, "medium": 0, "low": 1}, 1)
    tier = np.array([weights["high"], weights["low"]], dtype=np.int64)
    capacity = np.array([1], dtype=np.int64)
    low_only, both = np.array([1], dtype=np.int64), np.array([0, 1], dtype=np.int64)  # child * volunteers + volunteer

    assigned = solver._restricted_optimum(low_only, score, tier, capacity)
    assert assigned.tolist() == [-1, 0]
    prices, base = solver._prices(low_only, score, tier, capacity, assigned)
    missed = solver._violations(score, tier, assigned, base, prices, 2)
    assert missed is not None
    assert missed.tolist() == [0]

    assigned = solver._restricted_optimum(both, score, tier, capacity)
    assert assigned.tolist() == [0, -1]
    prices, base = solver._prices(both, score, tier, capacity, assigned)
    assert solver._violations(score, tier, assigned, base, prices, 2) is None
    with pytest.raises(solver.TooLarge):
        solver._prices(both, score, tier, capacity, np.array([-1, 0], dtype=np.int64))


def test_pair_matrices_are_every_pairs_fit_and_the_hard_rules() -> None:
    """What the bench's greedy baseline reads: a byte per pair each."""
    children, volunteers = random_county(11, 40, 30)
    fits, feasible = solver._pair_matrices(children, volunteers)
    assert fits.dtype == np.int8
    assert feasible.dtype == np.bool_
    assert fits.tolist() == [[fit(c, v) for v in volunteers] for c in children]
    assert feasible.tolist() == [[allowed(c, v) for v in volunteers] for c in children]
    assert solver._scores(children, volunteers).tolist() == np.where(feasible, fits, -1).tolist()

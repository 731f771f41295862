"""What a child's data may be processed for (PIPL Art. 28/31), decided in the registry's domain: pure, no I/O."""

from __future__ import annotations

import uuid
from dataclasses import replace

from contracts.registry import ChildPairingEligibilityChanged, ChildPurposesChanged
from services.registry.domain import PURPOSES, Child, evolve, purposes, reassess

CHILD = Child(uuid.uuid4(), "450325", "medium")


def test_under_fourteen_only_what_the_guardian_consented_to_from_fourteen_everything_erased_nothing() -> None:
    assert purposes(CHILD, 9) == ()
    assert purposes(replace(CHILD, consent=("wishes", "aid")), 13) == ("aid", "wishes")
    assert purposes(CHILD, 14) == PURPOSES == ("aid", "home_visits", "pairing", "wishes")
    assert purposes(replace(CHILD, consent=("wishes",)), 15) == PURPOSES
    assert purposes(replace(CHILD, erased=True), None) == ()


def test_reassessing_announces_the_purposes_only_when_they_change() -> None:
    consented = replace(CHILD, consent=("pairing", "home_visits"))
    events = reassess(consented, 9)
    assert events == [
        ChildPairingEligibilityChanged(child_id=CHILD.child_id, eligible=True),
        ChildPurposesChanged(child_id=CHILD.child_id, allowed=["home_visits", "pairing"]),
    ]
    state: Child | None = consented
    for event in events:
        state = evolve(state, event)
    assert reassess(state, 9) == []
    assert reassess(state, 14) == [ChildPurposesChanged(child_id=CHILD.child_id, allowed=list(PURPOSES))]
    assert reassess(CHILD, 9) == [  # none allowed is where every child starts: nothing to announce
        ChildPairingEligibilityChanged(
            child_id=CHILD.child_id, eligible=False, reasons=["under 14: no guardian consent to pairing"]
        )
    ]

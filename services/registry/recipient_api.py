"""HTTP route for services to look up where people are reached (the notifications service, at send time): contact
details never travel on the bus, and no person's or admin's token reads them here."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from backbone.auth import Principal
from backbone.deps import PrincipalDep, RuntimeDep
from backbone.errors import ApiError
from services.registry import recipient_handlers
from services.registry.recipients import MAX_RECIPIENTS, check, check_distinct

router = APIRouter(tags=["contacts"])

Recipient = Annotated[str, StringConstraints(max_length=64), AfterValidator(check)]


class LookupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    recipients: Annotated[
        list[Recipient],
        Field(min_length=1, max_length=MAX_RECIPIENTS),
        AfterValidator(check_distinct),
    ] = Field(
        description=f"1 to {MAX_RECIPIENTS} distinct recipients: a person's id as their token's `sub` (a "
        "volunteer's or donor's registered id, else their account id), or `county:<code>:coordinators` or "
        "`county:<code>:child_directors`"
    )


class PersonReached(BaseModel):
    recipient: str = Field(description="the recipient asked for that this entry answers: the person's id, or a group")
    person_id: str = Field(description="the person's id, as their token's `sub`")
    phone: str | None = Field(description="a mainland mobile number (11 digits, no +86), or null")
    email: str | None = Field(description="their account's email address, or null")


class LookupOut(BaseModel):
    people: list[PersonReached] = Field(description="in the order asked; a group's members oldest account first")


async def _service(runtime: RuntimeDep, principal: PrincipalDep) -> Principal:
    if principal.role != "service":
        await recipient_handlers.refused(runtime, principal)
        raise ApiError(403, "forbidden", "only a service looks up contact details", {"allowed": ["service"]})
    return principal


@router.post(
    "/contacts/lookup",
    response_model=LookupOut,
    responses={
        401: {"description": "no valid bearer token"},
        403: {"description": "the token is not a service's (admins' neither)"},
        422: {"description": "not 1 to 500 distinct recipients of the forms above (what was sent is not repeated)"},
    },
)
async def look_up(body: LookupIn, runtime: RuntimeDep, principal: Annotated[Principal, Depends(_service)]) -> LookupOut:
    """Where the people the recipients name are reached, for a service (its client-credentials token) only.

    A person's id gives their active account's entry: its login when that is a mobile number, and its email address.
    A volunteer without an active account (invited, disabled, or none) gives the phone of their registration, unless
    they were erased. A group gives one entry per active account of its role (`coordinator`, `child_director`) whose
    counties include its county. Unknown ids, invited, disabled and erased accounts give no entry: that is no error.
    Each lookup is audit-logged (`contacts_lookup`) with how many recipients and people, never who or where."""
    people = await recipient_handlers.look_up(runtime, principal, body.recipients)
    return LookupOut(people=[PersonReached.model_validate(person, from_attributes=True) for person in people])

"""HTTP route for services to look up where people are reached (the notifications service, at send time): contact
details never travel on the bus, and no person's or admin's token reads them here."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints

from backbone.auth import Principal
from backbone.deps import PrincipalDep, RuntimeDep
from backbone.errors import ApiError
from services.registry import recipient_handlers, recipients
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
        "volunteer's or donor's registered id, else their account id), `county:<code>:coordinators` or "
        "`county:<code>:child_directors`, or `link:<link_id>` (the owner of the link a `registry.link.issued` "
        "event names)"
    )


class PersonReached(BaseModel):
    recipient: str = Field(
        description="the recipient asked for that this entry answers: the person's id, a group, or `link:<link_id>`"
    )
    person_id: str = Field(description="the person's id, as their token's `sub`")
    phone: str | None = Field(description="a mainland mobile number (11 digits, no +86), or null")
    email: str | None = Field(description="their account's email address, or null")
    token: str | None = Field(
        description="for `link:<link_id>`: the link's token, to send to its owner only (the console's "
        "`/accept-invitation#<token>` or `/reset-password#<token>`); null for every other recipient"
    )
    kind: Literal["invitation", "reset"] | None = Field(
        description="for `link:<link_id>`: what the link is for; null for every other recipient"
    )


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
        403: {"description": "the token is not a service's (admins' neither); for a link, not the sending service's"},
        422: {"description": "not 1 to 500 distinct recipients of the forms above (what was sent is not repeated)"},
    },
)
async def look_up(body: LookupIn, runtime: RuntimeDep, principal: Annotated[Principal, Depends(_service)]) -> LookupOut:
    """Where the people the recipients name are reached, for a service (its client-credentials token) only.

    A person's id gives their active account's entry: its login when that is a mobile number, and its email address.
    A volunteer without an active account (invited, disabled, or none) gives the phone of their registration, unless
    they were erased. A group gives one entry per active account of its role (`coordinator`, `child_director`) whose
    counties include its county. `link:<link_id>` gives the owner of a link that can still be used (not used or
    replaced, not expired, its account not disabled or erased), invited or active, reached as an active account is,
    with the link's `token` and `kind`: what the notifications service sends them. Unknown ids, invited, disabled
    and erased accounts and dead links give no entry: that is no error. Each lookup is audit-logged
    (`contacts_lookup`) with how many recipients, people and links, never who, where or which; each link's token
    given out is logged on its own (`link_handover`, with the link's account). Links are only for the services
    LINK_READERS names (the notifications service): any other asking for one is refused, 403."""
    if recipients.link_ids(body.recipients) and not recipient_handlers.may_read_links(runtime, principal):
        await recipient_handlers.refused(runtime, principal, "not a reader of links")
        raise ApiError(403, "forbidden", "only the service that sends links looks them up", {"allowed": ["service"]})
    people = await recipient_handlers.look_up(runtime, principal, body.recipients)
    return LookupOut(people=[PersonReached.model_validate(person, from_attributes=True) for person in people])

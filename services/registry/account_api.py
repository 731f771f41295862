"""HTTP routes for accounts and sign-in: requests become account commands, refusals the project's error answers.

The client address failed sign-ins are counted by is the connection's (`request.client.host`); behind a reverse
proxy that is the proxy's, and every client shares one count. This module never reads X-Forwarded-For (anyone can
write it); uvicorn puts its address there only for a peer listed in FORWARDED_ALLOW_IPS (its default: 127.0.0.1
and ::1, a proxy on the same host).
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, BackgroundTasks, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError, model_validator
from sqlalchemy import and_, or_, select

from backbone.auth import Role
from backbone.deps import CoordinatorDep, PrincipalDep, RuntimeDep
from backbone.errors import error_response
from backbone.fields import Text
from backbone.paging import Page, Paging, fetch_page
from backbone.runtime import Runtime
from backbone.tokens import Issuer
from services.registry import account_handlers as handlers
from services.registry.account_records import AccountRecord, served_within
from services.registry.accounts import MAX_EMAIL, State, TryLater
from services.registry.domain import DomainError
from services.registry.models import KnownCounty
from services.registry.records import VolunteerRecord

_STATUS = {
    "invalid_credentials": 401,
    "invalid_client": 401,
    "invalid_refresh_token": 401,
    "no_session": 401,
    "wrong_password": 403,
    "forbidden": 403,
    "not_found": 404,
    "invalid_link": 400,
    "login_taken": 409,
    "person_has_account": 409,
    "already_active": 409,
    "not_active": 409,
    "service_account": 409,
    "not_a_service": 409,
    "service_role_fixed": 409,
    "account_erased": 409,
    "try_later": 429,
}  # any other refusal (a password too weak, a login that is none, counties for a donor): 422


class _Refusals(APIRoute):
    """Routes whose commands refuse with a DomainError: answered in the project's error shape (the message names the
    rule, never what was sent), and with Retry-After when the caller must wait."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handle(request)
            except DomainError as error:
                details = {"retry_after": error.retry_after} if isinstance(error, TryLater) else None
                response = error_response(_STATUS.get(error.code, 422), error.code, str(error), details)
                if isinstance(error, TryLater):
                    response.headers["Retry-After"] = str(error.retry_after)
                return response

        return answer


log = structlog.get_logger("registry.accounts")
router = APIRouter(tags=["accounts"], route_class=_Refusals)
Password = Annotated[str, StringConstraints(min_length=1, max_length=128)]
Login = Annotated[str, StringConstraints(min_length=1, max_length=64)]
Secret = Annotated[str, StringConstraints(min_length=1, max_length=256)]  # a token or a link's
Email = Annotated[str, StringConstraints(max_length=MAX_EMAIL)]  # its form is checked by `accounts.normal_email`


def _issuer(request: Request) -> Issuer:
    issuer: Issuer = request.app.state.issuer
    return issuer


def _address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


class SignIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: Login = Field(description="a mobile number, or an admin's or service's name")
    password: Password


class RefreshIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: Secret


class TokenOut(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"  # noqa: S105 (the OAuth 2.0 token type, no secret)
    expires_in: int = Field(description="seconds the access token is valid")
    refresh_token: str | None = Field(default=None, description="for a person's session; works once")


def _tokens(grant: handlers.Grant) -> TokenOut:
    return TokenOut(access_token=grant.access_token, expires_in=grant.expires_in, refresh_token=grant.refresh_token)


@router.post("/auth/sign-in", response_model=TokenOut, tags=["sign-in"])
async def sign_in(body: SignIn, request: Request, runtime: RuntimeDep) -> TokenOut:
    """An unknown login and a wrong password are answered alike (401 `invalid_credentials`). After 3 failures in a
    row each attempt waits 1, 2 s…, after 5 the login is locked 15 minutes, and an address with more than 20
    failures in 15 minutes waits too: 429 `try_later` with Retry-After."""
    grant = await handlers.sign_in(runtime, _issuer(request), body.login, body.password, _address(request))
    return _tokens(grant)


@router.post("/auth/refresh", response_model=TokenOut, tags=["sign-in"])
async def refresh(body: RefreshIn, request: Request, runtime: RuntimeDep) -> TokenOut:
    """A new access token and refresh token; the refresh token sent never works again, and sending it again ends
    its whole session."""
    return _tokens(await handlers.refresh(runtime, _issuer(request), body.refresh_token))


@router.post("/auth/sign-out", status_code=204, tags=["sign-in"])
async def sign_out(body: RefreshIn, runtime: RuntimeDep) -> Response:
    """End the session of this refresh token; its access tokens stay valid until they expire."""
    await handlers.sign_out(runtime, body.refresh_token)
    return Response(status_code=204)


class ClientCredentials(BaseModel):
    model_config = ConfigDict(extra="forbid")

    grant_type: Literal["client_credentials"]
    client_id: Login
    client_secret: Secret


_FORMS = ("application/x-www-form-urlencoded", "multipart/form-data")
_CREDENTIALS = ClientCredentials.model_json_schema()


@router.post(
    "/auth/token",
    response_model=TokenOut,
    tags=["sign-in"],
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {kind: {"schema": _CREDENTIALS} for kind in ("application/json", *_FORMS)},
        }
    },
)
async def client_token(request: Request, runtime: RuntimeDep) -> TokenOut:
    """A service's access token by its client credentials (OAuth 2.0 `client_credentials`), as a form or JSON; no
    refresh token: ask again before it expires."""
    form = request.headers.get("content-type", "").startswith(_FORMS)
    try:
        sent = dict(await request.form()) if form else await request.json()
    except (ValueError, RecursionError) as error:  # not JSON at all, or nested deeper than the parser goes
        problem = {"loc": ("body",), "msg": "a JSON object or a form is expected", "type": "json_invalid"}
        raise RequestValidationError([problem]) from error
    try:
        body = ClientCredentials.model_validate(sent)
    except ValidationError as error:
        problems = [{**problem, "loc": ("body", *problem["loc"])} for problem in error.errors(include_input=False)]
        raise RequestValidationError(problems) from error
    grant = await handlers.client_credentials(
        runtime, _issuer(request), body.client_id, body.client_secret, _address(request)
    )
    return _tokens(grant)


class MeOut(BaseModel):
    sub: str = Field(description="the account id; a volunteer's or donor's registered id; service:<name>")
    role: Role
    counties: list[str]
    name: str | None
    session_id: str | None


@router.get("/me", response_model=MeOut, tags=["sign-in"])
async def me(principal: PrincipalDep) -> MeOut:
    """Who the token says the caller is: what it may do until it expires."""
    return MeOut(**principal.model_dump(include={"sub", "role", "counties", "name", "session_id"}))


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Password
    new_password: Password = Field(description="10 characters at least, not a common password, hard to guess")


@router.post("/me/password", status_code=204, tags=["sign-in"])
async def change_password(
    body: PasswordChange, request: Request, runtime: RuntimeDep, principal: PrincipalDep
) -> Response:
    """A new password, the current one given; the account's other sessions end."""
    await handlers.change_password(runtime, principal, body.current_password, body.new_password, _address(request))
    return Response(status_code=204)


class LinkUse(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: Secret = Field(description="what follows # in the link")
    password: Password = Field(description="10 characters at least, not a common password, hard to guess")


@router.post("/auth/invitations/accept", status_code=204, tags=["sign-in"])
async def accept_invitation(body: LinkUse, runtime: RuntimeDep) -> Response:
    """Choose a password by an invitation link (72 hours, once); then sign in."""
    await handlers.accept_invitation(runtime, body.token, body.password)
    return Response(status_code=204)


class ResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: Login


@router.post("/auth/password-resets", status_code=202, tags=["sign-in"])
async def request_reset(body: ResetRequest, runtime: RuntimeDep, after: BackgroundTasks) -> Response:
    """Ask for a password reset: always 202, at once, whether the login exists or not (the work is done after the
    answer, so its time tells nothing either). An active account's owner who can be reached is sent a reset link by
    SMS (a mobile-number login) and email, unless a reset link of theirs still works, and three at most a day; the
    request also shows in the account list, for an admin or the county's coordinator to hand a link over."""
    after.add_task(_reset_quietly, runtime, body.login)
    return Response(status_code=202)


async def _reset_quietly(runtime: Runtime, login: str) -> None:
    """After the answer: a failure is logged by its kind alone (nothing of the login), and the asker may ask again."""
    try:
        await handlers.request_reset(runtime, login)
    except Exception as error:
        log.warning("reset_request.failed", error=type(error).__name__)


@router.post("/auth/password-resets/complete", status_code=204, tags=["sign-in"])
async def complete_reset(body: LinkUse, runtime: RuntimeDep) -> Response:
    """Choose a new password by a reset link (1 hour, once): every session of the account ends."""
    await handlers.complete_reset(runtime, body.token, body.password)
    return Response(status_code=204)


class AccountOut(BaseModel):
    id: uuid.UUID
    login: str
    name: str
    email: str | None = Field(description="where the notifications service may write to its owner")
    role: Role
    counties: list[str]
    state: State
    person_id: uuid.UUID | None
    reset_requested_at: datetime | None = Field(
        description="when its owner asked for a reset, until a new password is set by a link or one is handed over"
    )
    created_at: datetime
    updated_at: datetime
    version: int


def _out(profile: handlers.Profile) -> AccountOut:
    return AccountOut.model_validate(profile, from_attributes=True)


class HandoverOut(BaseModel):
    """Shown this once: stored only as a hash (a link) or an argon2id hash (a client secret)."""

    kind: Literal["invitation", "reset", "client_secret"]
    token: str
    path: str | None = Field(description="the console's page for a link, the token after #")
    expires_at: datetime | None
    sent: bool = Field(
        description="a link also on its way to its owner: by SMS to a mobile-number login, by email to the account's "
        "address (the notifications service sends it)"
    )


_PAGES = {"invitation": "/accept-invitation", "reset": "/reset-password"}


def _handover(handover: handlers.Handover) -> HandoverOut:
    page = _PAGES.get(handover.kind)
    path = f"{page}#{handover.token}" if page else None
    return HandoverOut.model_validate({**vars(handover), "path": path})


class AccountIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    login: Login = Field(description="a mobile number; an admin's or service's may be a name")
    name: Text = Field(description="the display name")
    role: Role
    counties: list[KnownCounty] = Field(
        default=[], max_length=50, description="a coordinator's or a child director's (one at least)"
    )
    person_id: uuid.UUID | None = Field(default=None, description="the registered volunteer or donor")
    email: Email | None = Field(
        default=None,
        description="optional: name@example.org, its domain kept in lower case; sealed with the login and name",
    )
    send_link: bool = Field(
        default=True,
        description="send the invitation to its owner by SMS (a mobile-number login) and email as well; false: "
        "whoever creates the account hands it over alone",
    )


class AccountCreated(BaseModel):
    account: AccountOut
    handover: HandoverOut = Field(description="the invitation link, or a service's client secret")


class AccountPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role | None = None
    counties: list[KnownCounty] | None = Field(default=None, max_length=50)
    name: Text | None = None
    person_id: uuid.UUID | None = None
    email: Email | None = Field(default=None, description="a new email address; null removes it")

    @model_validator(mode="after")
    def _something(self) -> AccountPatch:
        if not self.model_fields_set:
            raise ValueError("nothing to change")
        return self


@router.get("/accounts", response_model=Page[AccountOut])
async def list_accounts(
    runtime: RuntimeDep,
    principal: CoordinatorDep,
    paging: Paging,
    role: Annotated[Role | None, Query()] = None,
    state: Annotated[State | None, Query()] = None,
) -> Page[AccountOut]:
    """Admins see every account; a coordinator, the volunteer and child director accounts of their counties."""
    query = select(AccountRecord).order_by(AccountRecord.created_at, AccountRecord.id)
    if principal.role != "admin":
        query = query.outerjoin(VolunteerRecord, VolunteerRecord.id == AccountRecord.person_id).where(
            or_(
                and_(AccountRecord.role == "volunteer", VolunteerRecord.county_code.in_(principal.counties)),
                and_(AccountRecord.role == "child_director", served_within(principal.counties)),
            )
        )
    for column, value in ((AccountRecord.role, role), (AccountRecord.state, state)):
        if value is not None:
            query = query.where(column == value)
    async with runtime.db.read() as conn:
        page = await fetch_page(conn, query, paging, lambda row: row)
        items = await handlers.profiles(conn, page.items)
    return Page[AccountOut](items=[_out(p) for p in items], total=page.total, limit=page.limit, offset=page.offset)


@router.post("/accounts", status_code=201, response_model=AccountCreated)
async def create_account(body: AccountIn, runtime: RuntimeDep, principal: CoordinatorDep) -> AccountCreated:
    """An invited account and its invitation link (72 hours) to hand to its owner; a service account is active at
    once, with its client secret. A coordinator creates volunteer and child director accounts of their counties.
    An email address that is none is 422 `invalid_email` (not repeated)."""
    new = handlers.NewAccount(
        body.login, body.name, body.role, body.counties, body.person_id, body.email, body.send_link
    )
    profile, handover = await handlers.create_account(runtime, principal, new)
    return AccountCreated(account=_out(profile), handover=_handover(handover))


@router.patch("/accounts/{account_id}", response_model=AccountOut)
async def change_account(
    account_id: uuid.UUID, body: AccountPatch, runtime: RuntimeDep, principal: CoordinatorDep
) -> AccountOut:
    """A new role, counties, display name, email address (null removes it) or linked person. A new role, counties or
    person end the account's sessions: its access tokens keep the old ones until they expire (ACCESS_TOKEN_SECONDS at
    most)."""
    email = body.email if "email" in body.model_fields_set else handlers.KEEP
    change = handlers.AccountChange(body.role, body.counties, body.name, body.person_id, email)
    return _out(await handlers.change_account(runtime, principal, account_id, change))


@router.post("/accounts/{account_id}/disable", response_model=AccountOut)
async def disable_account(account_id: uuid.UUID, runtime: RuntimeDep, principal: CoordinatorDep) -> AccountOut:
    """No more sign-ins or refreshes: its sessions end now, its access tokens when they expire."""
    return _out(await handlers.disable(runtime, principal, account_id))


@router.post("/accounts/{account_id}/invitation", status_code=201, response_model=HandoverOut)
async def reinvite(account_id: uuid.UUID, runtime: RuntimeDep, principal: CoordinatorDep) -> HandoverOut:
    """A new invitation link for an invited account, or a disabled one coming back, to hand over and sent to its
    owner (`sent`); earlier links stop working."""
    return _handover(await handlers.reinvite(runtime, principal, account_id))


@router.post("/accounts/{account_id}/password-reset", status_code=201, response_model=HandoverOut)
async def reset_link(account_id: uuid.UUID, runtime: RuntimeDep, principal: CoordinatorDep) -> HandoverOut:
    """A password reset link (1 hour) for an active account, to hand to its owner and sent to them (`sent`)."""
    return _handover(await handlers.reset_link(runtime, principal, account_id))


@router.post("/accounts/{account_id}/client-secret", status_code=201, response_model=HandoverOut)
async def new_client_secret(account_id: uuid.UUID, runtime: RuntimeDep, principal: CoordinatorDep) -> HandoverOut:
    """A service account's new client secret (admins); the old one stops working at once."""
    return _handover(await handlers.new_client_secret(runtime, principal, account_id))

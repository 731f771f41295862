"""FastAPI dependencies shared by the services' routes: the runtime, the caller, role and county checks, and a view
waiting to show what a command wrote."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backbone import freshness
from backbone.auth import Principal, Role
from backbone.errors import ApiError
from backbone.freshness import FRESH, WAIT_FOR, WRITTEN
from backbone.projection import Projection
from backbone.runtime import Runtime
from backbone.tokens import InvalidToken, KeysUnavailable, TokenVerifier

_bearer = HTTPBearer(auto_error=False)


async def get_runtime(request: Request) -> Runtime:
    """A coroutine, as every dependency here: FastAPI runs a plain function in its thread pool, a thread hop."""
    runtime: Runtime = request.app.state.runtime
    return runtime


async def get_principal(
    request: Request, credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]
) -> Principal:
    if credentials is None:
        raise ApiError(401, "unauthorized", "a bearer token is required")
    verifier: TokenVerifier = request.app.state.verifier
    try:
        return await verifier.verify(credentials.credentials)
    except InvalidToken as error:
        raise ApiError(401, "unauthorized", f"the bearer token is not valid: {error}") from error
    except KeysUnavailable as error:
        raise ApiError(503, "keys_unavailable", "the token issuer's public keys cannot be read; try again") from error


RuntimeDep = Annotated[Runtime, Depends(get_runtime)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]


def admitted(role: Role, roles: tuple[Role, ...]) -> bool:
    """Whether `role` passes a check that admits `roles` (and admins; services where any role does)."""
    return role == "admin" or role in roles or (role == "service" and bool(roles))


def require(*roles: Role) -> Callable[[Principal], Coroutine[Any, Any, Principal]]:
    """A dependency that admits only the given roles (admin always). A service passes wherever any role but admin
    does: machines loading or syncing the programme's data act with their own identity, in every county, as
    `Principal.may_act_in` has it; what only an admin may do (the audit log, say) stays an admin's."""

    async def check(principal: PrincipalDep) -> Principal:
        if not admitted(principal.role, roles):
            raise ApiError(403, "forbidden", f"role {principal.role!r} may not do this", {"allowed": list(roles)})
        return principal

    return check


CoordinatorDep = Annotated[Principal, Depends(require("coordinator"))]  # a coordinator (or an admin)


def require_county(principal: Principal, county_code: str) -> None:
    if not principal.may_act_in(county_code):
        raise ApiError(403, "forbidden", f"not scoped to county {county_code}", {"county_code": county_code})


def fresh(*projections: type[Projection]) -> Callable[..., Awaitable[None]]:
    """A dependency of a view read from `projections`: given the token of a command's answer (`X-Wait-For`, or
    `?wait_for=`), it waits until they have applied those writes, at most `WAIT_FOR_MS` (or `wait_ms`, if less), and
    answers in `X-Fresh` whether they had (backbone.freshness). Only a signed-in caller makes a view wait."""

    async def wait(
        runtime: RuntimeDep,
        _: PrincipalDep,
        response: Response,
        header: Annotated[
            str | None,
            Header(
                alias=WAIT_FOR,
                description=f"the {WRITTEN} token of a command's answer: the view waits, briefly, until it shows "
                f"those writes, and says in {FRESH} (true or false) whether it does",
            ),
        ] = None,
        wait_for: Annotated[str | None, Query(description=f"the same as the {WAIT_FOR} header")] = None,
        wait_ms: Annotated[
            int | None, Query(ge=0, le=60_000, description="wait at most this long (never above the service's bound)")
        ] = None,
    ) -> None:
        token, field = (header, f"header.{WAIT_FOR}") if header is not None else (wait_for, "query.wait_for")
        if token is None:
            return
        try:
            writes = freshness.parse(token)
        except ValueError as error:
            problem = {"field": field, "problem": str(error)}
            raise ApiError(422, "invalid", "the request does not match the schema", {"problems": [problem]}) from None
        bound = runtime.settings.wait_for_ms if wait_ms is None else min(wait_ms, runtime.settings.wait_for_ms)
        shown = await freshness.applied(runtime.db, freshness.needed(projections, writes), bound / 1000)
        response.headers[FRESH] = "true" if shown else "false"

    return wait

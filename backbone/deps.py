"""FastAPI dependencies shared by the services' routes: the runtime, the caller, role and county checks."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Annotated, Any

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from backbone.auth import Principal, Role
from backbone.errors import ApiError
from backbone.runtime import Runtime
from backbone.tokens import InvalidToken, KeysUnavailable, TokenVerifier

_bearer = HTTPBearer(auto_error=False)


def get_runtime(request: Request) -> Runtime:
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

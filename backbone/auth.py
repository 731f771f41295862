"""Bearer tokens: signed JWTs with a role and the counties a coordinator may act in; a CLI mints them.

python -m backbone.auth --role coordinator --county 450325 --sub coordinator-xingan
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime, timedelta
from typing import Literal

import jwt
from pydantic import BaseModel, ConfigDict, ValidationError

from backbone.settings import Settings

Role = Literal["admin", "coordinator", "volunteer", "donor", "service"]
ROLES: tuple[Role, ...] = ("admin", "coordinator", "volunteer", "donor", "service")
ALGORITHM = "HS256"
ISSUER = "handinhand"
_TOLD = (
    jwt.ExpiredSignatureError,
    jwt.ImmatureSignatureError,
    jwt.InvalidSignatureError,
    jwt.InvalidIssuerError,
    jwt.MissingRequiredClaimError,
)


class InvalidToken(Exception):
    pass


class Principal(BaseModel):
    """Who is calling: `sub` is their id, `counties` the county codes a coordinator is scoped to."""

    model_config = ConfigDict(frozen=True)

    sub: str
    role: Role
    counties: list[str] = []

    def may_act_in(self, county_code: str) -> bool:
        if self.role in ("admin", "service"):
            return True
        return self.role == "coordinator" and county_code in self.counties


def mint(secret: str, *, sub: str, role: Role, counties: list[str], ttl: timedelta) -> str:
    now = datetime.now(UTC)
    claims = {"iss": ISSUER, "sub": sub, "role": role, "counties": counties, "iat": now, "exp": now + ttl}
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def verify(secret: str, token: str) -> Principal:
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], issuer=ISSUER, options={"require": ["exp", "iss", "sub", "role"]}
        )
        return Principal.model_validate(claims)
    except (jwt.PyJWTError, ValidationError) as error:
        # PyJWT's words are fixed for these; others can quote the token's own header (an unknown `crit` name).
        reason = str(error) if isinstance(error, _TOLD) else "it is malformed or its claims are not ours"
        raise InvalidToken(reason) from error


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Mint a bearer token from the configured JWT_SECRET.")
    parser.add_argument("--role", choices=ROLES, required=True)
    parser.add_argument("--sub", help="the caller's id (default: the role)")
    parser.add_argument("--county", action="append", default=[], help="a county code; repeat for several")
    parser.add_argument("--days", type=float, default=30.0, help="validity in days")
    args = parser.parse_args(argv)
    if args.role == "coordinator" and not args.county:
        parser.error("a coordinator token needs at least one --county")
    secret = Settings().jwt_secret.get_secret_value()
    print(
        mint(
            secret,
            sub=args.sub or args.role,
            role=args.role,
            counties=args.county,
            ttl=timedelta(days=args.days),
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

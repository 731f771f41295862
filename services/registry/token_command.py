"""`python -m services.registry token`: an access token signed with the registry's own key, for operators and
tests (people sign in instead)."""

from __future__ import annotations

import argparse
from datetime import timedelta

from backbone.auth import ROLES
from backbone.cli import Command
from backbone.settings import Settings
from backbone.tokens import Issuer
from services.registry import accounts

MAX_MINUTES = 60  # a CLI token has no session, so nothing ends it early: it must expire soon


def _arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--role", choices=ROLES, required=True)
    parser.add_argument("--sub", help="the caller's id (default: service:<role>, or the role)")
    parser.add_argument("--county", action="append", default=[], help="a county code; repeat for several")
    parser.add_argument("--name", help="a display name")
    parser.add_argument(
        "--minutes", type=float, default=15.0, help=f"validity in minutes (default 15, at most {MAX_MINUTES})"
    )


def _run(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Settings) -> int:
    if args.role in accounts.COUNTY_ROLES and not args.county:
        parser.error(f"a {args.role} token needs at least one --county")
    if not 0 < args.minutes <= MAX_MINUTES:  # so written, NaN is refused too
        parser.error(f"--minutes must be more than 0 and at most {MAX_MINUTES}")
    issuer = Issuer.from_settings(settings)
    sub = args.sub or (f"service:{args.role}" if args.role == "service" else args.role)
    ttl = timedelta(minutes=args.minutes)
    print(issuer.mint(sub=sub, role=args.role, counties=args.county, ttl=ttl, name=args.name))
    return 0


TOKEN = Command("token", "print an access token signed with the registry's key", _arguments, _run)

"""Token verification against JWKS served over real HTTP: EdDSA from a trusted issuer accepted, everything else
refused, keys cached, an unknown kid read again (at most every 10 s), a key dropped from the JWKS refused once the
cache runs out, a second issuer trusted by configuration; the registry serves its own JWKS."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from backbone.auth import Principal
from backbone.clock import SettableClock
from backbone.natsserver import NatsServer, free_port
from backbone.settings import DEVELOPMENT_SECRET, Settings
from backbone.tokens import InvalidToken, Issuer, KeysUnavailable, SigningKeys, TokenVerifier
from services.registry.app import create_app as create_registry_app
from tests.helpers import wait_until

ISSUER = "handinhand-registry"
A, B = SigningKeys([Ed25519PrivateKey.generate()]), SigningKeys([Ed25519PrivateKey.generate()])


class Served:
    """An ASGI app on a real port, in this event loop."""

    def __init__(self, app: Any) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning", log_config=None)
        self.server = uvicorn.Server(config)
        self.task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Served:
        self.task = asyncio.create_task(self.server.serve())
        await wait_until(lambda: _true(self.server.started), what="the HTTP server to listen")
        return self

    async def __aexit__(self, *_: object) -> None:
        self.server.should_exit = True
        assert self.task is not None
        await self.task


async def _true(value: bool) -> bool:
    return value


class JwksServer(Served):
    """Publishes whatever `keys` it is given at /.well-known/jwks.json, and counts the reads."""

    def __init__(self, *keys: SigningKeys) -> None:
        self.keys, self.reads, self.delay = list(keys), 0, 0.0
        super().__init__(Starlette(routes=[Route("/.well-known/jwks.json", self._jwks)]))
        self.jwks_url = f"{self.url}/.well-known/jwks.json"

    async def _jwks(self, _: Request) -> JSONResponse:
        self.reads += 1
        await asyncio.sleep(self.delay)
        return JSONResponse({"keys": [jwk for keys in self.keys for jwk in keys.jwks()["keys"]]})


@pytest.fixture
async def jwks() -> AsyncIterator[JwksServer]:
    async with JwksServer(A) as server:
        yield server


@pytest.fixture
def clock() -> SettableClock:
    return SettableClock(datetime.now(UTC))


def verifier_of(server: JwksServer, clock: SettableClock, **settings: Any) -> TokenVerifier:
    return TokenVerifier.from_settings(Settings(jwks_url=server.jwks_url, **settings), clock=clock)


def token(keys: SigningKeys, ttl: timedelta = timedelta(minutes=15), issuer: str = ISSUER) -> str:
    return Issuer(keys, issuer).mint(sub="acc-1", role="coordinator", counties=["450325"], ttl=ttl, session_id="s")


async def refused(verifier: TokenVerifier, bearer: str, reason: str) -> None:
    with pytest.raises(InvalidToken, match=reason):
        await verifier.verify(bearer)


async def test_an_eddsa_token_of_a_published_key_is_accepted_and_the_keys_are_read_once(
    jwks: JwksServer, clock: SettableClock
) -> None:
    verifier = verifier_of(jwks, clock)
    expected = Principal(sub="acc-1", role="coordinator", counties=["450325"], session_id="s")
    assert await verifier.verify(token(A)) == expected
    clock.advance(timedelta(seconds=299))
    assert await verifier.verify(token(A)) == expected
    assert jwks.reads == 1


async def test_requests_that_come_while_the_first_read_of_the_keys_is_under_way_wait_for_it(
    jwks: JwksServer, clock: SettableClock
) -> None:
    jwks.delay = 0.3  # a page that calls a service several times at once, just after it started
    verifier = verifier_of(jwks, clock)
    principals = await asyncio.gather(*(verifier.verify(token(A)) for _ in range(5)))
    assert {principal.sub for principal in principals} == {"acc-1"}
    assert jwks.reads == 1


async def test_hs256_with_the_old_development_secret_none_and_expired_tokens_are_refused(
    jwks: JwksServer, clock: SettableClock
) -> None:
    verifier = verifier_of(jwks, clock)
    claims = {"iss": ISSUER, "sub": "x", "role": "admin", "counties": [], "iat": 1, "exp": 4102444800, "jti": "j"}
    headers = {"kid": A.kid}
    await refused(verifier, jwt.encode(claims, DEVELOPMENT_SECRET, "HS256", headers), "only algorithm accepted")
    await refused(verifier, jwt.encode(claims, None, "none", headers), "only algorithm accepted")
    await refused(verifier, token(A, ttl=timedelta(minutes=-5)), "it has expired")
    await refused(verifier, token(A, issuer="someone-else"), "issuer is not trusted")


async def test_an_unknown_kid_reads_the_keys_again_at_most_every_ten_seconds(
    jwks: JwksServer, clock: SettableClock
) -> None:
    verifier = verifier_of(jwks, clock)
    await verifier.verify(token(A))
    jwks.keys = [B, A]  # a rotation: the new key signs, the old one stays listed
    await refused(verifier, token(B), "does not publish")  # the keys were read a moment ago
    assert jwks.reads == 1
    clock.advance(timedelta(seconds=10))
    assert (await verifier.verify(token(B))).sub == "acc-1"
    assert (await verifier.verify(token(A))).sub == "acc-1"  # the overlap: the old key's tokens still pass
    assert jwks.reads == 2
    await refused(verifier, token(SigningKeys([Ed25519PrivateKey.generate()])), "does not publish")
    assert jwks.reads == 2  # another unknown kid within 10 s of the last read: no read


async def test_a_key_dropped_from_the_jwks_is_refused_once_the_cache_time_is_over(
    jwks: JwksServer, clock: SettableClock
) -> None:
    jwks.keys = [B, A]
    verifier = verifier_of(jwks, clock, jwks_cache_seconds=60)
    await verifier.verify(token(A))
    jwks.keys = [B]  # the rotation is over
    clock.advance(timedelta(seconds=59))
    assert (await verifier.verify(token(A))).sub == "acc-1"  # still cached
    clock.advance(timedelta(seconds=1))
    await refused(verifier, token(A), "does not publish")
    assert (await verifier.verify(token(B))).sub == "acc-1"
    assert jwks.reads == 2


async def test_keys_read_earlier_stay_in_use_while_the_issuer_is_away_and_none_at_first_is_unavailable(
    clock: SettableClock,
) -> None:
    async with JwksServer(A) as jwks:
        verifier = verifier_of(jwks, clock)
        await verifier.verify(token(A))
    clock.advance(timedelta(seconds=301))
    assert (await verifier.verify(token(A))).sub == "acc-1"  # the JWKS could not be read: the keys known stay
    never = TokenVerifier.from_settings(Settings(jwks_url=jwks.jwks_url), clock=clock)
    with pytest.raises(KeysUnavailable):
        await never.verify(token(A))


async def test_a_jwks_file_wins_over_the_url_and_a_second_issuer_is_trusted_by_configuration(
    jwks: JwksServer, clock: SettableClock, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    ours, theirs = tmp_path / "ours.json", tmp_path / "theirs.json"
    ours.write_text(json.dumps(B.jwks()))
    theirs.write_text(json.dumps(A.jwks()))
    monkeypatch.setenv("TRUSTED_ISSUERS", json.dumps([{"issuer": "province-idp", "jwks_file": str(theirs)}]))
    verifier = verifier_of(jwks, clock, jwks_file=ours)
    assert (await verifier.verify(token(B))).sub == "acc-1"
    await refused(verifier, token(A), "does not publish")  # the URL's key: the file wins
    assert jwks.reads == 0
    assert (await verifier.verify(token(A, issuer="province-idp"))).sub == "acc-1"
    await refused(verifier, token(B, issuer="province-idp"), "does not publish")
    monkeypatch.setenv("TRUSTED_ISSUERS", json.dumps([{"issuer": ISSUER, "jwks_file": str(theirs)}]))
    with pytest.raises(ValueError, match="TRUSTED_ISSUERS repeats TOKEN_ISSUER"):
        Settings()


async def test_the_registry_serves_its_jwks_without_auth_and_other_services_verify_its_tokens_with_it(
    nats_server: NatsServer, tmp_path: Path, clock: SettableClock
) -> None:
    database_url = f"sqlite+aiosqlite:///{tmp_path / 'registry.db'}"
    registry = create_registry_app(Settings(database_url=database_url, nats_url=nats_server.url, data_dir=tmp_path))
    issuer: Issuer = registry.state.issuer  # its development key, made under DATA_DIR
    async with Served(registry) as served, httpx.AsyncClient(base_url=served.url) as client:
        answer = await client.get("/.well-known/jwks.json")
        assert answer.status_code == 200
        assert answer.json() == issuer.keys.jwks()
        assert "PRIVATE" not in answer.text
        assert set(answer.json()["keys"][0]) == {"kty", "crv", "x", "kid", "use", "alg"}
        assert answer.headers["cache-control"] == "public, max-age=300"
        matching = TokenVerifier.from_settings(Settings(jwks_url=f"{served.url}/.well-known/jwks.json"), clock=clock)
        admin = issuer.mint(sub="acc-9", role="admin", counties=[], ttl=timedelta(minutes=15), name="管理员")
        assert await matching.verify(admin) == Principal(sub="acc-9", role="admin", name="管理员")
        children = await client.get(
            "/children", params={"county_code": "450325"}, headers={"Authorization": f"Bearer {admin}"}
        )
        assert children.status_code == 200, children.text  # the registry verifies its own token in process
        forged = await client.get(
            "/children", params={"county_code": "450325"}, headers={"Authorization": f"Bearer {token(A)}"}
        )
        assert forged.status_code == 401
        assert forged.json()["error"]["message"] == (
            "the bearer token is not valid: it is signed with a key its issuer does not publish"
        )


async def test_an_unreadable_key_in_the_jwks_is_skipped_and_the_others_still_verify(
    jwks: JwksServer, clock: SettableClock, tmp_path: Path
) -> None:
    published = tmp_path / "jwks.json"
    broken = {"kty": "OKP", "crv": "Ed25519", "x": "!!not-base64url", "kid": "broken", "use": "sig"}
    published.write_text(json.dumps({"keys": [broken, *A.jwks()["keys"]]}))
    verifier = verifier_of(jwks, clock, jwks_file=published)
    assert (await verifier.verify(token(A))).sub == "acc-1"  # not a server error for every request

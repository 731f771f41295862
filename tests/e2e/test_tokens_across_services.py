"""Tokens across the running services: matching and notifications verify the registry's tokens with the public keys
the registry serves (JWKS over HTTP) and refuse one signed with the old shared secret; a key rotation keeps the old
key's tokens valid while both are published, and refused everywhere once it is dropped."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from backbone.natsserver import NatsServer
from backbone.settings import DEVELOPMENT_SECRET
from backbone.tokens import Issuer, SigningKeys
from tests.helpers import ServiceProcess, keys, wait_until

pytestmark = pytest.mark.e2e
XINGAN = "450325"
READS = {"registry": "/children", "matching": "/views/engagement", "notifications": "/views/deliveries"}


class Services:
    def __init__(self, tmp_path: Path, nats: NatsServer) -> None:
        self.tmp_path, self.nats = tmp_path, nats
        self.registry = self._registry(str(keys().key_file))
        jwks_url = f"{self.registry.url}/.well-known/jwks.json"
        self.others = {
            name: ServiceProcess(
                name,
                nats_url=nats.url,
                database_url=f"sqlite+aiosqlite:///{tmp_path / name}.db",
                data_dir=tmp_path,
                jwks_url=jwks_url,
                JWKS_CACHE_SECONDS="1",  # so that a rotation shows within the test's patience
            )
            for name in ("matching", "notifications")
        }

    def _registry(self, signing_keys: str, port: int | None = None) -> ServiceProcess:
        return ServiceProcess(
            "registry",
            nats_url=self.nats.url,
            database_url=f"sqlite+aiosqlite:///{self.tmp_path / 'registry'}.db",
            data_dir=self.tmp_path,
            port=port,
            TOKEN_SIGNING_KEYS=signing_keys,
        )

    def restart_registry(self, *key_files: Path) -> None:
        """The registry again, on its port, signing with the first of `key_files` and publishing them all."""
        self.registry.stop()
        self.registry = self._registry(",".join(map(str, key_files)), self.registry.port).start()

    def all(self) -> dict[str, ServiceProcess]:
        return {"registry": self.registry, **self.others}

    async def status(self, service: str, bearer: str) -> int:
        async with httpx.AsyncClient(timeout=10) as client:
            answer = await client.get(
                f"{self.all()[service].url}{READS[service]}",
                params={"county_code": XINGAN},
                headers={"Authorization": f"Bearer {bearer}"},
            )
        if answer.status_code == 401:
            assert bearer not in answer.text  # a refusal never repeats the token
        return answer.status_code

    async def answers(self, service: str, bearer: str, status: int) -> None:
        """Wait until `service` answers `status` to `bearer` (verifiers read the keys again in their own time)."""

        async def answered() -> bool:
            return await self.status(service, bearer) == status

        await wait_until(answered, within=30, what=f"{service} to answer {status}")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    nats = NatsServer(tmp_path / "nats").start()
    running = Services(tmp_path, nats)
    try:
        for service in running.all().values():
            service.start()
        yield running
    finally:
        for service in running.all().values():
            service.kill()
        nats.kill()


def cli_token(*args: str) -> str:
    """`python -m services.registry token …` as an operator runs it, with the registry's key."""
    env = {**os.environ, "TOKEN_SIGNING_KEYS": str(keys().key_file)}
    done = subprocess.run(
        [sys.executable, "-m", "services.registry", "token", *args],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return done.stdout.strip()


async def test_matching_and_notifications_accept_the_registrys_token_and_refuse_the_old_shared_secrets(
    services: Services,
) -> None:
    coordinator = await asyncio.to_thread(
        cli_token, "--role", "coordinator", "--county", XINGAN, "--sub", "coordinator-xingan"
    )
    for service in READS:
        assert await services.status(service, coordinator) == 200, service
    claims = {"sub": "x", "role": "admin", "counties": [], "iat": 1, "exp": 4102444800, "jti": "j"}
    kid = jwt.get_unverified_header(coordinator)["kid"]
    old = jwt.encode(claims | {"iss": "handinhand"}, DEVELOPMENT_SECRET, algorithm="HS256")
    confused = jwt.encode(claims | {"iss": "handinhand-registry"}, DEVELOPMENT_SECRET, "HS256", {"kid": kid})
    unsigned = jwt.encode(claims | {"iss": "handinhand-registry"}, None, "none", {"kid": kid})
    for service in READS:
        for forged in (old, confused, unsigned):
            assert await services.status(service, forged) == 401, service


async def test_a_rotated_keys_old_tokens_pass_during_the_overlap_and_are_refused_after(
    services: Services, tmp_path: Path
) -> None:
    new_key = tmp_path / "new-signing-key.pem"
    new_key.write_bytes(Ed25519PrivateKey.generate().private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    old_token = coordinator(keys().issuer)
    for service in READS:
        assert await services.status(service, old_token) == 200  # the verifiers hold the old key now

    # The overlap: the new key signs, the old one stays listed.
    await asyncio.to_thread(services.restart_registry, new_key, keys().key_file)
    new_token = coordinator(Issuer(SigningKeys.from_files([new_key])))
    for service in READS:
        await services.answers(service, new_token, 200)
        assert await services.status(service, old_token) == 200, service

    await asyncio.to_thread(services.restart_registry, new_key)  # the overlap is over
    assert await services.status("registry", old_token) == 401
    for service in services.others:
        await services.answers(service, old_token, 401)
        assert await services.status(service, new_token) == 200, service


def coordinator(issuer: Issuer) -> str:
    return issuer.mint(sub="c", role="coordinator", counties=[XINGAN], ttl=timedelta(hours=1))

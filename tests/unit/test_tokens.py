"""Tokens: the issuer's keys, what it signs, what a verifier accepts (EdDSA from a trusted issuer only), and what a
role and a county scope allow."""

from __future__ import annotations

import argparse
import base64
import hashlib
import hmac
import json
import stat
from datetime import timedelta
from pathlib import Path

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.asymmetric.rsa import generate_private_key
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat, PublicFormat
from pydantic import ValidationError

from backbone.auth import Principal
from backbone.settings import DEVELOPMENT_SECRET, Settings
from backbone.tokens import DEVELOPMENT_KEY_FILE, InvalidToken, Issuer, LocalKeys, SigningKeys, TokenVerifier, generate
from services.registry.token_command import TOKEN

# RFC 8037, appendix A: an Ed25519 key and its RFC 7638 thumbprint.
RFC_D = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A"
RFC_X = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
RFC_KID = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
ISSUER = "handinhand-registry"


def rfc_key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.from_private_bytes(base64.urlsafe_b64decode(RFC_D + "="))


def pem(key: object) -> bytes:
    return key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())  # type: ignore[attr-defined]


def verifier(keys: SigningKeys) -> TokenVerifier:
    return TokenVerifier({ISSUER: LocalKeys(keys)})


def test_the_kid_is_the_rfc_7638_thumbprint_and_the_jwks_holds_only_public_parts() -> None:
    keys = SigningKeys([rfc_key()])
    assert keys.kid == RFC_KID
    assert keys.jwks() == {
        "keys": [{"kty": "OKP", "crv": "Ed25519", "x": RFC_X, "kid": RFC_KID, "use": "sig", "alg": "EdDSA"}]
    }


def test_keys_load_from_pem_files_the_first_signs_and_all_are_published(tmp_path: Path) -> None:
    new, old = tmp_path / "new.pem", tmp_path / "old.pem"
    new.write_bytes(pem(Ed25519PrivateKey.generate()))
    old.write_bytes(pem(rfc_key()))
    settings = Settings(environment="production", data_secret="d" * 32, token_signing_keys=f"{new}, {old}")
    keys = SigningKeys.from_settings(settings)
    kids = [jwk["kid"] for jwk in keys.jwks()["keys"]]
    assert kids[1] == RFC_KID
    assert kids[0] == keys.kid != RFC_KID
    token = Issuer(keys).mint(sub="a", role="admin", counties=[], ttl=timedelta(minutes=5))
    assert jwt.get_unverified_header(token)["kid"] == keys.kid


def test_outside_development_the_issuer_refuses_to_start_without_keys(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="TOKEN_SIGNING_KEYS is not set"):
        SigningKeys.from_settings(Settings(environment="production", data_secret="d" * 32, data_dir=tmp_path))
    assert not (tmp_path / DEVELOPMENT_KEY_FILE).exists()


@pytest.mark.parametrize("content", [b"not a key", None])
def test_a_key_file_that_is_not_an_ed25519_private_key_is_refused_naming_the_file_only(
    tmp_path: Path, content: bytes | None
) -> None:
    path = tmp_path / "key.pem"
    path.write_bytes(content or pem(generate_private_key(public_exponent=65537, key_size=2048)))
    with pytest.raises(ValueError, match=str(path)) as refused:
        SigningKeys.from_files([path])
    assert "PRIVATE KEY" not in str(refused.value)


def test_in_development_a_key_is_generated_once_under_data_dir_readable_by_its_owner_only(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "var")
    first = SigningKeys.from_settings(settings)
    path = tmp_path / "var" / DEVELOPMENT_KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert SigningKeys.from_settings(settings).kid == first.kid
    generate(path)  # a replica starting at the same moment keeps the key already there
    assert SigningKeys.from_settings(settings).kid == first.kid
    assert [p.name for p in path.parent.iterdir()] == [DEVELOPMENT_KEY_FILE]


async def test_a_minted_token_verifies_to_its_principal_with_every_claim() -> None:
    keys = SigningKeys([rfc_key()])
    token = Issuer(keys).mint(
        sub="acc-1", role="coordinator", counties=["450325"], ttl=timedelta(minutes=15), name="李老师", session_id="s-1"
    )
    assert await verifier(keys).verify(token) == Principal(
        sub="acc-1", role="coordinator", counties=["450325"], name="李老师", session_id="s-1"
    )
    claims = jwt.decode(token, options={"verify_signature": False})
    assert set(claims) == {"iss", "sub", "role", "counties", "name", "sid", "iat", "exp", "jti"}
    assert claims["exp"] - claims["iat"] == 900
    service = Issuer(keys).mint(sub="service:matching", role="service", counties=[], ttl=timedelta(minutes=15))
    assert "sid" not in jwt.decode(service, options={"verify_signature": False})


def forged(algorithm: str, key: object, **header: str) -> str:
    claims = {"iss": ISSUER, "sub": "x", "role": "admin", "counties": [], "iat": 1, "exp": 4102444800, "jti": "j"}
    return jwt.encode(claims, key, algorithm=algorithm, headers=header)  # type: ignore[arg-type]


def hs256_keyed_with_the_public_key(kid: str) -> str:
    """Algorithm confusion: HMAC keyed with the public key everyone can read (PyJWT refuses to make one)."""

    def part(raw: bytes) -> str:
        return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()

    header = json.dumps({"alg": "HS256", "typ": "JWT", "kid": kid}).encode()
    body = json.dumps({"iss": ISSUER, "sub": "x", "role": "admin", "iat": 1, "exp": 4102444800, "jti": "j"}).encode()
    signing_input = f"{part(header)}.{part(body)}"
    public_pem = rfc_key().public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{part(signature)}"


async def test_hs256_none_rs256_and_other_keys_are_refused_with_a_fixed_reason() -> None:
    keys = SigningKeys([rfc_key()])
    refused = {
        "HS256 with the old development secret": forged("HS256", DEVELOPMENT_SECRET, kid=keys.kid),
        "HS256 keyed with the published key": hs256_keyed_with_the_public_key(keys.kid),
        "none": forged("none", None, kid=keys.kid),
        "RS256": forged("RS256", generate_private_key(public_exponent=65537, key_size=2048), kid=keys.kid),
        "EdDSA, another key under our kid": forged("EdDSA", Ed25519PrivateKey.generate(), kid=keys.kid),
        "EdDSA, a kid we do not publish": forged("EdDSA", Ed25519PrivateKey.generate(), kid="another"),
        "EdDSA, no kid": forged("EdDSA", rfc_key()),
        "garbled": "not.a.token",
    }
    reasons = {}
    for what, token in refused.items():
        with pytest.raises(InvalidToken) as error:
            await verifier(keys).verify(token)
        assert token not in str(error.value), what
        assert "another" not in str(error.value), what
        reasons[what] = str(error.value)
    assert reasons["none"] == reasons["RS256"] == reasons["HS256 with the old development secret"]
    assert "EdDSA" in reasons["none"]
    assert reasons["EdDSA, another key under our kid"] == "its signature does not verify"


async def test_expired_untrusted_and_unknown_role_tokens_are_refused() -> None:
    keys = SigningKeys([rfc_key()])
    ours, theirs = Issuer(keys), Issuer(keys, issuer="someone-else")
    expired = ours.mint(sub="x", role="admin", counties=[], ttl=timedelta(minutes=-5))
    claims = {"iss": ISSUER, "sub": "x", "role": "superuser", "iat": 1, "exp": 4102444800, "jti": "j"}
    cases = {
        expired: "it has expired",
        theirs.mint(sub="x", role="admin", counties=[], ttl=timedelta(minutes=5)): "its issuer is not trusted",
        jwt.encode(claims, rfc_key(), algorithm="EdDSA", headers={"kid": keys.kid}): "it is malformed",
        jwt.encode(claims | {"role": "admin", "jti": None}, rfc_key(), "EdDSA", {"kid": keys.kid}): "lacks a claim",
    }
    for token, reason in cases.items():
        with pytest.raises(InvalidToken, match=reason):
            await verifier(keys).verify(token)


async def test_the_leeway_past_expiry_is_token_leeway_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    keys = SigningKeys([rfc_key()])
    expired_10_s_ago = Issuer(keys).mint(sub="x", role="admin", counties=[], ttl=timedelta(seconds=-10))
    assert (await TokenVerifier.from_settings(Settings(), own=keys).verify(expired_10_s_ago)).sub == "x"  # 30 s
    monkeypatch.setenv("TOKEN_LEEWAY_SECONDS", "5")
    with pytest.raises(InvalidToken, match="it has expired"):
        await TokenVerifier.from_settings(Settings(), own=keys).verify(expired_10_s_ago)
    for refused in ("-1", "301"):
        monkeypatch.setenv("TOKEN_LEEWAY_SECONDS", refused)
        with pytest.raises(ValidationError, match="token_leeway_seconds"):
            Settings()


def test_county_scope() -> None:
    coordinator = Principal(sub="c", role="coordinator", counties=["450325"])
    assert coordinator.may_act_in("450325")
    assert not coordinator.may_act_in("450721")
    assert Principal(sub="a", role="admin").may_act_in("450721")
    assert not Principal(sub="d", role="donor").may_act_in("450325")
    assert not Principal(sub="v", role="volunteer").may_act_in("450325")


def token_cli(tmp_path: Path) -> tuple[argparse.ArgumentParser, Settings]:
    """The token command's parser, and settings whose signing key is the RFC's."""
    path = tmp_path / "key.pem"
    path.write_bytes(pem(rfc_key()))
    settings = Settings(environment="production", data_secret="d" * 32, token_signing_keys=str(path))
    parser = argparse.ArgumentParser()
    TOKEN.arguments(parser)
    return parser, settings


async def test_the_operators_cli_signs_with_the_registrys_key(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    parser, settings = token_cli(tmp_path)
    args = parser.parse_args(["--role", "coordinator", "--county", "450325", "--county", "450721", "--sub", "li"])
    assert TOKEN.run(parser, args, settings) == 0
    token = capsys.readouterr().out.strip()
    principal = await verifier(SigningKeys([rfc_key()])).verify(token)
    assert principal == Principal(sub="li", role="coordinator", counties=["450325", "450721"])
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 15 * 60
    with pytest.raises(SystemExit):
        TOKEN.run(parser, parser.parse_args(["--role", "coordinator"]), settings)  # a coordinator would see nothing


@pytest.mark.parametrize("minutes", ["60.5", "1440", "0", "-1", "nan", "inf"])
async def test_the_operators_cli_refuses_a_token_of_more_than_an_hour_or_none(
    minutes: str, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """A CLI token has no session, so nothing ends it before it expires."""
    parser, settings = token_cli(tmp_path)
    assert TOKEN.run(parser, parser.parse_args(["--role", "admin", "--minutes", "60"]), settings) == 0
    claims = jwt.decode(capsys.readouterr().out.strip(), options={"verify_signature": False})
    assert claims["exp"] - claims["iat"] == 60 * 60
    with pytest.raises(SystemExit) as exit_:
        TOKEN.run(parser, parser.parse_args(["--role", "admin", "--minutes", minutes]), settings)
    assert exit_.value.code == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "--minutes must be more than 0 and at most 60" in captured.err

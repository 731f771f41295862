"""Tokens: what a role and a county scope allow."""

from __future__ import annotations

from datetime import timedelta

import pytest

from backbone.auth import InvalidToken, Principal, main, mint, verify

SECRET = "s" * 40


def test_a_minted_token_verifies_to_its_principal() -> None:
    token = mint(SECRET, sub="c-1", role="coordinator", counties=["450325"], ttl=timedelta(minutes=5))
    assert verify(SECRET, token) == Principal(sub="c-1", role="coordinator", counties=["450325"])


@pytest.mark.parametrize(
    "token",
    [
        mint(SECRET, sub="x", role="admin", counties=[], ttl=timedelta(seconds=-1)),
        mint("t" * 40, sub="x", role="admin", counties=[], ttl=timedelta(minutes=5)),
        "not.a.token",
    ],
)
def test_expired_forged_and_garbled_tokens_are_refused(token: str) -> None:
    with pytest.raises(InvalidToken):
        verify(SECRET, token)


def test_an_unknown_role_is_refused() -> None:
    import jwt

    token = jwt.encode({"iss": "handinhand", "sub": "x", "role": "superuser", "exp": 4102444800}, SECRET, "HS256")
    with pytest.raises(InvalidToken):
        verify(SECRET, token)


def test_county_scope() -> None:
    coordinator = Principal(sub="c", role="coordinator", counties=["450325"])
    assert coordinator.may_act_in("450325")
    assert not coordinator.may_act_in("450721")
    assert Principal(sub="a", role="admin").may_act_in("450721")
    assert not Principal(sub="d", role="donor").may_act_in("450325")
    assert not Principal(sub="v", role="volunteer").may_act_in("450325")


def test_the_cli_mints_a_token_from_the_configured_secret(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JWT_SECRET", SECRET)
    assert main(["--role", "coordinator", "--county", "450325", "--county", "450721", "--sub", "li"]) == 0
    principal = verify(SECRET, capsys.readouterr().out.strip())
    assert principal == Principal(sub="li", role="coordinator", counties=["450325", "450721"])
    with pytest.raises(SystemExit):
        main(["--role", "coordinator"])  # a coordinator without counties would see nothing

"""Place keys: equal for the same place however typed, different across places and counties, stable across a JWT
secret rotation when DATA_SECRET is set."""

from __future__ import annotations

import pytest

from backbone.settings import Settings
from services.registry.places import place_key, place_keys

SECRET = b"a data secret of at least thirty-two characters"


def test_the_same_place_typed_differently_has_one_key() -> None:
    assert place_key(SECRET, "450325", "溶江镇") == place_key(SECRET, "450325", " 溶江 镇 ")
    assert place_key(SECRET, "450325", "Rongjiang") == place_key(SECRET, "450325", "ＲＯＮＧＪＩＡＮＧ")


def test_places_counties_and_secrets_all_change_the_key() -> None:
    key = place_key(SECRET, "450325", "溶江镇")
    assert key is not None
    assert len(key) == 16
    assert key != place_key(SECRET, "450326", "溶江镇")
    assert key != place_key(SECRET, "450325", "兴安镇")
    assert key != place_key(SECRET + b"!", "450325", "溶江镇")


def test_a_village_key_needs_its_township_and_missing_names_have_no_key() -> None:
    keys = place_keys(SECRET, "450325", "溶江镇", "五甲村")
    assert keys["village_key"] != place_keys(SECRET, "450325", "兴安镇", "五甲村")["village_key"]
    assert place_keys(SECRET, "450325", None, "五甲村") == {"township_key": None, "village_key": None}
    assert place_keys(SECRET, "450325", "溶江镇", "  ")["village_key"] is None


def test_keys_survive_rotating_the_jwt_secret_when_data_secret_is_set() -> None:
    before = Settings(jwt_secret="j" * 32, data_secret="d" * 32)
    after = Settings(jwt_secret="k" * 32, data_secret="d" * 32)
    assert before.secret == after.secret
    assert Settings(jwt_secret="j" * 32).secret != Settings(jwt_secret="k" * 32).secret
    with pytest.raises(ValueError, match="DATA_SECRET"):
        Settings(data_secret="short")

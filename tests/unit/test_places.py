"""Place keys: equal for the same place however typed, different across places and counties, derived from
DATA_SECRET alone."""

from __future__ import annotations

import pytest

from backbone.settings import DEVELOPMENT_SECRET, Settings
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


def test_keys_come_from_data_secret_whose_development_default_is_what_the_jwt_secret_gave_before() -> None:
    assert Settings(data_secret="d" * 32).secret == b"d" * 32
    assert Settings().secret == DEVELOPMENT_SECRET.encode()  # development data keeps its place keys and fingerprints
    with pytest.raises(ValueError, match="DATA_SECRET"):
        Settings(data_secret="short")

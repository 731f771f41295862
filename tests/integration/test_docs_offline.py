"""Every service's API pages (/docs, /redoc) load all they need from the service itself: nothing from a CDN, so they
work offline and behind the Great Firewall."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from backbone.settings import Settings
from services.matching.app import create_app as matching
from services.notifications.app import create_app as notifications
from services.registry.app import create_app as registry
from tests.helpers import keys

LINKED = re.compile(r"""\b(?:src|href)\s*=\s*["']([^"']*)["']""", re.IGNORECASE)


@pytest.mark.parametrize("create_app", [registry, matching, notifications], ids=lambda f: f.__module__.split(".")[1])
@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_the_api_pages_load_every_asset_from_the_service_itself(
    create_app: Callable[[Settings], FastAPI], page: str, tmp_path: Path
) -> None:
    app = create_app(Settings(data_dir=tmp_path, **keys().settings()))  # the pages need no NATS, no database
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://service") as service:
        answer = await service.get(page)

        assert answer.status_code == 200
        assert answer.headers["content-type"].startswith("text/html")
        linked = LINKED.findall(answer.text)
        assert any(path.endswith(".js") for path in linked), linked  # the page's script is among them
        assert "//" not in answer.text  # no address with a host (https://…, //cdn…) anywhere in the page
        for path in linked:
            assert path.startswith("/"), path  # a path on this service
            asset = await service.get(path)
            assert asset.status_code == 200, path
            assert len(asset.content) > 0, path

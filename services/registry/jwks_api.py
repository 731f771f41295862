"""The registry's public signing keys (JWKS), which every other service verifies access tokens with."""

from typing import Any

from fastapi import APIRouter, Request, Response

from backbone.tokens import Issuer

router = APIRouter(tags=["tokens"])


@router.get("/.well-known/jwks.json", summary="The public keys access tokens are signed with (no auth)")
async def jwks(request: Request, response: Response) -> dict[str, Any]:
    issuer: Issuer = request.app.state.issuer
    # Verifiers keep keys as long as this anyway; a rotation lists the new key this long before it signs.
    response.headers["Cache-Control"] = f"public, max-age={int(request.app.state.settings.jwks_cache_seconds)}"
    return issuer.keys.jwks()

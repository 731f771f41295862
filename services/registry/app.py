"""The registry service, wired: `create_app()` for uvicorn and tests."""

from functools import partial

from fastapi import FastAPI

from backbone import scrub
from backbone.app import create_app as create_service_app
from backbone.clock import Clock
from backbone.runtime import ServiceSpec, Timer
from backbone.settings import Settings
from backbone.tokens import Issuer, TokenVerifier
from services.registry.account_api import router as account_router
from services.registry.api import router
from services.registry.campaign_api import router as campaign_router
from services.registry.handlers import children_with_birthdays
from services.registry.import_api import router as import_router
from services.registry.jwks_api import router as jwks_router
from services.registry.recipient_api import router as recipient_router
from services.registry.records import Records
from services.registry.visit_access import PairingAccess
from services.registry.visit_card_api import router as visit_card_router
from services.registry.volunteer_api import router as volunteer_router
from services.registry.volunteer_handlers import reassess_due

SPEC = ServiceSpec(
    name="registry",
    default_port=8001,
    views=Records.metadata,
    routers=[
        import_router,
        router,
        volunteer_router,
        visit_card_router,
        campaign_router,
        jwks_router,
        account_router,
        recipient_router,
    ],
    projections=lambda runtime: [PairingAccess()],
    timers=lambda runtime: [
        Timer("volunteer-eligibility", runtime.settings.timer_seconds, partial(reassess_due, runtime)),
        Timer("children-consent-age", runtime.settings.timer_seconds, partial(children_with_birthdays, runtime)),
        Timer("scrub", scrub.EVERY, partial(scrub.scrub, runtime.db)),
    ],
)


def create_app(settings: Settings | None = None, clock: Clock | None = None) -> FastAPI:
    """The registry's app. It issues the tokens, so it verifies its own with its own keys, in process; outside
    development it refuses to start without TOKEN_SIGNING_KEYS or with the development DATA_SECRET."""
    settings = settings or Settings()
    settings.refuse_development_data_secret()
    issuer = Issuer.from_settings(settings)
    app = create_service_app(SPEC, settings, clock, TokenVerifier.from_settings(settings, own=issuer.keys))
    app.state.issuer = issuer
    return app

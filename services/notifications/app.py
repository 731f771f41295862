"""The notifications service, wired: `create_app()` for uvicorn and tests."""

from dataclasses import replace
from functools import partial

from fastapi import FastAPI

from backbone.app import create_app as create_service_app
from backbone.clock import Clock
from backbone.runtime import Runtime, ServiceSpec, Timer
from backbone.settings import Settings
from services.notifications.api import router
from services.notifications.escalations import Escalations, repeat_due
from services.notifications.notices import Deliveries, LinkReactions, MatchingReactions, Pairings, RegistryReactions
from services.notifications.reminders import MatchingReminders, VolunteerReminders, remind_due
from services.notifications.sender import Outbound, Sender
from services.notifications.tables import Views

SPEC = ServiceSpec(
    name="notifications",
    default_port=8003,
    views=Views.metadata,
    routers=[router],
    projections=lambda runtime: [
        RegistryReactions(runtime),
        LinkReactions(runtime),
        MatchingReactions(runtime),
        Pairings(),
        Escalations(),
        MatchingReminders(),
        VolunteerReminders(),
        Deliveries(),
    ],
    timers=lambda runtime: timers(runtime),
)


def timers(runtime: Runtime, outbound: Outbound | None = None) -> list[Timer]:
    """Daily repeats of escalations, reminders before deadlines, and the sender: it needs the service's own account
    at the registry, to look contacts up; without one, what is decided waits in the outbox."""
    every = runtime.settings.timer_seconds
    deciding = [
        Timer("repeat-escalations", every, partial(repeat_due, runtime)),
        Timer("remind", every, partial(remind_due, runtime)),
    ]
    if outbound is None and not runtime.settings.service_client_id:
        return deciding
    close = None  # one given (tests) is closed by whoever gave it
    if outbound is None:
        outbound = Outbound.configured(runtime)
        close = outbound.close
    sender = Sender(runtime, outbound)
    return [*deciding, Timer("send-messages", outbound.settings.send_every_seconds, sender.tick, close)]


def create_app(
    settings: Settings | None = None, clock: Clock | None = None, outbound: Outbound | None = None
) -> FastAPI:
    """`outbound`: the directory and channels to send through (tests); by default, as configured."""
    spec = SPEC if outbound is None else replace(SPEC, timers=partial(timers, outbound=outbound))
    return create_service_app(spec, settings, clock)

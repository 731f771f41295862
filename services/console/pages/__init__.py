"""The console's pages, one module per part of the programme."""

from services.console.pages import (
    admin,
    aid,
    auth,
    children,
    figures,
    imports,
    inbox,
    matching,
    messages,
    today,
    visits,
    volunteer,
    volunteers,
    wishes,
)

ROUTERS = [
    auth.router,
    today.router,
    imports.router,
    children.router,
    volunteers.router,
    wishes.router,
    volunteer.router,
    visits.router,
    matching.router,
    figures.router,
    aid.router,
    admin.router,
    inbox.router,
    messages.router,
]

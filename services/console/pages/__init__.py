"""The console's pages, one module per part of the programme."""

from services.console.pages import auth, children, figures, imports, matching, today, visits, volunteer, wishes

ROUTERS = [
    auth.router,
    today.router,
    imports.router,
    children.router,
    wishes.router,
    volunteer.router,
    visits.router,
    matching.router,
    figures.router,
]

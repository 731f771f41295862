"""The console's pages, one module per part of the programme."""

from services.console.pages import auth, children, figures, matching, today, visits

ROUTERS = [auth.router, today.router, children.router, visits.router, matching.router, figures.router]

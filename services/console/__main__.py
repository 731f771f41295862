"""`python -m services.console serve`: the console on CONSOLE's PORT (8000 by default)."""

import argparse
import sys

import uvicorn

from services.console.app import create_app
from services.console.settings import ConsoleSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.console")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the web pages")
    serve.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    settings = ConsoleSettings()
    uvicorn.run(
        create_app(settings),
        host=settings.host,
        port=args.port or settings.port,
        log_level="warning",
        log_config=None,
        access_log=False,
        timeout_graceful_shutdown=1,
    )
    return 0


sys.exit(main())

"""`python -m services.console serve`: the console on CONSOLE's PORT (8000 by default)."""

import argparse
import sys

from backbone.cli import serve_http
from services.console.app import create_app
from services.console.settings import ConsoleSettings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.console")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="serve the web pages")
    serve.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    settings = ConsoleSettings()
    serve_http(create_app(settings), settings.host, args.port or settings.port)
    return 0


sys.exit(main())

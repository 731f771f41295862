"""Each service's command line: `serve` runs it; `rebuild NAME` drops a projection and replays it from NATS."""

from __future__ import annotations

import argparse
import asyncio
import sys

import uvicorn

from backbone.app import create_app
from backbone.rebuild import rebuild
from backbone.runtime import ServiceSpec
from backbone.settings import Settings


def main(spec: ServiceSpec, argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=f"python -m services.{spec.name}")
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the HTTP API, the relay and the projections")
    serve.add_argument("--port", type=int)
    again = commands.add_parser("rebuild", help="drop a projection's rows and replay it from the streams")
    again.add_argument("projection", help="projection name (see `rebuild --list`)", nargs="?")
    again.add_argument("--list", action="store_true", help="list this service's projections")
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command == "serve":
        port = args.port or settings.port or spec.default_port
        uvicorn.run(
            create_app(spec, settings),
            host=settings.host,
            port=port,
            log_level="warning",
            log_config=None,  # uvicorn's loggers go through the service's JSON logging (backbone.logs)
            access_log=False,
            timeout_graceful_shutdown=1,  # in-flight requests; then the runtime stops (backbone.runtime)
        )
        return 0
    return asyncio.run(rebuild(spec, settings, args.projection, list_only=args.list))


if __name__ == "__main__":
    sys.exit("run a service instead: python -m services.<name>")

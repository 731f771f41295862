"""Each service's command line: `serve` runs it; `rebuild NAME` drops a projection and replays it from NATS; a
service may add commands of its own (the registry's `token`)."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import uvicorn
import uvloop
from fastapi import FastAPI

from backbone.app import create_app
from backbone.rebuild import rebuild
from backbone.runtime import ServiceSpec
from backbone.settings import Settings


@dataclass(frozen=True)
class Command:
    """A service's own command: its name and help, its arguments, and what it does with them."""

    name: str
    help: str
    arguments: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.ArgumentParser, argparse.Namespace, Settings], int]


def main(
    spec: ServiceSpec,
    argv: list[str] | None = None,
    *,
    app: Callable[[Settings], FastAPI] | None = None,
    commands: Sequence[Command] = (),
) -> int:
    """`app` builds the service's HTTP app when it wires more than `backbone.app.create_app` does."""
    parser = argparse.ArgumentParser(prog=f"python -m services.{spec.name}")
    subcommands = parser.add_subparsers(dest="command", required=True)
    serve = subcommands.add_parser("serve", help="run the HTTP API, the relay and the projections")
    serve.add_argument("--port", type=int)
    again = subcommands.add_parser("rebuild", help="drop a projection's rows and replay it from the streams")
    again.add_argument("projection", help="projection name (see `rebuild --list`)", nargs="?")
    again.add_argument("--list", action="store_true", help="list this service's projections")
    own = {command.name: (command, subcommands.add_parser(command.name, help=command.help)) for command in commands}
    for command, subparser in own.values():
        command.arguments(subparser)
    args = parser.parse_args(argv)
    settings = Settings()
    if args.command in own:
        command, subparser = own[args.command]
        return command.run(subparser, args, settings)
    if args.command == "serve":
        port = args.port or settings.port or spec.default_port
        serve_http(app(settings) if app else create_app(spec, settings), settings.host, port)
        return 0
    return uvloop.run(rebuild(spec, settings, args.projection, list_only=args.list))


def serve_http(app: FastAPI, host: str, port: int) -> None:
    """Serve `app` until SIGINT or SIGTERM, on uvloop with httptools' parser (measured: asyncio's own loop and h11
    cost a registration a third more CPU)."""
    uvicorn.run(
        app,
        host=host,
        port=port,
        loop="uvloop",
        http="httptools",
        log_level="warning",
        log_config=None,  # uvicorn's loggers go through the service's JSON logging (backbone.logs)
        access_log=False,
        timeout_graceful_shutdown=1,  # in-flight requests; then the runtime stops (backbone.runtime)
    )


if __name__ == "__main__":
    sys.exit("run a service instead: python -m services.<name>")

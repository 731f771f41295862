"""Logs: what libraries log through the standard library comes out as the service's JSON, with the correlation id."""

from __future__ import annotations

import json
import logging

import pytest

from backbone import context, logs


def test_the_servers_report_of_an_exception_is_json_with_the_service_and_the_correlation_id(
    capsys: pytest.CaptureFixture[str],
) -> None:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    logs.configure("registry", fmt="json", level="warning")
    context.bind(context.Causes("the-request", None, context.new_traceparent()))
    try:
        try:
            raise ZeroDivisionError("boom")
        except ZeroDivisionError as error:
            logging.getLogger("uvicorn.error").error("Exception in ASGI application", exc_info=error)
        logging.getLogger("uvicorn.error").info("below the level: not written")

        (line,) = capsys.readouterr().err.strip().splitlines()
        report = json.loads(line)
        assert report["service"] == "registry"
        assert report["correlation_id"] == "the-request"
        assert report["level"] == "error"
        assert "ZeroDivisionError: boom" in report["exception"]
    finally:
        context.clear()
        root.handlers[:], root.level = handlers, level

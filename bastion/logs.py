"""Logging for Bastion processes: JSON lines with a request id, or text on a terminal.

Configured once, in the entry point. Library code only calls
`logging.getLogger(__name__)`. The request id travels in a context variable so every
line logged while serving a request carries it.
"""

from __future__ import annotations

import contextvars
import logging
import sys
from typing import Any, Literal, TextIO

from pythonjsonlogger.json import JsonFormatter

__all__ = ["configure_logging", "request_id"]

request_id: contextvars.ContextVar[str | None] = contextvars.ContextVar("bastion_request_id", default=None)


class _RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id.get()
        return True


def configure_logging(
    level: str = "INFO",
    fmt: Literal["auto", "json", "text"] = "auto",
    *,
    stream: TextIO | None = None,
    component: str | None = None,
) -> None:
    """Send logs to `stream` (stderr by default) as JSON or human-readable text."""
    out = stream or sys.stderr
    use_json = fmt == "json" or (fmt == "auto" and not out.isatty())
    handler = logging.StreamHandler(out)
    handler.addFilter(_RequestIdFilter())
    if use_json:
        static: dict[str, Any] = {"component": component} if component else {}
        handler.setFormatter(
            JsonFormatter(
                "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
                rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
                static_fields=static,
                timestamp=False,
            )
        )
    else:
        prefix = f"[{component}] " if component else ""
        handler.setFormatter(logging.Formatter(f"%(asctime)s %(levelname)-7s {prefix}%(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    # Third-party chatter stays at WARNING unless we debug.
    for noisy in ("httpx", "httpcore", "uvicorn.access", "mcp", "psycopg.pool"):
        logging.getLogger(noisy).setLevel(logging.DEBUG if level == "DEBUG" else logging.WARNING)

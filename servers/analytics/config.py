"""`AnalyticsConfig`: the limits every query and load runs under.

Defaults suit an interactive analyst; an operator tunes them with environment
variables read once, when a server process first needs them:

    BASTION_ANALYTICS_STATEMENT_TIMEOUT_MS   statement timeout of every query (30000)
    BASTION_ANALYTICS_MAX_RESULT_BYTES       byte cap of one result (8 MiB)
    BASTION_ANALYTICS_MAX_ROWS               ceiling on `max_rows`, and the rows a chart reads (100000)
    BASTION_ANALYTICS_CHART_MAX_ROWS         points a chart inlines (5000)
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, fields

from bastion.errors import ConfigError

__all__ = ["ENV_PREFIX", "AnalyticsConfig"]

ENV_PREFIX = "BASTION_ANALYTICS_"


@dataclass(frozen=True)
class AnalyticsConfig:
    """Limits of the analytics sandbox. Every value is positive."""

    statement_timeout_ms: int = 30_000
    lock_timeout_ms: int = 5_000
    max_result_bytes: int = 8 * 1024 * 1024
    max_rows: int = 100_000
    # Rows fetched per round trip from the server-side cursor.
    fetch_batch: int = 2_000
    # Rows a CSV's types are inferred from (plus the file's last rows).
    inference_rows: int = 10_000
    connect_timeout_s: int = 10
    sample_rows: int = 5
    chart_max_rows: int = 5_000

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"{ENV_PREFIX}{f.name.upper()}={value!r}: expected a positive integer.")

    @classmethod
    def from_environ(cls, environ: Mapping[str, str] | None = None) -> AnalyticsConfig:
        """Defaults overridden by `BASTION_ANALYTICS_<FIELD>` variables."""
        env = os.environ if environ is None else environ
        values: dict[str, int] = {}
        for f in fields(cls):
            raw = env.get(ENV_PREFIX + f.name.upper())
            if raw is None:
                continue
            try:
                values[f.name] = int(raw)
            except ValueError:
                raise ConfigError(
                    f"{ENV_PREFIX}{f.name.upper()}={raw!r}: expected a positive integer."
                ) from None
        return cls(**values)

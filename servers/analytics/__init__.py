"""The analytics MCP server: datasets, external PostgreSQL sources and read-only SQL.

`spec` is the server; `load_file` is the loading path the `bastion dataset load`
command uses outside a running server.
"""

from __future__ import annotations

from servers.analytics.config import AnalyticsConfig
from servers.analytics.migrations import MIGRATIONS
from servers.analytics.readers import ReadOptions
from servers.analytics.server import spec
from servers.analytics.standalone import load_file

__all__ = ["MIGRATIONS", "AnalyticsConfig", "ReadOptions", "load_file", "spec"]

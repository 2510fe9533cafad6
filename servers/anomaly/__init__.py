"""The `anomaly` MCP server: time series, tables and answer risk."""

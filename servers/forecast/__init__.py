"""The `forecast` MCP server: statistical forecasts with model choice by cross-validation."""

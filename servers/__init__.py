"""Bastion's built-in MCP servers, one package each; a server never imports another."""

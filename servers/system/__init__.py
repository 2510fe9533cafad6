"""The `system` server: what this Bastion is and whether it is healthy."""

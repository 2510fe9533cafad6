"""Tool arguments checked against the tool's `inputSchema` before anything runs upstream.

A call whose arguments do not match gets a tool error (`isError: true`) that names the
offending argument, as the MCP specification asks for input validation errors (the
model can correct itself), and the upstream never sees it. Validators are compiled once
per schema (compiling costs about sixty validations) with an empty `referencing`
registry, so a `$ref` resolves inside the schema and the bundled metaschemas only:
validation never fetches anything. A schema that is itself invalid is the upstream's
defect: it is logged once and its calls pass to the upstream, which stays the authority
on its own arguments.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from jsonschema import SchemaError
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from referencing import Registry
from referencing.exceptions import Unresolvable

__all__ = ["ArgumentSchemas"]

logger = logging.getLogger(__name__)

_MESSAGE_MAX = 300  # characters of the validator's own message (it may quote a large value)


class ArgumentSchemas:
    """Compiled input-schema validators, one per (upstream, tool), rebuilt when the schema changes."""

    def __init__(self) -> None:
        # (upstream, tool) -> (the schema it was built from, its validator or None if unusable)
        self._validators: dict[tuple[str, str], tuple[object, Validator | None]] = {}

    def problem(self, upstream: str, tool: str, schema: Any, arguments: Mapping[str, Any]) -> str | None:
        """Why `arguments` do not match `schema`, in one line; None when they do."""
        validator = self._validator(upstream, tool, schema)
        if validator is None:
            return None
        try:
            error = best_match(validator.iter_errors(dict(arguments)))
        except Unresolvable as exc:  # a `$ref` to somewhere outside the schema
            logger.warning(
                "tool %r of upstream %r: its inputSchema has a $ref that does not resolve (%s); "
                "its arguments go unchecked",
                tool,
                upstream,
                exc,
            )
            self._validators[(upstream, tool)] = (schema, None)
            return None
        if error is None:
            return None
        where = "".join(
            f"[{part!r}]" if isinstance(part, int) else f".{part}" for part in error.absolute_path
        )
        message = (
            error.message if len(error.message) <= _MESSAGE_MAX else error.message[:_MESSAGE_MAX] + "..."
        )
        place = f"argument {where.lstrip('.')!r}" if where else "the arguments"
        return f"{place}: {message}"

    def _validator(self, upstream: str, tool: str, schema: Any) -> Validator | None:
        key = (upstream, tool)
        cached = self._validators.get(key)
        if cached is not None and cached[0] is schema:
            return cached[1]
        validator: Validator | None = None
        if isinstance(schema, dict):
            cls = validator_for(schema)
            try:
                cls.check_schema(schema)
                validator = cls(schema, registry=Registry())
            except SchemaError as exc:
                logger.warning(
                    "tool %r of upstream %r has an invalid inputSchema (%s); its arguments go unchecked",
                    tool,
                    upstream,
                    exc.message,
                )
        if len(self._validators) > 10_000:  # catalogs that churn must not grow this without bound
            self._validators.clear()
        self._validators[key] = (schema, validator)
        return validator

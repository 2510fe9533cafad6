"""Errors of the policy layer.

    BastionError
    └── PolicyError                 anything the policy layer raises on purpose
        ├── PolicyLoadError         a policy or data file is invalid: fix the file
        │                           (also a ConfigError, exit 2)
        └── PolicyEvaluationError   a decision could not be made: engine error, OPA unreachable,
                                    slow or answering nonsense (a RuntimeFailure, exit 1)

Engines never let these escape `decide`: a decision that cannot be made is a denial (fail
closed) whose reason carries the error's message.
"""

from __future__ import annotations

from bastion.errors import BastionError, ConfigError, RuntimeFailure

__all__ = ["PolicyError", "PolicyEvaluationError", "PolicyLoadError"]


class PolicyError(BastionError):
    """Base of every error the policy layer raises on purpose."""


class PolicyLoadError(PolicyError, ConfigError):
    """A policy or data file cannot be used; the message names the file and the problem."""


class PolicyEvaluationError(PolicyError, RuntimeFailure):
    """Evaluating the policy failed; callers deny the request."""

    status_code = 503

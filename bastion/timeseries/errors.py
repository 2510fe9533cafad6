"""The error every time-series input check raises.

    ConfigError (bastion.errors)
    └── SeriesInputError     the series, timestamps or options given are unusable

It is a `ConfigError` because the caller must fix the input: the message says what
was wrong (with the offending position when there is one) and what to do.
"""

from __future__ import annotations

from bastion.errors import ConfigError

__all__ = ["SeriesInputError", "require_extra"]


class SeriesInputError(ConfigError):
    """A series, its timestamps or an option cannot be used as given."""


def require_extra(extra: str) -> None:
    """Fail clearly when the optional numeric stack of `extra` is not installed."""
    try:
        import numpy  # noqa: F401  # pyright: ignore[reportUnusedImport]
        import pandas  # noqa: F401  # pyright: ignore[reportUnusedImport]
    except ImportError as exc:  # pragma: no cover - the test environment has the extras
        raise ConfigError(
            f"the {extra} server needs numpy and pandas ({exc.name} is missing). "
            f"Install them with: pip install 'bastion[{extra}]'"
        ) from None

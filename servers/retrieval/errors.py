"""Errors of the retrieval server.

Each says what was wrong and what to do; tools turn them into `isError` results and
nothing already stored is touched by a refused request:

    RetrievalError (bastion.errors.BastionError)
    ├── InputError            bad arguments: an over-long query, an unknown mode, bad filters (400)
    │   ├── PathRefusedError  a path outside the allowed roots, missing, too big, of an unsupported type
    │   └── ExtractionError   a file that cannot be read as its type: corrupt PDF, empty file, bad DOCX
    ├── AccessDeniedError     the caller may not read or write that collection (403)
    ├── NotFoundError         no such collection, document, chunk or job (404)
    └── ExtraMissingError     the `retrieval` extra (onnxruntime, tokenizers, ...) is not installed
"""

from __future__ import annotations

from bastion.errors import BastionError, ConfigError

__all__ = [
    "AccessDeniedError",
    "ExtraMissingError",
    "ExtractionError",
    "InputError",
    "NotFoundError",
    "PathRefusedError",
    "RetrievalError",
    "missing_extra",
]


class RetrievalError(BastionError):
    """Base of every error the retrieval server raises on purpose."""


class InputError(RetrievalError):
    """The request's arguments are wrong; the message names the argument and the fix."""

    exit_code = 2
    status_code = 400


class PathRefusedError(InputError):
    """A path that may not or cannot be ingested."""


class ExtractionError(InputError):
    """A file whose content cannot be extracted as its type."""


class AccessDeniedError(RetrievalError):
    """The caller's obligations do not allow this collection."""

    status_code = 403


class NotFoundError(RetrievalError):
    """The collection, document, chunk or job does not exist (or is not visible)."""

    status_code = 404


class ExtraMissingError(ConfigError):
    """An optional dependency of the retrieval server is missing."""


def missing_extra(module: str) -> ExtraMissingError:
    return ExtraMissingError(
        f"the retrieval server needs the Python module {module!r}, which is not installed. "
        "Install the extra with `pip install 'bastion[retrieval]'`."
    )

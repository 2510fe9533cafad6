"""Which files an ingestion may read: allowed roots, include/exclude globs, size limits.

A path is accepted only when its real location (symlinks resolved) lies under one of
the allowed roots, so a link inside a root cannot lead outside it. Globs use `fnmatch`
rules against the path relative to the folder being walked (`*` also crosses `/`); a
pattern without `/` is matched against the file name alone, and a leading `**/` also
matches at the top level.
"""

from __future__ import annotations

import fnmatch
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from servers.retrieval.errors import PathRefusedError
from servers.retrieval.extract import SUPPORTED_SUFFIXES, kind_of

__all__ = ["FileCheck", "check_file", "matches", "resolve_allowed", "walk_folder"]


def _under(path: Path, roots: Sequence[Path]) -> bool:
    return any(path == root or root in path.parents for root in roots)


def resolve_allowed(raw: str, roots: Sequence[Path]) -> Path:
    """`raw` resolved, if it exists under an allowed root; else a PathRefusedError saying why."""
    if not raw or "\x00" in raw:
        raise PathRefusedError(f"invalid path {raw!r}")
    path = Path(raw).expanduser()
    if not path.is_absolute():
        raise PathRefusedError(
            f"path {raw!r} is relative: give an absolute path under one of the allowed roots "
            f"({', '.join(map(str, roots))})"
        )
    resolved = path.resolve()
    if not _under(resolved, roots):
        raise PathRefusedError(
            f"path {raw!r} is outside the allowed roots ({', '.join(map(str, roots))}). Copy the file "
            "under one of them, or have the administrator add its folder to BASTION_RETRIEVAL_ALLOWED_ROOTS."
        )
    if not resolved.exists():
        raise PathRefusedError(f"path {raw!r} does not exist")
    return resolved


@dataclass(frozen=True, slots=True)
class FileCheck:
    """A file's format, or the reason it cannot be ingested."""

    kind: str | None
    size: int
    reason: str | None


def check_file(path: Path, max_bytes: int) -> FileCheck:
    """Format and size checks done before a file is read."""
    kind = kind_of(path)
    try:
        size = path.stat().st_size
    except OSError as exc:
        return FileCheck(kind, 0, f"cannot read {path} ({exc.strerror})")
    if kind is None:
        supported = ", ".join(sorted(SUPPORTED_SUFFIXES))
        return FileCheck(
            None, size, f"unsupported file type {path.suffix or '(none)'!r}; supported: {supported}"
        )
    if size > max_bytes:
        return FileCheck(
            kind,
            size,
            f"file of {size:,} bytes exceeds the {max_bytes:,}-byte limit "
            "(BASTION_RETRIEVAL_MAX_FILE_BYTES); split it or raise the limit",
        )
    return FileCheck(kind, size, None)


def matches(relative: str, patterns: Sequence[str]) -> bool:
    """Whether a relative POSIX path matches any of the glob `patterns`."""
    name = relative.rsplit("/", 1)[-1]
    for pattern in patterns:
        candidates = [pattern]
        if pattern.startswith("**/"):
            candidates.append(pattern[3:])
        for candidate in candidates:
            target = relative if "/" in candidate else name
            if fnmatch.fnmatchcase(target, candidate):
                return True
    return False


def walk_folder(
    folder: Path, roots: Sequence[Path], include: Sequence[str], exclude: Sequence[str]
) -> Iterator[Path]:
    """Files under `folder`, recursively and in a stable order, filtered by the globs.

    Without `include`, only files of a supported type are listed; hidden files and
    folders (names starting with `.`) are skipped unless an include pattern names them.
    """
    for dirpath, dirnames, filenames in os.walk(folder, followlinks=False):
        base = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") or include)
        for name in sorted(filenames):
            path = base / name
            relative = path.relative_to(folder).as_posix()
            if exclude and matches(relative, exclude):
                continue
            if include:
                if not matches(relative, include):
                    continue
            elif name.startswith(".") or kind_of(path) is None:
                continue
            real = path.resolve()
            if _under(real, roots) and real.is_file():
                yield real

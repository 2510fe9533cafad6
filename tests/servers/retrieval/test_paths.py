"""Allowed roots, symlinks, globs and size checks."""

from __future__ import annotations

from pathlib import Path

import pytest

from servers.retrieval.errors import PathRefusedError
from servers.retrieval.paths import check_file, matches, resolve_allowed, walk_folder


def test_paths_outside_the_roots_or_missing_or_relative_are_refused(tmp_path: Path) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (root / "a.txt").write_text("a")
    assert resolve_allowed(str(root / "a.txt"), [root]) == root / "a.txt"
    with pytest.raises(PathRefusedError, match="outside the allowed roots"):
        resolve_allowed(str(tmp_path), [root])
    with pytest.raises(PathRefusedError, match="outside the allowed roots"):
        resolve_allowed(str(root / ".." / "x.txt"), [root])
    with pytest.raises(PathRefusedError, match="does not exist"):
        resolve_allowed(str(root / "missing.txt"), [root])
    with pytest.raises(PathRefusedError, match="relative"):
        resolve_allowed("a.txt", [root])


def test_a_symlink_leading_outside_the_roots_is_refused_and_never_walked(tmp_path: Path) -> None:
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (outside / "secret.txt").write_text("secret")
    (root / "link.txt").symlink_to(outside / "secret.txt")
    (root / "ok.md").write_text("ok")
    with pytest.raises(PathRefusedError, match="outside the allowed roots"):
        resolve_allowed(str(root / "link.txt"), [root])
    assert list(walk_folder(root, [root], [], [])) == [root / "ok.md"]


def test_walking_applies_include_and_exclude_globs_and_skips_hidden_files(tmp_path: Path) -> None:
    for name in ("a.md", "b.txt", "c.bin", ".hidden.md", "sub/d.md", "sub/drafts/e.md", ".git/f.md"):
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("x")
    names = lambda found: sorted(p.relative_to(tmp_path).as_posix() for p in found)  # noqa: E731
    assert names(walk_folder(tmp_path, [tmp_path], [], [])) == [
        "a.md",
        "b.txt",
        "sub/d.md",
        "sub/drafts/e.md",
    ]
    # With include patterns, hidden files are candidates too: the patterns decide.
    included = names(walk_folder(tmp_path, [tmp_path], ["*.md"], ["sub/drafts/*"]))
    assert included == [".git/f.md", ".hidden.md", "a.md", "sub/d.md"]
    assert (
        matches("x/y/z.md", ["**/*.md"]) and matches("z.md", ["**/*.md"]) and not matches("z.txt", ["*.md"])
    )


def test_file_checks_name_the_unsupported_type_and_the_size_limit(tmp_path: Path) -> None:
    (tmp_path / "a.exe").write_bytes(b"MZ")
    (tmp_path / "big.txt").write_text("x" * 100)
    assert "unsupported file type '.exe'" in (check_file(tmp_path / "a.exe", 1000).reason or "")
    assert "exceeds the 10-byte limit" in (check_file(tmp_path / "big.txt", 10).reason or "")
    assert check_file(tmp_path / "big.txt", 1000).kind == "text"

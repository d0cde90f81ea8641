"""The templates folder as read at one moment: what the renderer renders from, and how it notices an edit.

Renders and checks never read template files from the disk themselves: they read a :class:`FolderSnapshot`, so
a file saved half-way through a render, or between a check and the use of what was checked, cannot mix two
versions, and the last version that passed the check can go on serving while the files on disk are broken.

Noticing an edit is cheap: :func:`folder_stamp` lists names, sizes, mtimes and inodes (no reads). A file changed
within :data:`RACY_SECONDS` of a read could change again with the same mtime and size (file systems keep mtimes
in clock ticks), so a snapshot read that soon after a change is not *settled*, and the next look reads the
files again instead of trusting the stamp (git's "racy clean" rule).
"""

from __future__ import annotations

import hashlib
import os
import stat
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

MAX_TEMPLATE_CHARS = 256_000  # a template file larger than this is refused before Jinja compiles it
RACY_SECONDS = 2.0

Stamp = tuple[tuple[object, ...], ...]


@dataclass(frozen=True, kw_only=True)
class Refusal:
    """Why a file in the folder cannot be used; ``line`` where that is known (a byte that is not UTF-8)."""

    message: str
    line: int | None = None
    security: bool = False  # a symbolic link out of the folder: refused by the sandbox where it is used


@dataclass(frozen=True, kw_only=True)
class FolderSnapshot:
    """Every file of the templates folder (names relative to it, with ``/``), as read at one moment."""

    root: str  # the folder's absolute path and a separator: what template file names start with
    sources: Mapping[str, str]  # "en/acknowledgement.txt" -> its text (LF line ends)
    refused: Mapping[str, Refusal]  # files and folders that cannot be used, and why
    children: Mapping[str, tuple[tuple[str, bool], ...]]  # folder ("" is the top) -> (name, is a folder), sorted
    digests: Mapping[str, str]  # name -> SHA-256 of its text
    stamp: Stamp
    settled: bool
    version: str  # SHA-256 over every name, text and refusal: equal versions are equal folders

    def entries(self, folder: str) -> tuple[tuple[str, bool], ...]:
        return self.children.get(folder, ())

    def is_file(self, name: str) -> bool:
        return name in self.sources or (name in self.refused and name not in self.children)

    @property
    def names(self) -> list[str]:
        """Every file, used or refused, sorted."""
        return sorted(name for name in {*self.sources, *self.refused} if name not in self.children)


def folder_stamp(root: Path) -> Stamp:
    """Names, kinds, sizes, mtimes and inodes of everything under ``root``: changes whenever a file does."""
    return tuple(_stamp_of(name, entry)[0] for name, entry in _scan(root))


def read_folder(root: Path) -> FolderSnapshot:
    """Read every file under ``root`` (names starting with a dot are left out; a missing folder is empty)."""
    started = time.time_ns()
    inside = os.path.realpath(root) + os.sep
    stamps: list[tuple[object, ...]] = []
    sources: dict[str, str] = {}
    refused: dict[str, Refusal] = {}
    children: dict[str, list[tuple[str, bool]]] = {"": []}
    newest = 0
    for name, entry in _scan(root):
        entry_stamp, info = _stamp_of(name, entry)
        stamps.append(entry_stamp)
        if info is None:
            continue  # a broken symbolic link: as if it were not there
        newest = max(newest, info.st_mtime_ns)
        is_folder = stat.S_ISDIR(info.st_mode)
        children.setdefault(name.rpartition("/")[0], []).append((entry.name, is_folder))
        if is_folder:
            children.setdefault(name, [])
            if entry.is_symlink():
                refused[name] = Refusal(message="is a symbolic link to a folder, which closeloop does not follow")
            continue
        text = _text(entry.path, info.st_size, inside)
        if isinstance(text, Refusal):
            refused[name] = text
        else:
            sources[name] = text
    return FolderSnapshot(
        root=str(Path(root).absolute()) + os.sep,
        sources=sources,
        refused=refused,
        children={folder: tuple(found) for folder, found in children.items()},
        digests={name: _sha256(text) for name, text in sources.items()},
        stamp=tuple(stamps),
        settled=newest < started - int(RACY_SECONDS * 1e9),
        version=_version(sources, refused, children),
    )


def _scan(root: Path, folder: str = "") -> Iterator[tuple[str, os.DirEntry[str]]]:
    """Every entry under ``root/folder`` but those starting with a dot, parents first; linked folders not entered."""
    for entry in _entries(root / folder if folder else root):
        name = f"{folder}/{entry.name}" if folder else entry.name
        yield name, entry
        if entry.is_dir(follow_symlinks=False):
            yield from _scan(root, name)


def _entries(folder: Path) -> list[os.DirEntry[str]]:
    try:
        with os.scandir(folder) as entries:
            return sorted((entry for entry in entries if not entry.name.startswith(".")), key=lambda e: e.name)
    except OSError:  # missing, not a folder, or not readable: nothing there to use
        return []


def _stamp_of(name: str, entry: os.DirEntry[str]) -> tuple[tuple[object, ...], os.stat_result | None]:
    try:
        info = entry.stat()
    except OSError:
        return (name, None), None
    return (name, info.st_mode, info.st_size, info.st_mtime_ns, info.st_ino), info


def _text(path: str, size: int, inside: str) -> str | Refusal:
    """A file's text as Jinja's own loader reads it (UTF-8, universal newlines), or why it cannot be used."""
    if not os.path.realpath(path).startswith(inside):
        return Refusal(message="is a symbolic link out of the templates folder", security=True)
    too_large = Refusal(message=f"template file is larger than {MAX_TEMPLATE_CHARS} characters", line=1)
    if size > 4 * MAX_TEMPLATE_CHARS:  # more bytes than that many characters can take in UTF-8
        return too_large
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        return Refusal(message=f"cannot be read: {exc.strerror}")
    try:
        text = raw.decode("utf-8").replace("\r\n", "\n").replace("\r", "\n")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        return Refusal(message="not UTF-8 text: save the file as UTF-8", line=line)
    return too_large if len(text) > MAX_TEMPLATE_CHARS else text


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _version(sources: Mapping[str, str], refused: Mapping[str, Refusal], children: Mapping[str, object]) -> str:
    digest = hashlib.sha256()
    for name in sorted({*sources, *refused, *children}):
        detail = sources.get(name)
        what = _sha256(detail) if detail is not None else repr(refused.get(name, "folder"))
        digest.update(f"{name}\0{what}\0".encode())
    return digest.hexdigest()


__all__ = ["MAX_TEMPLATE_CHARS", "RACY_SECONDS", "FolderSnapshot", "Refusal", "folder_stamp", "read_folder"]

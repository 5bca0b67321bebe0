"""Staging on a shared file system: checked items, the output matcher, atomic copies.

Every file is written to a temporary name in its target directory and renamed
into place only once it is complete and its SHA-256 is known, so a reader never
sees half a file and a failed copy leaves nothing behind. The ``local`` and
``slurm`` backends stage with :func:`copy_in` and :func:`copy_out`; the
``firecrest`` backend shares the matcher and the local side of its transfers.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from jid_service.backends.errors import StagingFailed
from jid_service.models import StagedFile

CHUNK = 1024 * 1024


@dataclass(frozen=True)
class StageInItem:
    """A checked input: a file on the JID's host and where it goes in the work dir."""

    source: Path
    target: PurePosixPath


@dataclass(frozen=True)
class StageOutItem:
    """A checked output glob (relative to the work dir) and the local directory it goes to."""

    pattern: str
    target: Path


def glob_regex(pattern: str) -> re.Pattern[str]:
    """``pattern`` as a regex over relative POSIX paths (``**`` spans directories)."""
    out: list[str] = []
    i = 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out))


def matching(names: Iterable[str], pattern: str) -> list[str]:
    """The relative paths among ``names`` that ``pattern`` matches, sorted."""
    regex = glob_regex(pattern)
    return sorted(name for name in names if regex.fullmatch(name))


def sha256_bytes(data: bytes) -> str:
    """The SHA-256 of ``data`` in hex."""
    return hashlib.sha256(data).hexdigest()


def temporary_sibling(dest: Path) -> Path:
    """A fresh hidden name beside ``dest`` to write it under before the rename."""
    return dest.with_name(f".{dest.name}.part-{uuid.uuid4().hex[:12]}")


def sha256_file(path: Path) -> tuple[int, str]:
    """(bytes, SHA-256 in hex) of the file at ``path``, read in chunks."""
    digest = hashlib.sha256()
    size = 0
    for chunk in read_chunks(path):
        digest.update(chunk)
        size += len(chunk)
    return size, digest.hexdigest()


def write_atomically(dest: Path, chunks: Iterable[bytes]) -> tuple[int, str]:
    """Write ``chunks`` to ``dest`` through a temporary file and a rename.

    Returns (bytes, sha256). On any failure the temporary file is removed and
    ``dest`` is left as it was.
    """
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = temporary_sibling(dest)
    digest = hashlib.sha256()
    size = 0
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        with os.fdopen(fd, "wb") as fh:
            for chunk in chunks:
                fh.write(chunk)
                digest.update(chunk)
                size += len(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, dest)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    return size, digest.hexdigest()


def read_chunks(path: Path) -> Iterator[bytes]:
    """``path`` in chunks, refusing a symlink at the last component."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd, "rb") as fh:
        while chunk := fh.read(CHUNK):
            yield chunk


def inside(root: Path, relative: PurePosixPath | str) -> Path:
    """``root / relative`` resolved, or StagingFailed if a symlink leads it out of ``root``."""
    base = root.resolve()
    path = (base / relative).resolve()
    if not path.is_relative_to(base):
        raise StagingFailed(f"{relative} leads outside the work dir {root} (symlink)")
    return path


def files_under(root: Path) -> list[str]:
    """Every regular file under ``root`` as a relative POSIX path; symlinks are not followed."""
    names = []
    for dirpath, _dirs, files in os.walk(root):
        for name in files:
            path = Path(dirpath, name)
            if path.is_file() and not path.is_symlink():
                names.append(path.relative_to(root).as_posix())
    return names


def copy_in(work_dir: Path, items: Iterable[StageInItem]) -> list[StagedFile]:
    """Copy each input into ``work_dir`` (shared file system); what moved."""
    staged = []
    for item in items:
        dest = inside(work_dir, item.target)
        try:
            size, digest = write_atomically(dest, read_chunks(item.source))
        except OSError as err:
            raise StagingFailed(f"{item.source} -> {dest}: {err.strerror or err}") from err
        staged.append(StagedFile(path=str(dest), bytes=size, sha256=digest, direction="in"))
    return staged


def copy_out(work_dir: Path, items: Iterable[StageOutItem]) -> list[StagedFile]:
    """Copy the files each glob matches in ``work_dir`` to its target; what moved.

    A glob that matches no file is a failure: the step declared an output it
    did not write.
    """
    try:
        names = files_under(work_dir)
    except OSError as err:
        raise StagingFailed(f"cannot list the work dir {work_dir}: {err}") from err
    staged = []
    for item in items:
        found = matching(names, item.pattern)
        if not found:
            raise StagingFailed(f"stage_out {item.pattern!r} matched no file in {work_dir}")
        for name in found:
            source = inside(work_dir, name)
            dest = item.target / name
            try:
                size, digest = write_atomically(dest, read_chunks(source))
            except OSError as err:
                raise StagingFailed(f"{source} -> {dest}: {err.strerror or err}") from err
            staged.append(StagedFile(path=str(dest), bytes=size, sha256=digest,
                                     direction="out"))
    return staged

"""Crash-safe persistence of the broker's JSON config files (reference §5.8).

``save_text`` writes ``<file>.tmp``, fsyncs it, keeps the previous version as ``<file>.bak``,
renames the tmp file over ``<file>`` and fsyncs the directory, so after a crash at any point
either the new or the previous content is on disk.  ``load_text`` falls back to ``.bak``
when the file is missing, empty or rejected by the caller's parser — a truncated
consumerOffset.json must never silently mean "start every group from zero".
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

log = logging.getLogger(__name__)


class ConfigFileError(Exception):
    """Neither a config file nor its backup could be read and parsed."""


def _fsync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_text(path: Path | str, text: str) -> None:
    """Atomically replace ``path`` with ``text``, keeping the old content in ``path.bak``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    bak = path.with_name(path.name + ".bak")
    with open(tmp, "wb") as fh:
        fh.write(text.encode())
        fh.flush()
        os.fsync(fh.fileno())
    if path.exists() and path.stat().st_size > 0:
        # A hard link keeps the previous inode as .bak without copying; fall back to a copy
        # on file systems without links.
        bak_tmp = path.with_name(path.name + ".bak.tmp")
        bak_tmp.unlink(missing_ok=True)
        try:
            os.link(path, bak_tmp)
        except OSError:
            shutil.copyfile(path, bak_tmp)
            # a copy is new data: unsynced, a power loss could leave .bak empty
            with open(bak_tmp, "rb") as copied:
                os.fsync(copied.fileno())
        os.replace(bak_tmp, bak)
    os.replace(tmp, path)
    _fsync_dir(path.parent)


def load_text(path: Path | str, parse: Callable[[str], T]) -> T | None:
    """Parse ``path`` (or its ``.bak`` when the file is missing, empty or unparseable).

    Returns ``None`` when neither file exists (a fresh store).  Raises ``ConfigFileError`` when
    a file exists but neither it nor the backup parses: starting with an empty table instead
    would silently lose offsets or topics.
    """
    path = Path(path)
    bak = path.with_name(path.name + ".bak")
    problems: list[str] = []
    for candidate in (path, bak):
        try:
            text = candidate.read_bytes().decode()
        except FileNotFoundError:
            continue
        except (OSError, UnicodeDecodeError) as exc:
            problems.append(f"{candidate}: {exc}")
            continue
        if not text.strip():
            problems.append(f"{candidate}: empty")
            continue
        try:
            value = parse(text)
        except Exception as exc:
            problems.append(f"{candidate}: {type(exc).__name__}: {exc}")
            continue
        if candidate is bak:
            log.warning("%s unusable (%s); loaded the backup %s", path, "; ".join(problems), bak)
        return value
    if problems:
        raise ConfigFileError("; ".join(problems))
    return None

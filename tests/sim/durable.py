"""What a store directory holds after a power loss at this instant, as a copy.

The live store writes through mmap, so its files already hold every byte appended, flushed or
not: a copy of them is what a *process* kill leaves (the page cache survives).  A power loss
keeps less: for every mapped file of the store (commit log, consume queues, index files) the
bytes below its ``flushed_position`` (fdatasync'd) survive, and of the pages written after it
each one independently did or did not reach the disk before the lights went out (writeback
order is the kernel's, so the seed decides page by page).  Files outside the mappings
(config/*.json, checkpoint, abort) are written by storage/json_store.py and the checkpoint
with fsync before they count, so their current content is taken as durable.

Limits, honestly: pages are all-or-nothing (no torn 512-byte sectors inside a page), a file's
metadata (size, existence) is taken as durable once created (files are preallocated and their
directory fsync'd when created), and the mapped files are found by walking the live objects
(``gc``), so a mapped file the store no longer references is copied as it is.  The simulation
is single-threaded (tests/sim/conftest.py runs worker-thread calls inline), so no write is
half-done when the image is taken.  Real power loss on real disks is what the FUSE harness of
tests/crash covers; this is its in-process, deterministic approximation.
"""

from __future__ import annotations

import gc
import os
import random
import shutil
from pathlib import Path

import attrs

from storage.mapped_file import MappedFile

PAGE = 4096


@attrs.define
class ImageStats:
    files: int = 0
    unflushed_pages: int = 0
    lost_pages: int = 0


def live_mapped_files(root: Path) -> list[MappedFile]:
    prefix = str(root.resolve()) + os.sep
    found = [
        obj
        for obj in gc.get_objects()
        if isinstance(obj, MappedFile) and os.path.abspath(obj.path).startswith(prefix)
    ]
    return sorted(found, key=lambda mf: mf.path)


def power_loss_copy(
    src: Path, dst: Path, rng: random.Random | None, *, survive: float = 0.5
) -> ImageStats:
    """Copy ``src`` to ``dst`` as a power loss now would leave it (``rng`` None: a process
    kill, every written byte survives)."""
    shutil.copytree(src, dst)
    stats = ImageStats()
    if rng is None:
        return stats
    src_root = src.resolve()
    for mf in live_mapped_files(src):
        stats.files += 1
        flushed, wrote = mf.flushed_position, mf.wrote_position
        if wrote <= flushed:
            continue
        target = dst / Path(os.path.abspath(mf.path)).relative_to(src_root)
        with open(target, "r+b") as fh:
            page = flushed // PAGE * PAGE
            while page < wrote:
                stats.unflushed_pages += 1
                if rng.random() >= survive:
                    stats.lost_pages += 1
                    start = max(page, flushed)
                    end = min(page + PAGE, wrote)
                    fh.seek(start)
                    fh.write(b"\0" * (end - start))
                page += PAGE
    return stats

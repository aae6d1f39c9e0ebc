"""Startup recovery (§5.9): find the end of valid commit-log data, cut consume queues to it.

Normal recovery (no abort file) scans from the 3rd-last file; abnormal recovery starts at the last
file whose first record was stored before the checkpoint's min timestamp.  Either way every record
is validated by layout (magic, TOTALSIZE adding up, PHYSICALOFFSET = its position) and, with
``checkCRCOnRecover``, by body CRC; data ends at the first record that fails.  Consume-queue and
index entries are then rebuilt by reput from ``dispatch_from``, which is idempotent.
"""

from __future__ import annotations

import logging
import mmap
import struct
from collections.abc import Callable

import attrs

from protocol.message import MESSAGE_MAGIC_CODE, store_timestamp_pos
from storage.checkpoint import StoreCheckpoint
from storage.commitlog import CommitLog
from storage.dispatch import BLANK, check_record
from storage.mapped_file import MappedFile

log = logging.getLogger(__name__)


@attrs.frozen
class CommitLogRecovery:
    end_offset: int  # end of the last whole record
    scan_from: int  # first offset examined
    # first record the ``missing`` predicate flagged (not in its consume queue / the index);
    # None when it flagged none.  Abnormal recovery re-dispatches from here, in the same pass
    # that validates the records instead of a second one.
    first_missing: int | None = None


def _first_record_timestamp(mf: MappedFile) -> int:
    size, magic = struct.unpack_from(">ii", mf.mm, 0)
    if magic != MESSAGE_MAGIC_CODE or size <= 0:
        return 0
    (sys_flag,) = struct.unpack_from(">i", mf.mm, 36)
    return int(struct.unpack_from(">q", mf.mm, store_timestamp_pos(sys_flag))[0])


def _abnormal_start(files: list[MappedFile], checkpoint: StoreCheckpoint, use_index: bool) -> int:
    limit = checkpoint.min_timestamp_index if use_index else checkpoint.min_timestamp
    for i in range(len(files) - 1, -1, -1):
        ts = _first_record_timestamp(files[i])
        if ts != 0 and ts <= limit:
            return i
    return 0


Missing = Callable[[mmap.mmap, int, int], bool]  # (mapping, position, global offset)


def scan_valid_end(
    mf: MappedFile, *, check_crc: bool, missing: Missing | None = None
) -> tuple[int, bool, int | None]:
    """(end of valid data in ``mf``, whether it ended with a BLANK, i.e. continues in the next,
    offset of the first valid record ``missing`` flagged)."""
    pos = 0
    mm = mf.mm
    size = mf.file_size
    base = mf.file_from_offset
    first_missing = None
    while True:
        got = check_record(mm, pos, size, base, check_crc=check_crc, decode=False)
        if isinstance(got, int) and got > 0:
            if missing is not None and missing(mm, pos, base + pos):
                first_missing = base + pos
                missing = None  # everything after it is re-dispatched anyway
            pos += got
            continue
        return pos, got == BLANK, first_missing


def recover_commit_log(
    commit_log: CommitLog,
    *,
    abnormal: bool,
    checkpoint: StoreCheckpoint,
    check_crc: bool,
    index_safe: bool = False,
    missing: Missing | None = None,
) -> CommitLogRecovery:
    files = commit_log.queue.files
    if not files:
        return CommitLogRecovery(0, 0)
    start = _abnormal_start(files, checkpoint, index_safe) if abnormal else max(0, len(files) - 3)
    scan_from = files[start].file_from_offset
    end = scan_from
    first_missing = None
    for mf in files[start:]:
        pos, continues, flagged = scan_valid_end(mf, check_crc=check_crc, missing=missing)
        if flagged is not None and first_missing is None:
            first_missing = flagged
            missing = None
        end = mf.file_from_offset + (mf.file_size if continues else pos)
        if not continues:
            break
    log.info(
        "commit log (%s recovery): valid data ends at %d", "abnormal" if abnormal else "normal", end
    )
    commit_log.queue.set_positions(end)
    return CommitLogRecovery(end, scan_from, first_missing)

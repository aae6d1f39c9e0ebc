"""Pure cleanup decisions (§6.4): when to delete, and how full the disk may get."""

from __future__ import annotations

import datetime
import os

import attrs

from storage.config import MessageStoreConfig


@attrs.frozen
class DiskVerdict:
    disk_full: bool  # above diskSpaceWarningLevelRatio: refuse writes
    clean_immediately: bool  # above diskSpaceCleanForciblyRatio: delete even unexpired files
    space_to_delete: bool  # above diskMaxUsedSpaceRatio: delete expired files at any hour


def judge_disk(ratio: float, config: MessageStoreConfig) -> DiskVerdict:
    full = ratio > config.diskSpaceWarningLevelRatio
    forcibly = full or ratio > config.diskSpaceCleanForciblyRatio
    return DiskVerdict(
        disk_full=full,
        clean_immediately=forcibly and config.cleanFileForciblyEnable,
        space_to_delete=ratio > config.diskMaxUsedSpaceRatio / 100,
    )


def is_delete_hour(now_ms: int, hours: set[int]) -> bool:
    """Whether local time at ``now_ms`` falls in one of the ``deleteWhen`` hours."""
    return datetime.datetime.fromtimestamp(now_ms / 1000).hour in hours


def file_expired(last_modified_ms: int, now_ms: int, reserved_hours: int) -> bool:
    return last_modified_ms + reserved_hours * 3_600_000 <= now_ms


def disk_used_ratio(path: str) -> float:
    """Used fraction of the file system holding ``path`` (as Java's getDiskPartitionSpaceUsedPercent)."""
    st = os.statvfs(path)
    total = st.f_blocks * st.f_frsize
    if total == 0:
        return 0.0
    free = st.f_bfree * st.f_frsize
    return (total - free) / total

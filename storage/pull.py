"""Selecting one pull batch from consume-queue units (the scan part of getMessage, §6.7)."""

from __future__ import annotations

import attrs

from storage.commitlog import CommitLog
from storage.config import MessageStoreConfig
from storage.consume_queue import INT_MAX, UNIT
from storage.results import GetStatus


@attrs.frozen
class TransferLimits:
    """Batch limits; data further than ``memory_bytes`` behind the end counts as "in disk"."""

    bytes_in_memory: int
    count_in_memory: int
    bytes_in_disk: int
    count_in_disk: int
    memory_bytes: int

    @classmethod
    def from_config(cls, config: MessageStoreConfig, memory_bytes: int) -> TransferLimits:
        return cls(
            config.maxTransferBytesOnMessageInMemory,
            config.maxTransferCountOnMessageInMemory,
            config.maxTransferBytesOnMessageInDisk,
            config.maxTransferCountOnMessageInDisk,
            memory_bytes,
        )


@attrs.frozen
class Batch:
    status: GetStatus
    scanned: int  # units examined: next begin offset = requested offset + scanned
    buffers: list[bytes]
    suggest_pulling_from_slave: bool


def select_batch(
    units: bytes,
    commit_log: CommitLog,
    limits: TransferLimits,
    max_msg_nums: int,
    tag_codes: set[int] | None,
    max_total_bytes: int | None,
) -> Batch:
    """Walk ``units``: filter by tag hash code, read records, stop when the batch is full."""
    max_phy = commit_log.max_offset
    status = GetStatus.NO_MATCHED_MESSAGE
    buffers: list[bytes] = []
    total = 0
    skip_below = -1
    last_phy = 0
    scanned = 0
    for phys, size, tags in UNIT.iter_unpack(units):
        if buffers:
            in_disk = max_phy - phys > limits.memory_bytes
            limit_bytes = limits.bytes_in_disk if in_disk else limits.bytes_in_memory
            limit_count = limits.count_in_disk if in_disk else limits.count_in_memory
            if (
                len(buffers) >= max_msg_nums
                or total + size > limit_bytes
                or len(buffers) >= limit_count
                or (max_total_bytes is not None and total + size > max_total_bytes)
            ):
                break
        scanned += 1
        if size == INT_MAX or phys < skip_below:
            continue  # a blank unit, or a record in a commit-log file being removed
        if tag_codes is not None and tags not in tag_codes:
            continue
        raw = commit_log.read(phys, size)
        if raw is None:
            if not buffers:
                status = GetStatus.MESSAGE_WAS_REMOVING
            skip_below = commit_log.roll_next_file(phys)
            continue
        buffers.append(raw)
        total += size
        last_phy = phys
        status = GetStatus.FOUND
        skip_below = -1
    suggest = bool(buffers) and max_phy - last_phy > limits.memory_bytes
    return Batch(status, scanned, buffers, suggest)

"""Store file sizes for the brokers that tests start as processes.

Our store preallocates every mapped file (posix_fallocate, so that a full disk refuses a new
file instead of faulting on a sparse page later), so RocketMQ's defaults cost real disk in every
test: 6 MB per consume-queue file (one per queue of every topic) and 420 MB per index file. A
suite that starts a few hundred brokers filled a CI disk with them (the run failed with ENOSPC).
These sizes keep each file small and leave rollover in play; Apache's broker takes the same keys.
"""

from __future__ import annotations

SMALL_FILES: dict[str, int] = {
    "mappedFileSizeConsumeQueue": 30_000 * 20,  # a multiple of the 20-byte unit, as Java needs
    "maxHashSlotNum": 5_000,
    "maxIndexNum": 20_000,
}

"""Crash-test helper: appends under SYNC_FLUSH with the real actors and prints each acknowledgement.

Run as ``python tests/crash/store_writer.py STORE_DIR SEED``.  Prints ``ready`` after recovery,
then ``ack <offset> <size> <queue> <key> <sha1 of the record>`` for every message whose group
commit completed.  The test kills it with SIGKILL at a random moment.
"""

from __future__ import annotations

import hashlib
import random
import sys

import trio

from actors.store import FlushWake, commit_log_flusher, reput_dispatcher
from actors.waiters import OffsetWaiters
from actors.wake import Wake
from storage.config import FlushDiskType, MessageStoreConfig
from storage.message_store import MessageInner, MessageStore

WRITERS = 8
QUEUES = 4


def config(root: str) -> MessageStoreConfig:
    return MessageStoreConfig(
        storePathRootDir=root,
        flushDiskType=FlushDiskType.SYNC_FLUSH,
        mappedFileSizeCommitLog=64 * 1024,
        mappedFileSizeConsumeQueue=200 * 20,
        maxHashSlotNum=512,
        maxIndexNum=2000,
    )


def body_for(key: str) -> bytes:
    """Deterministic body, so the checker knows every byte that was acknowledged."""
    seed = int(hashlib.sha1(key.encode()).hexdigest()[:8], 16)
    return random.Random(seed).randbytes(seed % 700)


async def main(root: str, seed: int) -> None:
    store = MessageStore(config(root), store_host="127.0.0.1:10911")
    store.load()
    rng = random.Random(seed)
    waiters = OffsetWaiters()
    flush_wake = FlushWake()
    reput_wake = Wake()
    print("ready", flush=True)

    async def writer(w: int) -> None:
        n = 0
        while True:
            key = f"s{seed}-w{w}-n{n}"
            n += 1
            queue = rng.randrange(QUEUES)
            msg = MessageInner(
                "CrashTopic",
                queue,
                body_for(key),
                {"KEYS": key, "TAGS": f"t{w}"},
                born_host="127.0.0.1:5000",
            )
            result = store.put_message(msg)
            assert result.append is not None, result.status
            reput_wake.set()
            flush_wake.set()
            if not await waiters.wait_for(result.append.end_offset, timeout=5.0):
                raise RuntimeError("FLUSH_DISK_TIMEOUT")
            raw = store.select_one_message_by_offset(result.append.wrote_offset)
            assert raw is not None
            digest = hashlib.sha1(raw).hexdigest()
            print(f"ack {result.append.wrote_offset} {len(raw)} {queue} {key} {digest}", flush=True)

    async with trio.open_nursery() as nursery:
        await nursery.start(commit_log_flusher, store, store.config, waiters, flush_wake)
        await nursery.start(reput_dispatcher, store, None, reput_wake)
        for w in range(WRITERS):
            nursery.start_soon(writer, w)


if __name__ == "__main__":
    trio.run(main, sys.argv[1], int(sys.argv[2]))

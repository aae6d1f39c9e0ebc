"""The store's background services other than reput and the commit-log flusher."""

from __future__ import annotations

from collections.abc import Callable

import trio

from actors.store.checkpoint import checkpointer
from actors.store.cleanup import cleaner
from actors.store.flush import consume_queue_flusher
from storage.config import MessageStoreConfig
from storage.message_store import MessageStore


async def store_services(
    store: MessageStore,
    config: MessageStoreConfig,
    *,
    now_ms: Callable[[], int] | None = None,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Consume-queue flusher, checkpointer and cleaner; started when all three are."""
    async with trio.open_nursery() as nursery:
        await nursery.start(consume_queue_flusher, store, config)
        await nursery.start(checkpointer, store, config.flushIntervalConsumeQueue / 1000)
        await nursery.start(lambda **kw: cleaner(store, config, now_ms=now_ms, **kw))
        task_status.started()

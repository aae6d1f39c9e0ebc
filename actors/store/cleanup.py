"""The cleaner: deletes expired commit-log / consume-queue / index files and watches the disk."""

from __future__ import annotations

import logging
from collections.abc import Callable

import trio

from storage.config import MessageStoreConfig
from storage.message_store import MessageStore

log = logging.getLogger(__name__)

FIRST_DELAY = 60.0  # Java schedules the first cleanup a minute after start


async def cleaner(
    store: MessageStore,
    config: MessageStoreConfig,
    *,
    now_ms: Callable[[], int] | None = None,
    first_delay: float = FIRST_DELAY,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Every cleanResourceInterval ms: one cleanup round (deleteWhen, fileReservedTime, ratios).

    ``now_ms`` is the wall clock the deleteWhen hour and file ages are judged by (injectable so
    tests drive it from trio's clock).
    """
    clock = now_ms if now_ms is not None else store.now_ms
    task_status.started()
    await trio.sleep(first_delay)
    while True:
        deleted = await trio.to_thread.run_sync(store.clean_expired, clock())
        if deleted:
            log.info("cleanup deleted %d commit-log file(s)", deleted)
        await trio.sleep(config.cleanResourceInterval / 1000)

"""The checkpointer: persists the store checkpoint (flushed timestamps) periodically."""

from __future__ import annotations

import trio

from storage.message_store import MessageStore


async def checkpointer(
    store: MessageStore,
    interval: float = 1.0,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Write the checkpoint every ``interval`` s, so abnormal recovery starts close to the end."""
    task_status.started()
    while True:
        await trio.sleep(interval)
        await trio.to_thread.run_sync(store.write_checkpoint)

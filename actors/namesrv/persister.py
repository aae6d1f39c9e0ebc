"""kv_persister: writes kvConfig.json after KV changes (reference §9.5).

Handlers change the in-memory ``KvTable`` and then wait on ``KvStore.wait_persisted``, so a
PUT_KV_CONFIG is answered only once its change is on disk (or the write failed); changes
that arrive while a write is under way are written together by the next one.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import cast

import attrs
import trio
import trio_util

from actors.namesrv.kvconfig import KvTable, save_kv_file
from actors.shutdown import bounded_cleanup

log = logging.getLogger(__name__)

# Bound on the final write at shutdown.  It bounds only the wait for a worker thread: trio
# cannot interrupt a write already running in one.
FINAL_WRITE_TIMEOUT = 5.0


@attrs.define(eq=False)
class KvStore:
    """The KV table and the signals between its handlers and its persister."""

    path: Path
    table: KvTable
    changed: trio_util.RepeatedEvent = attrs.field(factory=trio_util.RepeatedEvent)
    # (last version the persister finished with, its error or None)
    done: trio_util.AsyncValue[tuple[int, str | None]] = attrs.field(
        factory=lambda: trio_util.AsyncValue((0, None))
    )

    async def wait_persisted(self) -> str | None:
        """Ask for the current table to be written; wait; return the write's error, if any.

        A later write includes this version's change, so its outcome is this change's too.
        """
        version = self.table.version
        self.changed.set()
        _, error = await self.done.wait_value(lambda done: done[0] >= version)
        return cast(str | None, error)


async def kv_persister(
    store: KvStore, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    task_status.started()
    try:
        async for _ in store.changed.events(repeat_last=True):
            await _write(store)
    finally:
        with bounded_cleanup(FINAL_WRITE_TIMEOUT, "final KV config write"):
            await _write(store)


async def _write(store: KvStore) -> None:
    version, snapshot = store.table.snapshot()
    if version == store.done.value[0]:
        return
    error = None
    try:
        await trio.to_thread.run_sync(save_kv_file, store.path, snapshot)
    except OSError as exc:
        log.error("cannot persist the KV config to %s: %s", store.path, exc)
        error = f"{type(exc).__name__}: {exc}"
    store.done.value = (version, error)

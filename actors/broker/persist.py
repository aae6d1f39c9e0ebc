"""Persisting the broker's JSON tables (reference §7.7, §7.12).

Consumer offsets every ``flushConsumerOffsetInterval`` (5 s), topics and subscription groups as
soon as they change, everything once more when the actor is cancelled (shutdown).  The JSON text
is taken in the event loop, so it is a consistent snapshot; the write (fsync, rename) runs in a
worker thread.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Protocol

import trio

from actors.broker.context import BrokerContext
from actors.broker.durability import wait_durable
from storage.consumer_offsets import FILE_NAME as OFFSETS_FILE
from storage.delay_offsets import FILE_NAME as DELAY_FILE
from storage.json_store import save_text
from storage.message_store import PutStatus
from storage.subscription_groups import FILE_NAME as GROUPS_FILE
from storage.topic_config import FILE_NAME as TOPICS_FILE

log = logging.getLogger(__name__)


class PersistedTable(Protocol):
    dirty: bool

    def to_json(self, *, pretty: bool = True) -> str: ...


def dirty_snapshots(ctx: BrokerContext, *, everything: bool = False) -> list[tuple[Path, str]]:
    """(path, text) of every table that changed since its last write; marks them clean."""
    out = []
    tables: list[tuple[str, PersistedTable]] = [
        (TOPICS_FILE, ctx.topics),
        (GROUPS_FILE, ctx.groups),
        (OFFSETS_FILE, ctx.offsets),
        (DELAY_FILE, ctx.delay_offsets),
    ]
    for name, table in tables:
        if everything or table.dirty:
            out.append((ctx.config_dir / name, table.to_json()))
            table.dirty = False
    return out


def write_all(snapshots: list[tuple[Path, str]]) -> None:
    for path, text in snapshots:
        save_text(path, text)


Writer = Callable[[list[tuple[Path, str]]], Awaitable[object]]


async def threaded_write(snapshots: list[tuple[Path, str]]) -> None:
    await trio.to_thread.run_sync(write_all, snapshots)


async def persist_now(
    ctx: BrokerContext, *, everything: bool = False, write: Writer = threaded_write
) -> None:
    covered = ctx.store.max_phy_offset
    snapshots = dirty_snapshots(ctx, everything=everything)
    delay_path = ctx.config_dir / DELAY_FILE
    # delay-level offsets say "delivered up to here": never on disk before the deliveries
    # they cover are (a power loss would otherwise skip them for good)
    if (
        any(path == delay_path for path, _ in snapshots)
        and await wait_durable(ctx, covered, replica=False) is not PutStatus.PUT_OK
    ):
        snapshots = [(path, text) for path, text in snapshots if path != delay_path]
        ctx.delay_offsets.dirty = True
    if snapshots:
        await write(snapshots)


async def config_persister(
    ctx: BrokerContext,
    *,
    write: Writer = threaded_write,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    interval = ctx.config.flushConsumerOffsetInterval / 1000
    task_status.started()
    try:
        seen = ctx.config_changes.value
        next_offsets = trio.current_time() + interval
        while True:
            with trio.move_on_at(next_offsets):
                await ctx.config_changes.wait_value(functools.partial(operator.ne, seen))
            seen = ctx.config_changes.value
            if trio.current_time() >= next_offsets:
                next_offsets = trio.current_time() + interval
            await persist_now(ctx, write=write)
    finally:
        with trio.move_on_after(10, shield=True):
            await persist_now(ctx, everything=True, write=write)

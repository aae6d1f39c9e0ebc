"""Persisting the broker's JSON tables (reference §7.7, §7.12).

Topic and subscription-group changes are journaled (fsynced) as soon as they are made, and a
request that made one is answered only after that (issue 13: an acknowledged creation must
survive a power loss); topics.json and subscriptionGroup.json are rewritten from memory when
the journal has grown, every ``flushConsumerOffsetInterval`` (5 s) if they are behind, and at
shutdown.  Consumer offsets follow the same 5 s period, as Java's.  JSON text is taken in the
event loop, so it is a consistent snapshot; writes (fsync, rename) run in a worker thread.
"""

from __future__ import annotations

import functools
import logging
import operator
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, Protocol

import attrs
import trio

from actors.broker.context import BrokerContext
from actors.broker.durability import wait_durable
from storage.config_journal import append_changes, encode_change, remove_journal
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


# The journal is folded into topics.json / subscriptionGroup.json once it is this big, and on
# every periodic round where it is not empty: appends stay O(1), rewrites are amortized.
COMPACT_BYTES = 256 * 1024


def dirty_snapshots(ctx: BrokerContext, *, everything: bool = False) -> list[tuple[Path, str]]:
    """(path, text) of the offset tables that changed since their last write; marks them
    clean.  Topics and groups are written by ``compact`` instead."""
    out = []
    tables: list[tuple[str, PersistedTable]] = [
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


# Runs blocking file work: a worker thread in the broker; tests under autojump_clock run it
# in the event loop instead, where virtual time cannot pass while a file is half written.
Offload = Callable[..., Awaitable[Any]]


@attrs.define(eq=False)
class ConfigJournal:
    """The broker's one writer of the config journal (storage/config_journal.py): appends the
    tables' changes, then advances ``ctx.config_durable``, which requests that changed a
    table wait for before they are answered (app.BrokerRouter)."""

    ctx: BrokerContext
    offload: Offload = trio.to_thread.run_sync
    size: int = 0
    # encoded changes whose append failed: retried first, so order is kept
    _unwritten: list[bytes] = attrs.Factory(list)

    async def append(self) -> None:
        ctx = self.ctx
        version = ctx.config_version
        changes = ctx.topics.take_changes() + ctx.groups.take_changes()
        lines = self._unwritten + [encode_change(c) for c in changes]
        if lines:
            try:
                self.size = await self.offload(append_changes, ctx.config_dir, lines)
            except OSError:
                self._unwritten = lines
                log.exception("config journal append failed; changes stay unacknowledged")
                return
            self._unwritten = []
        ctx.config_durable.advance(version)

    async def compact(self) -> None:
        """Rewrite topics.json and subscriptionGroup.json from memory, then drop the journal.
        Call right after ``append`` (nothing journaled may be missing from the tables)."""
        ctx = self.ctx
        if self._unwritten:
            return  # the tables hold changes the journal lacks: not a safe point
        snapshots = [
            (ctx.config_dir / TOPICS_FILE, ctx.topics.to_json()),
            (ctx.config_dir / GROUPS_FILE, ctx.groups.to_json()),
        ]
        ctx.topics.dirty = ctx.groups.dirty = False
        await self.offload(write_all, snapshots)
        await self.offload(remove_journal, ctx.config_dir)
        self.size = 0

    @property
    def due(self) -> bool:
        return self.size >= COMPACT_BYTES


async def persist_now(
    ctx: BrokerContext,
    *,
    everything: bool = False,
    offload: Offload = trio.to_thread.run_sync,
    journal: ConfigJournal | None = None,
) -> None:
    journal = journal or ConfigJournal(ctx, offload)
    await journal.append()
    if everything or journal.due or ctx.topics.dirty or ctx.groups.dirty:
        await journal.compact()
    covered = ctx.store.max_phy_offset
    snapshots = dirty_snapshots(ctx, everything=everything)
    delay_path = ctx.config_dir / DELAY_FILE
    # delay-level offsets say "delivered up to here": never on disk before the deliveries
    # they cover are (a power loss would otherwise skip them for good)
    if (
        any(path == delay_path for path, _ in snapshots)
        and await wait_durable(ctx, covered) is not PutStatus.PUT_OK
    ):
        snapshots = [(path, text) for path, text in snapshots if path != delay_path]
        ctx.delay_offsets.dirty = True
    if snapshots:
        await offload(write_all, snapshots)


async def config_persister(
    ctx: BrokerContext,
    *,
    offload: Offload = trio.to_thread.run_sync,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Journal table changes as soon as they are made; offsets every
    ``flushConsumerOffsetInterval`` (5 s), with a compaction of the journal if it grew;
    everything once more when cancelled (shutdown)."""
    interval = ctx.config.flushConsumerOffsetInterval / 1000
    journal = ConfigJournal(ctx, offload)
    task_status.started()
    try:
        seen = ctx.config_changes.value
        next_round = trio.current_time() + interval
        while True:
            with trio.move_on_at(next_round):
                await ctx.config_changes.wait_value(functools.partial(operator.ne, seen))
            seen = ctx.config_changes.value
            if trio.current_time() >= next_round:
                next_round = trio.current_time() + interval
                await persist_now(ctx, offload=offload, journal=journal)
            else:
                await journal.append()
                if journal.due:
                    await journal.compact()
    finally:
        with trio.move_on_after(10, shield=True):
            await persist_now(ctx, everything=True, offload=offload, journal=journal)

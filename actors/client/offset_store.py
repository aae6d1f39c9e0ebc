"""Consumer offsets: the in-memory table (pure) and where it is persisted (§8.4).

Clustering consumers keep offsets on the broker (QUERY/UPDATE_CONSUMER_OFFSET, the latter
oneway every 5 s and synchronously on shutdown or queue removal); broadcasting consumers
keep them in a local JSON file, never on the broker, in Java's format so a Java client
pointed at the same directory reads it.
"""

from __future__ import annotations

import enum
import logging
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Protocol

import attrs
import trio

from actors.client import api
from actors.client.errors import BrokerError, ClientError
from actors.client.instance import ClientInstance
from protocol.bodies.common import MessageQueue
from protocol.convert import decode_body, encode_body
from protocol.errors import ProtocolError
from protocol.headers.offset import (
    QueryConsumerOffsetRequestHeader,
    UpdateConsumerOffsetRequestHeader,
)
from storage.json_store import save_text

log = logging.getLogger(__name__)

NO_OFFSET = -1  # the store has none for this queue
READ_ERROR = -2  # the store could not be asked (the queue is skipped this rebalance)


class ReadFrom(enum.Enum):
    MEMORY = "MEMORY"
    STORE = "STORE"
    MEMORY_THEN_STORE = "MEMORY_THEN_STORE"


@attrs.define(eq=False)
class OffsetTable:
    """Next offset to consume per queue."""

    offsets: dict[MessageQueue, int] = attrs.Factory(dict)

    def update(self, mq: MessageQueue, offset: int, *, increase_only: bool) -> None:
        current = self.offsets.get(mq)
        if increase_only and current is not None and current >= offset:
            return
        self.offsets[mq] = offset

    def get(self, mq: MessageQueue) -> int | None:
        return self.offsets.get(mq)

    def remove(self, mq: MessageQueue) -> None:
        self.offsets.pop(mq, None)


class OffsetStore(Protocol):
    table: OffsetTable

    async def load(self) -> None: ...

    def update(self, mq: MessageQueue, offset: int, *, increase_only: bool) -> None: ...

    async def read(self, mq: MessageQueue, how: ReadFrom) -> int: ...

    async def persist_all(self, mqs: Iterable[MessageQueue], *, wait: bool) -> None: ...

    async def persist(self, mq: MessageQueue) -> None: ...

    def remove(self, mq: MessageQueue) -> None: ...


@attrs.define(eq=False)
class RemoteOffsetStore:
    instance: ClientInstance
    group: str
    table: OffsetTable = attrs.Factory(OffsetTable)

    async def load(self) -> None:
        """Nothing to load: offsets are read from the broker per queue."""

    def update(self, mq: MessageQueue, offset: int, *, increase_only: bool) -> None:
        self.table.update(mq, offset, increase_only=increase_only)

    def remove(self, mq: MessageQueue) -> None:
        self.table.remove(mq)

    async def read(self, mq: MessageQueue, how: ReadFrom) -> int:
        if how is not ReadFrom.STORE:
            offset = self.table.get(mq)
            if offset is not None or how is ReadFrom.MEMORY:
                return NO_OFFSET if offset is None else offset
        header = QueryConsumerOffsetRequestHeader(
            consumer_group=self.group, topic=mq.topic, queue_id=mq.queue_id, bname=mq.broker_name
        )
        try:
            # the master, else a slave (Java: findBrokerAddressInSubscribe, any broker)
            addr = await self.instance.find_broker_addr(mq.broker_name, mq.topic, only_master=False)
            stored = await api.query_consumer_offset(
                self.instance.remoting, addr, header, self.instance.timeout
            )
        except BrokerError as exc:
            log.info("query offset of %s refused: %s", mq, exc)
            return NO_OFFSET
        except ClientError as exc:
            log.info("query offset of %s failed: %s", mq, exc)
            return READ_ERROR
        if stored is None:
            return NO_OFFSET
        self.table.update(mq, stored, increase_only=False)
        return stored

    async def _push(self, mq: MessageQueue, offset: int, *, wait: bool) -> None:
        header = UpdateConsumerOffsetRequestHeader(
            consumer_group=self.group,
            topic=mq.topic,
            queue_id=mq.queue_id,
            commit_offset=offset,
            bname=mq.broker_name,
        )
        try:
            # the master, else a slave (Java: findBrokerAddressInSubscribe, any broker)
            addr = await self.instance.find_broker_addr(mq.broker_name, mq.topic, only_master=False)
            await api.update_consumer_offset(
                self.instance.remoting, addr, header, self.instance.timeout if wait else None
            )
        except ClientError as exc:
            log.info("persisting offset %d of %s failed: %s", offset, mq, exc)

    async def persist_all(self, mqs: Iterable[MessageQueue], *, wait: bool) -> None:
        held = set(mqs)
        for mq, offset in list(self.table.offsets.items()):
            if mq in held:
                await self._push(mq, offset, wait=wait)
            else:
                # Java drops offsets of queues no longer held ("unused") here.
                self.table.remove(mq)

    async def persist(self, mq: MessageQueue) -> None:
        offset = self.table.get(mq)
        if offset is not None:
            await self._push(mq, offset, wait=True)


@attrs.frozen(kw_only=True)
class OffsetSerializeWrapper:
    """``offsets.json``: ``{"offsetTable":{{MessageQueue}:offset}}`` (fastjson object keys)."""

    offset_table: dict[MessageQueue, int] = attrs.field(factory=dict)


def default_offsets_dir() -> Path:
    env = os.environ.get("ROCKETMQ_CLIENT_LOCAL_OFFSET_STORE_DIR")
    return Path(env) if env else Path.home() / ".rocketmq_offsets"


def read_offsets_file(path: Path) -> dict[MessageQueue, int]:
    """Load the file, falling back to the ``.bak`` copy; a missing file means no offsets."""
    for candidate in (path, path.with_name(path.name + ".bak")):
        try:
            text = candidate.read_bytes()
        except FileNotFoundError:
            continue
        try:
            return dict(decode_body(OffsetSerializeWrapper, text).offset_table)
        except ProtocolError as exc:
            log.warning("offset file %s is damaged (%s); trying the backup", candidate, exc)
    return {}


def write_offsets_file(path: Path, offsets: dict[MessageQueue, int]) -> None:
    """Replace the file atomically, keeping the previous version as ``.bak``."""
    data = encode_body(OffsetSerializeWrapper(offset_table=offsets), pretty=True)
    save_text(path, data.decode())


@attrs.define(eq=False)
class LocalFileOffsetStore:
    path: Path
    table: OffsetTable = attrs.Factory(OffsetTable)

    @classmethod
    def for_client(
        cls, client_id: str, group: str, base: Path | None = None
    ) -> LocalFileOffsetStore:
        base = base if base is not None else default_offsets_dir()
        return cls(base / client_id / group / "offsets.json")

    async def load(self) -> None:
        offsets = await trio.to_thread.run_sync(read_offsets_file, self.path)
        for mq, offset in offsets.items():
            self.table.update(mq, offset, increase_only=False)

    def update(self, mq: MessageQueue, offset: int, *, increase_only: bool) -> None:
        self.table.update(mq, offset, increase_only=increase_only)

    def remove(self, mq: MessageQueue) -> None:
        """Broadcasting keeps offsets of queues it stopped holding: they are still its own."""

    async def read(self, mq: MessageQueue, how: ReadFrom) -> int:
        if how is ReadFrom.STORE:
            offsets = await trio.to_thread.run_sync(read_offsets_file, self.path)
            if mq not in offsets:
                return NO_OFFSET
            self.table.update(mq, offsets[mq], increase_only=False)
            return offsets[mq]
        offset = self.table.get(mq)
        return NO_OFFSET if offset is None else offset

    async def persist_all(self, mqs: Iterable[MessageQueue], *, wait: bool) -> None:
        held = set(mqs)
        snapshot = {mq: o for mq, o in self.table.offsets.items() if mq in held}
        if not snapshot:
            return
        try:
            await trio.to_thread.run_sync(write_offsets_file, self.path, snapshot)
        except OSError as exc:
            log.warning("writing offsets to %s failed: %s", self.path, exc)

    async def persist(self, mq: MessageQueue) -> None:
        await self.persist_all(list(self.table.offsets), wait=True)

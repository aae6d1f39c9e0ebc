"""BrokerContext: everything a request handler or broker actor needs, in one place.

The tables are plain synchronous objects (storage/, clients.py, locks.py, long_polling.py);
the trio pieces are events: ``reput_wake`` after every put, ``flush_wake`` for group commit,
``flushed`` (OffsetWaiters) for SYNC_FLUSH sends, ``topic_changes`` for an immediate
re-registration and ``config_changes`` for the persister.  Handlers never spawn work of their
own: background sends (consumer-id notifications) go through ``spawn``, which the app binds to
its service nursery.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio
import trio_util

from actors.broker.clients import ConsumerManager, ProducerManager
from actors.broker.config import PERM_READ, PERM_WRITE, BrokerConfig
from actors.broker.delay import DelayLevels
from actors.broker.delivery import DelayedDelivery
from actors.broker.durability import announce_appends
from actors.broker.locks import RebalanceLockManager
from actors.broker.long_polling import PullHoldTable
from actors.broker.stats import BrokerStats, OpsState
from actors.ha.state import Following, Replication
from actors.remoting.router import Channel
from actors.store.flush import FlushWake
from actors.waiters import OffsetWaiters
from actors.wake import Wake
from protocol.codes import RequestCode
from protocol.command import RemotingCommand
from protocol.msgid import offset_msg_id_prefix
from storage.config import BrokerRole, FlushDiskType, MessageStoreConfig
from storage.config_journal import journal_size, read_changes, remove_journal
from storage.consumer_offsets import ConsumerOffsetTable
from storage.delay_offsets import DelayOffsetTable
from storage.message_store import MessageStore
from storage.subscription_groups import SubscriptionGroupTable
from storage.topic_config import SystemTopicSettings, TopicConfigTable

if TYPE_CHECKING:
    from actors.failover.actor import Failover
    from actors.failover.election import MasterRecord

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    return time.time_ns() // 1_000_000


def topic_settings(config: BrokerConfig) -> SystemTopicSettings:
    return SystemTopicSettings(
        cluster_name=config.brokerClusterName,
        broker_name=config.brokerName,
        default_topic_queue_nums=config.defaultTopicQueueNums,
        auto_create_topic_enable=config.autoCreateTopicEnable,
        cluster_topic_enable=config.clusterTopicEnable,
        broker_topic_enable=config.brokerTopicEnable,
        trace_topic_enable=config.traceTopicEnable,
        trace_topic_name=config.msgTraceTopicName,
    )


def load_tables(
    config: BrokerConfig,
    store_config: MessageStoreConfig,
    now_ms: int,
    queue_ids: dict[str, list[int]] | None = None,
) -> tuple[TopicConfigTable, SubscriptionGroupTable, ConsumerOffsetTable, DelayOffsetTable]:
    """topics.json (over the system topics), subscriptionGroup.json, consumerOffset.json,
    delayOffset.json; a damaged file falls back to its .bak, never to an empty table.

    Then the config journal's changes are replayed over the topics and groups, and topics
    that have consume queues (``queue_ids``, from the loaded store) but no config are
    re-created; if anything was replayed or re-created the JSON files are rewritten at once
    and the journal emptied, so the broker starts with no compaction pending."""
    config_dir = Path(store_config.storePathRootDir) / "config"
    topics = TopicConfigTable.with_system_topics(topic_settings(config))
    topics.load(config_dir)
    groups = SubscriptionGroupTable.load(config_dir)
    changes = read_changes(config_dir)
    for change in changes:
        (topics if change.kind == "topic" else groups).apply(change, now_ms)
    adopted = topics.adopt_orphan_queues(queue_ids or {}, now_ms)
    if adopted:
        log.warning(
            "%d topic(s) had consume queues but no config; re-created: %s",
            len(adopted),
            ", ".join(adopted[:20]) + (" ..." if len(adopted) > 20 else ""),
        )
    topics.seal_auto_create(config.autoCreateTopicEnable, now_ms)
    if changes or adopted or journal_size(config_dir):
        topics.persist(config_dir)
        groups.persist(config_dir)
        remove_journal(config_dir)
    # what loading did is in the files now, not news for the journal
    topics.take_changes()
    groups.take_changes()
    return (
        topics,
        groups,
        ConsumerOffsetTable.load(config_dir),
        DelayOffsetTable.load(config_dir),
    )


def _ignore_spawn(fn: Callable[..., Awaitable[Any]], *args: Any) -> None:
    log.debug("no service nursery yet; dropped background %s", getattr(fn, "__name__", fn))


@attrs.define(eq=False)
class BrokerContext:
    config: BrokerConfig
    store_config: MessageStoreConfig
    store: MessageStore
    topics: TopicConfigTable
    groups: SubscriptionGroupTable
    offsets: ConsumerOffsetTable
    delay_offsets: DelayOffsetTable
    consumers: ConsumerManager = attrs.Factory(ConsumerManager)
    producers: ProducerManager = attrs.Factory(ProducerManager)
    locks: RebalanceLockManager = attrs.Factory(RebalanceLockManager)
    holds: PullHoldTable = attrs.Factory(PullHoldTable)
    stats: BrokerStats = attrs.Factory(BrokerStats)
    ops: OpsState = attrs.Factory(OpsState)
    flushed: OffsetWaiters = attrs.Factory(OffsetWaiters)
    # topics.version + groups.version that the config journal has made durable
    config_durable: OffsetWaiters = attrs.Factory(OffsetWaiters)
    # the topic_changes value the name servers have been sent (a registration round ended)
    registered: OffsetWaiters = attrs.Factory(OffsetWaiters)
    reput_wake: Wake = attrs.Factory(Wake)
    flush_wake: FlushWake = attrs.Factory(FlushWake)
    # Change counters: a watcher remembers the value it acted on and waits for another one,
    # so no change between two waits is ever lost.
    topic_changes: trio_util.AsyncValue[int] = attrs.Factory(lambda: trio_util.AsyncValue(0))
    config_changes: trio_util.AsyncValue[int] = attrs.Factory(lambda: trio_util.AsyncValue(0))
    role: trio_util.AsyncValue[BrokerRole] = attrs.field(default=None)
    # Set once the broker begins to stop: new sends get SERVICE_NOT_AVAILABLE.
    stopping: bool = False
    now_ms: Callable[[], int] = wall_clock_ms
    # Where the broker's servers listen (bindAddress; the app sets it): the HA server too.
    listen_host: str = "0.0.0.0"
    # Learnt from the name servers' REGISTER_BROKER replies (a slave's master, for HA).
    master_addr: str | None = None
    master_ha_addr: str | None = None
    spawn: Callable[..., None] = _ignore_spawn
    # the HA server's view of its slaves (a fresh one for every master term, made by the HA
    # server); SYNC_MASTER sends wait on its acked offset
    replication: Replication = attrs.Factory(Replication)
    # the HA client's link to its master (a slave's side of GET_BROKER_HA_STATUS)
    following: Following = attrs.Factory(Following)
    # Set by a MASTER -> SLAVE switch (role_switch.py): until its logs agree with the new
    # master's, the HA client may drop a tail the new master never had.
    demoted: bool = False
    # automatic failover (actors/broker/failover.py): the running elector (None: failover is
    # off), and the master etcd elected that this broker follows (None: it leads, or none yet)
    failover: Failover | None = None
    failover_master: trio_util.AsyncValue[MasterRecord | None] = attrs.Factory(
        lambda: trio_util.AsyncValue(None)
    )
    # schedule + timer services, set by the app
    delivery: DelayedDelivery | None = None
    started_ms: int = attrs.field(factory=wall_clock_ms)
    # Sends in progress at once (Java's send executor).  Only SYNC_FLUSH sends hold a place
    # across an await; one that waits for a place longer than waitTimeMillsInSendQueue is
    # answered SYSTEM_BUSY instead of piling up behind a slow disk.
    send_gate: trio.CapacityLimiter = attrs.field(factory=lambda: trio.CapacityLimiter(64))

    def __attrs_post_init__(self) -> None:
        if self.role is None:
            self.role = trio_util.AsyncValue(self.store_config.brokerRole)
        announce_appends(self)
        # what loading found is on disk already (load_tables rewrote the files if needed)
        self.config_durable.advance(self.config_version)

    @classmethod
    def create(
        cls, config: BrokerConfig, store_config: MessageStoreConfig, store: MessageStore, **kw: Any
    ) -> BrokerContext:
        """A context with the persisted tables, read synchronously (tests, tools)."""
        now_ms = kw.get("now_ms", wall_clock_ms)()
        tables = load_tables(config, store_config, now_ms, store.topic_queue_ids())
        return cls(config, store_config, store, *tables, **kw)

    @classmethod
    async def load(
        cls, config: BrokerConfig, store_config: MessageStoreConfig, store: MessageStore, **kw: Any
    ) -> BrokerContext:
        """A context with the persisted tables of the store's config directory (read in a
        worker thread: they are files)."""
        now_ms = kw.get("now_ms", wall_clock_ms)()
        tables = await trio.to_thread.run_sync(
            load_tables, config, store_config, now_ms, store.topic_queue_ids()
        )
        return cls(config, store_config, store, *tables, **kw)

    # ------------------------------------------------------------ derived facts

    @property
    def config_dir(self) -> Path:
        return Path(self.store_config.storePathRootDir) / "config"

    @property
    def broker_addr(self) -> str:
        return self.config.broker_addr

    @property
    def is_slave(self) -> bool:
        return self.role.value is BrokerRole.SLAVE

    @property
    def accepting_writes(self) -> bool:
        """The one answer to "may a client write here now": a master that is not stopping.
        (The store adds its own disk-state refusals; it is told the role as well.)"""
        return not self.stopping and self.role.value is not BrokerRole.SLAVE

    @property
    def sync_flush(self) -> bool:
        return self.store_config.flushDiskType is FlushDiskType.SYNC_FLUSH

    @functools.cached_property
    def msg_id_prefix(self) -> str:
        """Hex of this broker's address and port: the constant half of its offset msg ids."""
        return offset_msg_id_prefix(self.broker_addr).hex().upper()

    def offset_msg_id(self, phys_offset: int) -> str:
        return f"{self.msg_id_prefix}{phys_offset & 0xFFFFFFFFFFFFFFFF:016X}"

    @functools.cached_property
    def delay_levels(self) -> DelayLevels:
        return DelayLevels.parse(self.store_config.messageDelayLevel)

    @property
    def writeable(self) -> bool:
        return bool(self.config.brokerPermission & PERM_WRITE)

    @property
    def readable(self) -> bool:
        return bool(self.config.brokerPermission & PERM_READ)

    @property
    def config_version(self) -> int:
        """Changes made to the topic and group tables so far (grows by one per change)."""
        return self.topics.version + self.groups.version

    # ------------------------------------------------------------ change notifications

    def topic_table_changed(self) -> None:
        """A topic was created or deleted: persist soon and re-register at once."""
        self.topic_changes.value += 1
        self.config_changes.value += 1

    def config_table_changed(self) -> None:
        """A subscription group or delay offset changed: persist soon."""
        self.config_changes.value += 1

    def notify_consumer_ids_changed(self, group: str) -> None:
        """Tell every member of ``group`` to rebalance now (oneway, in the background)."""
        if not self.config.notifyConsumerIdsChangedEnable:
            return
        group_config = self.groups.get(group)
        if group_config is not None and not group_config.notify_consumer_ids_changed_enable:
            return
        entry = self.consumers.get(group)
        if entry is None:
            return
        for channel in list(entry.channels):
            self.spawn(_notify, channel, group)


async def _notify(channel: Channel, group: str) -> None:
    # Nothing to catch: a connection that closed meanwhile drops the frame, and its close
    # handler removes the consumer.
    await channel.send(
        RemotingCommand.request(
            RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, {"consumerGroup": group}, oneway=True
        )
    )

"""The NameServer's route tables (reference §9.1-9.4), pure: no trio, no clock, no I/O.

Java's RouteInfoManager guards five maps with one read-write lock; here a single-threaded
Trio program owns one ``RouteTable`` and every method runs to completion without
awaiting, which gives the same atomicity.  Time is a parameter (seconds, any monotonic
origin), and a broker's connection is an opaque object compared by identity, so the
whole table is tested without sockets or clocks.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import attrs

MASTER_ID = 0
PERM_WRITE = 0x2
PERM_READ = 0x4
FLAG_UNIT = 0x1
FLAG_UNIT_SUB = 0x2

# (timestamp ms, counter): DataVersion equality is "same timestamp and same counter" (§3.3.3).
DataVersionKey = tuple[int, int]
NO_VERSION: DataVersionKey = (0, 0)


@attrs.frozen(kw_only=True)
class TopicQueues:
    """What a broker's REGISTER_BROKER says about one of its topics."""

    topic: str
    read_queue_nums: int
    write_queue_nums: int
    perm: int
    topic_sys_flag: int = 0


@attrs.frozen(kw_only=True)
class QueueInfo:
    """One broker's share of a topic: Java's QueueData."""

    broker_name: str
    read_queue_nums: int
    write_queue_nums: int
    perm: int
    topic_sys_flag: int


@attrs.define(eq=False, kw_only=True)
class BrokerGroup:
    """A broker name, its cluster and its members by broker id: Java's BrokerData."""

    cluster: str
    broker_name: str
    addrs: dict[int, str] = attrs.field(factory=dict)

    def copy(self) -> BrokerGroup:
        return BrokerGroup(
            cluster=self.cluster, broker_name=self.broker_name, addrs=dict(self.addrs)
        )


@attrs.define(eq=False, kw_only=True)
class LiveBroker:
    last_seen: float
    data_version: DataVersionKey
    channel: object | None
    ha_server_addr: str


@attrs.frozen(kw_only=True)
class RegisterResult:
    """For a slave whose master is live: the master's address and HA address."""

    master_addr: str | None = None
    ha_server_addr: str | None = None


@attrs.frozen(kw_only=True)
class Route:
    """Everything GET_ROUTEINFO_BY_TOPIC answers with, before encoding."""

    queues: list[QueueInfo]
    brokers: list[BrokerGroup]
    filter_servers: dict[str, list[str]]


@attrs.frozen(kw_only=True)
class Expired:
    broker_addr: str
    channel: object | None


@attrs.define(eq=False)
class RouteTable:
    topic_queues: dict[str, dict[str, QueueInfo]] = attrs.field(factory=dict)
    brokers: dict[str, BrokerGroup] = attrs.field(factory=dict)
    clusters: dict[str, set[str]] = attrs.field(factory=dict)
    live: dict[str, LiveBroker] = attrs.field(factory=dict)
    filter_servers: dict[str, list[str]] = attrs.field(factory=dict)

    # ------------------------------------------------------------ registration

    def register(
        self,
        *,
        cluster: str,
        broker_addr: str,
        broker_name: str,
        broker_id: int,
        ha_server_addr: str,
        data_version: DataVersionKey,
        topics: Iterable[TopicQueues],
        filter_servers: list[str],
        channel: object | None,
        now: float,
    ) -> RegisterResult:
        """REGISTER_BROKER (§9.2 steps 3-8)."""
        self.clusters.setdefault(cluster, set()).add(broker_name)

        group = self.brokers.get(broker_name)
        first = group is None
        if group is None:
            group = self.brokers[broker_name] = BrokerGroup(
                cluster=cluster, broker_name=broker_name
            )
        # The same address under another id means this broker switched role (slave -> master):
        # its old id must go, or the group would list one address twice.
        for stale_id in [i for i, a in group.addrs.items() if a == broker_addr and i != broker_id]:
            del group.addrs[stale_id]
        first = first or broker_id not in group.addrs
        group.addrs[broker_id] = broker_addr

        if broker_id == MASTER_ID and (
            first or self.topic_config_changed(broker_addr, data_version)
        ):
            for t in topics:
                self.topic_queues.setdefault(t.topic, {})[broker_name] = QueueInfo(
                    broker_name=broker_name,
                    read_queue_nums=t.read_queue_nums,
                    write_queue_nums=t.write_queue_nums,
                    perm=t.perm,
                    topic_sys_flag=t.topic_sys_flag,
                )

        self.live[broker_addr] = LiveBroker(
            last_seen=now, data_version=data_version, channel=channel, ha_server_addr=ha_server_addr
        )
        if filter_servers:
            self.filter_servers[broker_addr] = list(filter_servers)
        else:
            self.filter_servers.pop(broker_addr, None)

        if broker_id != MASTER_ID:
            master_addr = group.addrs.get(MASTER_ID)
            master = self.live.get(master_addr) if master_addr is not None else None
            if master is not None:
                return RegisterResult(master_addr=master_addr, ha_server_addr=master.ha_server_addr)
        return RegisterResult()

    def topic_config_changed(self, broker_addr: str, data_version: DataVersionKey) -> bool:
        live = self.live.get(broker_addr)
        return live is None or live.data_version != data_version

    def data_version_of(self, broker_addr: str) -> DataVersionKey | None:
        live = self.live.get(broker_addr)
        return live.data_version if live is not None else None

    def query_data_version(
        self, broker_addr: str, data_version: DataVersionKey, now: float
    ) -> bool:
        """QUERY_DATA_VERSION: whether the broker's topic config changed; refreshes it if not."""
        changed = self.topic_config_changed(broker_addr, data_version)
        if not changed:
            self.live[broker_addr].last_seen = now
        return changed

    # ------------------------------------------------------------ removal

    def unregister(
        self, *, cluster: str, broker_addr: str, broker_name: str, broker_id: int
    ) -> None:
        """UNREGISTER_BROKER (§9.3)."""
        self.live.pop(broker_addr, None)
        self.filter_servers.pop(broker_addr, None)
        group = self.brokers.get(broker_name)
        if group is None:
            return
        group.addrs.pop(broker_id, None)
        if group.addrs:
            return
        del self.brokers[broker_name]
        names = self.clusters.get(cluster)
        if names is not None:
            names.discard(broker_name)
            if not names:
                del self.clusters[cluster]
        self._drop_queues_of({broker_name})

    def remove_by_channel(self, channel: object, peer: str | None = None) -> str | None:
        """A connection closed: drop the broker that registered over it, if any.

        When no live entry uses ``channel``, the connection's remote address is tried as a
        broker address, as Java does; a client's (or a replaced broker connection's)
        ephemeral address matches nothing.  Returns the address removed, if any.
        """
        addr = next((a for a, info in self.live.items() if info.channel is channel), peer)
        if addr is None or not self._remove_addr(addr):
            return None
        return addr

    def expire(self, now: float, max_idle: float) -> list[Expired]:
        """Remove every broker not heard from for more than ``max_idle`` seconds."""
        expired = [
            Expired(broker_addr=addr, channel=info.channel)
            for addr, info in self.live.items()
            if info.last_seen + max_idle < now
        ]
        for e in expired:
            self._remove_addr(e.broker_addr)
        return expired

    def _remove_addr(self, broker_addr: str) -> bool:
        """Forget ``broker_addr`` everywhere; whether it was known at all."""
        known = self.live.pop(broker_addr, None) is not None
        self.filter_servers.pop(broker_addr, None)
        emptied: set[str] = set()
        for name, group in list(self.brokers.items()):
            for broker_id in [i for i, a in group.addrs.items() if a == broker_addr]:
                del group.addrs[broker_id]
                known = True
            if not group.addrs:
                del self.brokers[name]
                emptied.add(name)
        if emptied:
            for cluster, names in list(self.clusters.items()):
                names -= emptied
                if not names:
                    del self.clusters[cluster]
            self._drop_queues_of(emptied)
        return known

    def _drop_queues_of(self, broker_names: set[str]) -> None:
        for topic, per_broker in list(self.topic_queues.items()):
            for name in broker_names:
                per_broker.pop(name, None)
            if not per_broker:
                del self.topic_queues[topic]

    # ------------------------------------------------------------ queries

    def route(self, topic: str) -> Route | None:
        """GET_ROUTEINFO_BY_TOPIC; None when the topic has no queues or none of its brokers."""
        per_broker = self.topic_queues.get(topic)
        if not per_broker:
            return None
        brokers = [self.brokers[n].copy() for n in per_broker if n in self.brokers]
        if not brokers:
            return None
        filters = {
            addr: list(self.filter_servers[addr])
            for group in brokers
            for addr in group.addrs.values()
            if addr in self.filter_servers
        }
        return Route(queues=list(per_broker.values()), brokers=brokers, filter_servers=filters)

    def all_topics(self) -> list[str]:
        return list(self.topic_queues)

    def topics_by_cluster(self, cluster: str) -> list[str]:
        names = self.clusters.get(cluster, set())
        return [t for t, per_broker in self.topic_queues.items() if names & per_broker.keys()]

    def system_topics(self) -> tuple[list[str], str | None]:
        """Cluster and broker names (the per-broker system topics), and one broker address."""
        topics: list[str] = []
        for cluster, names in self.clusters.items():
            topics.append(cluster)
            topics.extend(names)
        addr = next((next(iter(g.addrs.values())) for g in self.brokers.values() if g.addrs), None)
        return topics, addr

    def topics_with_sys_flag(self, *, has: int, lacks: int = 0) -> list[str]:
        """Topics whose first QueueData's topicSysFlag has every bit of ``has`` and none of ``lacks``."""
        out = []
        for topic, per_broker in self.topic_queues.items():
            first = next(iter(per_broker.values()), None)
            if (
                first is not None
                and first.topic_sys_flag & has == has
                and not first.topic_sys_flag & lacks
            ):
                out.append(topic)
        return out

    # ------------------------------------------------------------ admin

    def wipe_write_perm(self, broker_name: str) -> int:
        return self._set_perm(broker_name, lambda perm: perm & ~PERM_WRITE)

    def add_write_perm(self, broker_name: str) -> int:
        return self._set_perm(broker_name, lambda _perm: PERM_READ | PERM_WRITE)

    def _set_perm(self, broker_name: str, change: Callable[[int], int]) -> int:
        count = 0
        for per_broker in self.topic_queues.values():
            q = per_broker.get(broker_name)
            if q is not None:
                per_broker[broker_name] = attrs.evolve(q, perm=change(q.perm))
                count += 1
        return count

    def delete_topic(self, topic: str, cluster: str | None = None) -> None:
        """DELETE_TOPIC_IN_NAMESRV: the whole topic, or only that cluster's brokers' queues."""
        if not cluster:
            self.topic_queues.pop(topic, None)
            return
        per_broker = self.topic_queues.get(topic)
        if per_broker is None:
            return
        for name in self.clusters.get(cluster, ()):
            per_broker.pop(name, None)
        if not per_broker:
            del self.topic_queues[topic]

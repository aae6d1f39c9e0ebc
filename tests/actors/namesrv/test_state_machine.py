"""RouteTable under random sequences of registrations, removals and admin commands."""

from __future__ import annotations

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from actors.namesrv.state import RouteTable, TopicQueues

ADDRS = st.sampled_from(["a0:1", "a1:1", "a2:1", "a3:1"])
NAMES = st.sampled_from(["n0", "n1"])
CLUSTERS = st.sampled_from(["c0", "c1"])
TOPICS = st.sampled_from(["t0", "t1", "t2"])
CHANNELS = st.sampled_from([0, 1, 2])


class RouteTableMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.table = RouteTable()
        self.now = 0.0
        self.channels = [object(), object(), object()]

    @rule(
        addr=ADDRS,
        name=NAMES,
        broker_id=st.sampled_from([0, 1]),
        cluster=CLUSTERS,
        topics=st.lists(TOPICS, max_size=3, unique=True),
        version=st.integers(0, 2),
        channel=CHANNELS,
        filters=st.lists(st.just("f:1"), max_size=1),
    )
    def register(
        self,
        addr: str,
        name: str,
        broker_id: int,
        cluster: str,
        topics: list[str],
        version: int,
        channel: int,
        filters: list[str],
    ) -> None:
        result = self.table.register(
            cluster=cluster,
            broker_addr=addr,
            broker_name=name,
            broker_id=broker_id,
            ha_server_addr="ha:" + addr,
            data_version=(version, version),
            topics=[
                TopicQueues(topic=t, read_queue_nums=4, write_queue_nums=4, perm=6) for t in topics
            ],
            filter_servers=filters,
            channel=self.channels[channel],
            now=self.now,
        )
        assert self.table.brokers[name].addrs[broker_id] == addr
        if broker_id == 0:
            assert result.master_addr is None
        elif result.master_addr is not None:
            assert self.table.brokers[name].addrs[0] == result.master_addr
            assert result.ha_server_addr == "ha:" + result.master_addr

    @rule(addr=ADDRS, name=NAMES, broker_id=st.sampled_from([0, 1]), cluster=CLUSTERS)
    def unregister(self, addr: str, name: str, broker_id: int, cluster: str) -> None:
        self.table.unregister(
            cluster=cluster, broker_addr=addr, broker_name=name, broker_id=broker_id
        )
        assert addr not in self.table.live

    @rule(channel=CHANNELS, peer=ADDRS)
    def close_channel(self, channel: int, peer: str) -> None:
        removed = self.table.remove_by_channel(self.channels[channel], peer)
        if removed is not None:
            assert removed not in self.table.live
            assert all(removed not in g.addrs.values() for g in self.table.brokers.values())

    @rule(seconds=st.sampled_from([10.0, 60.0, 121.0]))
    def time_passes_and_scan(self, seconds: float) -> None:
        self.now += seconds
        self.table.expire(self.now, 120.0)
        assert all(info.last_seen + 120.0 >= self.now for info in self.table.live.values())

    @rule(name=NAMES, wipe=st.booleans())
    def write_perm(self, name: str, wipe: bool) -> None:
        if wipe:
            self.table.wipe_write_perm(name)
        else:
            self.table.add_write_perm(name)

    @rule(topic=TOPICS, cluster=st.none() | CLUSTERS)
    def delete_topic(self, topic: str, cluster: str | None) -> None:
        self.table.delete_topic(topic, cluster)

    @invariant()
    def tables_are_consistent(self) -> None:
        t = self.table
        assert all(g.addrs for g in t.brokers.values()), "empty broker group left behind"
        assert all(names for names in t.clusters.values()), "empty cluster left behind"
        assert all(per_broker for per_broker in t.topic_queues.values()), "empty topic left"
        assert set(t.filter_servers) <= set(t.live)
        for topic, per_broker in t.topic_queues.items():
            assert set(per_broker) <= set(t.brokers), f"{topic} lists a broker that is gone"
            route = t.route(topic)
            assert route is not None
            assert {q.broker_name for q in route.queues} == set(per_broker)


RouteTableMachine.TestCase.settings = settings(max_examples=100, stateful_step_count=25)
TestRouteTable = RouteTableMachine.TestCase

"""RouteTable, the NameServer's pure route state (reference §9.1-9.4)."""

from __future__ import annotations

import pytest

from actors.namesrv.state import (
    FLAG_UNIT,
    FLAG_UNIT_SUB,
    Expired,
    QueueInfo,
    RegisterResult,
    RouteTable,
    TopicQueues,
)

A0 = "10.0.0.1:10911"
A1 = "10.0.0.2:10911"
B0 = "10.0.0.3:10911"


def tq(topic: str, queues: int = 4, perm: int = 6, sys_flag: int = 0) -> TopicQueues:
    return TopicQueues(
        topic=topic,
        read_queue_nums=queues,
        write_queue_nums=queues,
        perm=perm,
        topic_sys_flag=sys_flag,
    )


def register(
    table: RouteTable,
    addr: str,
    *,
    name: str = "broker-a",
    broker_id: int = 0,
    cluster: str = "DefaultCluster",
    topics: tuple[TopicQueues, ...] = (),
    version: tuple[int, int] = (1, 1),
    channel: object | None = None,
    now: float = 0.0,
    filters: tuple[str, ...] = (),
) -> RegisterResult:
    return table.register(
        cluster=cluster,
        broker_addr=addr,
        broker_name=name,
        broker_id=broker_id,
        ha_server_addr=addr.replace("10911", "10912"),
        data_version=version,
        topics=topics,
        filter_servers=list(filters),
        channel=channel,
        now=now,
    )


def test_master_registration_creates_route() -> None:
    t = RouteTable()
    assert register(t, A0, topics=(tq("T1"), tq("T2", 8))) == RegisterResult()
    route = t.route("T1")
    assert route is not None
    assert route.queues == [
        QueueInfo(
            broker_name="broker-a", read_queue_nums=4, write_queue_nums=4, perm=6, topic_sys_flag=0
        )
    ]
    assert [(b.cluster, b.broker_name, b.addrs) for b in route.brokers] == [
        ("DefaultCluster", "broker-a", {0: A0})
    ]
    assert route.filter_servers == {}
    assert t.route("T2").queues[0].write_queue_nums == 8  # type: ignore[union-attr]
    assert t.clusters == {"DefaultCluster": {"broker-a"}}
    assert sorted(t.all_topics()) == ["T1", "T2"]


def test_unknown_topic_has_no_route() -> None:
    t = RouteTable()
    register(t, A0, topics=(tq("T1"),))
    assert t.route("Nope") is None


def test_route_is_a_copy() -> None:
    t = RouteTable()
    register(t, A0, topics=(tq("T1"),))
    t.route("T1").brokers[0].addrs[5] = "x"  # type: ignore[union-attr]
    assert t.brokers["broker-a"].addrs == {0: A0}


def test_slave_gets_master_and_ha_address_and_does_not_touch_topics() -> None:
    t = RouteTable()
    # A slave before its master: no master to report.
    assert register(t, A1, broker_id=1, topics=(tq("S"),)) == RegisterResult()
    assert t.route("S") is None
    register(t, A0, topics=(tq("T1"),))
    result = register(t, A1, broker_id=1, topics=(tq("S"),))
    assert result == RegisterResult(master_addr=A0, ha_server_addr="10.0.0.1:10912")
    assert t.route("S") is None
    assert t.route("T1").brokers[0].addrs == {0: A0, 1: A1}  # type: ignore[union-attr]


def test_same_data_version_does_not_rewrite_queues() -> None:
    t = RouteTable()
    register(t, A0, topics=(tq("T1", 4),), version=(1, 1))
    t.wipe_write_perm("broker-a")
    register(t, A0, topics=(tq("T1", 4),), version=(1, 1))
    assert t.route("T1").queues[0].perm == 4  # type: ignore[union-attr]
    # A new DataVersion re-applies the broker's topic table (and its perm).
    register(t, A0, topics=(tq("T1", 4), tq("T3")), version=(2, 2))
    assert t.route("T1").queues[0].perm == 6  # type: ignore[union-attr]
    assert t.route("T3") is not None


def test_topics_missing_from_a_registration_are_kept() -> None:
    t = RouteTable()
    register(t, A0, topics=(tq("T1"), tq("T2")), version=(1, 1))
    register(t, A0, topics=(tq("T1"),), version=(2, 2))
    assert t.route("T2") is not None


def test_role_switch_removes_old_id_for_same_address() -> None:
    t = RouteTable()
    register(t, A1, broker_id=1)
    register(t, A1, broker_id=0, topics=(tq("T1"),))
    assert t.brokers["broker-a"].addrs == {0: A1}
    assert t.route("T1") is not None  # first registration under id 0 applies the topics


def test_filter_servers_stored_and_cleared() -> None:
    t = RouteTable()
    register(t, A0, topics=(tq("T1"),), filters=("10.0.0.9:1",))
    assert t.route("T1").filter_servers == {A0: ["10.0.0.9:1"]}  # type: ignore[union-attr]
    register(t, A0, topics=(tq("T1"),))
    assert t.route("T1").filter_servers == {}  # type: ignore[union-attr]


def test_unregister_last_member_removes_broker_cluster_and_topics() -> None:
    t = RouteTable()
    register(t, A0, topics=(tq("T1"), tq("Shared")))
    register(t, A1, broker_id=1)
    register(t, B0, name="broker-b", topics=(tq("Shared"),))
    t.unregister(cluster="DefaultCluster", broker_addr=A1, broker_name="broker-a", broker_id=1)
    assert t.brokers["broker-a"].addrs == {0: A0}
    assert A1 not in t.live
    t.unregister(cluster="DefaultCluster", broker_addr=A0, broker_name="broker-a", broker_id=0)
    assert "broker-a" not in t.brokers
    assert t.clusters == {"DefaultCluster": {"broker-b"}}
    assert t.route("T1") is None
    assert [q.broker_name for q in t.route("Shared").queues] == ["broker-b"]  # type: ignore[union-attr]
    t.unregister(cluster="DefaultCluster", broker_addr=B0, broker_name="broker-b", broker_id=0)
    assert t.clusters == {}
    assert t.topic_queues == {}
    assert t.live == {}


def test_unregister_unknown_broker_is_harmless() -> None:
    t = RouteTable()
    t.unregister(cluster="C", broker_addr=A0, broker_name="nope", broker_id=0)
    assert t.brokers == {}


def test_channel_close_removes_only_that_broker() -> None:
    t = RouteTable()
    ch_a, ch_b, client = object(), object(), object()
    register(t, A0, topics=(tq("T1"),), channel=ch_a)
    register(t, B0, name="broker-b", topics=(tq("T1"),), channel=ch_b)
    assert t.remove_by_channel(client, "10.0.0.7:5555") is None
    assert t.remove_by_channel(ch_a, "10.0.0.1:40000") == A0
    assert [b.broker_name for b in t.route("T1").brokers] == ["broker-b"]  # type: ignore[union-attr]
    assert "broker-a" not in t.brokers


def test_channel_close_of_a_replaced_connection_keeps_the_broker() -> None:
    t = RouteTable()
    old, new = object(), object()
    register(t, A0, topics=(tq("T1"),), channel=old)
    register(t, A0, topics=(tq("T1"),), channel=new)
    assert t.remove_by_channel(old, "10.0.0.1:40000") is None
    assert t.route("T1") is not None


def test_channel_close_falls_back_to_peer_address() -> None:
    t = RouteTable()
    register(t, A0, topics=(tq("T1"),), channel=object())
    assert t.remove_by_channel(object(), A0) == A0
    assert t.route("T1") is None


def test_expire_removes_idle_brokers_with_their_queues() -> None:
    t = RouteTable()
    ch = object()
    register(t, A0, topics=(tq("T1"),), channel=ch, now=0.0)
    register(t, B0, name="broker-b", topics=(tq("T2"),), now=100.0)
    assert t.expire(120.0, 120.0) == []  # exactly 120 s idle is not yet expired
    assert t.expire(120.5, 120.0) == [Expired(broker_addr=A0, channel=ch)]
    assert t.route("T1") is None
    assert t.route("T2") is not None
    assert t.expire(220.5, 120.0) == [Expired(broker_addr=B0, channel=None)]
    assert (t.brokers, t.clusters, t.topic_queues) == ({}, {}, {})


def test_query_data_version_refreshes_only_when_unchanged() -> None:
    t = RouteTable()
    register(t, A0, version=(5, 3), now=0.0)
    assert t.query_data_version(A0, (5, 4), now=50.0) is True
    assert t.live[A0].last_seen == 0.0
    assert t.query_data_version(A0, (5, 3), now=60.0) is False
    assert t.live[A0].last_seen == 60.0
    assert t.query_data_version(B0, (5, 3), now=60.0) is True
    assert t.data_version_of(A0) == (5, 3)
    assert t.data_version_of(B0) is None


def test_cluster_topics_and_system_topics() -> None:
    t = RouteTable()
    register(t, A0, cluster="C1", topics=(tq("T1"), tq("Both")))
    register(t, B0, name="broker-b", cluster="C2", topics=(tq("T2"), tq("Both")))
    assert sorted(t.topics_by_cluster("C1")) == ["Both", "T1"]
    assert sorted(t.topics_by_cluster("C2")) == ["Both", "T2"]
    assert t.topics_by_cluster("C3") == []
    topics, addr = t.system_topics()
    assert sorted(topics) == ["C1", "C2", "broker-a", "broker-b"]
    assert addr == A0
    assert RouteTable().system_topics() == ([], None)


def test_unit_topic_lists() -> None:
    t = RouteTable()
    register(
        t,
        A0,
        topics=(
            tq("plain"),
            tq("unit", sys_flag=FLAG_UNIT),
            tq("sub", sys_flag=FLAG_UNIT_SUB),
            tq("both", sys_flag=FLAG_UNIT | FLAG_UNIT_SUB),
        ),
    )
    assert sorted(t.topics_with_sys_flag(has=FLAG_UNIT)) == ["both", "unit"]
    assert sorted(t.topics_with_sys_flag(has=FLAG_UNIT_SUB)) == ["both", "sub"]
    assert t.topics_with_sys_flag(has=FLAG_UNIT_SUB, lacks=FLAG_UNIT) == ["sub"]


def test_wipe_and_add_write_perm() -> None:
    t = RouteTable()
    register(t, A0, topics=(tq("T1", perm=6), tq("T2", perm=7)))
    register(t, B0, name="broker-b", topics=(tq("T1"),))
    assert t.wipe_write_perm("broker-a") == 2
    assert t.topic_queues["T1"]["broker-a"].perm == 4
    assert t.topic_queues["T2"]["broker-a"].perm == 5
    assert t.topic_queues["T1"]["broker-b"].perm == 6
    assert t.add_write_perm("broker-a") == 2
    assert t.topic_queues["T2"]["broker-a"].perm == 6
    assert t.wipe_write_perm("nope") == 0


@pytest.mark.parametrize(
    ("cluster", "left"),
    [(None, None), ("", None), ("C1", ["broker-b"]), ("C9", ["broker-a", "broker-b"])],
)
def test_delete_topic(cluster: str | None, left: list[str] | None) -> None:
    t = RouteTable()
    register(t, A0, cluster="C1", topics=(tq("T1"),))
    register(t, B0, name="broker-b", cluster="C2", topics=(tq("T1"),))
    t.delete_topic("T1", cluster)
    route = t.route("T1")
    assert (sorted(q.broker_name for q in route.queues) if route else None) == left


def test_delete_topic_of_last_cluster_removes_it() -> None:
    t = RouteTable()
    register(t, A0, cluster="C1", topics=(tq("T1"),))
    t.delete_topic("T1", "C1")
    assert "T1" not in t.topic_queues
    t.delete_topic("absent", "C1")
    t.delete_topic("absent")


def test_route_without_broker_data_is_none() -> None:
    t = RouteTable()
    register(t, A0, topics=(tq("T1"),))
    # Queues left behind for a broker name that no longer has members (cannot happen through
    # the public methods, but GET_ROUTEINFO must still answer TOPIC_NOT_EXIST).
    del t.brokers["broker-a"]
    assert t.route("T1") is None


def test_channel_close_fallback_also_clears_a_member_without_live_entry() -> None:
    t = RouteTable()
    register(t, A0, topics=(tq("T1"),), channel=object())
    del t.live[A0]  # e.g. already expired from the live table by an earlier pass
    assert t.remove_by_channel(object(), A0) == A0
    assert t.brokers == {}
    assert t.route("T1") is None

"""Route -> publish/subscribe queues and queue selection (§8.3), pure."""

from __future__ import annotations

from actors.client.fault import LatencyFaultTolerance
from actors.client.route import (
    TopicPublishInfo,
    publish_info,
    route_signature,
    select_queue,
    subscribe_queues,
)
from protocol.bodies.common import MessageQueue
from protocol.bodies.route import BrokerData, QueueData, TopicRouteData


def route(*qds: QueueData, masters=("a", "b"), order_conf=None) -> TopicRouteData:
    return TopicRouteData(
        queue_datas=qds,
        broker_datas=tuple(
            BrokerData(
                cluster="c",
                broker_name=n,
                broker_addrs={0: f"10.0.0.{i}:10911"} if n in masters else {1: "10.0.0.9:10911"},
            )
            for i, n in enumerate(["b", "a", "s"])
        ),
        order_topic_conf=order_conf,
    )


def test_publish_queues_need_write_perm_and_a_master() -> None:
    r = route(
        QueueData(broker_name="b", read_queue_nums=2, write_queue_nums=3, perm=6),
        QueueData(broker_name="a", read_queue_nums=4, write_queue_nums=2, perm=6),
        QueueData(broker_name="s", read_queue_nums=4, write_queue_nums=4, perm=6),  # no master
        masters=("a", "b"),
    )
    info = publish_info("T", r)
    assert [(q.broker_name, q.queue_id) for q in info.queues] == [
        ("a", 0),
        ("a", 1),
        ("b", 0),
        ("b", 1),
        ("b", 2),
    ]
    read_only = route(QueueData(broker_name="a", read_queue_nums=4, write_queue_nums=4, perm=4))
    assert not publish_info("T", read_only).ok()


def test_subscribe_queues_use_read_perm_and_read_nums() -> None:
    r = route(
        QueueData(broker_name="b", read_queue_nums=2, write_queue_nums=3, perm=6),
        QueueData(broker_name="s", read_queue_nums=1, write_queue_nums=4, perm=4),
        QueueData(broker_name="a", read_queue_nums=1, write_queue_nums=4, perm=2),
    )
    assert [(q.broker_name, q.queue_id) for q in subscribe_queues("T", r)] == [
        ("b", 0),
        ("b", 1),
        ("s", 0),
    ]


def test_order_topic_conf_defines_the_queues() -> None:
    r = route(
        QueueData(broker_name="a", read_queue_nums=8, write_queue_nums=8), order_conf="a:2;b:1"
    )
    info = publish_info("T", r)
    assert info.order_topic
    assert [(q.broker_name, q.queue_id) for q in info.queues] == [("a", 0), ("a", 1), ("b", 0)]


def test_route_signature_ignores_order() -> None:
    qa = QueueData(broker_name="a", read_queue_nums=1, write_queue_nums=1)
    qb = QueueData(broker_name="b", read_queue_nums=1, write_queue_nums=1)
    assert route_signature(route(qa, qb)) == route_signature(route(qb, qa))
    assert route_signature(route(qa)) != route_signature(route(qa, qb))


def _info() -> TopicPublishInfo:
    queues = [
        MessageQueue(topic="T", broker_name=b, queue_id=i) for b in ("a", "b") for i in range(2)
    ]
    return TopicPublishInfo("T", queues, write_queue_nums={"a": 2, "b": 2}, _counter=0)


def test_select_round_robin_and_avoid_last_broker() -> None:
    info = _info()
    picks = [info.select().queue_id for _ in range(4)]
    assert len(set(picks)) == 2
    for _ in range(10):
        assert info.select(last_broker="a").broker_name == "b"


def test_select_skips_isolated_brokers_and_falls_back() -> None:
    info = _info()
    fault = LatencyFaultTolerance()
    fault.update("a", 0, isolation=True, now_ms=0)
    assert {select_queue(info, None, fault, 1).broker_name for _ in range(10)} == {"b"}
    fault.update("b", 0, isolation=True, now_ms=0)
    # Everything isolated: still a queue, never an error.
    assert select_queue(info, None, fault, 1).broker_name in {"a", "b"}
    assert select_queue(info, None, fault, 600_001).broker_name in {"a", "b"}

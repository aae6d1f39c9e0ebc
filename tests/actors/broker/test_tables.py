"""Pure broker state: client tables, subscriptions, locks, the held-pull table, stats."""

from __future__ import annotations

import pytest

from actors.broker.clients import (
    ClientChannelInfo,
    ConsumerManager,
    ProducerManager,
    Subscription,
    build_subscription,
)
from actors.broker.locks import RebalanceLockManager
from actors.broker.long_polling import HeldPull, PullHoldTable
from actors.broker.stats import BrokerStats
from protocol.bodies.common import MessageQueue
from protocol.message import java_hash


def info(channel: str, client_id: str, now: int = 0) -> ClientChannelInfo:
    return ClientChannelInfo(
        channel=channel, client_id=client_id, language="CPP", version=333, last_update_ms=now
    )


def register(
    manager: ConsumerManager, channel: str, topics: list[str], version: int = 1, now: int = 0
) -> bool:
    return manager.register(
        "g",
        info(channel, f"id-{channel}", now),
        consume_type="CONSUME_PASSIVELY",
        message_model="CLUSTERING",
        consume_from_where="CONSUME_FROM_LAST_OFFSET",
        subscriptions=[build_subscription(t, "*", sub_version=version) for t in topics],
    )


@pytest.mark.parametrize(
    ("expression", "tags"),
    [
        ("*", set()),
        ("", set()),
        (None, set()),
        ("TagA", {"TagA"}),
        (" TagA || TagB ||", {"TagA", "TagB"}),
    ],
)
def test_build_subscription(expression, tags):
    sub = build_subscription("T", expression)
    assert sub.tags == tags
    assert sub.codes == {java_hash(t) for t in tags}
    assert sub.accepts_all == (not tags)


def test_subscription_matches_by_tag_code():
    sub = build_subscription("T", "TagA || TagB")
    assert sub.matches(java_hash("TagB"))
    assert not sub.matches(java_hash("TagC"))
    assert not sub.matches(None)
    assert Subscription(topic="T").matches(None)
    assert build_subscription("T", "a > 1", expression_type="SQL92").matches(5)


def test_consumer_changes_follow_javas_rule():
    manager = ConsumerManager()
    assert register(manager, "ch1", ["A", "B"])  # new member
    assert not register(manager, "ch1", ["A", "B"])  # same again
    assert not register(manager, "ch1", ["A", "B"], version=2)  # newer version only
    assert register(manager, "ch1", ["A"])  # a topic dropped
    assert register(manager, "ch1", ["A", "C"])  # a topic added
    assert register(manager, "ch2", ["A", "C"])  # a second member
    assert sorted(manager.get("g").client_ids()) == ["id-ch1", "id-ch2"]
    assert manager.groups_of_topic("C") == ["g"]
    assert manager.channel_closed("ch1") == ["g"]
    assert manager.channel_closed("ch1") == []
    assert manager.unregister("g", "ch2")
    assert manager.get("g") is None


def test_expired_channels():
    consumers, producers = ConsumerManager(), ProducerManager()
    register(consumers, "old", ["A"], now=0)
    register(consumers, "new", ["A"], now=100_000)
    producers.register("pg", info("p-old", "p", 0))
    assert consumers.expired_channels(130_000, 120_000) == {"old"}
    assert producers.expired_channels(130_000, 120_000) == {"p-old"}
    producers.channel_closed("p-old")
    assert producers.channels("pg") == []


def mq(queue_id: int) -> MessageQueue:
    return MessageQueue(topic="T", broker_name="b", queue_id=queue_id)


def test_locks_expire_after_60_s():
    locks = RebalanceLockManager()
    assert locks.try_lock_batch("g", [mq(0), mq(1)], "a", 0) == {mq(0), mq(1)}
    assert locks.try_lock_batch("g", [mq(0)], "b", 60_000) == set()
    assert locks.try_lock_batch("g", [mq(0)], "b", 60_001) == {mq(0)}
    assert locks.holder("g", mq(0), 60_001) == "b"
    locks.unlock_batch("g", [mq(0), mq(1)], "a")  # only a's own lock goes
    assert locks.holder("g", mq(0), 60_001) == "b"
    assert locks.holder("g", mq(1), 60_001) is None
    assert locks.try_lock_batch("other", [mq(0)], "a", 60_001) == {mq(0)}


def held(offset: int, deadline: float, expression: str = "*", queue_id: int = 0) -> HeldPull:
    return HeldPull(
        topic="T",
        queue_id=queue_id,
        offset=offset,
        subscription=build_subscription("T", expression),
        deadline=deadline,
    )


def test_hold_table_arrivals_respect_offsets_and_tags():
    table = PullHoldTable()
    a, b, c = held(5, 10), held(7, 10, "TagB"), held(5, 10, queue_id=1)
    for pull in (a, b, c):
        table.hold(pull)
    assert table.arrived("T", 0, 5, java_hash("TagA")) == []  # nothing past offset 5 yet
    assert table.arrived("T", 0, 8, java_hash("TagA")) == [a]  # b wants TagB
    assert table.behind("T", 0, 8) == [b]  # the periodic check ignores tags
    assert len(table) == 1
    assert table.next_deadline() == 10
    assert table.expired(9.9) == []
    assert table.expired(10) == [c]
    assert table.next_deadline() == float("inf")


def test_hold_table_deadline_order_and_drain():
    table = PullHoldTable()
    late, early = held(0, 20), held(0, 5)
    table.hold(late)
    table.hold(early)
    assert table.next_deadline() == 5
    assert table.arrived("T", 0, 1, 0) == [late, early]
    assert table.next_deadline() == float("inf")
    table.hold(held(0, 1))
    assert len(table.drain()) == 1
    assert len(table) == 0


def test_stats_rates():
    stats = BrokerStats()
    assert stats.put_nums.per_second(0) == 0.0
    stats.on_put("T", 10, 1000)
    assert stats.put_nums.per_second(1000) == pytest.approx(10.0)
    stats.on_get("g", "T", 4, 400)
    assert stats.consume_tps("g", "T", 2000) == 0.0  # first sample
    stats.on_get("g", "T", 4, 400)
    assert stats.consume_tps("g", "T", 4000) == pytest.approx(2.0)
    assert stats.put_by_topic["T"] == 10

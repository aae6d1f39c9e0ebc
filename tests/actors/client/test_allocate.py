"""Allocation strategies: the reference's worked examples (§8.4) and the invariants."""

from __future__ import annotations

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from actors.client.allocate import (
    AllocateAveragely,
    AllocateAveragelyByCircle,
    AllocateByConfig,
    AllocateByMachineRoom,
    AllocateConsistentHash,
    AllocateMachineRoomNearby,
    AllocationError,
    md5_hash,
    queue_key,
    strategy_by_name,
)


@attrs.frozen(order=True)
class MQ:
    topic: str
    broker_name: str
    queue_id: int


def queues(n: int, broker: str = "broker-a", topic: str = "T") -> list[MQ]:
    return [MQ(topic, broker, i) for i in range(n)]


CIDS = ["c0", "c1", "c2"]


def ids(strategy, mqs, cids=CIDS) -> list[list[int]]:
    return [[mq.queue_id for mq in strategy.allocate("g", cid, mqs, cids)] for cid in cids]


@pytest.mark.parametrize(
    ("strategy", "six", "eight"),
    [
        (AllocateAveragely(), [[0, 1], [2, 3], [4, 5]], [[0, 1, 2], [3, 4, 5], [6, 7]]),
        (AllocateAveragelyByCircle(), [[0, 3], [1, 4], [2, 5]], [[0, 3, 6], [1, 4, 7], [2, 5]]),
        (AllocateConsistentHash(), [[0, 1, 5], [3, 4], [2]], [[0, 1, 5, 6], [3, 4], [2, 7]]),
    ],
)
def test_reference_worked_examples(strategy, six, eight) -> None:
    assert ids(strategy, queues(6)) == six
    assert ids(strategy, queues(8)) == eight


def test_machine_room_example() -> None:
    mqs = [MQ("T", "hz@broker-a", i) for i in range(3)] + [
        MQ("T", "sh@broker-b", i) for i in range(3)
    ]
    strategy = AllocateByMachineRoom({"hz"})
    got = {cid: strategy.allocate("g", cid, mqs, ["c0", "c1"]) for cid in ["c0", "c1"]}
    assert got["c0"] == [mqs[0], mqs[2]]
    assert got["c1"] == [mqs[1]]


def test_machine_room_ignores_names_without_exactly_one_room() -> None:
    mqs = [MQ("T", "hz@", 0), MQ("T", "hz@a@b", 1), MQ("T", "broker", 2), MQ("T", "hz@x", 3)]
    assert AllocateByMachineRoom({"hz"}).allocate("g", "c0", mqs, ["c0"]) == [mqs[3]]


def test_averagely_more_consumers_than_queues() -> None:
    cids = [f"c{i}" for i in range(5)]
    assert ids(AllocateAveragely(), queues(3), cids) == [[0], [1], [2], [], []]


def test_not_a_member_gets_nothing() -> None:
    for strategy in (
        AllocateAveragely(),
        AllocateAveragelyByCircle(),
        AllocateConsistentHash(),
        AllocateByMachineRoom({"hz"}),
    ):
        assert strategy.allocate("g", "stranger", queues(4), CIDS) == []


@pytest.mark.parametrize(
    ("cid", "mqs", "cids"),
    [("", queues(2), CIDS), ("c0", [], CIDS), ("c0", queues(2), [])],
)
def test_bad_input_is_a_typed_error(cid, mqs, cids) -> None:
    with pytest.raises(AllocationError):
        AllocateAveragely().allocate("g", cid, mqs, cids)


def test_by_config_returns_the_configured_list() -> None:
    fixed = [MQ("X", "b", 7)]
    assert AllocateByConfig(fixed).allocate("g", "c0", queues(4), CIDS) == fixed


def test_md5_hash_and_queue_key_match_java() -> None:
    # MD5("a") = 0cc175b9c0f1b6a8...; first 4 bytes big-endian unsigned.
    assert md5_hash("a") == 0x0CC175B9
    assert (
        queue_key(MQ("T", "broker-a", 3))
        == "MessageQueue [topic=T, brokerName=broker-a, queueId=3]"
    )


def test_consistent_hash_is_stable_when_a_consumer_leaves() -> None:
    strategy = AllocateConsistentHash()
    mqs = queues(16)
    before = {c: set(strategy.allocate("g", c, mqs, CIDS)) for c in CIDS}
    after = {c: set(strategy.allocate("g", c, mqs, ["c0", "c1"])) for c in ["c0", "c1"]}
    # Queues of the survivors stay with them; only c2's queues move.
    assert before["c0"] <= after["c0"]
    assert before["c1"] <= after["c1"]


def test_machine_room_nearby() -> None:
    mqs = [MQ("T", "hz@a", 0), MQ("T", "hz@a", 1), MQ("T", "sh@b", 0), MQ("T", "bj@c", 0)]
    cids = ["hz-1", "hz-2", "sh-1"]
    strategy = AllocateMachineRoomNearby(
        AllocateAveragely(),
        broker_room=lambda mq: mq.broker_name.split("@")[0],
        consumer_room=lambda cid: cid.split("-")[0],
    )
    assert strategy.name == "MACHINE_ROOM_NEARBY-AVG"
    got = {c: strategy.allocate("g", c, mqs, cids) for c in cids}
    # hz queues split between hz consumers; sh queue to sh; bj (no consumer) to someone of all.
    assert got["hz-1"] == [mqs[0], mqs[3]]
    assert got["hz-2"] == [mqs[1]]
    assert got["sh-1"] == [mqs[2]]


def test_strategy_by_name() -> None:
    assert strategy_by_name("AVG").name == "AVG"
    with pytest.raises(AllocationError, match="unknown allocation strategy"):
        strategy_by_name("NOPE")


@given(m=st.integers(1, 40), n=st.integers(1, 12))
def test_every_queue_has_exactly_one_owner(m: int, n: int) -> None:
    mqs = queues(m)
    cids = [f"c{i:02d}" for i in range(n)]
    for strategy in (AllocateAveragely(), AllocateAveragelyByCircle(), AllocateConsistentHash()):
        owned = [mq for cid in cids for mq in strategy.allocate("g", cid, mqs, cids)]
        assert sorted(owned) == mqs, strategy.name

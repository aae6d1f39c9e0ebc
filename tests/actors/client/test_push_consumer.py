"""Push consumer against the fake cluster over loopback (real clock, bounded by fail_after)."""

from __future__ import annotations

import trio

from actors.client.consume_service import ConsumeOrderlyStatus, ConsumeStatus
from actors.client.message import Message, client_msg_id
from actors.client.producer import Producer
from actors.client.pull_consumer import LitePullConsumer
from actors.client.push_consumer import (
    ConsumeFromWhere,
    ConsumerSettings,
    MessageModel,
    PushConsumer,
)
from protocol.codes import RequestCode
from protocol.message import MessageExt
from tests.actors.client.fake_cluster import start_fake_cluster


async def produce(ns_addr: str, topic: str, n: int, *, tags: str | None = None) -> list[str]:
    async with Producer("pg", namesrv=ns_addr) as producer:
        return [
            (await producer.send(Message(topic, f"m{i}".encode(), tags=tags))).msg_id
            for i in range(n)
        ]


class Collector:
    def __init__(self, want: int) -> None:
        self.want = want
        self.got: list = []
        self.done = trio.Event()

    async def __call__(self, msgs, ctx):
        self.got.extend(msgs)
        if len({client_msg_id(m) for m in self.got}) >= self.want:
            self.done.set()
        return ConsumeStatus.CONSUME_SUCCESS


async def test_concurrent_consumer_gets_every_message_and_commits(nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    with trio.fail_after(20):
        ids = await produce(ns.addr, "C1", 20)
        collect = Collector(20)
        consumer = PushConsumer("g1", namesrv=ns.addr, listener=collect)
        consumer.subscribe("C1", "*")
        async with consumer:
            await collect.done.wait()
            assigned = consumer.assigned_queues()
    assert {client_msg_id(m) for m in collect.got} == set(ids)
    assert {mq.topic for mq in assigned} == {"C1", "%RETRY%g1"}
    committed = sum(o for (g, t, _), o in broker.offsets.items() if g == "g1" and t == "C1")
    assert committed == 20
    assert RequestCode.UNREGISTER_CLIENT in broker.requests


async def test_tag_filter(nursery, autojump_clock) -> None:
    ns, _ = await start_fake_cluster(nursery)
    with trio.fail_after(20):
        async with Producer("pg", namesrv=ns.addr) as producer:
            for i in range(9):
                await producer.send(
                    Message("C2", f"{i}".encode(), tags=["TagA", "TagB", "TagC"][i % 3])
                )
        collect = Collector(6)
        consumer = PushConsumer("g2", namesrv=ns.addr, listener=collect)
        consumer.subscribe("C2", "TagA || TagC")
        async with consumer:
            await collect.done.wait()
            await trio.sleep(10)  # virtual: long polls and rebalances go on; nothing more comes
    assert sorted(m.tags for m in collect.got) == ["TagA"] * 3 + ["TagC"] * 3


async def test_failed_messages_are_sent_back_and_redelivered(nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    seen: dict[str, int] = {}
    done = trio.Event()

    async def flaky(msgs, ctx):
        for m in msgs:
            seen[m.body.decode()] = seen.get(m.body.decode(), 0) + 1
            assert m.topic == "C3"  # retried messages show their original topic
        if all(v >= 2 for v in seen.values()) and len(seen) == 3:
            done.set()
        return (
            ConsumeStatus.RECONSUME_LATER
            if msgs[0].reconsume_times == 0
            else ConsumeStatus.CONSUME_SUCCESS
        )

    with trio.fail_after(20):
        await produce(ns.addr, "C3", 3)
        consumer = PushConsumer("g3", namesrv=ns.addr, listener=flaky)
        consumer.subscribe("C3")
        async with consumer:
            await done.wait()
    assert len(broker.send_backs) == 3
    assert {h.origin_topic for h in broker.send_backs} == {"C3"}
    assert all(h.max_reconsume_times == 16 for h in broker.send_backs)


async def test_consume_from_last_offset_skips_old_messages(nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.query_not_found = True
    with trio.fail_after(20):
        await produce(ns.addr, "C4", 4)
        collect = Collector(2)
        consumer = PushConsumer(
            "g4",
            namesrv=ns.addr,
            listener=collect,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET,
        )
        consumer.subscribe("C4")
        async with consumer:
            assert len(consumer.assigned_queues()) == 5  # the first rebalance ran at start
            new = await produce(ns.addr, "C4", 2)
            await collect.done.wait()
    assert sorted(client_msg_id(m) for m in collect.got) == sorted(new)


async def test_broadcasting_every_consumer_sees_everything(nursery, tmp_path) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    with trio.fail_after(20):
        ids = await produce(ns.addr, "C5", 8)
        a, b = Collector(8), Collector(8)
        ca = PushConsumer(
            "g5",
            namesrv=ns.addr,
            listener=a,
            message_model=MessageModel.BROADCASTING,
            instance_name="a",
            offsets_dir=tmp_path,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        )
        cb = PushConsumer(
            "g5",
            namesrv=ns.addr,
            listener=b,
            message_model=MessageModel.BROADCASTING,
            instance_name="b",
            offsets_dir=tmp_path,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        )
        ca.subscribe("C5")
        cb.subscribe("C5")
        async with ca, cb:
            await a.done.wait()
            await b.done.wait()
    assert {client_msg_id(m) for m in a.got} == set(ids) == {client_msg_id(m) for m in b.got}
    assert not [k for k in broker.offsets if k[0] == "g5"]  # never stored on the broker
    files = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("offsets.json"))
    assert len(files) == 2
    assert '"queueId":0' in (tmp_path / files[0]).read_text().replace("\t", "").replace("\n", "")


async def test_orderly_consumer_keeps_queue_order(nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    got: list[tuple[int, int]] = []
    done = trio.Event()
    failed_once = set()

    async def listener(msgs, ctx):
        for m in msgs:
            if m.queue_offset == 3 and m.queue_id not in failed_once:
                failed_once.add(m.queue_id)
                return ConsumeOrderlyStatus.SUSPEND_CURRENT_QUEUE_A_MOMENT
            got.append((m.queue_id, int(m.body.decode())))
        if len(got) >= 40:
            done.set()
        return ConsumeOrderlyStatus.SUCCESS

    with trio.fail_after(30):
        async with Producer("pg", namesrv=ns.addr) as producer:
            for i in range(40):
                await producer.send_orderly(
                    Message("C6", str(i).encode()), sharding_key=f"k{i % 4}"
                )
        consumer = PushConsumer("g6", namesrv=ns.addr, listener=listener, orderly=True)
        consumer.subscribe("C6")
        async with consumer:
            await done.wait()
    per_queue: dict[int, list[int]] = {}
    for qid, seq in got:
        per_queue.setdefault(qid, []).append(seq)
    for seqs in per_queue.values():
        assert seqs == sorted(seqs)
    assert sorted(s for seqs in per_queue.values() for s in seqs) == list(range(40))
    assert RequestCode.LOCK_BATCH_MQ in broker.requests
    assert RequestCode.UNLOCK_BATCH_MQ in broker.requests


async def test_a_listener_past_the_consume_timeout_counts_as_failed(nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    calls: list[int] = []
    done = trio.Event()

    async def slow_first(msgs, ctx):
        calls.append(msgs[0].reconsume_times)
        if msgs[0].reconsume_times == 0:
            await trio.sleep_forever()
        done.set()
        return ConsumeStatus.CONSUME_SUCCESS

    settings = ConsumerSettings(consume_timeout=0.3)
    with trio.fail_after(20):
        await produce(ns.addr, "C7", 1)
        consumer = PushConsumer("g7", namesrv=ns.addr, listener=slow_first, settings=settings)
        consumer.subscribe("C7")
        async with consumer:
            await done.wait()
    assert calls == [0, 1]
    assert len(broker.send_backs) == 1


async def test_consume_from_timestamp(nursery, autojump_clock) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("C8", 1)
    for i in range(6):
        broker.put(MessageExt(topic="C8", body=f"{i}".encode()))
    for i, msg in enumerate(broker.queue("C8", 0)):
        # three from 2020, three from 2024 (epoch ms)
        msg.store_timestamp = 1_577_836_800_000 + i if i < 3 else 1_704_067_200_000 + i
    collect = Collector(3)
    consumer = PushConsumer(
        "g8",
        namesrv=ns.addr,
        listener=collect,
        consume_from_where=ConsumeFromWhere.CONSUME_FROM_TIMESTAMP,
        consume_timestamp="20220101000000",
    )
    broker.query_not_found = True
    consumer.subscribe("C8")
    with trio.fail_after(20):
        async with consumer:
            await collect.done.wait()
            await trio.sleep(10)  # virtual: nothing older than the timestamp comes later
    assert sorted(m.body for m in collect.got) == [b"3", b"4", b"5"]


def test_a_shared_settings_object_is_not_changed_by_the_consumers_options() -> None:
    shared = ConsumerSettings(pull_batch_size=7)
    broadcast = PushConsumer(
        "g9", namesrv="127.0.0.1:1", settings=shared, message_model=MessageModel.BROADCASTING
    )
    lite = LitePullConsumer("g10", namesrv="127.0.0.1:1", settings=shared, pull_batch_size=3)
    assert broadcast.settings.message_model is MessageModel.BROADCASTING
    assert (broadcast.settings.pull_batch_size, lite.settings.pull_batch_size) == (7, 3)
    assert shared.message_model is MessageModel.CLUSTERING
    assert shared.pull_batch_size == 7

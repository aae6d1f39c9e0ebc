"""Rebalance: consumers join and leave under autojump_clock (virtual time, loopback fake
broker); after it settles every queue has exactly one holder and nothing is lost."""

from __future__ import annotations

import trio

from actors.client.allocate import AllocateAveragely
from actors.client.consume_service import ConsumeOrderlyStatus, ConsumeStatus
from actors.client.message import Message, MessageQueue, client_msg_id
from actors.client.producer import Producer
from actors.client.push_consumer import ConsumeFromWhere, MessageModel, PushConsumer
from actors.client.rebalance import wanted_queues
from tests.actors.client.fake_cluster import start_fake_cluster

TOPIC = "R"


def test_wanted_queues_clustering_and_broadcasting() -> None:
    mqs = [MessageQueue(topic="T", broker_name="b", queue_id=i) for i in range(4)]
    strategy = AllocateAveragely()
    got = wanted_queues(
        MessageModel.CLUSTERING, strategy, "g", "c1", list(reversed(mqs)), ["c1", "c0"]
    )
    assert got == set(mqs[2:])  # inputs are sorted first: c0 < c1
    assert wanted_queues(MessageModel.BROADCASTING, strategy, "g", "c1", mqs, []) == set(mqs)
    assert wanted_queues(MessageModel.CLUSTERING, strategy, "g", "c9", mqs, ["c0"]) == set()


class Member:
    """One consumer running in its own task until ``stop``."""

    def __init__(
        self, name: str, ns_addr: str, seen: dict[str, set[str]], model: MessageModel
    ) -> None:
        self.name = name
        self.stop = trio.Event()
        self.stopped = trio.Event()
        self.consumer: PushConsumer | None = None

        async def listener(msgs, ctx):
            for m in msgs:
                seen.setdefault(name, set()).add(client_msg_id(m))
            return ConsumeStatus.CONSUME_SUCCESS

        self.consumer = PushConsumer(
            "rg",
            namesrv=ns_addr,
            listener=listener,
            message_model=model,
            instance_name=name,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        )
        self.consumer.subscribe(TOPIC)

    async def run(self, *, task_status=trio.TASK_STATUS_IGNORED) -> None:
        assert self.consumer is not None
        async with self.consumer:
            task_status.started()
            await self.stop.wait()
        self.stopped.set()

    def held(self) -> set[MessageQueue]:
        assert self.consumer is not None
        return {mq for mq in self.consumer.assigned_queues() if mq.topic == TOPIC}


async def produce(ns_addr: str, n: int, start: int) -> set[str]:
    async with Producer("pg", namesrv=ns_addr) as producer:
        return {
            (await producer.send(Message(TOPIC, f"{start + i}".encode()))).msg_id for i in range(n)
        }


async def test_clustering_consumers_join_and_leave(autojump_clock, nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic(TOPIC, 8)
    seen: dict[str, set[str]] = {}
    sent = await produce(ns.addr, 50, 0)
    members = [Member(f"c{i}", ns.addr, seen, MessageModel.CLUSTERING) for i in range(3)]
    await nursery.start(members[0].run)
    await trio.sleep(5)
    sent |= await produce(ns.addr, 50, 50)
    await nursery.start(members[1].run)
    await nursery.start(members[2].run)
    await trio.sleep(30)
    held = [m.held() for m in members]
    assert sum(len(h) for h in held) == 8
    assert set().union(*held) == {
        MessageQueue(topic=TOPIC, broker_name="broker-a", queue_id=i) for i in range(8)
    }
    members[0].stop.set()
    await members[0].stopped.wait()
    sent |= await produce(ns.addr, 50, 100)
    await trio.sleep(60)  # settle: notifications, rebalance rounds, long polls
    live = [m.held() for m in members[1:]]
    assert not live[0] & live[1], "a queue is held by two consumers"
    assert len(live[0] | live[1]) == 8
    assert abs(len(live[0]) - len(live[1])) == 0
    consumed = set().union(*seen.values())
    assert consumed == sent
    for m in members[1:]:
        m.stop.set()


async def test_broadcasting_every_member_sees_everything(
    autojump_clock, nursery, tmp_path, monkeypatch
) -> None:
    monkeypatch.setenv("ROCKETMQ_CLIENT_LOCAL_OFFSET_STORE_DIR", str(tmp_path))
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic(TOPIC, 4)
    seen: dict[str, set[str]] = {}
    sent = await produce(ns.addr, 20, 0)
    members = [Member(f"b{i}", ns.addr, seen, MessageModel.BROADCASTING) for i in range(3)]
    await nursery.start(members[0].run)
    await nursery.start(members[1].run)
    await trio.sleep(5)
    sent |= await produce(ns.addr, 20, 20)
    await nursery.start(members[2].run)
    members[0].stop.set()
    sent |= await produce(ns.addr, 20, 40)
    await trio.sleep(30)
    for m in members[1:]:
        assert len(m.held()) == 4
        assert seen[m.name] == sent
        m.stop.set()
    assert seen["b0"] <= sent


async def test_notification_rebalances_at_once(autojump_clock, nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic(TOPIC, 4)
    seen: dict[str, set[str]] = {}
    a = Member("a", ns.addr, seen, MessageModel.CLUSTERING)
    b = Member("b", ns.addr, seen, MessageModel.CLUSTERING)
    await nursery.start(a.run)
    assert len(a.held()) == 4
    await trio.sleep(1)
    await nursery.start(b.run)
    t0 = trio.current_time()
    await trio.sleep(1)  # far less than the 20 s rebalance period
    assert len(a.held()) == 2
    assert len(b.held()) == 2
    assert trio.current_time() - t0 < 20
    a.stop.set()
    await a.stopped.wait()
    await trio.sleep(1)  # unregistering notifies the survivor
    assert len(b.held()) == 4
    b.stop.set()


async def test_orderly_queue_locked_elsewhere_is_taken_when_the_lock_expires(
    autojump_clock, nursery
) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic(TOPIC, 2)
    now = trio.current_time()
    for qid in range(2):
        mq = MessageQueue(topic=TOPIC, broker_name="broker-a", queue_id=qid)
        broker.locks[("og", mq)] = ("someone-else", now)
    sent = await produce(ns.addr, 6, 0)
    got: list[str] = []
    done = trio.Event()

    async def listener(msgs, ctx):
        got.extend(client_msg_id(m) for m in msgs)
        if len(got) >= 6:
            done.set()
        return ConsumeOrderlyStatus.SUCCESS

    consumer = PushConsumer("og", namesrv=ns.addr, listener=listener, orderly=True)
    consumer.subscribe(TOPIC)
    async with consumer:
        assert {mq for mq in consumer.assigned_queues() if mq.topic == TOPIC} == set()
        await done.wait()
        # Not before the other holder's 60 s lock ran out, and within one more rebalance.
        assert 60 <= trio.current_time() - now <= 60 + 20 + 5
    assert set(got) == sent

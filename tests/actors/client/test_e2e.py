"""The client against the project's own name server and broker (in-process, loopback)."""

from __future__ import annotations

import trio

from actors.client.consume_service import ConsumeOrderlyStatus, ConsumeStatus
from actors.client.message import Message, SendStatus, client_msg_id
from actors.client.producer import Producer
from actors.client.pull_consumer import LitePullConsumer
from actors.client.push_consumer import ConsumeFromWhere, PushConsumer
from tests.actors.client.test_push_consumer import Collector


async def test_produce_and_consume_through_our_broker(real_namesrv, real_broker) -> None:
    with trio.fail_after(30):
        async with Producer("pg", namesrv=real_namesrv) as producer:
            results = [
                await producer.send(Message("E1", f"m{i}".encode(), tags="TagA")) for i in range(20)
            ]
            results.append(await producer.send_batch([Message("E1", b"b0"), Message("E1", b"b1")]))
            await producer.send(Message("E1", b"z" * 10000, tags="TagA"))
        assert all(r.status is SendStatus.SEND_OK for r in results)
        collect = Collector(23)
        consumer = PushConsumer(
            "cg1",
            namesrv=real_namesrv,
            listener=collect,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        )
        consumer.subscribe("E1")
        async with consumer:
            await collect.done.wait()
    bodies = {m.body for m in collect.got}
    assert {f"m{i}".encode() for i in range(20)} | {b"b0", b"b1", b"z" * 10000} == bodies
    ids = {client_msg_id(m) for m in collect.got}
    assert {r.msg_id for r in results[:20]} <= ids


async def test_lite_pull_through_our_broker(real_namesrv, real_broker) -> None:
    with trio.fail_after(30):
        async with Producer("pg", namesrv=real_namesrv) as producer:
            for i in range(10):
                await producer.send(Message("E2", f"{i}".encode()))
        async with LitePullConsumer(
            "cg2",
            namesrv=real_namesrv,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        ) as consumer:
            await consumer.subscribe("E2")
            got: list = []
            while len(got) < 10:
                got += await consumer.poll(timeout=1.0)
    assert sorted(int(m.body) for m in got) == list(range(10))


async def test_retry_through_our_broker(real_namesrv, real_broker) -> None:
    attempts: dict[bytes, int] = {}
    done = trio.Event()

    async def once_later(msgs, ctx):
        for m in msgs:
            attempts[m.body] = attempts.get(m.body, 0) + 1
        if len(attempts) == 2 and all(v >= 2 for v in attempts.values()):
            done.set()
        return (
            ConsumeStatus.RECONSUME_LATER
            if msgs[0].reconsume_times == 0
            else ConsumeStatus.CONSUME_SUCCESS
        )

    with trio.fail_after(60):
        async with Producer("pg", namesrv=real_namesrv) as producer:
            await producer.send(Message("E3", b"a"))
            await producer.send(Message("E3", b"b"))
        consumer = PushConsumer(
            "cg3",
            namesrv=real_namesrv,
            listener=once_later,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        )
        consumer.subscribe("E3")
        async with consumer:
            await done.wait()
    # Each failed once (RECONSUME_LATER) and came back once through the retry topic.
    assert attempts == {b"a": 2, b"b": 2}


async def test_orderly_order_survives_a_consumer_restart(real_namesrv, real_broker) -> None:
    keys = 4
    per_key = 15
    with trio.fail_after(60):
        async with Producer("pg", namesrv=real_namesrv) as producer:
            for i in range(keys * per_key):
                key = f"key{i % keys}"
                body = f"k={key};s={i // keys};".encode()
                await producer.send_orderly(Message("E4", body), sharding_key=key)
        seen: dict[str, list[int]] = {}

        def record(msgs) -> None:
            for m in msgs:
                fields = dict(part.split("=") for part in m.body.decode().strip(";").split(";"))
                seen.setdefault(fields["k"], []).append(int(fields["s"]))

        async def run_consumer(stop_after: int) -> None:
            done = trio.Event()
            count = 0

            async def listener(msgs, ctx):
                nonlocal count
                record(msgs)
                count += len(msgs)
                if count >= stop_after:
                    done.set()
                return ConsumeOrderlyStatus.SUCCESS

            consumer = PushConsumer(
                "cg4",
                namesrv=real_namesrv,
                listener=listener,
                orderly=True,
                consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
            )
            consumer.subscribe("E4")
            async with consumer:
                await done.wait()

        await run_consumer(stop_after=20)
        first_part = sum(len(v) for v in seen.values())
        remaining = keys * per_key - first_part
        await run_consumer(stop_after=max(remaining, 1))
    for key, seqs in seen.items():
        assert seqs == sorted(seqs), f"order went back for {key}: {seqs}"
        assert set(seqs) == set(range(per_key)), key


async def test_rebalance_through_our_broker(real_namesrv, real_broker) -> None:
    seen: dict[str, set[str]] = {}

    def member(name: str) -> PushConsumer:
        async def listener(msgs, ctx):
            seen.setdefault(name, set()).update(client_msg_id(m) for m in msgs)
            return ConsumeStatus.CONSUME_SUCCESS

        c = PushConsumer(
            "cg5",
            namesrv=real_namesrv,
            listener=listener,
            instance_name=name,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        )
        c.subscribe("E5")
        return c

    with trio.fail_after(60):
        async with Producer("pg", namesrv=real_namesrv) as producer:
            sent = {(await producer.send(Message("E5", b"x"))).msg_id for _ in range(20)}
            async with member("a") as a, member("b") as b:
                while True:
                    held_a = {mq for mq in a.assigned_queues() if mq.topic == "E5"}
                    held_b = {mq for mq in b.assigned_queues() if mq.topic == "E5"}
                    if len(held_a) == len(held_b) == 2 and not held_a & held_b:
                        break
                    await trio.sleep(0.05)  # until the NOTIFY-driven rebalances settle
                sent |= {(await producer.send(Message("E5", b"y"))).msg_id for _ in range(20)}
                while set().union(*seen.values()) != sent:  # noqa: ASYNC110 - filled by listeners
                    await trio.sleep(0.05)
    assert set(seen) == {"a", "b"}  # both members consumed
    assert set().union(*seen.values()) == sent

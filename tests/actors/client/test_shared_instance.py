"""One client instance per client id in a process (Java's MQClientManager), issue 18.

Observed at the broker: the fake broker records the peer address of every request (one per
connection) and every HEART_BEAT body; the real broker answers GET_PRODUCER_CONNECTION_LIST
and GET_CONSUMER_CONNECTION_LIST as mqadmin's producerConnection/consumerConnection see it.
"""

from __future__ import annotations

import json

import pytest
import trio

from actors.client import (
    ClientError,
    ConsumeFromWhere,
    ConsumeStatus,
    Message,
    Producer,
    PushConsumer,
)
from actors.client.instance import CLIENT_INNER_PRODUCER_GROUP
from actors.client.manager import running_instances
from actors.remoting.client import open_remoting_client
from protocol.bodies.heartbeat import HeartbeatData
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from tests.actors.client.fake_cluster import FakeBroker, start_fake_cluster

SHARED = "shared"


def groups(hb: HeartbeatData) -> tuple[set[str], set[str]]:
    return (
        {p.group_name for p in hb.producer_data_set},
        {c.group_name for c in hb.consumer_data_set},
    )


def counting_listener(got: list[bytes], want: int, done: trio.Event):  # type: ignore[no-untyped-def]
    async def listener(msgs, ctx):  # type: ignore[no-untyped-def]
        got.extend(m.body for m in msgs)
        if len(got) >= want:
            done.set()
        return ConsumeStatus.CONSUME_SUCCESS

    return listener


async def next_round(broker: FakeBroker) -> list[HeartbeatData]:
    """The heartbeats of one 30 s round (nothing else triggers one meanwhile)."""
    mark = len(broker.heartbeats)
    await trio.sleep(30)
    return broker.heartbeats[mark:]


async def test_two_producers_and_a_consumer_share_one_instance(autojump_clock, nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("SH1", 2)
    got: list[bytes] = []
    done = trio.Event()
    consumer = PushConsumer(
        "sh_cg",
        namesrv=ns.addr,
        listener=counting_listener(got, 2, done),
        instance_name=SHARED,
        consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
    )
    consumer.subscribe("SH1")
    async with (
        Producer("sh_pg1", namesrv=ns.addr, instance_name=SHARED) as p1,
        Producer("sh_pg2", namesrv=ns.addr, instance_name=SHARED) as p2,
        consumer,
    ):
        assert p1.client_id == p2.client_id == consumer.client_id
        await p1.send(Message("SH1", b"one"))
        await p2.send(Message("SH1", b"two"))
        with trio.fail_after(10):
            await done.wait()
        assert sorted(got) == [b"one", b"two"]
        [hb] = await next_round(broker)  # one heartbeat, not one per producer/consumer
        assert hb.client_id == p1.client_id
        assert groups(hb) == ({"sh_pg1", "sh_pg2", CLIENT_INNER_PRODUCER_GROUP}, {"sh_cg"})
        assert len(set(broker.peers)) == 1  # one connection to the broker for all three
        assert p1.core.instance is p2.core.instance is consumer.core.instance
        assert list(running_instances()) == [p1.client_id]
    assert running_instances() == {}


async def test_closing_one_keeps_the_others_working(autojump_clock, nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    broker.ensure_topic("SH2", 1)
    got: list[bytes] = []
    done = trio.Event()
    consumer = PushConsumer(
        "sh2_cg",
        namesrv=ns.addr,
        listener=counting_listener(got, 2, done),
        instance_name=SHARED,
        consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
    )
    consumer.subscribe("SH2")
    started, close_first, first_closed = trio.Event(), trio.Event(), trio.Event()

    async def first_producer() -> None:
        # another task: the instance must outlive the block of the user that started it
        async with Producer("sh2_pg1", namesrv=ns.addr, instance_name=SHARED) as p1:
            await p1.send(Message("SH2", b"before"))
            started.set()
            await close_first.wait()
        first_closed.set()

    async with trio.open_nursery() as tasks:
        tasks.start_soon(first_producer)
        await started.wait()
        async with Producer("sh2_pg2", namesrv=ns.addr, instance_name=SHARED) as p2, consumer:
            inst = p2.core.instance
            unregisters = broker.requests.count(RequestCode.UNREGISTER_CLIENT)
            close_first.set()
            await first_closed.wait()
            assert broker.requests.count(RequestCode.UNREGISTER_CLIENT) == unregisters + 1
            assert running_instances() == {p2.client_id: inst}
            await p2.send(Message("SH2", b"after"))
            with trio.fail_after(10):
                await done.wait()
            assert sorted(got) == [b"after", b"before"]
            [hb] = await next_round(broker)
            assert groups(hb) == ({"sh2_pg2", CLIENT_INNER_PRODUCER_GROUP}, {"sh2_cg"})
            assert len(set(broker.peers)) == 1
    assert running_instances() == {}
    # the last one stopped it: the same id later is a new instance on a new connection
    async with Producer("sh2_pg3", namesrv=ns.addr, instance_name=SHARED) as p3:
        assert p3.core.instance is not inst
        await p3.send(Message("SH2", b"again"))
    assert len(set(broker.peers)) == 2


async def test_different_instance_names_are_different_instances(autojump_clock, nursery) -> None:
    ns, [broker] = await start_fake_cluster(nursery)
    async with (
        Producer("sh3_pg1", namesrv=ns.addr, instance_name="one") as p1,
        Producer("sh3_pg2", namesrv=ns.addr, instance_name="two") as p2,
        Producer("sh3_pg3", namesrv=ns.addr) as p3,  # Java's default: pid#nanoTime, unique
    ):
        assert len({p1.client_id, p2.client_id, p3.client_id}) == 3
        assert len({id(p.core.instance) for p in (p1, p2, p3)}) == 3
        assert set(running_instances()) == {p1.client_id, p2.client_id, p3.client_id}
        for p in (p1, p2, p3):
            await p.send(Message("SH3", b"x"))
        round_ = await next_round(broker)
        assert sorted(sorted(groups(hb)[0] - {CLIENT_INNER_PRODUCER_GROUP}) for hb in round_) == [
            ["sh3_pg1"],
            ["sh3_pg2"],
            ["sh3_pg3"],
        ]
        assert len(set(broker.peers)) == 3


async def test_a_group_once_per_instance_and_one_set_of_settings(autojump_clock, nursery) -> None:
    ns, _ = await start_fake_cluster(nursery)
    async with Producer("sh4_pg", namesrv=ns.addr, instance_name=SHARED):
        with pytest.raises(ClientError, match=r"producer group\[sh4_pg\] has been created"):
            async with Producer("sh4_pg", namesrv=ns.addr, instance_name=SHARED):
                pass
        async with Producer("sh4_pg", namesrv=ns.addr, instance_name="other"):
            pass  # the same group in another instance is fine
        with pytest.raises(ClientError, match="other settings"):
            async with Producer("sh4_pg2", namesrv=f"{ns.addr};127.0.0.1:1", instance_name=SHARED):
                pass

        async def ok(msgs, ctx):  # type: ignore[no-untyped-def]
            return ConsumeStatus.CONSUME_SUCCESS

        async with PushConsumer("sh4_cg", namesrv=ns.addr, listener=ok, instance_name=SHARED):
            with pytest.raises(ClientError, match=r"consumer group\[sh4_cg\] has been created"):
                async with PushConsumer(
                    "sh4_cg", namesrv=ns.addr, listener=ok, instance_name=SHARED
                ):
                    pass
        assert len(running_instances()) == 1


async def test_a_failed_instance_ends_every_user_with_its_error(autojump_clock, nursery) -> None:
    ns, _ = await start_fake_cluster(nursery)

    async def crash() -> None:
        raise RuntimeError("instance task crashed")

    async def nested_users() -> None:
        # nested: each block sees the failure, the outer one raises a single error
        async with Producer("sh5_pg1", namesrv=ns.addr, instance_name=SHARED) as p1:  # noqa: SIM117
            async with Producer("sh5_pg2", namesrv=ns.addr, instance_name=SHARED):
                p1.core.instance.nursery.start_soon(crash)
                await trio.sleep_forever()

    with pytest.raises(ClientError, match="instance task crashed") as info:
        await nested_users()
    assert isinstance(info.value.__cause__, RuntimeError)
    assert running_instances() == {}
    # a new instance of the id starts after a failed one
    async with Producer("sh5_pg1", namesrv=ns.addr, instance_name=SHARED) as p:
        await p.send(Message("SH5", b"x"))


async def test_real_broker_sees_one_connection_for_all_groups(real_namesrv, real_broker) -> None:
    async def ok(msgs, ctx):  # type: ignore[no-untyped-def]
        return ConsumeStatus.CONSUME_SUCCESS

    name = "real-shared"
    consumer = PushConsumer("shr_cg", namesrv=real_namesrv, listener=ok, instance_name=name)
    consumer.subscribe("SHR")
    with trio.fail_after(30):
        async with (
            open_remoting_client() as admin,
            Producer("shr_pg2", namesrv=real_namesrv, instance_name=name) as p2,
        ):

            async def connections(code: int, **fields: str) -> list[dict[str, str]] | None:
                """mqadmin's producerConnection/consumerConnection; None: group not online."""
                req = RemotingCommand.request(code, fields)
                reply = await admin.invoke(real_broker.address, req, 5)
                if reply.code != ResponseCode.SUCCESS:
                    return None
                return list(json.loads(reply.body)["connectionSet"])

            async def producers(group: str) -> list[dict[str, str]] | None:
                return await connections(
                    RequestCode.GET_PRODUCER_CONNECTION_LIST, producerGroup=group
                )

            async with Producer("shr_pg1", namesrv=real_namesrv, instance_name=name) as p1:
                await p1.send(Message("SHR", b"x"))
                await p2.send(Message("SHR", b"y"))
                async with consumer:
                    await consumer.subscribe("SHR")  # returns once the brokers had the heartbeat
                    seen = [
                        *(await producers("shr_pg1") or []),
                        *(await producers("shr_pg2") or []),
                        *(
                            await connections(
                                RequestCode.GET_CONSUMER_CONNECTION_LIST, consumerGroup="shr_cg"
                            )
                            or []
                        ),
                    ]
                    assert len(seen) == 3  # one connection in each group ...
                    # ... and it is the same one: one client id on one client address
                    assert {(c["clientId"], c["clientAddr"]) for c in seen} == {
                        (consumer.client_id, seen[0]["clientAddr"])
                    }
            # p1 and the consumer left: their groups are gone, p2's stays on that connection
            assert await producers("shr_pg1") is None
            assert await producers("shr_pg2") == [seen[1]]
            await p2.send(Message("SHR", b"z"))

"""Producer against the fake cluster over loopback (real protocol, real clock, bounded)."""

from __future__ import annotations

import pytest
import trio

from actors.client.errors import BrokerError, ClientTimeoutError, InvalidMessageError, NoRouteError
from actors.client.message import Message, SendStatus
from actors.client.producer import Producer, ProducerConfig
from protocol.codes import RequestCode, ResponseCode
from protocol.message import MessageConst, MessageSysFlag, maybe_decompress
from tests.actors.client.fake_cluster import start_fake_cluster


@pytest.fixture
async def cluster(nursery):
    return await start_fake_cluster(nursery, "broker-a")


async def test_send_returns_a_send_result_and_stores_the_message(cluster) -> None:
    ns, [broker] = cluster
    with trio.fail_after(10):
        async with Producer("pg", namesrv=ns.addr) as producer:
            result = await producer.send(
                Message("T1", b"hello", tags="TagA", keys=["k1", "k2"], properties={"p": "v"})
            )
    assert result.status is SendStatus.SEND_OK
    assert result.message_queue.topic == "T1"
    assert result.message_queue.broker_name == "broker-a"
    assert result.queue_offset == 0
    [stored] = broker.all_messages("T1")
    assert stored.body == b"hello"
    assert stored.properties[MessageConst.UNIQ_KEY] == result.msg_id
    assert stored.properties[MessageConst.TAGS] == "TagA"
    assert stored.properties[MessageConst.KEYS] == "k1 k2"
    assert stored.properties["p"] == "v"
    assert result.offset_msg_id == stored.msg_id
    assert len(result.msg_id) == 32
    assert "sendStatus=SEND_OK" in str(result)
    assert RequestCode.SEND_MESSAGE_V2 in broker.requests


async def test_round_robin_over_queues(cluster) -> None:
    ns, _ = cluster
    with trio.fail_after(10):
        async with Producer("pg", namesrv=ns.addr) as producer:
            results = [await producer.send(Message("T2", b"x")) for _ in range(8)]
    qids = [r.message_queue.queue_id for r in results]
    assert sorted(qids) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert all(qids[i] != qids[i + 1] for i in range(7))


async def test_large_bodies_are_compressed(cluster) -> None:
    ns, [broker] = cluster
    body = b"abcdefgh" * 1024  # 8 KiB
    with trio.fail_after(10):
        async with Producer("pg", namesrv=ns.addr) as producer:
            await producer.send(Message("T3", body))
            await producer.send(Message("T3", b"y" * 4095))
    big = next(m for m in broker.all_messages("T3") if m.sys_flag & MessageSysFlag.COMPRESSED)
    assert len(big.body) < 1024
    assert maybe_decompress(big.body, big.sys_flag) == body
    small = next(m for m in broker.all_messages("T3") if not m.sys_flag & MessageSysFlag.COMPRESSED)
    assert small.body == b"y" * 4095


async def test_batch_send(cluster) -> None:
    ns, [broker] = cluster
    msgs = [Message("T4", f"m{i}".encode(), tags="TagB") for i in range(5)]
    with trio.fail_after(10):
        async with Producer("pg", namesrv=ns.addr) as producer:
            result = await producer.send_batch(msgs)
            with pytest.raises(InvalidMessageError):
                await producer.send_batch([Message("T4", b"a"), Message("T5", b"b")])
    stored = broker.all_messages("T4")
    assert [m.body for m in stored] == [f"m{i}".encode() for i in range(5)]
    assert [m.queue_offset for m in stored] == list(range(5))
    assert result.msg_id == ",".join(m.properties[MessageConst.UNIQ_KEY] for m in stored)
    assert RequestCode.SEND_BATCH_MESSAGE in broker.requests


async def test_orderly_send_by_selector_and_sharding_key(cluster) -> None:
    ns, [broker] = cluster
    with trio.fail_after(10):
        async with Producer("pg", namesrv=ns.addr) as producer:
            by_selector = [
                await producer.send_orderly(
                    Message("T6", b"x"), selector=lambda mqs, msg, arg: mqs[arg % len(mqs)], arg=7
                )
                for _ in range(3)
            ]
            by_key = [
                await producer.send_orderly(Message("T6", b"y"), sharding_key="order-42")
                for _ in range(3)
            ]
    assert {r.message_queue.queue_id for r in by_selector} == {3}
    assert len({r.message_queue for r in by_key}) == 1
    assert [r.queue_offset for r in by_key] == sorted(r.queue_offset for r in by_key)
    keyed = [m for m in broker.all_messages("T6") if m.body == b"y"]
    assert all(m.properties[MessageConst.SHARDINGKEY] == "order-42" for m in keyed)


async def test_oneway_and_async_sends(cluster) -> None:
    ns, [broker] = cluster
    results = []
    done = trio.Event()

    def callback(outcome) -> None:
        results.append(outcome)
        if len(results) == 3:
            done.set()

    with trio.fail_after(10):
        async with Producer("pg", namesrv=ns.addr) as producer:
            await producer.send_oneway(Message("T7", b"oneway"))
            for i in range(3):
                await producer.send_async(Message("T7", f"async{i}".encode()), callback)
            await done.wait()
            while len(broker.all_messages("T7")) < 4:
                await broker.arrived.wait()
    assert all(r.status is SendStatus.SEND_OK for r in results)
    assert sorted(m.body for m in broker.all_messages("T7")) == [
        b"async0",
        b"async1",
        b"async2",
        b"oneway",
    ]


async def test_no_route_is_a_clear_error(nursery) -> None:
    ns, _ = await start_fake_cluster(nursery, "broker-a")
    ns.brokers.clear()
    with trio.fail_after(10):
        async with Producer("pg", namesrv=ns.addr) as producer:
            with pytest.raises(NoRouteError, match="T8"):
                await producer.send(Message("T8", b"x"))


async def test_invalid_messages_are_refused_before_sending(cluster) -> None:
    ns, _ = cluster
    async with Producer("pg", namesrv=ns.addr) as producer:
        for bad in (
            Message("T9", b""),
            Message("bad topic!", b"x"),
            Message("SCHEDULE_TOPIC_XXXX", b"x"),
        ):
            with pytest.raises(InvalidMessageError):
                await producer.send(bad)


async def test_refusal_that_is_not_retried_raises_at_once(cluster) -> None:
    ns, [broker] = cluster
    broker.refuse_sends = ResponseCode.SYSTEM_BUSY
    async with Producer("pg", namesrv=ns.addr) as producer:
        with trio.fail_after(10), pytest.raises(BrokerError) as info:
            await producer.send(Message("T10", b"x"))
    assert info.value.code == ResponseCode.SYSTEM_BUSY
    assert broker.requests.count(RequestCode.SEND_MESSAGE_V2) == 1


async def test_retry_on_another_broker_and_fault_isolation(nursery) -> None:
    ns, [a, b] = await start_fake_cluster(nursery, "broker-a", "broker-b")
    a.ensure_topic("T11")
    b.ensure_topic("T11")
    a.refuse_sends = ResponseCode.SYSTEM_ERROR  # retried on another broker (§8.3)
    config = ProducerConfig(latency_fault_enable=True)
    with trio.fail_after(10):
        async with Producer("pg", namesrv=ns.addr, config=config) as producer:
            results = [await producer.send(Message("T11", b"x")) for _ in range(6)]
    assert all(r.message_queue.broker_name == "broker-b" for r in results)
    # After the first failure broker-a is isolated: at most one more attempt reaches it.
    assert a.requests.count(RequestCode.SEND_MESSAGE_V2) <= 2


async def test_one_failure_does_not_isolate_a_broker_by_default(nursery) -> None:
    """Apache's sendLatencyFaultEnable is false: a broker that failed once (restarted, say)
    gets its share of the round robin again at once, not after ten minutes."""
    assert ProducerConfig().latency_fault_enable is False
    ns, [a, b] = await start_fake_cluster(nursery, "broker-a", "broker-b")
    a.ensure_topic("T14")
    b.ensure_topic("T14")
    with trio.fail_after(10):
        async with Producer("pg", namesrv=ns.addr) as producer:
            a.refuse_sends = ResponseCode.SYSTEM_ERROR
            # 8 sends pass every queue of the 8: broker-a refuses at least once.
            failed = [await producer.send(Message("T14", b"x")) for _ in range(8)]
            assert {r.message_queue.broker_name for r in failed} == {"broker-b"}
            assert a.requests.count(RequestCode.SEND_MESSAGE_V2) >= 1
            a.refuse_sends = None
            later = [await producer.send(Message("T14", b"x")) for _ in range(8)]
    assert {r.message_queue.broker_name for r in later} == {"broker-a", "broker-b"}


async def test_send_timeout(cluster, autojump_clock) -> None:
    ns, [broker] = cluster
    broker.ensure_topic("T12")
    broker.stall_sends = True
    async with Producer("pg", namesrv=ns.addr, config=ProducerConfig(send_timeout=0.5)) as producer:
        t0 = trio.current_time()
        with trio.fail_after(5), pytest.raises(ClientTimeoutError):
            await producer.send(Message("T12", b"x"))
        assert trio.current_time() - t0 == pytest.approx(0.5)  # its timeout, not later


async def test_use_outside_async_with_is_an_error() -> None:
    producer = Producer("pg", namesrv="127.0.0.1:1")
    with pytest.raises(Exception, match="not started"):
        await producer.send(Message("T", b"x"))


async def test_a_broker_that_went_away_is_skipped(nursery, autojump_clock) -> None:
    ns, [a, b] = await start_fake_cluster(nursery, "broker-a", "broker-b")
    a.ensure_topic("T13")
    b.ensure_topic("T13")
    with trio.fail_after(20):
        async with Producer("pg", namesrv=ns.addr) as producer:
            # Round robin starts at a random queue of the 8, so 8 sends reach both brokers.
            first = [await producer.send(Message("T13", b"x")) for _ in range(8)]
            assert {r.message_queue.broker_name for r in first} == {"broker-a", "broker-b"}
            a.server.shutdown(0)
            await trio.sleep(0.1)  # virtual: the closes reach the producer
            after = [await producer.send(Message("T13", b"y")) for _ in range(8)]
    assert {r.message_queue.broker_name for r in after} == {"broker-b"}
    assert all(r.status is SendStatus.SEND_OK for r in after)


async def test_unreachable_name_server_is_a_no_route_error() -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        addr = f"127.0.0.1:{sock.getsockname()[1]}"
    with trio.fail_after(10):
        async with Producer("pg", namesrv=addr) as producer:
            with pytest.raises(NoRouteError, match="could not be asked"):
                await producer.send(Message("T14", b"x"))

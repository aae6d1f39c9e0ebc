"""PULL_MESSAGE: status mapping, tag filtering, offset commit piggy-back, long polling (§7.4)."""

from __future__ import annotations

import attrs
import trio
import trio.testing

from protocol.codes import ResponseCode
from protocol.command import RemotingCommand
from protocol.message import decode_records
from tests.actors.broker.conftest import start_broker
from tests.actors.broker.wire import heartbeat, props, pull, send_v2

T = 5
SUSPEND = 0x2
SUBSCRIPTION = 0x4
COMMIT = 0x1


async def _send(client, addr, topic, n, *, tags="TagA", queue_id=0):
    for i in range(n):
        reply = await client.invoke(
            addr,
            send_v2(topic, f"m{i}".encode(), queue_id=queue_id, properties=props(tags=tags)),
            T,
        )
        assert reply.code == ResponseCode.SUCCESS, reply.remark


async def test_found_with_offsets_and_status_remark(broker_handle, client):
    addr = broker_handle.address
    await _send(client, addr, "P1", 5)
    reply = await client.invoke(addr, pull("P1", offset=1, max_msgs=2), T)
    assert reply.code == ResponseCode.SUCCESS
    assert reply.remark == "FOUND"
    assert reply.ext_fields == {
        "suggestWhichBrokerId": "0",
        "nextBeginOffset": "3",
        "minOffset": "0",
        "maxOffset": "5",
    }
    assert [m.body for m in decode_records(reply.body)] == [b"m1", b"m2"]


async def test_tag_filter_built_from_the_pull_expression(broker_handle, client):
    addr = broker_handle.address
    await _send(client, addr, "P2", 3, tags="TagA")
    await _send(client, addr, "P2", 2, tags="TagB")
    reply = await client.invoke(addr, pull("P2", expression="TagB || TagC"), T)
    assert reply.code == ResponseCode.SUCCESS
    assert [m.properties["TAGS"] for m in decode_records(reply.body)] == ["TagB", "TagB"]
    none = await client.invoke(addr, pull("P2", expression="TagC"), T)
    assert none.code == ResponseCode.PULL_RETRY_IMMEDIATELY
    assert none.remark == "NO_MATCHED_MESSAGE"
    assert none.ext_fields["nextBeginOffset"] == "5"


async def test_offset_statuses(broker_handle, client):
    addr = broker_handle.address
    await _send(client, addr, "P3", 2)
    at_end = await client.invoke(addr, pull("P3", offset=2), T)
    assert (at_end.code, at_end.remark) == (ResponseCode.PULL_NOT_FOUND, "OFFSET_OVERFLOW_ONE")
    beyond = await client.invoke(addr, pull("P3", offset=9), T)
    assert (beyond.code, beyond.remark) == (ResponseCode.PULL_OFFSET_MOVED, "OFFSET_OVERFLOW_BADLY")
    # 4.9.8 corrects the client to the queue's max offset (reference §6.7).
    assert beyond.ext_fields["nextBeginOffset"] == "2"
    empty = await client.invoke(addr, pull("P3", queue_id=1), T)
    assert (empty.code, empty.remark) == (ResponseCode.PULL_NOT_FOUND, "NO_MESSAGE_IN_QUEUE")
    moved = await client.invoke(addr, pull("P3", queue_id=1, offset=3), T)
    assert moved.code == ResponseCode.PULL_OFFSET_MOVED


async def test_request_checks(broker_handle, client):
    addr = broker_handle.address
    await _send(client, addr, "P4", 1)
    unknown = await client.invoke(addr, pull("NoSuchTopic"), T)
    assert unknown.code == ResponseCode.TOPIC_NOT_EXIST
    bad_queue = await client.invoke(addr, pull("P4", queue_id=4), T)
    assert bad_queue.code == ResponseCode.SYSTEM_ERROR
    # Without the subscription flag the heartbeat's subscription is needed.
    no_sub = await client.invoke(addr, pull("P4", sys_flag=0), T)
    assert no_sub.code == ResponseCode.SUBSCRIPTION_NOT_EXIST
    hb = await client.invoke(addr, heartbeat("c1", "cg", ["P4"]), T)
    assert hb.code == ResponseCode.SUCCESS
    with_hb = await client.invoke(addr, pull("P4", sys_flag=0), T)
    assert with_hb.code == ResponseCode.SUCCESS


async def test_commit_offset_piggy_back(broker_handle, client):
    addr = broker_handle.address
    await _send(client, addr, "P5", 3)
    reply = await client.invoke(
        addr, pull("P5", offset=2, sys_flag=COMMIT | SUBSCRIPTION, commit_offset=2), T
    )
    assert reply.code == ResponseCode.SUCCESS
    assert broker_handle.ctx.offsets.query("cg", "P5", 0) == 2


async def test_held_pull_answered_when_a_message_arrives(broker_handle, client):
    addr = broker_handle.address
    await _send(client, addr, "P6", 1)
    result = {}

    async def long_poll() -> None:
        start = trio.current_time()
        result["reply"] = await client.invoke(
            addr, pull("P6", offset=1, sys_flag=SUSPEND | SUBSCRIPTION), 20
        )
        result["waited"] = trio.current_time() - start

    with trio.fail_after(T):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(long_poll)
            await trio.testing.wait_all_tasks_blocked(0.05)
            # held, not answered: everything is idle and the pull is still in the table
            assert len(broker_handle.ctx.holds) == 1
            assert "reply" not in result
            await _send(client, addr, "P6", 1)
    reply = result["reply"]
    assert reply.code == ResponseCode.SUCCESS
    assert [m.body for m in decode_records(reply.body)] == [b"m0"]
    assert result["waited"] < 2  # woken by the arrival, not by the 15 s timeout


async def test_held_pull_ignores_other_tags_and_times_out(broker_handle, client):
    addr = broker_handle.address
    await _send(client, addr, "P7", 1, tags="TagA")
    with trio.fail_after(T):
        async with trio.open_nursery() as nursery:

            async def unrelated() -> None:
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert len(broker_handle.ctx.holds) == 1
                await _send(client, addr, "P7", 1, tags="TagA")

            nursery.start_soon(unrelated)
            start = trio.current_time()
            reply = await client.invoke(
                addr,
                pull(
                    "P7",
                    offset=1,
                    sys_flag=SUSPEND | SUBSCRIPTION,
                    expression="TagB",
                    suspend_ms=800,
                ),
                10,
            )
            waited = trio.current_time() - start
    # Timed out (0.8 s, at most 1 s late), re-run once: the new TagA message does not match.
    assert 0.7 < waited < 2.5
    assert reply.code == ResponseCode.PULL_RETRY_IMMEDIATELY
    assert len(broker_handle.ctx.holds) == 0


async def test_stop_answers_held_pulls(nursery, tmp_path, client):
    handle = await start_broker(nursery, tmp_path / "s")
    await _send(client, handle.address, "P8", 1)
    with trio.fail_after(T):
        async with trio.open_nursery() as inner:
            replies = []

            async def long_poll() -> None:
                replies.append(
                    await client.invoke(
                        handle.address, pull("P8", offset=1, sys_flag=SUSPEND | SUBSCRIPTION), 20
                    )
                )

            inner.start_soon(long_poll)
            await trio.testing.wait_all_tasks_blocked(0.05)
            assert len(handle.ctx.holds) == 1
            handle.stop()
            await handle.stopped.wait()
    assert replies[0].code == ResponseCode.PULL_NOT_FOUND


async def test_heartbeat_subscription_version_and_group_checks(broker_handle, client):
    addr = broker_handle.address
    await _send(client, addr, "P9", 1)
    await client.invoke(addr, heartbeat("c1", "cg", ["P9"]), T)  # subVersion 1795741096752
    newer = pull("P9", sys_flag=0)
    newer = RemotingCommand.request(newer.code, {**newer.ext_fields, "subVersion": "1795741096753"})
    assert (await client.invoke(addr, newer, T)).code == ResponseCode.SUBSCRIPTION_NOT_LATEST
    other_topic = await client.invoke(addr, pull("P9", group="cg2", sys_flag=0), T)
    assert other_topic.code == ResponseCode.SUBSCRIPTION_NOT_EXIST
    ctx = broker_handle.ctx
    ctx.groups.put(attrs.evolve(ctx.groups.get("cg"), consume_enable=False), ctx.now_ms())
    assert (await client.invoke(addr, pull("P9"), T)).code == ResponseCode.NO_PERMISSION


async def test_unknown_group_without_auto_create(nursery, tmp_path, client):
    handle = await start_broker(nursery, tmp_path / "g", autoCreateSubscriptionGroup=False)
    await _send(client, handle.address, "P10", 1)
    reply = await client.invoke(handle.address, pull("P10", group="nobody"), T)
    assert reply.code == ResponseCode.SUBSCRIPTION_GROUP_NOT_EXIST

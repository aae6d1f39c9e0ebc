"""HEART_BEAT, consumer lists, NOTIFY_CONSUMER_IDS_CHANGED, connection close, locks (§7.8, §7.9)."""

from __future__ import annotations

import json

import trio
import trio.testing

from actors.remoting.client import open_remoting_client
from actors.remoting.router import Router
from protocol.codes import CURRENT_VERSION, RequestCode, ResponseCode
from protocol.command import RemotingCommand
from tests.actors.broker.wire import heartbeat

T = 5


def consumer_list(group: str) -> RemotingCommand:
    return RemotingCommand.request(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": group})


class Notified:
    """A client router recording NOTIFY_CONSUMER_IDS_CHANGED."""

    def __init__(self) -> None:
        self.groups: list[str] = []
        self.event = trio.Event()
        self.router = Router("notified")
        self.router.register(RequestCode.NOTIFY_CONSUMER_IDS_CHANGED, self.handle)

    async def handle(self, _ctx, req: RemotingCommand) -> None:
        self.groups.append(req.ext_fields["consumerGroup"])
        self.event.set()


async def test_heartbeat_registers_group_and_creates_retry_topic(broker_handle, client):
    addr = broker_handle.address
    reply = await client.invoke(
        addr,
        heartbeat("127.0.0.1@1#DEFAULT", "CapG", ["%RETRY%CapG", "CapT"], expression="TagB"),
        T,
    )
    assert reply.code == ResponseCode.SUCCESS
    assert reply.version == CURRENT_VERSION
    ctx = broker_handle.ctx
    retry = ctx.topics.get("%RETRY%CapG")
    assert (retry.read_queue_nums, retry.perm) == (1, 6)
    entry = ctx.consumers.get("CapG")
    assert (entry.consume_type, entry.message_model, entry.consume_from_where) == (
        "CONSUME_PASSIVELY",
        "CLUSTERING",
        "CONSUME_FROM_LAST_OFFSET",
    )
    sub = entry.subscriptions["CapT"]
    # The C++ client's codeSet [0] is replaced by the real hash of "TagB".
    assert sub.codes == {2598920}
    assert ctx.producers.channels("CapG")[0].client_id == "127.0.0.1@1#DEFAULT"
    listing = await client.invoke(addr, consumer_list("CapG"), T)
    assert json.loads(listing.body) == {"consumerIdList": ["127.0.0.1@1#DEFAULT"]}


async def test_unknown_group_consumer_list_is_an_error(broker_handle, client):
    reply = await client.invoke(broker_handle.address, consumer_list("Nobody"), T)
    assert reply.code == ResponseCode.SYSTEM_ERROR
    assert reply.remark == "no consumer for this group, Nobody"


async def test_members_are_notified_on_join_unregister_and_close(broker_handle, client):
    addr = broker_handle.address
    first = Notified()
    with trio.fail_after(T):
        async with open_remoting_client(first.router, name="c1") as c1:
            await c1.invoke(addr, heartbeat("c1", "G", ["T"]), T)
            await first.event.wait()  # joining notifies the newcomer too, as Java does
            first.groups.clear()
            first.event = trio.Event()
            async with open_remoting_client(name="c2") as c2:
                await c2.invoke(addr, heartbeat("c2", "G", ["T"]), T)
                await first.event.wait()
                assert first.groups == ["G"]
                ids = json.loads((await c1.invoke(addr, consumer_list("G"), T)).body)[
                    "consumerIdList"
                ]
                assert sorted(ids) == ["c1", "c2"]
                # a repeated heartbeat with the same topics is no change
                await c2.invoke(addr, heartbeat("c2", "G", ["T"]), T)
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert first.groups == ["G"]
                first.event = trio.Event()
            # c2's connection closed without UNREGISTER_CLIENT (a killed client)
            await first.event.wait()
            assert first.groups == ["G", "G"]
            ids = json.loads((await c1.invoke(addr, consumer_list("G"), T)).body)["consumerIdList"]
            assert ids == ["c1"]
            unregister = RemotingCommand.request(
                RequestCode.UNREGISTER_CLIENT,
                {"clientID": "c1", "consumerGroup": "G", "producerGroup": ""},
            )
            assert (await c1.invoke(addr, unregister, T)).code == ResponseCode.SUCCESS
            assert broker_handle.ctx.consumers.get("G") is None


async def test_lock_batch_grants_free_queues_only(broker_handle, client):
    addr = broker_handle.address

    def lock(client_id: str, queues: list[int], code=RequestCode.LOCK_BATCH_MQ) -> RemotingCommand:
        body = {
            "clientId": client_id,
            "consumerGroup": "GO",
            "mqSet": [{"brokerName": "broker-a", "queueId": q, "topic": "O"} for q in queues],
        }
        return RemotingCommand.request(code, {}, json.dumps(body).encode())

    def granted(reply: RemotingCommand) -> list[int]:
        assert reply.code == ResponseCode.SUCCESS
        return sorted(mq["queueId"] for mq in json.loads(reply.body)["lockOKMQSet"])

    assert granted(await client.invoke(addr, lock("a", [0, 1]), T)) == [0, 1]
    assert granted(await client.invoke(addr, lock("b", [1, 2]), T)) == [2]
    assert granted(await client.invoke(addr, lock("a", [0, 1, 2]), T)) == [0, 1]
    unlock = await client.invoke(addr, lock("a", [1], RequestCode.UNLOCK_BATCH_MQ), T)
    assert unlock.code == ResponseCode.SUCCESS
    assert granted(await client.invoke(addr, lock("b", [1]), T)) == [1]


async def test_check_client_config(broker_handle, client):
    def check(expression_type: str) -> RemotingCommand:
        body = {
            "clientId": "c",
            "group": "g",
            "subscriptionData": {
                "topic": "T",
                "subString": "a > 1",
                "expressionType": expression_type,
            },
        }
        return RemotingCommand.request(
            RequestCode.CHECK_CLIENT_CONFIG, {}, json.dumps(body).encode()
        )

    assert (
        await client.invoke(broker_handle.address, check("TAG"), T)
    ).code == ResponseCode.SUCCESS
    sql = await client.invoke(broker_handle.address, check("SQL92"), T)
    assert sql.code == ResponseCode.SYSTEM_ERROR
    assert "SQL92" in sql.remark

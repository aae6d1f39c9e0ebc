"""One fixed sequence of raw requests to a namesrv and broker (issue 9, differential test).

``run_scenario`` drives the servers with the project's codec over plain trio streams and returns
one :class:`~tests.compat.observe.Capture` per step in ``STEPS``: the exact reply (golden files)
and its observation (what Apache's and ours must agree on).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Iterable
from functools import partial
from typing import Any

import attrs
import trio

from protocol import fastjson
from protocol.codes import RequestCode, SerializeType
from protocol.command import RemotingCommand
from protocol.errors import RemoteProtocolError
from protocol.message import BatchEntry, MessageExt, encode_batch
from protocol.message import properties_to_string as props
from tests.compat.observe import BodyKind, Capture, observe
from tests.compat.raw import RawConnection, connect
from tests.compat.servers import Target

# Ids we put into UNIQ_KEY ourselves, so they are the same against every server.
UNIQ = {
    "v2": "7F000001000000000000000000000001",
    "v1": "7F000001000000000000000000000002",
    "b0": "7F000001000000000000000000000003",
    "b1": "7F000001000000000000000000000004",
    "b2": "7F000001000000000000000000000005",
    "wake": "7F000001000000000000000000000006",
    "tx1": "7F000001000000000000000000000007",
    "tx2": "7F000001000000000000000000000008",
}
CLIENT_ID = "127.0.0.1@differential"
OTHER_CLIENT_ID = "127.0.0.1@differential-other"

# Every step in order; the test module parametrizes over these names.
STEPS = (
    "ns_route_unknown_topic",
    "ns_cluster_info",
    "create_topic",
    "ns_route",
    "send_v2",
    "send_v1",
    "send_batch",
    "send_forbidden_topic",
    "pull_found",
    "pull_batch",
    "pull_no_new_message",
    "pull_offset_overflow",
    "pull_long_poll_timeout",
    "pull_long_poll_woken",
    "query_offset_new_group",
    "update_offset",
    "query_offset_after_update",
    "query_offset_after_pull_commit",
    "get_max_offset",
    "get_max_offset_binary_header",
    "get_min_offset",
    "earliest_msg_store_time",
    "search_offset_by_timestamp",
    "heartbeat",
    "notify_consumer_ids_changed",
    "consumer_list",
    "consumer_list_unknown_group",
    "lock",
    "lock_held_by_other",
    "unlock",
    "query_by_key",
    "query_by_uniq_key",
    "query_by_missing_key",
    "view_by_id",
    "topic_stats",
    "topic_stats_unknown_topic",
    "consume_stats",
    "consumer_connections",
    "producer_connections",
    "all_topic_config",
    "all_subscription_groups",
    "broker_runtime_info",
    "broker_config",
    "query_topic_consume_by_who",
    "update_subscription_group",
    "delete_topic_in_broker",
    "delete_topic_in_namesrv",
    "unknown_request_code",
    "unregister_client",
    "tx_send_half",
    "tx_end_wrong_group",
    "tx_end_wrong_table_offset",
    "tx_end_commit",
    "tx_pull_committed",
    "tx_check_back",
    "tx_end_rollback_from_check",
    "ns_all_topics",
)

# Broker settings both targets get (servers.broker_properties); GET_BROKER_CONFIG must echo them.
CONFIG_KEYS = (
    "brokerClusterName",
    "brokerName",
    "brokerId",
    "brokerIP1",
    "autoCreateTopicEnable",
    "flushDiskType",
    "mappedFileSizeCommitLog",
    "transactionTimeOut",
    "transactionCheckInterval",
)


@attrs.define
class Scenario:
    """State carried between steps and the captures taken so far."""

    target: Target
    topic: str
    group: str
    captures: list[Capture] = attrs.Factory(list)
    pulled: list[MessageExt] = attrs.Factory(list)

    @property
    def producer_group(self) -> str:
        return f"{self.group}_P"

    def capture(
        self,
        step: str,
        request: RemotingCommand,
        reply: RemotingCommand | None,
        *,
        exact_ext: Iterable[str] = (),
        exact_remark: bool = False,
        body: BodyKind = "none",
        maps: Iterable[str] = (),
        ignore: str | None = None,
        extra: dict[str, Any] | None = None,
    ) -> Any:
        """Record one step (see observe.observe); returns the decoded body."""
        assert step in STEPS, step
        observation, raw_request, raw_reply, decoded = observe(
            request,
            reply,
            self.target,
            exact_ext=exact_ext,
            exact_remark=exact_remark,
            body=body,
            maps=maps,
            ignore=ignore,
            property_keys=CONFIG_KEYS,
        )
        observation.update(extra or {})
        self.captures.append(
            Capture(step=step, request=raw_request, reply=raw_reply, observation=observation)
        )
        return decoded


def req(code: RequestCode, ext: dict[str, Any] | None = None, body: bytes = b"") -> RemotingCommand:
    return RemotingCommand.request(
        code,
        {k: str(v).lower() if isinstance(v, bool) else str(v) for k, v in (ext or {}).items()},
        body,
    )


def body_json(value: Any) -> bytes:
    return fastjson.dumps_bytes(value)


# ---------------------------------------------------------------- the scenario


def _send_v2(
    s: Scenario,
    queue_id: int,
    properties: dict[str, str],
    body: bytes,
    *,
    topic: str | None = None,
    code: RequestCode = RequestCode.SEND_MESSAGE_V2,
    batch: bool = False,
) -> RemotingCommand:
    return req(
        code,
        {
            "a": s.producer_group,
            "b": topic or s.topic,
            "c": "TBW102",
            "d": 4,
            "e": queue_id,
            "f": 0,
            "g": int(time.time() * 1000),
            "h": 0,
            "i": props(properties),
            "j": 0,
            "k": False,
            "m": batch,
        },
        body,
    )


def _pull(
    s: Scenario,
    queue_id: int,
    offset: int,
    *,
    suspend_ms: int = 0,
    commit_offset: int | None = None,
    group: str | None = None,
) -> RemotingCommand:
    sys_flag = 0x4  # SUBSCRIPTION: the expression rides in the header
    if suspend_ms:
        sys_flag |= 0x2  # SUSPEND
    if commit_offset is not None:
        sys_flag |= 0x1  # COMMIT_OFFSET
    return req(
        RequestCode.PULL_MESSAGE,
        {
            "consumerGroup": group or s.group,
            "topic": s.topic,
            "queueId": queue_id,
            "queueOffset": offset,
            "maxMsgNums": 32,
            "sysFlag": sys_flag,
            "commitOffset": commit_offset or 0,
            "suspendTimeoutMillis": suspend_ms,
            "subscription": "*",
            "subVersion": 0,
            "expressionType": "TAG",
        },
    )


PULL_EXACT = ("nextBeginOffset", "minOffset", "maxOffset", "suggestWhichBrokerId")
SEND_EXACT = ("queueId", "queueOffset", "MSG_REGION", "TRACE_ON")


async def _retry_until(
    call: Callable[[], Awaitable[RemotingCommand]],
    done: Callable[[RemotingCommand], bool],
    seconds: float,
) -> RemotingCommand:
    """Index and registration work is asynchronous on both servers: ask again for a while."""
    deadline = trio.current_time() + seconds
    while True:
        reply = await call()
        if done(reply) or trio.current_time() > deadline:
            return reply
        await trio.sleep(0.2)


async def _namesrv_steps_before(s: Scenario, ns: RawConnection) -> None:
    r = req(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": f"{s.topic}_NONE"})
    s.capture("ns_route_unknown_topic", r, await ns.call(r))
    r = req(RequestCode.GET_BROKER_CLUSTER_INFO)
    s.capture(
        "ns_cluster_info",
        r,
        await ns.call(r),
        body="json",
        maps=("$.brokerAddrTable", "$.clusterAddrTable", "$.brokerAddrTable{}.brokerAddrs"),
    )


async def _send_steps(s: Scenario, ns: RawConnection, conn: RawConnection) -> None:
    r = req(
        RequestCode.UPDATE_AND_CREATE_TOPIC,
        {
            "topic": s.topic,
            "defaultTopic": "TBW102",
            "readQueueNums": 4,
            "writeQueueNums": 4,
            "perm": 6,
            "topicFilterType": "SINGLE_TAG",
            "topicSysFlag": 0,
            "order": False,
        },
    )
    s.capture("create_topic", r, await conn.call(r))
    r = req(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": s.topic})
    route = await _retry_until(partial(ns.call, r), lambda x: x.code == 0, 10)
    decoded = s.capture(
        "ns_route",
        r,
        route,
        body="json",
        maps=("$.brokerDatas[].brokerAddrs", "$.filterServerTable"),
    )
    if isinstance(decoded, dict):
        s.captures[-1].observation["queueDatas"] = decoded.get("queueDatas")

    base = {"KEYS": "k1", "TAGS": "TagA", "WAIT": "true"}
    r = _send_v2(s, 0, {**base, "UNIQ_KEY": UNIQ["v2"]}, b"hello v2")
    s.capture("send_v2", r, await conn.call(r), exact_ext=SEND_EXACT)
    r = req(
        RequestCode.SEND_MESSAGE,
        {
            "producerGroup": s.producer_group,
            "topic": s.topic,
            "defaultTopic": "TBW102",
            "defaultTopicQueueNums": 4,
            "queueId": 1,
            "sysFlag": 0,
            "bornTimestamp": int(time.time() * 1000),
            "flag": 7,
            "properties": props({"KEYS": "k2 k3", "TAGS": "TagB", "UNIQ_KEY": UNIQ["v1"]}),
            "reconsumeTimes": 0,
            "unitMode": False,
            "batch": False,
        },
        b"hello v1",
    )
    s.capture("send_v1", r, await conn.call(r), exact_ext=SEND_EXACT)
    entries = [
        BatchEntry(
            body=f"batch {i}".encode(),
            properties={"KEYS": f"bk{i}", "TAGS": "TagC", "UNIQ_KEY": UNIQ[f"b{i}"]},
        )
        for i in range(3)
    ]
    r = _send_v2(
        s,
        2,
        {"WAIT": "true"},
        encode_batch(entries),
        code=RequestCode.SEND_BATCH_MESSAGE,
        batch=True,
    )
    reply = await conn.call(r)
    s.capture(
        "send_batch",
        r,
        reply,
        exact_ext=SEND_EXACT,
        extra={"batchIds": len(reply.ext_fields.get("msgId", "").split(","))},
    )
    r = _send_v2(s, 0, {"UNIQ_KEY": UNIQ["v2"]}, b"x", topic="SCHEDULE_TOPIC_XXXX")
    s.capture(
        "send_forbidden_topic", r, await conn.call(r), exact_ext=SEND_EXACT, exact_remark=True
    )


def _shows_max(max_offset: int, reply: RemotingCommand) -> bool:
    return reply.ext_fields.get("maxOffset") == str(max_offset)


async def _pull_steps(s: Scenario, conn: RawConnection) -> None:
    # The consume queue is written after the commit log (Apache's reput thread, our dispatcher):
    # a pull right after a send may see part of it, so ask until every sent message is visible.
    for step, queue_id, sent in (("pull_found", 0, 1), ("pull_batch", 2, 3)):
        r = _pull(s, queue_id, 0)
        reply = await _retry_until(partial(conn.call, r), partial(_shows_max, sent), 10)
        found = s.capture(step, r, reply, exact_ext=PULL_EXACT, exact_remark=True, body="records")
        if step == "pull_found" and found:
            s.pulled.extend(found)
    r = _pull(s, 0, 1)
    s.capture("pull_no_new_message", r, await conn.call(r), exact_ext=PULL_EXACT, exact_remark=True)
    r = _pull(s, 0, 100)
    s.capture(
        "pull_offset_overflow", r, await conn.call(r), exact_ext=PULL_EXACT, exact_remark=True
    )

    # A parked pull that nothing wakes: answered when its suspend time is up (Apache's hold
    # service looks every 5 s, so up to 5 s late) with PULL_NOT_FOUND.
    r = _pull(s, 3, 0, suspend_ms=1000)
    started = trio.current_time()
    reply = await conn.call(r, timeout=15)
    waited = trio.current_time() - started
    s.capture(
        "pull_long_poll_timeout",
        r,
        reply,
        exact_ext=PULL_EXACT,
        exact_remark=True,
        extra={"heldAtLeastSuspendTime": waited >= 0.9},
    )

    # A parked pull that a send to its queue wakes well before the suspend time.
    async with connect(s.target.broker_addr) as sender:
        r = _pull(s, 3, 0, suspend_ms=20000)
        result: dict[str, Any] = {}

        async def parked() -> None:
            started = trio.current_time()
            result["reply"] = await conn.call(r, timeout=25)
            result["waited"] = trio.current_time() - started

        async with trio.open_nursery() as nursery:
            nursery.start_soon(parked)
            await trio.sleep(0.5)
            await sender.call(
                _send_v2(s, 3, {"TAGS": "TagA", "UNIQ_KEY": UNIQ["wake"]}, b"wake up")
            )
        s.capture(
            "pull_long_poll_woken",
            r,
            result["reply"],
            exact_ext=PULL_EXACT,
            exact_remark=True,
            body="records",
            extra={"wokenWithinSeconds": result["waited"] < 3.0},
        )


async def _offset_steps(s: Scenario, conn: RawConnection) -> None:
    key = {"consumerGroup": f"{s.group}_NEW", "topic": s.topic, "queueId": 0}
    r = req(RequestCode.QUERY_CONSUMER_OFFSET, key)
    s.capture(
        "query_offset_new_group", r, await conn.call(r), exact_ext=("offset",), exact_remark=True
    )
    r = req(RequestCode.UPDATE_CONSUMER_OFFSET, {**key, "commitOffset": 1})
    s.capture("update_offset", r, await conn.call(r))
    r = req(RequestCode.QUERY_CONSUMER_OFFSET, key)
    s.capture("query_offset_after_update", r, await conn.call(r), exact_ext=("offset",))
    # The pull's COMMIT_OFFSET flag stores the consumer's offset as a side effect.
    committing = f"{s.group}_COMMIT"
    await conn.call(_pull(s, 2, 0, commit_offset=2, group=committing))
    r = req(
        RequestCode.QUERY_CONSUMER_OFFSET,
        {"consumerGroup": committing, "topic": s.topic, "queueId": 2},
    )
    s.capture("query_offset_after_pull_commit", r, await conn.call(r), exact_ext=("offset",))
    r = req(RequestCode.GET_MAX_OFFSET, {"topic": s.topic, "queueId": 2})
    s.capture("get_max_offset", r, await conn.call(r), exact_ext=("offset",))
    # Java clients started with rocketmq.serialize.type=ROCKETMQ: the reply must come back in it.
    r = attrs.evolve(r, serialize_type=SerializeType.ROCKETMQ)
    s.capture("get_max_offset_binary_header", r, await conn.call(r), exact_ext=("offset",))
    r = req(RequestCode.GET_MIN_OFFSET, {"topic": s.topic, "queueId": 2})
    s.capture("get_min_offset", r, await conn.call(r), exact_ext=("offset",))
    r = req(RequestCode.GET_EARLIEST_MSG_STORETIME, {"topic": s.topic, "queueId": 2})
    s.capture("earliest_msg_store_time", r, await conn.call(r))
    r = req(
        RequestCode.SEARCH_OFFSET_BY_TIMESTAMP,
        {"topic": s.topic, "queueId": 2, "timestamp": int(time.time() * 1000) + 3_600_000},
    )
    s.capture("search_offset_by_timestamp", r, await conn.call(r), exact_ext=("offset",))


def _heartbeat_body(s: Scenario) -> bytes:
    return body_json(
        {
            "clientID": CLIENT_ID,
            "consumerDataSet": [
                {
                    "consumeFromWhere": "CONSUME_FROM_LAST_OFFSET",
                    "consumeType": "CONSUME_PASSIVELY",
                    "groupName": s.group,
                    "messageModel": "CLUSTERING",
                    "subscriptionDataSet": [
                        {
                            "classFilterMode": False,
                            "codeSet": [],
                            "expressionType": "TAG",
                            "subString": "*",
                            "subVersion": 1,
                            "tagsSet": [],
                            "topic": s.topic,
                        }
                    ],
                    "unitMode": False,
                }
            ],
            "producerDataSet": [{"groupName": s.producer_group}],
        }
    )


def _mq_set(s: Scenario, *queue_ids: int) -> list[dict[str, Any]]:
    return [{"brokerName": s.target.broker_name, "queueId": q, "topic": s.topic} for q in queue_ids]


async def _client_steps(s: Scenario, conn: RawConnection) -> None:
    heartbeat = req(RequestCode.HEART_BEAT, body=_heartbeat_body(s))
    s.capture("heartbeat", heartbeat, await conn.call(heartbeat))
    # The broker tells every member of a group whose membership changed (oneway, code 40).
    await trio.sleep(0.5)
    r = req(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": s.group})
    reply = await conn.call(r)
    seen = sorted(
        {(c.code, c.ext_fields.get("consumerGroup") == s.group) for c in conn.server_requests}
    )
    s.capture(
        "notify_consumer_ids_changed",
        heartbeat,
        None,
        extra={"serverRequests": [list(x) for x in seen]},
    )
    s.capture(
        "consumer_list",
        r,
        reply,
        body="json",
        extra={"consumerIds": _json_of(reply).get("consumerIdList")},
    )
    r = req(RequestCode.GET_CONSUMER_LIST_BY_GROUP, {"consumerGroup": f"{s.group}_NOBODY"})
    s.capture("consumer_list_unknown_group", r, await conn.call(r), exact_remark=True)

    def lock_body(client: str, *queue_ids: int) -> bytes:
        return body_json(
            {"clientId": client, "consumerGroup": s.group, "mqSet": _mq_set(s, *queue_ids)}
        )

    r = req(RequestCode.LOCK_BATCH_MQ, body=lock_body(CLIENT_ID, 0, 1))
    reply = await conn.call(r)
    s.capture("lock", r, reply, body="json", extra={"locked": _locked(reply)})
    r = req(RequestCode.LOCK_BATCH_MQ, body=lock_body(OTHER_CLIENT_ID, 0, 2))
    reply = await conn.call(r)
    s.capture("lock_held_by_other", r, reply, body="json", extra={"locked": _locked(reply)})
    r = req(RequestCode.UNLOCK_BATCH_MQ, body=lock_body(CLIENT_ID, 0, 1))
    s.capture("unlock", r, await conn.call(r))


def _json_of(reply: RemotingCommand) -> dict[str, Any]:
    try:
        value = fastjson.loads(reply.body) if reply.body else {}
    except RemoteProtocolError:
        return {}
    return value if isinstance(value, dict) else {}


def _locked(reply: RemotingCommand) -> list[int]:
    return sorted(mq.get("queueId", -1) for mq in _json_of(reply).get("lockOKMQSet", []))


async def _query_steps(s: Scenario, conn: RawConnection) -> None:
    end = int(time.time() * 1000) + 3_600_000

    def query(key: str, uniq: bool) -> RemotingCommand:
        ext: dict[str, Any] = {
            "topic": s.topic,
            "key": key,
            "maxNum": 32,
            "beginTimestamp": 0,
            "endTimestamp": end,
        }
        if uniq:
            ext["_UNIQUE_KEY_QUERY"] = True
        return req(RequestCode.QUERY_MESSAGE, ext)

    for step, key, uniq in (
        ("query_by_key", "k3", False),
        ("query_by_uniq_key", UNIQ["b1"], True),
    ):
        r = query(key, uniq)
        reply = await _retry_until(partial(conn.call, r), lambda x: x.code == 0, 10)
        s.capture(step, r, reply, body="records")
    r = query("no-such-key", False)
    s.capture("query_by_missing_key", r, await conn.call(r), exact_remark=True)
    offset = s.pulled[0].commit_log_offset if s.pulled else 0
    r = req(RequestCode.VIEW_MESSAGE_BY_ID, {"offset": offset})
    s.capture("view_by_id", r, await conn.call(r), body="records")


async def _admin_steps(s: Scenario, conn: RawConnection) -> None:
    mq_map = ("$.offsetTable",)
    r = req(RequestCode.GET_TOPIC_STATS_INFO, {"topic": s.topic})
    s.capture("topic_stats", r, await conn.call(r), body="json", maps=mq_map)
    r = req(RequestCode.GET_TOPIC_STATS_INFO, {"topic": f"{s.topic}_NONE"})
    s.capture("topic_stats_unknown_topic", r, await conn.call(r), exact_remark=True)
    r = req(RequestCode.GET_CONSUME_STATS, {"consumerGroup": f"{s.group}_NEW", "topic": s.topic})
    s.capture("consume_stats", r, await conn.call(r), body="json", maps=mq_map)
    r = req(RequestCode.GET_CONSUMER_CONNECTION_LIST, {"consumerGroup": s.group})
    s.capture(
        "consumer_connections", r, await conn.call(r), body="json", maps=("$.subscriptionTable",)
    )
    r = req(RequestCode.GET_PRODUCER_CONNECTION_LIST, {"producerGroup": s.producer_group})
    s.capture("producer_connections", r, await conn.call(r), body="json")
    r = req(RequestCode.GET_ALL_TOPIC_CONFIG)
    s.capture("all_topic_config", r, await conn.call(r), body="json", maps=("$.topicConfigTable",))
    r = req(RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG)
    s.capture(
        "all_subscription_groups",
        r,
        await conn.call(r),
        body="json",
        maps=("$.subscriptionGroupTable",),
    )
    r = req(RequestCode.GET_BROKER_RUNTIME_INFO)
    # One scheduleMessageOffset_<level> entry per delay level used so far on that broker.
    s.capture(
        "broker_runtime_info",
        r,
        await conn.call(r),
        body="json",
        ignore=r"scheduleMessageOffset_\d+",
    )
    r = req(RequestCode.GET_BROKER_CONFIG)
    s.capture("broker_config", r, await conn.call(r), body="properties")
    r = req(RequestCode.QUERY_TOPIC_CONSUME_BY_WHO, {"topic": s.topic})
    reply = await conn.call(r)
    s.capture(
        "query_topic_consume_by_who",
        r,
        reply,
        body="json",
        extra={"groups": sorted(_json_of(reply).get("groupList", []))},
    )
    group_config = {
        "brokerId": 0,
        "consumeBroadcastEnable": True,
        "consumeEnable": True,
        "consumeFromMinEnable": True,
        "groupName": f"{s.group}_SUB",
        "notifyConsumerIdsChangedEnable": True,
        "retryMaxTimes": 5,
        "retryQueueNums": 1,
        "whichBrokerWhenConsumeSlowly": 1,
    }
    r = req(RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP, body=body_json(group_config))
    s.capture("update_subscription_group", r, await conn.call(r))
    r = req(RequestCode.DELETE_TOPIC_IN_BROKER, {"topic": s.topic})
    s.capture("delete_topic_in_broker", r, await conn.call(r))
    async with connect(s.target.namesrv_addr) as ns:
        r = req(RequestCode.DELETE_TOPIC_IN_NAMESRV, {"topic": s.topic})
        s.capture("delete_topic_in_namesrv", r, await ns.call(r))
    r = req(9999)  # type: ignore[arg-type]
    s.capture("unknown_request_code", r, await conn.call(r), exact_remark=True)
    r = req(
        RequestCode.UNREGISTER_CLIENT,
        {"clientID": CLIENT_ID, "producerGroup": s.producer_group, "consumerGroup": s.group},
    )
    s.capture("unregister_client", r, await conn.call(r))


def _tx_half(s: Scenario, topic: str, uniq: str, body: bytes) -> RemotingCommand:
    properties = {
        "TAGS": "TagT",
        "WAIT": "true",
        "TRAN_MSG": "true",
        "PGROUP": f"{s.producer_group}_TX",
        "UNIQ_KEY": uniq,
    }
    r = _send_v2(s, 0, properties, body, topic=topic)
    return attrs.evolve(r, ext_fields={**r.ext_fields, "a": f"{s.producer_group}_TX", "f": "4"})


def _tx_end(
    s: Scenario, table_offset: str, commit_log_offset: int, kind: int, uniq: str, **more: Any
) -> RemotingCommand:
    return req(
        RequestCode.END_TRANSACTION,
        {
            "producerGroup": f"{s.producer_group}_TX",
            "tranStateTableOffset": table_offset,
            "commitLogOffset": commit_log_offset,
            "commitOrRollback": kind,
            "fromTransactionCheck": False,
            "msgId": uniq,
            "transactionId": uniq,
            **more,
        },
    )


def _blur_offsets(capture: Capture, *, queue_offset: bool) -> None:
    """Commit-log offsets (and half-queue offsets) depend on what the server stored before."""
    for record in capture.observation.get("body") or []:
        if isinstance(record, dict):
            if record.get("preparedTransactionOffset"):
                record["preparedTransactionOffset"] = "<offset>"
            if queue_offset:
                record["queueOffset"] = "<offset>"


async def _transaction_steps(s: Scenario, conn: RawConnection) -> None:
    """Prepare, END_TRANSACTION's checks, commit, the committed message, a check-back and its
    answer (reference §7.6); both servers check unresolved transactions after 2 s, every 1 s."""
    topic = f"{s.topic}_TX"
    r = _tx_half(s, topic, UNIQ["tx1"], b"tx committed")
    sent = await conn.call(r)
    s.capture("tx_send_half", r, sent, exact_ext=("queueId", "MSG_REGION", "TRACE_ON"))
    offset = int(sent.ext_fields["msgId"][-16:], 16)
    table_offset = sent.ext_fields["queueOffset"]
    r = _tx_end(s, table_offset, offset, 8, UNIQ["tx1"], producerGroup="wrong_group")
    s.capture("tx_end_wrong_group", r, await conn.call(r), exact_remark=True)
    r = _tx_end(s, str(int(table_offset) + 1000), offset, 8, UNIQ["tx1"])
    s.capture("tx_end_wrong_table_offset", r, await conn.call(r), exact_remark=True)
    r = _tx_end(s, table_offset, offset, 8, UNIQ["tx1"])
    s.capture("tx_end_commit", r, await conn.call(r), exact_remark=True)
    pull = _pull(s, 0, 0)
    pull = attrs.evolve(pull, ext_fields={**pull.ext_fields, "topic": topic})
    reply = await _retry_until(partial(conn.call, pull), lambda x: x.code == 0, 10)
    s.capture("tx_pull_committed", pull, reply, exact_ext=PULL_EXACT, body="records")
    _blur_offsets(s.captures[-1], queue_offset=False)

    # a producer of the group on this connection, then a half nobody ends: the check-back
    hb = body_json(
        {
            "clientID": CLIENT_ID,
            "consumerDataSet": [],
            "producerDataSet": [{"groupName": f"{s.producer_group}_TX"}],
        }
    )
    await conn.call(req(RequestCode.HEART_BEAT, body=hb))
    r = _tx_half(s, topic, UNIQ["tx2"], b"tx checked")
    await conn.call(r)
    check = await conn.next_request(RequestCode.CHECK_TRANSACTION_STATE, timeout=20)
    s.capture(
        "tx_check_back",
        r,
        check,
        exact_ext=("msgId", "transactionId"),
        body="records",
    )
    _blur_offsets(s.captures[-1], queue_offset=True)
    r = _tx_end(
        s,
        check.ext_fields["tranStateTableOffset"],
        int(check.ext_fields["commitLogOffset"]),
        12,
        UNIQ["tx2"],
        fromTransactionCheck=True,
    )
    s.capture("tx_end_rollback_from_check", r, await conn.call(r), exact_remark=True)


async def _namesrv_steps_after(s: Scenario, ns: RawConnection) -> None:
    r = req(RequestCode.GET_ALL_TOPIC_LIST_FROM_NAMESERVER)
    reply = await ns.call(r)
    topics = _json_of(reply).get("topicList", [])
    s.capture("ns_all_topics", r, reply, body="json", extra={"hasDeletedTopic": s.topic in topics})


async def run_scenario(
    target: Target, topic: str, group: str
) -> tuple[list[Capture], BaseException | None]:
    """Every step in order; stops at the first exception and returns it with what was captured."""
    s = Scenario(target=target, topic=topic, group=group)
    try:
        async with connect(target.namesrv_addr) as ns, connect(target.broker_addr) as conn:
            await _namesrv_steps_before(s, ns)
            await _send_steps(s, ns, conn)
            await _pull_steps(s, conn)
            await _offset_steps(s, conn)
            await _client_steps(s, conn)
            await _query_steps(s, conn)
            await _admin_steps(s, conn)
            await _transaction_steps(s, conn)
            await _namesrv_steps_after(s, ns)
    except Exception as exc:  # reported per step by the test, with the servers' logs
        return s.captures, exc
    return s.captures, None

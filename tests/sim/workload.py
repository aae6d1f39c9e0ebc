"""Client programs for simulated nodes: producers and consumers that record a History."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import attrs
import trio

from actors.client.consume_service import ConsumeOrderlyStatus, ConsumeStatus
from actors.client.consumer import ConsumerSettings
from actors.client.errors import ClientError
from actors.client.message import Message
from actors.client.producer import Producer, ProducerConfig, select_by_hash
from actors.client.push_consumer import ConsumeFromWhere, PushConsumer
from actors.remoting.errors import RemotingError
from tests.sim.cluster import ClientNode

# RocketMQ's default levels: 1s 5s 10s 30s 1m 2m ...
LEVEL_MS = {1: 1000, 2: 5000, 3: 10_000, 4: 30_000, 5: 60_000}


def key_of(body: bytes) -> str:
    return body.split(b"|", 1)[0].decode()


@attrs.define
class ProducerPlan:
    """What a producer sends, all drawn from the seed."""

    topic: str
    count: int
    interval: float = 0.2  # mean seconds between sends (exponential)
    max_body: int = 2048
    delay_share: float = 0.0  # fraction of messages with a delay level
    order_keys: int = 0  # > 0: orderly sends over this many sharding keys
    send_timeout: float = 3.0
    route_poll: float | None = None  # the client's name-server poll (None: its 30 s)


def producer_program(plan: ProducerPlan, rng: random.Random) -> Callable[..., Any]:
    """A node body: send ``plan.count`` messages, recording each in the history."""

    async def body(node: ClientNode, task_status: trio.TaskStatus[None]) -> None:
        history = node.sim.history
        seqs: dict[str, int] = {}
        config = ProducerConfig(send_timeout=plan.send_timeout)
        client = Producer(
            f"pg-{node.name}",
            namesrv=node.namesrv,
            config=config,
            instance_name=node.instance,
            client_ip=node.host,
        )
        if plan.route_poll is not None:
            client.client_config.poll_namesrv_interval = plan.route_poll
        async with client as producer:
            task_status.started()
            sent = node.sim.sent_counter.setdefault(node.name, 0)
            for i in range(sent, plan.count):
                node.sim.sent_counter[node.name] = i + 1
                await trio.sleep(rng.expovariate(1 / plan.interval))
                key = f"{node.name}-{i}"
                size = rng.randrange(1, plan.max_body)
                msg = Message(plan.topic, f"{key}|".encode() + b"x" * size, keys=key)
                extra: dict[str, Any] = {}
                if plan.delay_share and rng.random() < plan.delay_share:
                    level = rng.choice(sorted(LEVEL_MS))
                    msg.delay_level = level
                    extra["delay_ms"] = LEVEL_MS[level]
                gkey = None
                if plan.order_keys:
                    gkey = f"k{rng.randrange(plan.order_keys)}"
                    extra["group_key"] = gkey
                    extra["seq"] = seqs.get(gkey, 0)
                    seqs[gkey] = extra["seq"] + 1
                send = history.send_started(key, plan.topic, len(msg.body), **extra)
                try:
                    if gkey is not None:
                        result = await producer.send_orderly(msg, selector=select_by_hash, arg=gkey)
                    else:
                        result = await producer.send(msg)
                except (ClientError, RemotingError, trio.TooSlowError) as exc:
                    history.send_finished(send, type(exc).__name__)
                    continue
                history.send_finished(
                    send,
                    result.status.name,
                    result.offset_msg_id,
                    result.message_queue.queue_id,
                    result.queue_offset,
                )

    return body


def consumer_program(
    group: str,
    topic: str,
    *,
    orderly: bool = False,
    work: tuple[float, float] = (0.0, 0.05),
    rng: random.Random | None = None,
    settings: ConsumerSettings | None = None,
    route_poll: float | None = None,
) -> Callable[..., Any]:
    """A node body: a push consumer that records each delivery and takes a seeded time
    (``route_poll``: its name-server poll interval, None: the client's 30 s)."""
    rng = rng or random.Random(0)

    async def body(node: ClientNode, task_status: trio.TaskStatus[None]) -> None:
        history = node.sim.history
        history.subscriptions.setdefault(group, set()).add(topic)
        if orderly:
            history.orderly_groups.add(group)

        async def listener(msgs: list[Any], ctx: Any) -> Any:
            for m in msgs:
                history.delivered(
                    key_of(m.body),
                    group,
                    node.name,
                    m.reconsume_times,
                    (m.store_host, m.queue_id),
                    m.queue_offset,
                    (m.store_host, m.store_timestamp),
                )
            await trio.sleep(rng.uniform(*work))
            return ConsumeOrderlyStatus.SUCCESS if orderly else ConsumeStatus.CONSUME_SUCCESS

        consumer = PushConsumer(
            group,
            namesrv=node.namesrv,
            listener=listener,
            orderly=orderly,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
            instance_name=node.instance,
            client_ip=node.host,
            settings=settings,
        )
        if route_poll is not None:
            consumer.client_config.poll_namesrv_interval = route_poll
        consumer.subscribe(topic)
        history.membership_changed(f"consumer {node.name} joins")
        try:
            async with consumer:
                task_status.started()
                await trio.sleep_forever()
        finally:
            history.membership_changed(f"consumer {node.name} leaves")

    return body

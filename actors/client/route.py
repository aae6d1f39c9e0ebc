"""Route data -> the queues a producer writes and a consumer reads (reference §8.3), pure.

Also the producer's queue choice: round robin from a random start, avoiding the broker
that just failed on a retry, and (with latency fault tolerance) brokers that were recently
slow or unreachable.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import attrs

from actors.client.fault import LatencyFaultTolerance
from protocol.bodies.common import MessageQueue, PermName

MASTER_ID = 0


def _int32(value: int) -> int:
    # Java's AtomicInteger wraps; Math.abs of the wrapped value picks the queue.
    value &= 0xFFFFFFFF
    return value - (1 << 32) if value & 0x80000000 else value


@attrs.define(eq=False)
class TopicPublishInfo:
    topic: str
    queues: list[MessageQueue]
    order_topic: bool = False
    write_queue_nums: dict[str, int] = attrs.Factory(dict)
    _counter: int = attrs.field(factory=lambda: random.randrange(1 << 31), alias="_counter")

    def ok(self) -> bool:
        return bool(self.queues)

    def next_index(self) -> int:
        self._counter = _int32(self._counter + 1)
        return self._counter

    def select(self, last_broker: str | None = None) -> MessageQueue:
        """Round robin; on a retry prefer a queue on another broker than ``last_broker``."""
        if last_broker is not None:
            for _ in range(len(self.queues)):
                mq = self.queues[abs(self.next_index()) % len(self.queues)]
                if mq.broker_name != last_broker:
                    return mq
        return self.queues[abs(self.next_index()) % len(self.queues)]


def select_queue(
    info: TopicPublishInfo,
    last_broker: str | None,
    fault: LatencyFaultTolerance | None,
    now_ms: int,
) -> MessageQueue:
    """MQFaultStrategy.selectOneMessageQueue: skip isolated brokers, else the least bad one."""
    if fault is None:
        return info.select(last_broker)
    index = info.next_index()
    for _ in range(len(info.queues)):
        mq = info.queues[abs(index) % len(info.queues)]
        index = _int32(index + 1)
        if fault.is_available(mq.broker_name, now_ms):
            return mq
    fallback = fault.pick_one_at_least(now_ms)
    if fallback is not None:
        nums = info.write_queue_nums.get(fallback, 0)
        if nums > 0:
            return MessageQueue(
                topic=info.topic, broker_name=fallback, queue_id=abs(info.next_index()) % nums
            )
        fault.remove(fallback)
    return info.select()


def _has_master(route: Any, broker_name: str) -> bool:
    for bd in route.broker_datas:
        if bd.broker_name == broker_name:
            return MASTER_ID in bd.broker_addrs
    return False


def publish_info(topic: str, route: Any) -> TopicPublishInfo:
    """Writeable queues of brokers that have a master; or the order-topic configuration."""
    queues: list[MessageQueue] = []
    nums: dict[str, int] = {}
    conf = getattr(route, "order_topic_conf", None)
    if conf:
        for item in conf.split(";"):
            name, _, count = item.partition(":")
            if not name or not count.strip().lstrip("-").isdigit():
                continue
            nums[name] = int(count)
            queues += [
                MessageQueue(topic=topic, broker_name=name, queue_id=i) for i in range(int(count))
            ]
        return TopicPublishInfo(topic, queues, order_topic=True, write_queue_nums=nums)
    for qd in sorted(route.queue_datas, key=lambda q: q.broker_name):
        if not qd.perm & PermName.PERM_WRITE or not _has_master(route, qd.broker_name):
            continue
        nums[qd.broker_name] = qd.write_queue_nums
        queues += [
            MessageQueue(topic=topic, broker_name=qd.broker_name, queue_id=i)
            for i in range(qd.write_queue_nums)
        ]
    return TopicPublishInfo(topic, queues, write_queue_nums=nums)


def subscribe_queues(topic: str, route: Any) -> list[MessageQueue]:
    """Readable queues (master not required), sorted as the rebalance sorts them."""
    queues = [
        MessageQueue(topic=topic, broker_name=qd.broker_name, queue_id=i)
        for qd in route.queue_datas
        if qd.perm & PermName.PERM_READ
        for i in range(qd.read_queue_nums)
    ]
    return sorted(queues)


def broker_addrs(route: Any) -> dict[str, dict[int, str]]:
    return {bd.broker_name: dict(bd.broker_addrs) for bd in route.broker_datas}


def pick_addr(addrs: dict[int, str], *, only_master: bool) -> str | None:
    """The master's address, or (if allowed) any other one."""
    if MASTER_ID in addrs:
        return addrs[MASTER_ID]
    if only_master or not addrs:
        return None
    return addrs[min(addrs)]


def route_signature(route: Any) -> tuple[Sequence[Any], Sequence[Any], Any]:
    """A value that is equal for equal routes regardless of list order (Java sorts, then equals)."""
    qds = sorted(
        (q.broker_name, q.perm, q.read_queue_nums, q.write_queue_nums, q.topic_sys_flag)
        for q in route.queue_datas
    )
    bds = sorted(
        (b.broker_name, b.cluster, tuple(sorted(b.broker_addrs.items())))
        for b in route.broker_datas
    )
    return qds, bds, getattr(route, "order_topic_conf", None)

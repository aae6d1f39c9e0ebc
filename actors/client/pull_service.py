"""One long-polling pull loop per assigned queue (Java's PullMessageService + callback).

The loop runs inside the queue's own cancel scope, so the rebalance drops a queue by
cancelling it.  Each iteration: flow control on the queue's cache, one PULL_MESSAGE
(held by the broker up to 15 s when there is nothing new), then hand the messages to the
sink (the consume service, or the lite consumer's poll buffer), which applies
backpressure by blocking.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

import trio

from actors.client import api
from actors.client.consumer import AssignedQueue, ConsumerCore, wanted_tags
from actors.client.errors import ClientError
from actors.client.offset_store import ReadFrom
from protocol.errors import ProtocolError
from protocol.headers.pull import PullMessageRequestHeader, PullSysFlag
from protocol.message import MessageConst, MessageExt, MessageSysFlag, maybe_decompress

log = logging.getLogger(__name__)

OFFSET_ILLEGAL_DELAY = 10.0

# As plain ints: IntFlag arithmetic is Python code, and a header is built for every pull.
_SUSPEND = int(PullSysFlag.SUSPEND)
_COMMIT_OFFSET = int(PullSysFlag.COMMIT_OFFSET)
_LITE_FLAGS = int(PullSysFlag.SUSPEND | PullSysFlag.SUBSCRIPTION | PullSysFlag.LITE_PULL)

Sink = Callable[[AssignedQueue, list[MessageExt], bool], Awaitable[None]]


def prepare_messages(
    core: ConsumerCore, aq: AssignedQueue, result: api.PullResult
) -> list[MessageExt]:
    """Decompress, filter by tag, add MIN/MAX_OFFSET, as Java's processPullResult.

    Runs for every pulled message: the filter and the offset strings are worked out once
    per pull, and a message pays only for what applies to it.
    """
    sub = core.subscriptions.get(aq.mq.topic)
    tags = wanted_tags(sub) if sub is not None else None
    min_offset, max_offset = str(result.min_offset), str(result.max_offset)
    out = []
    for msg in result.messages:
        if msg.sys_flag & MessageSysFlag.COMPRESSED:
            try:
                msg.body = maybe_decompress(msg.body, msg.sys_flag)
            except ProtocolError as exc:
                log.warning("message %s in %s cannot be decompressed: %s", msg.msg_id, aq.mq, exc)
        props = msg.properties
        if tags is not None and props.get(MessageConst.TAGS) not in tags:
            continue
        props[MessageConst.MIN_OFFSET] = min_offset
        props[MessageConst.MAX_OFFSET] = max_offset
        if props.get(MessageConst.TRAN_MSG) == "true" and msg.uniq_key:
            props[MessageConst.TRANSACTION_ID] = msg.uniq_key
        out.append(msg)
    return out


async def _pull_addr(core: ConsumerCore, aq: AssignedQueue, suggested: int) -> str:
    addrs = core.instance.brokers.get(aq.mq.broker_name, {})
    if suggested in addrs:
        return addrs[suggested]
    return await core.instance.find_broker_addr(aq.mq.broker_name, aq.mq.topic, only_master=False)


async def _ready(core: ConsumerCore, aq: AssignedQueue) -> float:
    """0 if the queue may be pulled now, else how long to wait (flow control, lock)."""
    s = core.settings
    if aq.pq.throttle(s.flow, orderly=core.orderly) is not None:
        return s.pull_delay_on_flow_control
    if core.orderly and core.clustering:
        if not aq.pq.locked:
            return s.pull_delay_on_exception
        if not aq.previously_locked:
            # The first pull after taking the lock starts from the committed offset.
            offset = await core.compute_pull_from_where(aq.mq)
            if offset < 0:
                return s.pull_delay_on_exception
            aq.next_offset = offset
            aq.previously_locked = True
    if aq.mq.topic not in core.subscriptions:
        return s.pull_delay_on_exception
    return 0.0


async def _header(
    core: ConsumerCore, aq: AssignedQueue, *, lite: bool, suggested: int
) -> PullMessageRequestHeader:
    mq = aq.mq
    sub = core.subscriptions[mq.topic]
    commit_offset = 0
    if lite:
        sys_flag = _LITE_FLAGS
    else:
        sys_flag = _SUSPEND
        if core.clustering and suggested == 0:
            # Piggy-back the commit; a slave would not store it (§8.4).
            commit_offset = max(await core.offset_store.read(mq, ReadFrom.MEMORY), 0)
            if commit_offset > 0:
                sys_flag |= _COMMIT_OFFSET
    return PullMessageRequestHeader(
        consumer_group=core.group,
        topic=mq.topic,
        queue_id=mq.queue_id,
        queue_offset=aq.next_offset,
        max_msg_nums=core.settings.pull_batch_size,
        sys_flag=sys_flag,
        commit_offset=commit_offset,
        suspend_timeout_millis=core.settings.broker_suspend_ms,
        sub_version=sub.sub_version,
        subscription=sub.sub_string if lite else None,
        expression_type=sub.expression_type,
        bname=mq.broker_name,
    )


async def pull_loop(
    core: ConsumerCore, aq: AssignedQueue, sink: Sink, *, lite: bool = False
) -> None:
    s = core.settings
    suggested = 0
    with aq.scope:
        while not aq.pq.dropped:
            aq.pq.last_pull_ms = core.now_ms()
            delay = await _ready(core, aq)
            if delay > 0:
                await trio.sleep(delay)
                continue
            header = await _header(core, aq, lite=lite, suggested=suggested)
            try:
                addr = await _pull_addr(core, aq, suggested)
                result = await api.pull_message(
                    core.instance.remoting, addr, header, s.pull_timeout
                )
            except ClientError as exc:
                log.info("%s: pull of %s failed: %s", core.group, aq.mq, exc)
                await trio.sleep(s.pull_delay_on_exception)
                continue
            suggested = result.suggest_which_broker_id
            if result.status is api.PullStatus.OFFSET_ILLEGAL:
                await _offset_illegal(core, aq, result)
                return
            aq.next_offset = result.next_begin_offset
            msgs = prepare_messages(core, aq, result)
            if msgs:
                await sink(aq, msgs, aq.pq.put(msgs))
                if s.pull_interval > 0:
                    await trio.sleep(s.pull_interval)
            elif aq.pq.msg_count == 0 and not lite:
                # Nothing (matching) arrived and nothing is cached: the offset may move on.
                core.offset_store.update(aq.mq, result.next_begin_offset, increase_only=True)


async def _offset_illegal(core: ConsumerCore, aq: AssignedQueue, result: api.PullResult) -> None:
    log.warning(
        "%s: offset %d of %s is illegal, moving to %d",
        core.group,
        aq.next_offset,
        aq.mq,
        result.next_begin_offset,
    )
    aq.pq.dropped = True
    await trio.sleep(OFFSET_ILLEGAL_DELAY)
    core.offset_store.update(aq.mq, result.next_begin_offset, increase_only=False)
    await core.offset_store.persist(aq.mq)
    # The next rebalance assigns the queue again, from the corrected offset.
    core.drop(aq)

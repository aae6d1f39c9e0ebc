"""Transactional messages in the broker (reference §7.6): prepared sends become half messages,
and the check service asks producers about the ones nobody ended.

The check service is a master-role actor (role.py): every ``transactionCheckInterval`` it walks
each half queue (storage/transaction.HalfQueueCheck), re-appends every half message older than
``transactionTimeOut`` that has no op message and sends CHECK_TRANSACTION_STATE for the copy to
a live channel of its producer group.  Order within one step of the walk, so a crash never
loses a check: copies appended -> commit log durable as configured -> progress recorded as
CID_RMQ_SYS_TRANS offsets -> check-backs sent.  The offsets reach consumerOffset.json with the
other consumer offsets (every ``flushConsumerOffsetInterval`` and at shutdown), so after a kill -9
the checks of the last few seconds are sent again, as Apache does.  The actor may be cancelled
at any await (a role switch); the next start resumes from the recorded offsets.
"""

from __future__ import annotations

import itertools
import logging
from typing import TYPE_CHECKING

import trio

from actors.broker.durability import commit_log_durable
from actors.remoting.router import Channel
from protocol.bodies.common import PermName
from protocol.codes import RequestCode
from protocol.command import RemotingCommand
from protocol.message import MessageConst, encode_record
from storage.message_store import MessageInner
from storage.transaction import (
    CHECK_MAX_TOPIC,
    HALF_QUEUE_ID,
    HALF_TOPIC,
    Checked,
    CheckSettings,
    HalfQueueCheck,
    check_body_message,
    to_half,
)

if TYPE_CHECKING:
    from actors.broker.context import BrokerContext

log = logging.getLogger(__name__)

RW = int(PermName.PERM_READ | PermName.PERM_WRITE)
# reads (a half message or a page of ops) between two awaits of a check round
STEP_READS = 256
CHECK_SEND_TIMEOUT = 1.0  # Java: 10 ms to hand the oneway frame to netty; ours queues it
_round_robin = itertools.count()


def half_message(
    ctx: BrokerContext, msg: MessageInner, now_ms: int, wait: str | None
) -> MessageInner:
    """The half message a prepared send stores; creates the half topic on first use."""
    _, created = ctx.topics.create_if_absent(HALF_TOPIC, 1, RW, 0, now_ms)
    if created:
        ctx.topic_table_changed()
    half = to_half(msg)
    if wait is not None:
        # Java re-serialises the properties map here, which still holds WAIT
        half.properties.setdefault(MessageConst.WAIT, wait)
    return half


def check_settings(ctx: BrokerContext) -> CheckSettings:
    cfg = ctx.config
    return CheckSettings(
        timeout_ms=cfg.transactionTimeOut,
        check_max=cfg.transactionCheckMax,
        file_reserved_ms=ctx.store_config.fileReservedTime * 3600 * 1000,
    )


def pick_channel(ctx: BrokerContext, group: str | None) -> Channel | None:
    """Round robin over the group's open channels (Java's getAvailableChannel)."""
    if group is None:
        return None
    infos = [info for info in ctx.producers.channels(group) if not _closed(info.channel)]
    if not infos:
        return None
    channel = infos[next(_round_robin) % len(infos)].channel
    return channel  # type: ignore[return-value]


def _closed(channel: object) -> bool:
    return bool(getattr(channel, "closed", False))


def check_request(checked: Checked) -> RemotingCommand:
    copy = checked.message
    uniq = copy.properties.get(MessageConst.UNIQ_KEY)
    ext = {
        "tranStateTableOffset": str(copy.queue_offset),
        "commitLogOffset": str(copy.commit_log_offset),
        "offsetMsgId": copy.msg_id,
    }
    if uniq is not None:
        ext["msgId"] = uniq
        ext["transactionId"] = uniq
    return RemotingCommand.request(
        RequestCode.CHECK_TRANSACTION_STATE,
        ext,
        encode_record(check_body_message(copy)),
        oneway=True,
    )


async def send_check(ctx: BrokerContext, checked: Checked) -> bool:
    channel = pick_channel(ctx, checked.group)
    if channel is None:
        log.warning(
            "check of transaction %s skipped: no live producer of group %s",
            checked.message.properties.get(MessageConst.UNIQ_KEY),
            checked.group,
        )
        return False
    with trio.move_on_after(CHECK_SEND_TIMEOUT):
        await channel.send(check_request(checked))
        return True
    log.warning("check-back to %s timed out", channel.peer)
    return False


def half_queue_ids(ctx: BrokerContext) -> list[int]:
    ids = ctx.store.topic_queue_ids().get(HALF_TOPIC)
    return sorted(ids) if ids else [HALF_QUEUE_ID]


async def check_round(ctx: BrokerContext, settings: CheckSettings | None = None) -> int:
    """One round over every half queue; the number of check-backs sent."""
    settings = settings or check_settings(ctx)
    sent = 0
    for queue_id in half_queue_ids(ctx):
        walk = HalfQueueCheck(
            ctx.store,
            ctx.offsets,
            settings,
            ctx.now_ms,
            queue_id,
            has_producer=lambda group: pick_channel(ctx, group) is not None,
        )
        discarded = 0
        while not walk.finished:
            checks, failed = walk.step(STEP_READS)
            for msg in failed:
                log.error("moving a half message to %s failed: %s", CHECK_MAX_TOPIC, msg)
            if walk.discarded > discarded:
                _ensure_check_max_topic(ctx)
                discarded = walk.discarded
            # Copies (and discards) durable before the offsets that skip their originals are;
            # shielded, so a role switch cancelling us here cannot leave copies appended but
            # their originals unskipped (they would be checked twice).  Bounded by the flush
            # timeout the wait has anyway.
            with trio.CancelScope(shield=True):
                durable = await commit_log_durable(ctx)
                if durable:
                    walk.save()
            if not durable:
                log.warning("check round: commit log not durable in time; retrying next round")
                break
            for checked in checks:
                sent += await send_check(ctx, checked)
            await trio.lowlevel.checkpoint()
        if walk.parked:
            log.info("%d half messages wait for a producer of their group", walk.parked)
    return sent


def _ensure_check_max_topic(ctx: BrokerContext) -> None:
    _, created = ctx.topics.create_if_absent(CHECK_MAX_TOPIC, 1, RW, 0, ctx.now_ms())
    if created:
        ctx.topic_table_changed()


async def transaction_checker(
    ctx: BrokerContext, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
) -> None:
    """Master-only: a check round every ``transactionCheckInterval`` (the first one interval
    after start, as Java's service thread)."""
    interval = ctx.config.transactionCheckInterval / 1000
    task_status.started()
    while True:
        await trio.sleep(interval)
        try:
            sent = await check_round(ctx)
        except (OSError, ValueError):
            # a damaged record or a failing disk: log, keep the service, try next round
            log.exception("transaction check round failed")
            continue
        if sent:
            log.info("transaction check round: %d check-backs sent", sent)

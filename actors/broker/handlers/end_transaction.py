"""END_TRANSACTION (reference §7.6, Java's EndTransactionProcessor).

Commit: find the half message at ``commitLogOffset``, check it (producer group, queue offset,
commit-log offset: SYSTEM_ERROR with Apache's remarks), write the real message (through the
delay rewrite, so a delayed transactional message is delayed from its commit) and the op
message, then wait until both are durable as configured.  Rollback: only the op message.
``commitOrRollback`` 0 (unknown) or anything else is not answered, as in Java.

One difference: Java answers SUCCESS when the commit's flush times out (FLUSH_DISK_TIMEOUT is
in its success list); we answer FLUSH_DISK_TIMEOUT, because acknowledged means durable as
configured.  The client sends END_TRANSACTION oneway and never reads either answer.
"""

from __future__ import annotations

import logging

from actors.broker.context import BrokerContext
from actors.broker.delay import DelayRejected, rewrite_on_put
from actors.broker.durability import wait_durable
from actors.remoting.router import RequestContext, RequestError, Router
from protocol.bodies.common import PermName
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_header
from protocol.headers.transaction import EndTransactionRequestHeader
from protocol.message import MessageConst, MessageExt, MessageSysFlag
from protocol.msgid import UniqIdGenerator
from storage.message_store import MessageInner, PutResult, PutStatus
from storage.transaction import (
    HALF_TOPIC,
    OP_TOPIC,
    NotAHalfMessage,
    committed,
    op_message,
)

log = logging.getLogger(__name__)

RW = int(PermName.PERM_READ | PermName.PERM_WRITE)
COMMIT = MessageSysFlag.TRANSACTION_COMMIT
ROLLBACK = MessageSysFlag.TRANSACTION_ROLLBACK
NOT_FOUND = "Find prepared transaction message failed"
UNSET_REMARK = "not set any response code"  # Java's RemotingCommand.createResponseCommand(null)


def final_put_failure(status: PutStatus, max_size: int) -> RequestError:
    """Java's sendFinalMessage: the codes and remarks of a commit whose put failed."""
    name = status.name
    if name in ("CREATE_MAPPED_FILE_FAILED", "CREATE_MAPEDFILE_FAILED"):
        return RequestError(ResponseCode.SYSTEM_ERROR, "Create mapped file failed.")
    if name in ("MESSAGE_ILLEGAL", "PROPERTIES_SIZE_EXCEEDED"):
        return RequestError(
            ResponseCode.MESSAGE_ILLEGAL,
            "The message is illegal, maybe msg body or properties length not matched. "
            f"msg body length limit {max_size}B, msg properties length limit 32KB.",
        )
    if name in ("SERVICE_NOT_AVAILABLE", "DISK_FULL"):
        return RequestError(ResponseCode.SERVICE_NOT_AVAILABLE, "Service not available now.")
    if name == "OS_PAGECACHE_BUSY":
        return RequestError(
            ResponseCode.SYSTEM_ERROR, "OS page cache busy, please try another machine"
        )
    return RequestError(ResponseCode.SYSTEM_ERROR, "UNKNOWN_ERROR")


class EndTransactionHandler:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx
        self._ids = UniqIdGenerator()

    def register(self, router: Router) -> None:
        # Java's endTransactionExecutor; commits under SYNC_FLUSH wait for their group commit
        router.register(RequestCode.END_TRANSACTION, self.handle, limit=64)

    async def handle(self, rctx: RequestContext, req: RemotingCommand) -> RemotingCommand | None:
        ctx = self.ctx
        header = decode_header(EndTransactionRequestHeader, req.ext_fields)
        if ctx.is_slave:
            log.warning("END_TRANSACTION on a slave refused")
            return req.reply(ResponseCode.SLAVE_NOT_AVAILABLE, UNSET_REMARK)
        kind = header.commit_or_rollback
        if kind not in (COMMIT, ROLLBACK):
            # unknown (0) is the producer's "not yet": the check-back asks again later
            log.info(
                "END_TRANSACTION %s from %s: state %d, not answered",
                header.msg_id,
                rctx.peer,
                kind,
            )
            return None
        half = self._find_half(header)
        if kind == ROLLBACK:
            status = await self._write_op(half)
            # Java answers a rollback with the placeholder remark of a fresh response
            return self._reply(req, status, UNSET_REMARK)
        try:
            final = committed(half, header.commit_log_offset)
        except NotAHalfMessage:
            raise RequestError(ResponseCode.SYSTEM_ERROR, NOT_FOUND) from None
        final = self._rewrite_delay(final)
        result = ctx.store.put_message(final)
        if not result.ok or result.append is None:
            raise final_put_failure(result.status, ctx.store_config.maxMessageSize)
        ctx.stats.on_put(final.topic, 1, result.append.wrote_bytes)
        status = await self._write_op(half, after=result)
        return self._reply(req, status)

    def _find_half(self, header: EndTransactionRequestHeader) -> MessageExt:
        """The half message the request names, checked as Java's checkPrepareMessage."""
        half: MessageExt | None = self.ctx.store.look_message_by_offset(header.commit_log_offset)
        if half is None or half.topic != HALF_TOPIC:
            raise RequestError(ResponseCode.SYSTEM_ERROR, NOT_FOUND)
        if half.properties.get(MessageConst.PGROUP) != header.producer_group:
            raise RequestError(ResponseCode.SYSTEM_ERROR, "The producer group wrong")
        if half.queue_offset != header.tran_state_table_offset:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR, "The transaction state table offset wrong"
            )
        if half.commit_log_offset != header.commit_log_offset:
            raise RequestError(ResponseCode.SYSTEM_ERROR, "The commit log offset wrong")
        return half

    def _rewrite_delay(self, msg: MessageInner) -> MessageInner:
        ctx = self.ctx
        timer = ctx.delivery.timer_config if ctx.delivery is not None else None
        try:
            return rewrite_on_put(msg, ctx.delay_levels, timer, ctx.now_ms())
        except DelayRejected as exc:
            raise RequestError(ResponseCode.MESSAGE_ILLEGAL, str(exc)) from None

    async def _write_op(self, half: MessageExt, after: PutResult | None = None) -> PutStatus:
        """The op message, then durability of everything written (the op is behind the real
        message in the commit log, so one wait covers both)."""
        ctx = self.ctx
        now_ms = ctx.now_ms()
        _, created = ctx.topics.create_if_absent(OP_TOPIC, 1, RW, 0, now_ms)
        if created:
            ctx.topic_table_changed()
        op = op_message(
            half.queue_offset, half.queue_id, ctx.broker_addr, now_ms, self._ids.next(now_ms)
        )
        result = ctx.store.put_message(op)
        if result.ok and result.append is not None:
            end = result.append.end_offset
        else:
            # Java logs and answers by the real message's put: the half is then checked back
            log.error("writing the op message of %s failed: %s", half.msg_id, result.status)
            if after is None:
                raise final_put_failure(result.status, ctx.store_config.maxMessageSize)
            assert after.append is not None
            end = after.append.end_offset
        return await wait_durable(ctx, end)

    @staticmethod
    def _reply(
        req: RemotingCommand, status: PutStatus, remark: str | None = None
    ) -> RemotingCommand:
        if status is PutStatus.PUT_OK:
            return req.reply(ResponseCode.SUCCESS, remark)
        return req.reply(ResponseCode.FLUSH_DISK_TIMEOUT, remark)

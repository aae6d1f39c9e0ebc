"""LOCK_BATCH_MQ / UNLOCK_BATCH_MQ (reference §7.9): orderly consumers' queue locks."""

from __future__ import annotations

from actors.broker.context import BrokerContext
from actors.remoting.router import RequestContext, Router
from protocol.bodies.heartbeat import (
    LockBatchRequestBody,
    LockBatchResponseBody,
    UnlockBatchRequestBody,
)
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_body, encode_body


class LockHandlers:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def register(self, router: Router) -> None:
        # These never await: the connection's reader runs them itself, no task per request.
        router.register(RequestCode.LOCK_BATCH_MQ, self.lock_batch, inline=True)
        router.register(RequestCode.UNLOCK_BATCH_MQ, self.unlock_batch, inline=True)

    async def lock_batch(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        body = decode_body(LockBatchRequestBody, req.body)
        granted = self.ctx.locks.try_lock_batch(
            body.consumer_group, body.mq_set, body.client_id, self.ctx.now_ms()
        )
        reply = LockBatchResponseBody(lock_ok_mq_set=tuple(sorted(granted)))
        return req.reply(ResponseCode.SUCCESS, None, None, encode_body(reply))

    async def unlock_batch(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        body = decode_body(UnlockBatchRequestBody, req.body)
        self.ctx.locks.unlock_batch(body.consumer_group, body.mq_set, body.client_id)
        return req.reply(ResponseCode.SUCCESS)

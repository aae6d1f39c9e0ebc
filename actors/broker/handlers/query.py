"""QUERY_MESSAGE by key and VIEW_MESSAGE_BY_ID (reference §7.11)."""

from __future__ import annotations

from actors.broker.context import BrokerContext
from actors.remoting.router import RequestContext, RequestError, Router
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_header
from protocol.headers.query import QueryMessageRequestHeader, ViewMessageRequestHeader


class QueryHandlers:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def register(self, router: Router) -> None:
        router.register(RequestCode.QUERY_MESSAGE, self.query_message, limit=8)
        router.register(RequestCode.VIEW_MESSAGE_BY_ID, self.view_message, limit=8)

    async def query_message(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(QueryMessageRequestHeader, req.ext_fields)
        max_num = self.ctx.store_config.defaultQueryMaxNum if h.unique_key_query else h.max_num
        result = self.ctx.store.query_message(
            h.topic, h.key, max_num, h.begin_timestamp, h.end_timestamp
        )
        fields = {
            "indexLastUpdateTimestamp": str(result.index_last_update_timestamp),
            "indexLastUpdatePhyoffset": str(result.index_last_update_phyoffset),
        }
        if not result.records:
            return req.reply(
                ResponseCode.QUERY_NOT_FOUND,
                "can not find message, maybe time range not correct",
                fields,
            )
        return req.reply(ResponseCode.SUCCESS, None, fields, b"".join(result.records))

    async def view_message(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(ViewMessageRequestHeader, req.ext_fields)
        record = self.ctx.store.select_one_message_by_offset(h.offset)
        if record is None:
            raise RequestError(
                ResponseCode.SYSTEM_ERROR, f"can not find message by the offset, {h.offset}"
            )
        return req.reply(ResponseCode.SUCCESS, None, None, bytes(record))

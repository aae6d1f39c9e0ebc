"""Consumer offsets and queue offsets (reference §7.7).

QUERY_CONSUMER_OFFSET answers 0 for a group that never committed on a queue whose first message
is still "in memory", as 4.9 does; the C++ clients depend on it (clients README fact 9): with
QUERY_NOT_FOUND they start at the queue's end and miss everything sent before they started.
"""

from __future__ import annotations

import os

from actors.broker.context import BrokerContext
from actors.remoting.router import RequestContext, Router
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import decode_header
from protocol.headers.offset import (
    GetEarliestMsgStoretimeRequestHeader,
    GetMaxOffsetRequestHeader,
    GetMinOffsetRequestHeader,
    QueryConsumerOffsetRequestHeader,
    SearchOffsetRequestHeader,
    UpdateConsumerOffsetRequestHeader,
)


def _physical_memory() -> int:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return 8 * 1024**3


def first_message_in_memory(ctx: BrokerContext, topic: str, queue_id: int) -> bool:
    """Whether offset 0 of the queue lies within the newest ``accessMessageInMemoryMaxRatio``
    percent of RAM worth of commit log (Java's ``checkInDiskByConsumeOffset`` negated)."""
    store = ctx.store
    if store.max_offset_in_queue(topic, queue_id) <= 0:
        return True
    phys = store.commit_log_offset_in_queue(topic, queue_id, 0)
    if phys < 0:
        return True
    window = _physical_memory() * ctx.store_config.accessMessageInMemoryMaxRatio // 100
    return bool(store.max_phy_offset - phys <= window)


class OffsetHandlers:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def register(self, router: Router) -> None:
        # These never await: the connection's reader runs them itself, no task per request.
        router.register(RequestCode.QUERY_CONSUMER_OFFSET, self.query_consumer_offset, inline=True)
        router.register(
            RequestCode.UPDATE_CONSUMER_OFFSET, self.update_consumer_offset, inline=True
        )
        router.register(RequestCode.GET_MAX_OFFSET, self.get_max_offset, inline=True)
        router.register(RequestCode.GET_MIN_OFFSET, self.get_min_offset, inline=True)
        router.register(RequestCode.SEARCH_OFFSET_BY_TIMESTAMP, self.search_offset, inline=True)
        router.register(RequestCode.GET_EARLIEST_MSG_STORETIME, self.earliest_time, inline=True)

    async def query_consumer_offset(
        self, _: RequestContext, req: RemotingCommand
    ) -> RemotingCommand:
        h = decode_header(QueryConsumerOffsetRequestHeader, req.ext_fields)
        offset = self.ctx.offsets.query(h.consumer_group, h.topic, h.queue_id)
        if offset >= 0:
            return req.reply(ResponseCode.SUCCESS, None, {"offset": str(offset)})
        min_offset = self.ctx.store.min_offset_in_queue(h.topic, h.queue_id)
        if min_offset <= 0 and first_message_in_memory(self.ctx, h.topic, h.queue_id):
            return req.reply(ResponseCode.SUCCESS, None, {"offset": "0"})
        return req.reply(
            ResponseCode.QUERY_NOT_FOUND,
            "Not found, V3_0_6_SNAPSHOT maybe this group consumer boot first",
        )

    async def update_consumer_offset(
        self, _: RequestContext, req: RemotingCommand
    ) -> RemotingCommand:
        h = decode_header(UpdateConsumerOffsetRequestHeader, req.ext_fields)
        self.ctx.offsets.commit(h.consumer_group, h.topic, h.queue_id, h.commit_offset)
        return req.reply(ResponseCode.SUCCESS)

    async def get_max_offset(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(GetMaxOffsetRequestHeader, req.ext_fields)
        offset = self.ctx.store.max_offset_in_queue(h.topic, h.queue_id)
        return req.reply(ResponseCode.SUCCESS, None, {"offset": str(offset)})

    async def get_min_offset(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(GetMinOffsetRequestHeader, req.ext_fields)
        offset = self.ctx.store.min_offset_in_queue(h.topic, h.queue_id)
        return req.reply(ResponseCode.SUCCESS, None, {"offset": str(offset)})

    async def search_offset(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(SearchOffsetRequestHeader, req.ext_fields)
        offset = self.ctx.store.offset_in_queue_by_time(h.topic, h.queue_id, h.timestamp)
        return req.reply(ResponseCode.SUCCESS, None, {"offset": str(offset)})

    async def earliest_time(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        h = decode_header(GetEarliestMsgStoretimeRequestHeader, req.ext_fields)
        timestamp = self.ctx.store.earliest_message_time(h.topic, h.queue_id)
        return req.reply(ResponseCode.SUCCESS, None, {"timestamp": str(timestamp)})

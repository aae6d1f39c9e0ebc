"""GET_BROKER_HA_STATUS (907, RocketMQ 5's; 4.9 reports HA state nowhere): a master's slave
links, or a slave's link to its master, as RocketMQ 5's HARuntimeInfo.

A slave link is in sync (RocketMQ 5's isInSyncSlave) when it has reported and is less than
``haSlaveFallbehindMax`` bytes behind (5.x names that gap haMaxGapNotInSync; same default).
``masterFlushOffset`` stays 0, as from RocketMQ 5's DefaultHAClient: only its controller-mode
client learns the master's flushed offset.
"""

from __future__ import annotations

import trio

from actors.broker.context import BrokerContext
from actors.remoting.router import RequestContext, Router
from protocol.bodies.admin import HAClientRuntimeInfo, HAConnectionRuntimeInfo, HARuntimeInfo
from protocol.codes import GET_BROKER_HA_STATUS, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import encode_body


def ha_runtime_info(ctx: BrokerContext) -> HARuntimeInfo:
    now = trio.current_time()
    end = ctx.store.max_phy_offset
    if ctx.is_slave:
        f = ctx.following
        return HARuntimeInfo(
            master=False,
            ha_client_runtime_info=HAClientRuntimeInfo(
                master_addr=f.master_addr,
                transferred_byte_in_second=f.flow.per_second(now),
                max_offset=end,
                last_read_timestamp=f.last_read_ms,
                last_write_timestamp=f.last_write_ms,
            ),
        )
    rep = ctx.replication
    gap = ctx.store_config.haSlaveFallbehindMax
    links = []
    for addr, acked in sorted(rep.slaves.items()):
        link = rep.links.get(addr)
        links.append(
            HAConnectionRuntimeInfo(
                addr=addr,
                slave_ack_offset=acked,
                diff=end - acked,
                in_sync=acked >= 0 and end - acked < gap,
                transferred_byte_in_second=link.flow.per_second(now) if link else 0,
                transfer_from_where=link.transfer_from if link else -1,
            )
        )
    return HARuntimeInfo(
        master=True,
        master_commit_log_max_offset=end,
        in_sync_slave_nums=sum(link.in_sync for link in links),
        ha_connection_info=tuple(links),
    )


class HAStatusHandler:
    def __init__(self, ctx: BrokerContext) -> None:
        self.ctx = ctx

    def register(self, router: Router) -> None:
        router.register(GET_BROKER_HA_STATUS, self.handle, limit=4)

    async def handle(self, _: RequestContext, req: RemotingCommand) -> RemotingCommand:
        body = encode_body(ha_runtime_info(self.ctx))
        return req.reply(ResponseCode.SUCCESS, None, None, body)

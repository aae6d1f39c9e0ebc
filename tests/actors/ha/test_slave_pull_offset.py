"""A slave without slaveReadEnable answers a pull PULL_RETRY_IMMEDIATELY (go to the master) and
returns nothing: the consumer must pull the same offset again, so nextBeginOffset is the
requested offset.  Java answers the offset past what it scanned; a consumer then skipped
acknowledged messages when a pull held on a master was answered after its demotion (found by
tests/sim's role_switch_under_load)."""

from __future__ import annotations

import trio

from protocol.codes import ResponseCode
from tests.actors.broker.wire import pull
from tests.actors.ha.test_replication import TOPIC, caught_up, send, start_pair, until


async def test_a_slave_without_slave_read_keeps_the_consumers_offset(
    nursery, tmp_path, namesrv_addr, client
) -> None:
    master, slave = await start_pair(nursery, tmp_path, namesrv_addr, slave_read=False)
    with trio.fail_after(60):
        replies = await send(client, master, 10)
        assert all(r.code == ResponseCode.SUCCESS for r in replies)
        await caught_up(slave, master)
        await until(lambda: TOPIC in slave.ctx.topics)
        reply = await client.invoke(slave.address, pull(TOPIC, offset=1, suspend_ms=0), 5)
    assert reply.code == ResponseCode.PULL_RETRY_IMMEDIATELY, reply.remark
    assert reply.ext_fields["suggestWhichBrokerId"] == "0"
    assert reply.ext_fields["nextBeginOffset"] == "1"
    assert not reply.body

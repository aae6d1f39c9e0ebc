"""GET_BROKER_HA_STATUS (RocketMQ 5's 907) on a master and on its slave: RocketMQ 5's
HARuntimeInfo keys and values; rmqadmin haStatus prints them as 5.x mqadmin does."""

from __future__ import annotations

from actors.ha.state import FlowMeter
from apps.admin import build_parser, run_command
from protocol.codes import GET_BROKER_HA_STATUS, ResponseCode
from protocol.command import RemotingCommand
from protocol.fastjson import loads
from tests.actors.ha.test_replication import caught_up, send, start_pair, until


async def ha_status(client, broker) -> dict:
    reply = await client.invoke(
        broker.address, RemotingCommand.request(GET_BROKER_HA_STATUS, {}), 5
    )
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    return loads(reply.body.decode())


async def test_ha_status_of_master_and_slave(nursery, tmp_path, namesrv_addr, client, ha_clock):
    master, slave = await start_pair(nursery, tmp_path, namesrv_addr)
    await send(client, master, 10)
    await caught_up(slave, master)
    end = master.ctx.store.max_phy_offset
    # the slave's last report (its ack) reaches the master just after its append
    await until(lambda: master.ctx.replication.acked.current == end)

    on_master = await ha_status(client, master)
    assert set(on_master) == {
        "master", "masterCommitLogMaxOffset", "inSyncSlaveNums", "haConnectionInfo",
        "haClientRuntimeInfo",
    }  # fmt: skip
    assert on_master["master"] is True
    assert on_master["masterCommitLogMaxOffset"] == end
    assert on_master["inSyncSlaveNums"] == 1
    (link,) = on_master["haConnectionInfo"]
    assert set(link) == {
        "addr", "slaveAckOffset", "diff", "inSync", "transferredByteInSecond", "transferFromWhere",
    }  # fmt: skip
    assert link["addr"].startswith("127.0.0.1:")
    assert (link["slaveAckOffset"], link["diff"], link["inSync"]) == (end, 0, True)
    assert link["transferFromWhere"] == end

    on_slave = await ha_status(client, slave)
    assert on_slave["master"] is False
    assert on_slave["haConnectionInfo"] == []
    follower = on_slave["haClientRuntimeInfo"]
    assert set(follower) == {
        "masterAddr", "transferredByteInSecond", "maxOffset", "lastReadTimestamp",
        "lastWriteTimestamp", "masterFlushOffset",
    }  # fmt: skip
    assert follower["masterAddr"] == f"127.0.0.1:{master.ctx.store_config.haListenPort}"
    assert follower["maxOffset"] == end
    assert follower["lastReadTimestamp"] > 0
    assert follower["lastWriteTimestamp"] > 0

    text, data = await run_command(
        build_parser().parse_args(["haStatus", "-n", namesrv_addr, "-b", slave.address])
    )
    assert f"#MasterAddr\t{follower['masterAddr']}\n#CommitLogMaxOffset\t{end}\n" in text
    assert data[slave.address]["haClientRuntimeInfo"]["maxOffset"] == end
    text, _ = await run_command(
        build_parser().parse_args(["haStatus", "-n", namesrv_addr, "-b", master.address])
    )
    assert "#SlaveNum\t1\n#InSyncSlaveNum\t1\n" in text
    assert f"{link['addr']:<32s}  {end:<16d} {0:16d}" in text


def test_flow_meter_reports_the_last_whole_second() -> None:
    meter = FlowMeter()
    meter.add(100, 10.2)
    meter.add(50, 10.9)
    assert meter.per_second(10.95) == 0  # second 10 is not over yet
    assert meter.per_second(11.0) == 150
    meter.add(7, 11.5)
    assert meter.per_second(12.1) == 7
    assert meter.per_second(13.4) == 0  # nothing in second 12
    meter.add(1, 20.0)
    assert meter.per_second(22.0) == 0  # a gap: second 21 moved nothing

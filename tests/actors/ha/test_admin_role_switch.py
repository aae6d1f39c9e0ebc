"""rmqadmin switchBrokerRole (apps/admin.py) against running brokers: promote the slave, demote
the old master to follow it (its HA address given, the divergence point from the promotion's
reply), and the group replicates the other way."""

from __future__ import annotations

import pytest

from apps.admin import AdminError, build_parser, run_command
from storage.config import BrokerRole
from tests.actors.ha.test_replication import caught_up, log_bytes, send, start_pair, until


async def rmqadmin(*args: str) -> tuple[str, dict]:
    """No -n: the command talks to the broker only."""
    text, data = await run_command(build_parser().parse_args(["switchBrokerRole", *args]))
    return text, data


async def test_switch_broker_role_promotes_and_demotes(
    nursery, tmp_path, namesrv_addr, client, ha_clock
):
    master, slave = await start_pair(nursery, tmp_path, namesrv_addr)
    await send(client, master, 10)
    await caught_up(slave, master)

    text, data = await rmqadmin("-b", slave.address, "-r", "SYNC_MASTER")
    assert slave.ctx.role.value is BrokerRole.SYNC_MASTER
    at = master.ctx.store.max_phy_offset
    assert data == {
        "brokerAddr": slave.address,
        "brokerRole": "SYNC_MASTER",
        "brokerId": 0,
        "maxPhyOffset": at,
        "changed": True,
    }
    assert text.startswith(f"switch broker role success, {slave.address}: SYNC_MASTER")
    await send(client, master, 4, b"never-acknowledged-by-anyone")

    ha = f"127.0.0.1:{slave.ctx.store_config.haListenPort}"
    _, data = await rmqadmin(
        "-b", master.address, "-r", "SLAVE", "-i", "2", "--truncate-to", str(at),
        "--ha-master-addr", ha,
    )  # fmt: skip
    assert data["brokerId"] == 2
    assert data["changed"]
    assert master.ctx.role.value is BrokerRole.SLAVE
    assert master.ctx.store_config.haMasterAddress == ha
    # it follows the given address: a SYNC_MASTER send is answered once it has the message
    await until(lambda: slave.ctx.replication.slaves, 30)
    for reply in await send(client, slave, 6, b"from-the-new-master"):
        assert reply.code == 0, reply.remark
    await caught_up(master, slave)
    assert log_bytes(master.ctx.store) == log_bytes(slave.ctx.store)

    text, data = await rmqadmin("-b", slave.address, "-r", "SYNC_MASTER")
    assert not data["changed"]
    assert "unchanged (already in this role)" in text
    # a refused switch is the command's failure, with the broker's reason
    with pytest.raises(AdminError, match="only a demotion truncates"):
        await rmqadmin("-b", slave.address, "-r", "ASYNC_MASTER", "--truncate-to", "0")

"""Replication lag in /metrics (issue 18's "flush and replication lag"): per slave on the
master, the master's silence on the slave."""

from __future__ import annotations

import socket

import trio
from prometheus_client import CollectorRegistry, generate_latest

from actors.broker.observe import BrokerCollector
from protocol.ha import encode_report
from storage.config import BrokerRole
from tests.actors.broker.conftest import start_broker
from tests.actors.client.test_ops_metrics import pick, samples
from tests.actors.ha.test_replication import caught_up, send, until


def scrape(broker) -> dict:
    registry = CollectorRegistry()
    registry.register(BrokerCollector(broker.ctx))
    return samples(generate_latest(registry))


async def test_replication_lag_metrics(nursery, tmp_path, namesrv_addr, client, ha_clock):
    master = await start_broker(
        nursery, tmp_path / "m", namesrv_addr, store={"haSlaveFallbehindMax": 1000}
    )
    slave = await start_broker(
        nursery, tmp_path / "s", namesrv_addr, brokerId=1, store={"brokerRole": BrokerRole.SLAVE}
    )
    await send(client, master, 5)
    # a second slave that acknowledges once and then never again
    stuck_at = master.ctx.store.max_phy_offset
    sock = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    await sock.connect(("127.0.0.1", master.ctx.store_config.haListenPort))
    await sock.send(encode_report(stuck_at))
    await until(lambda: stuck_at in master.ctx.replication.slaves.values())
    await send(client, master, 20, b"x" * 100)
    await caught_up(slave, master)
    end = master.ctx.store.max_phy_offset
    await until(lambda: max(master.ctx.replication.slaves.values()) == end)

    found = scrape(master)
    lags = {
        dict(labels)["slave_addr"]: value
        for (name, labels), value in found.items()
        if name == "rocketmq_ha_slave_lag_bytes"
    }
    assert sorted(lags.values()) == [0, end - stuck_at]
    assert end - stuck_at > 1000
    assert pick(found, "rocketmq_ha_slaves", state="connected") == 2
    assert pick(found, "rocketmq_ha_slaves", state="in_sync") == 1  # the stuck one is 1000+ behind
    assert not [n for n, _ in found if n == "rocketmq_ha_master_silence_seconds"]  # a master

    on_slave = scrape(slave)
    assert 0 <= pick(on_slave, "rocketmq_ha_master_silence_seconds") < 10
    assert pick(on_slave, "rocketmq_ha_slaves", state="connected") == 0
    sock.close()

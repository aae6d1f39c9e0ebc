"""An Apache RocketMQ 4.9.7 slave in a group with automatic failover (etcdEndpoints set on our
brokers): it sends no failover hello, so our master replicates to it as to any Java slave, but
it never joins the in-sync set (it could never be elected: it runs no elector).  Its commit log
ends byte-identical to the master's; SYNC_MASTER sends are acknowledged with it connected.

Our master and our in-sync slave run in this process against a real etcd; the name server is
ours (the Apache slave learns the master's HA address from its REGISTER_BROKER reply)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from protocol.codes import ResponseCode
from tests.actors.broker.conftest import client, namesrv_addr  # noqa: F401
from tests.actors.broker.wire import send_v2
from tests.compat.jvm import Jvm
from tests.compat.processes import ManagedProcess, free_port, write_properties
from tests.compat.servers import broker_properties
from tests.compat.test_ha_compat import _apache_broker, _log_bytes
from tests.failover.etcd_proc import EtcdCluster, etcd_available, start_etcd
from tests.failover.test_broker_failover import log_bytes, member, wait_until

pytestmark = [
    pytest.mark.compat,
    pytest.mark.java,
    pytest.mark.skipif(
        not etcd_available(), reason="etcd-server is not installed (scripts/test.sh installs it)"
    ),
]

TOPIC = "FoApacheSlave"
APACHE_ID = 5


@pytest.fixture
def etcd() -> Iterator[EtcdCluster]:
    c = start_etcd(1)
    yield c
    c.stop()


def _apache_slave(jvm: Jvm, work: Path, namesrv: str) -> tuple[ManagedProcess, Path]:
    port = free_port(neighbours=(-2, 1))
    store = work / "apache-store"
    props = broker_properties(listen_port=port, namesrv_addr=namesrv, store=store)
    props.update(
        brokerClusterName="DefaultCluster",  # ours (broker_config) and Apache's default
        brokerName="broker-a",
        brokerId=APACHE_ID,
        brokerRole="SLAVE",
        mappedFileSizeCommitLog=1024 * 1024,  # small_store's, so both logs roll alike
        haSendHeartbeatInterval=1000,  # its first report (it sends none at connect)
    )
    props.pop("transactionTimeOut", None)
    props.pop("transactionCheckInterval", None)
    conf = write_properties(work / "apache-slave.conf", props)
    return _apache_broker(jvm, conf, work), store


async def test_an_apache_slave_follows_a_failover_master_outside_the_in_sync_set(
    nursery,
    tmp_path,
    namesrv_addr,  # noqa: F811
    client,  # noqa: F811
    etcd,
    jvm,
):
    ep = etcd.endpoints
    m = await member(nursery, tmp_path, namesrv_addr, ep, 0)
    s1 = await member(nursery, tmp_path, namesrv_addr, ep, 1)
    await wait_until(lambda: m.is_master(), 15)
    fo = m.ctx.failover
    await wait_until(lambda: fo.syncset.written.value == {1}, 15)
    # spawned from this thread: the child dies with the thread that forked it (PDEATHSIG)
    proc, apache_store = _apache_slave(jvm, tmp_path, namesrv_addr)
    try:
        rep = m.ctx.replication
        # the Apache slave connects (no hello: no broker id) once it has registered
        await wait_until(
            lambda: any(p not in m.ctx.replication.ids for p in m.ctx.replication.slaves), 60
        )
        rep = m.ctx.replication
        for i in range(40):
            r = await client.invoke(
                m.ctx.broker_addr, send_v2(TOPIC, b"apache-%d" % i, queue_id=i % 4), 10
            )
            assert r.code == ResponseCode.SUCCESS, r.remark
        end = m.ctx.store.max_phy_offset
        plain = next(p for p in rep.slaves if p not in rep.ids)
        await wait_until(lambda: rep.slaves.get(plain) == end, 30)
        assert await trio.to_thread.run_sync(_log_bytes, apache_store, end) == log_bytes(
            m.ctx.store, end
        )
        await trio.sleep(0.5)
        # our slave is the only member; etcd agrees
        assert fo.syncset.wanted.value == {1}
        assert fo.syncset.written.value == {1}
        assert APACHE_ID not in fo.view.syncset.members
        assert s1.ctx.store.max_phy_offset == end
    except BaseException:
        print(proc.describe())
        raise
    finally:
        proc.stop(5.0)

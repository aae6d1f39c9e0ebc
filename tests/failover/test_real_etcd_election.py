"""The election against real etcd (Debian's etcd-server): one node, and three nodes on loopback
with one killed.  Brokers are elector actors with recording hooks here; the broker end to end
is in test_broker_failover.py."""

from __future__ import annotations

import pytest
import trio

from actors.failover.actor import Failover, FailoverHooks, failover_elector
from actors.failover.election import Elector, GroupKeys, group_prefix
from actors.failover.etcd import EtcdClient, parse_endpoints
from tests.failover.etcd_proc import EtcdCluster, etcd_available, start_etcd
from tests.failover.test_election import Broker

pytestmark = pytest.mark.skipif(
    not etcd_available(), reason="etcd-server is not installed (scripts/test.sh installs it)"
)

TTL = 2  # short: etcd_proc.py runs etcd with 500 ms elections (its minimum TTL is then 1 s)
KEYS = GroupKeys(group_prefix("/rocketmq", "C", "b"))


async def start(
    nursery: trio.Nursery, cluster: EtcdCluster, broker_id: int, *, master: bool
) -> Broker:
    b = Broker(broker_id)
    el = Elector(
        broker_id, f"127.0.0.1:{10911 + broker_id}", f"127.0.0.1:{10912 + broker_id}", master
    )
    client = EtcdClient(parse_endpoints(cluster.endpoints), timeout=1.0)
    b.fo = Failover(client, KEYS, el, FailoverHooks(b.promote, b.follow, b.fence), ttl=TTL)
    b.scope = trio.CancelScope()
    scope, fo = b.scope, b.fo

    async def run() -> None:
        with scope:
            await failover_elector(fo)

    nursery.start_soon(run)
    return b


async def wait_until(pred, timeout: float) -> None:
    with trio.fail_after(timeout):
        while not pred():  # noqa: ASYNC110 - polls the electors' recorded state
            await trio.sleep(0.02)


@pytest.fixture(params=[1, 3], ids=["one-node", "three-nodes"])
def cluster(request):
    c = start_etcd(request.param)
    yield c
    c.stop()


async def test_master_death_elects_the_in_sync_slave(cluster, nursery):
    m = await start(nursery, cluster, 0, master=True)
    s1 = await start(nursery, cluster, 1, master=False)
    s2 = await start(nursery, cluster, 2, master=False)
    await wait_until(
        lambda: m.master_epoch == 1 and s1.kinds() == ["follow"] and s2.kinds() == ["follow"], 10
    )
    assert m.fo is not None
    assert m.scope is not None
    m.fo.syncset.add(1)
    await wait_until(lambda: m.fo.syncset.written.value == {1}, 5)
    if len(cluster.nodes) == 3:
        cluster.nodes[0].kill()  # one etcd node down: the other two keep a quorum
    died = trio.current_time()
    m.scope.cancel()  # the master dies without revoking its lease
    await wait_until(lambda: s1.master_epoch == 2, 4 * TTL + 5)
    took = trio.current_time() - died
    assert took >= TTL * 0.5  # the lease had to lapse first
    await wait_until(
        lambda: (
            s2.fo is not None and s2.fo.following is not None and s2.fo.following.broker_id == 1
        ),
        5,
    )
    assert s2.master_epoch == 0


async def test_master_cut_from_etcd_fences_itself_before_anyone_else_leads(cluster, nursery):
    m = await start(nursery, cluster, 0, master=True)
    s1 = await start(nursery, cluster, 1, master=False)
    await wait_until(lambda: m.master_epoch == 1 and s1.kinds() == ["follow"], 10)
    assert m.fo is not None
    m.fo.syncset.add(1)
    await wait_until(lambda: m.fo.syncset.written.value == {1}, 5)
    # cut: the master's client now points at a port nobody listens on
    assert isinstance(m.fo.etcd, EtcdClient)
    m.fo.etcd.endpoints = [("127.0.0.1", 1)]
    await wait_until(lambda: s1.master_epoch == 2, 4 * TTL + 5)
    fenced = [t for t, kind, _ in m.events if kind == "fence"]
    promoted = [t for t, kind, _ in s1.events if kind == "promote"]
    assert fenced
    assert promoted
    assert fenced[0] < promoted[0]

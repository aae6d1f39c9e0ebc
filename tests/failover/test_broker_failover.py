"""Brokers with etcdEndpoints set, in process, against a real etcd: election through the role
switch, replication under the elected epoch, failover to the in-sync slave, and a returning old
master that follows the new one and cuts its divergent tail."""

from __future__ import annotations

import functools

import pytest
import trio

from actors.broker.app import BrokerHandle, broker
from actors.broker.failover import IN_SYNC_CHECK
from actors.failover.election import SyncSet
from actors.failover.etcd import EtcdClient, parse_endpoints
from protocol.codes import ResponseCode
from protocol.ha import TransferDecoder, encode_epoch, encode_hello, encode_report
from storage.config import BrokerRole
from storage.results import MessageInner
from tests.actors.broker.conftest import broker_config, small_store
from tests.actors.broker.wire import send_v2
from tests.failover.etcd_proc import etcd_available, start_etcd

pytestmark = pytest.mark.skipif(
    not etcd_available(), reason="etcd-server is not installed (scripts/test.sh installs it)"
)

TOPIC = "TopicFO"
TTL = 2


@pytest.fixture
def etcd():
    c = start_etcd(1)
    yield c
    c.stop()


class Node:
    def __init__(self, nursery, store_dir, namesrv, endpoints, *, role, broker_id):
        self.nursery, self.store_dir = nursery, store_dir
        self.config = broker_config(
            namesrv, brokerId=broker_id, etcdEndpoints=endpoints, etcdLeaseTtlSeconds=TTL
        )
        self.role = role
        self.handle: BrokerHandle | None = None
        self.scope: trio.CancelScope | None = None

    async def start(self) -> Node:
        scope = trio.CancelScope()
        fn = functools.partial(
            broker,
            self.config,
            small_store(self.store_dir, brokerRole=self.role, slaveTimeout=1000),
            host="127.0.0.1",
        )

        async def run(task_status=trio.TASK_STATUS_IGNORED):
            with scope:
                await fn(task_status=task_status)

        self.handle = await self.nursery.start(run)
        self.scope = scope
        return self

    def crash(self) -> None:
        assert self.scope is not None
        self.scope.cancel()  # no unregistration, no lease revoke: as good as dead to etcd

    @property
    def ctx(self):
        assert self.handle is not None
        return self.handle.ctx

    def is_master(self) -> bool:
        return self.ctx.role.value is not BrokerRole.SLAVE


async def wait_until(pred, timeout: float) -> None:
    with trio.fail_after(timeout):
        while not pred():  # noqa: ASYNC110 - polls other processes' and actors' state
            await trio.sleep(0.02)


async def member(nursery, tmp_path, namesrv_addr, endpoints, broker_id: int) -> Node:
    """Member ``broker_id`` of the group, started: id 0 is configured SYNC_MASTER with its store
    in tmp_path/m, the others SLAVE in tmp_path/s<id>; the same id again restarts that broker."""
    master = broker_id == 0
    return await Node(
        nursery,
        tmp_path / ("m" if master else f"s{broker_id}"),
        namesrv_addr,
        endpoints,
        role=BrokerRole.SYNC_MASTER if master else BrokerRole.SLAVE,
        broker_id=broker_id,
    ).start()


def log_bytes(store, upto: int) -> bytes:
    out, offset = b"", store.min_phy_offset
    while offset < upto:
        chunk = store.read_replication(offset, 1 << 20)
        assert chunk
        out, offset = out + chunk, offset + len(chunk)
    return out[: upto - store.min_phy_offset]


async def test_failover_to_the_in_sync_slave_and_the_old_master_rejoins(
    nursery, tmp_path, namesrv_addr, client, etcd
):
    ep = etcd.endpoints
    m = await member(nursery, tmp_path, namesrv_addr, ep, 0)
    s1 = await member(nursery, tmp_path, namesrv_addr, ep, 1)
    s2 = await member(nursery, tmp_path, namesrv_addr, ep, 2)
    # everyone starts as a slave; etcd makes the configured master the master of epoch 1
    await wait_until(lambda: m.is_master() and m.ctx.role.value is BrokerRole.SYNC_MASTER, 15)
    assert m.ctx.config.brokerId == 0
    fo = m.ctx.failover
    await wait_until(lambda: fo.syncset.written.value == {1, 2}, 15)
    acked = []
    for i in range(30):
        r = await client.invoke(m.ctx.broker_addr, send_v2(TOPIC, b"a%d" % i, queue_id=i % 2), 10)
        assert r.code == ResponseCode.SUCCESS, r.remark
        acked.append(int(r.ext_fields["queueOffset"]))
    end = m.ctx.store.max_phy_offset
    before = log_bytes(m.ctx.store, end)
    # a tail nobody acknowledged: appended, then the master dies before any checkpoint, so no
    # slave ever gets it
    for i in range(5):
        assert m.ctx.store.put_message(MessageInner(TOPIC, 0, b"unacked%d" % i, {})).ok
    assert m.ctx.store.max_phy_offset > end
    m.crash()
    await wait_until(lambda: s1.is_master() or s2.is_master(), 6 * TTL + 10)
    new, other = (s1, s2) if s1.is_master() else (s2, s1)
    assert new.ctx.failover.leading == 2
    assert new.ctx.role.value is BrokerRole.SYNC_MASTER
    # nothing acknowledged was lost: the new master's log begins with all of it
    assert log_bytes(new.ctx.store, end) == before
    await wait_until(lambda: other.ctx.failover.epoch == 2, 10)
    await wait_until(
        lambda: new.ctx.failover.syncset.written.value == {other.ctx.failover.elector.broker_id}, 15
    )
    for i in range(8):  # the new epoch's writes where the old master's tail was
        r = await client.invoke(new.ctx.broker_addr, send_v2(TOPIC, b"after%d" % i), 10)
        assert r.code == ResponseCode.SUCCESS, r.remark
    # the old master comes back: it follows epoch 2 and never leads
    back = await member(nursery, tmp_path, namesrv_addr, ep, 0)
    await wait_until(
        lambda: (
            back.ctx.failover.epoch == 2
            and back.ctx.store.max_phy_offset == new.ctx.store.max_phy_offset
        ),
        20,
    )
    assert not back.is_master()
    n = new.ctx.store.max_phy_offset
    assert log_bytes(back.ctx.store, n) == log_bytes(new.ctx.store, n)


async def test_sync_master_send_waits_for_a_lagging_member_to_leave_the_in_sync_set(
    nursery, tmp_path, namesrv_addr, client, etcd
):
    ep = etcd.endpoints
    m = await member(nursery, tmp_path, namesrv_addr, ep, 0)
    s1 = await member(nursery, tmp_path, namesrv_addr, ep, 1)
    s2 = await member(nursery, tmp_path, namesrv_addr, ep, 2)
    await wait_until(lambda: m.is_master(), 15)
    fo = m.ctx.failover
    await wait_until(lambda: fo.syncset.written.value == {1, 2}, 15)
    r = await client.invoke(m.ctx.broker_addr, send_v2(TOPIC, b"both"), 10)
    assert r.code == ResponseCode.SUCCESS, r.remark
    s2.crash()  # a member stops acknowledging
    etcd_client = EtcdClient(parse_endpoints(ep))
    start = trio.current_time()
    r = await client.invoke(m.ctx.broker_addr, send_v2(TOPIC, b"one"), 10)
    assert r.code == ResponseCode.SUCCESS, r.remark
    # answered only after slaveTimeout, and only once etcd no longer lists the laggard
    assert trio.current_time() - start >= 1.0
    _, kvs = await etcd_client.range(fo.keys.syncset)
    assert SyncSet.decode(kvs[0].value).members == {1}
    # a master that cannot reach etcd cannot remove a laggard: the send is not acknowledged,
    # although another slave has it
    s2 = await member(nursery, tmp_path, namesrv_addr, ep, 2)
    await wait_until(lambda: fo.syncset.written.value == {1, 2}, 15)
    fo.etcd.endpoints = [("127.0.0.1", 1)]
    s2.crash()
    r = await client.invoke(m.ctx.broker_addr, send_v2(TOPIC, b"none"), 10)
    assert r.code == ResponseCode.FLUSH_SLAVE_TIMEOUT, r.remark
    assert s1.ctx.store.max_phy_offset == m.ctx.store.max_phy_offset  # s1 had it all along


async def _plain_slave(ha_addr: str, report: int) -> tuple[trio.SocketStream, bytes, bool]:
    """A slave as Apache's HAClient is: no failover hello, its first 8 bytes are a report;
    returns the stream, what the master sent within a second, and whether it closed."""
    host, _, port = ha_addr.rpartition(":")
    stream = await trio.open_tcp_stream(host, int(port))
    await stream.send_all(encode_report(report))
    got, closed = b"", False
    with trio.move_on_after(1):
        while not closed:
            chunk = await stream.receive_some(65536)
            got, closed = got + chunk, not chunk
    return stream, got, closed


async def test_ha_handshake_a_plain_slave_is_never_in_the_in_sync_set_a_stale_one_is_refused(
    nursery, tmp_path, namesrv_addr, client, etcd
):
    ep = etcd.endpoints
    m = await member(nursery, tmp_path, namesrv_addr, ep, 0)
    s1 = await member(nursery, tmp_path, namesrv_addr, ep, 1)
    await wait_until(lambda: m.is_master(), 15)
    fo = m.ctx.failover
    await wait_until(lambda: fo.syncset.written.value == {1}, 15)
    for i in range(10):
        r = await client.invoke(m.ctx.broker_addr, send_v2(TOPIC, b"p%d" % i), 10)
        assert r.code == ResponseCode.SUCCESS, r.remark
    end = m.ctx.store.max_phy_offset
    assert fo.term_start() == 0
    ha_addr = f"127.0.0.1:{m.ctx.store_config.haListenPort}"
    # from the start of the log: served (Apache's framing, no epoch first), acks counted
    stream, got, closed = await _plain_slave(ha_addr, 0)
    assert not closed
    dec = TransferDecoder()
    dec.feed(got)
    frames = list(iter(dec.next_transfer, None))
    assert frames
    assert frames[0].phy_offset == 0
    assert b"".join(f.body for f in frames) == log_bytes(m.ctx.store, end)
    await stream.send_all(encode_report(end))
    await wait_until(lambda: m.ctx.replication.plain_acked.get("127.0.0.1") == end, 5)
    await trio.sleep(3 * IN_SYNC_CHECK)
    assert fo.syncset.wanted.value == {1}  # the plain slave never joins
    await stream.aclose()
    # it comes back where it left off: served again (what this master sent it)
    stream, got, closed = await _plain_slave(ha_addr, end)
    assert not closed
    r = await client.invoke(m.ctx.broker_addr, send_v2(TOPIC, b"more"), 10)
    assert r.code == ResponseCode.SUCCESS, r.remark
    with trio.fail_after(5):
        head = await stream.receive_some(12)
    assert head[:8] == end.to_bytes(8, "big")
    await stream.aclose()
    # a plain slave beyond the term's start that this term never served: its tail may be an
    # older master's, which it cannot cut back - refused
    stream, got, closed = await _plain_slave(ha_addr, end + 100)
    assert closed
    assert got == b""
    await stream.aclose()
    assert s1.ctx.failover.epoch == 1
    # our hello: a slave of another epoch learns this master's epoch and is refused; of this
    # epoch it is served and known by its id
    for epoch, served in ((2, False), (0, False), (1, True)):
        host, _, port = ha_addr.rpartition(":")
        async with await trio.open_tcp_stream(host, int(port)) as stream:
            await stream.send_all(encode_hello(7, epoch))
            got, closed = b"", False
            with trio.move_on_after(1):
                while not closed:
                    chunk = await stream.receive_some(65536)
                    got, closed = got + chunk, not chunk
            assert got[:8] == encode_epoch(1)
            assert closed is not served
            assert (7 in m.ctx.replication.ids.values()) is served

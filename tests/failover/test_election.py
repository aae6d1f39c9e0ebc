"""Elections, lease loss, fencing and epochs under autojump_clock, over a fake etcd that keeps
etcd's semantics (tests/failover/fake_etcd.py)."""

from __future__ import annotations

import attrs
import pytest
import trio

from actors.failover.actor import Failover, FailoverHooks, failover_elector
from actors.failover.election import (
    FENCE_MARGIN,
    Elector,
    GroupKeys,
    GroupView,
    Kind,
    MasterRecord,
    SyncSet,
    group_prefix,
)
from tests.failover.fake_etcd import FakeEtcd

TTL = 10
KEYS = GroupKeys(group_prefix("/rocketmq", "C", "b"))


@attrs.define
class Broker:
    """The hooks' side: what a broker would have done, with the time it did it."""

    broker_id: int
    events: list[tuple[float, str, int]] = attrs.Factory(list)
    master_epoch: int = 0  # accepting writes as master of this epoch (0: not)
    fo: Failover | None = None
    scope: trio.CancelScope | None = None

    async def promote(self, epoch: int) -> None:
        self.master_epoch = epoch
        self.events.append((trio.current_time(), "promote", epoch))

    async def follow(self, m: MasterRecord) -> None:
        self.master_epoch = 0
        self.events.append((trio.current_time(), "follow", m.broker_id))

    async def fence(self) -> None:
        self.master_epoch = 0
        self.events.append((trio.current_time(), "fence", 0))

    def kinds(self) -> list[str]:
        return [e[1] for e in self.events]


async def start(nursery: trio.Nursery, etcd: FakeEtcd, broker_id: int, *, master: bool) -> Broker:
    b = Broker(broker_id)
    el = Elector(broker_id, f"10.0.0.{broker_id}:10911", f"10.0.0.{broker_id}:10912", master)
    fo = Failover(
        etcd.client(f"b{broker_id}"), KEYS, el, FailoverHooks(b.promote, b.follow, b.fence), ttl=TTL
    )
    b.fo = fo
    scope = trio.CancelScope()
    b.scope = scope

    async def run(task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        with scope:
            task_status.started()
            await failover_elector(fo)

    await nursery.start(run)
    return b


def masters(brokers: list[Broker]) -> list[Broker]:
    return [b for b in brokers if b.master_epoch]


@pytest.fixture
async def etcd(nursery: trio.Nursery) -> FakeEtcd:
    e = FakeEtcd()
    nursery.start_soon(e.run)
    return e


async def group(nursery: trio.Nursery, etcd: FakeEtcd) -> list[Broker]:
    bs = [await start(nursery, etcd, 0, master=True)]
    bs += [await start(nursery, etcd, i, master=False) for i in (1, 2)]
    await trio.sleep(1)
    return bs


async def test_first_election_goes_to_the_configured_master_and_slaves_follow(
    nursery, etcd, autojump_clock
):
    # the slaves start first: they must not take the empty group
    s1 = await start(nursery, etcd, 1, master=False)
    s2 = await start(nursery, etcd, 2, master=False)
    await trio.sleep(30)
    assert not masters([s1, s2])
    assert s1.events == []
    assert s2.events == []
    m = await start(nursery, etcd, 0, master=True)
    await trio.sleep(1)
    assert m.master_epoch == 1
    assert s1.kinds() == ["follow"]
    assert s2.kinds() == ["follow"]
    assert s1.fo is not None
    assert s1.fo.epoch == 1


async def test_master_cut_off_fences_before_its_lease_expires_and_an_in_sync_slave_takes_over(
    nursery, etcd, autojump_clock
):
    m, s1, s2 = await group(nursery, etcd)
    assert m.fo is not None
    m.fo.syncset.add(1)
    await trio.sleep(1)
    assert m.fo.syncset.written.value == {1}
    lease = m.fo.elector.lease
    expiry_at_etcd = etcd.lease_expiry(lease)
    etcd.cut_off("b0")
    await trio.sleep(3 * TTL)
    fenced_at = next(t for t, kind, _ in m.events if kind == "fence")
    # the old master stopped writing before etcd could expire its lease ...
    assert fenced_at <= expiry_at_etcd - FENCE_MARGIN * TTL + 1e-6
    promoted_at, _, epoch = next(e for e in s1.events if e[1] == "promote")
    # ... and the new master started only after that
    assert promoted_at >= expiry_at_etcd > fenced_at
    assert epoch == 2
    assert s2.kinds() == ["follow", "follow"]  # 0, then 1; never a campaign of its own
    assert masters([m, s1, s2]) == [s1]
    # the returning old master is not in the new in-sync set: it follows, never leads
    etcd.reconnect("b0")
    await trio.sleep(3 * TTL)
    assert m.kinds()[-1] == "follow"
    assert m.fo.following is not None
    assert m.fo.following.broker_id == 1
    assert m.fo.following.epoch == 2
    assert masters([m, s1, s2]) == [s1]


async def test_a_slave_outside_the_in_sync_set_is_never_elected(nursery, etcd, autojump_clock):
    m, s1, s2 = await group(nursery, etcd)
    assert m.scope is not None
    m.scope.cancel()  # kill: the lease lapses on its own, the in-sync set is {0} alone
    await trio.sleep(5 * TTL)
    assert not masters([s1, s2])
    _revision, kvs = await etcd.client("t").range(KEYS.prefix, prefix=True)
    assert {kv.key for kv in kvs} == {KEYS.epoch, KEYS.syncset}  # no master key


async def test_double_failure_waits_for_an_in_sync_member_to_return(nursery, etcd, autojump_clock):
    m, s1, s2 = await group(nursery, etcd)
    assert m.fo is not None
    assert m.scope is not None
    assert s1.scope is not None
    m.fo.syncset.add(1)
    await trio.sleep(1)
    m.scope.cancel()
    s1.scope.cancel()
    await trio.sleep(5 * TTL)
    assert not masters([s2])  # 2 may lack acknowledged messages: no election
    back = await start(nursery, etcd, 1, master=False)
    await trio.sleep(3 * TTL)
    assert back.master_epoch == 2
    assert s2.kinds()[-1] == "follow"
    assert s2.fo is not None
    assert s2.fo.epoch == 2


async def test_epochs_only_grow_and_one_master_at_a_time_over_repeated_failovers(
    nursery, etcd, autojump_clock
):
    bs = [await start(nursery, etcd, 0, master=True)]
    bs += [await start(nursery, etcd, i, master=False) for i in (1, 2)]
    await trio.sleep(1)
    seen_epochs = [1]
    for _ in range(6):
        leader = masters(bs)[0]
        assert leader.fo is not None
        for b in bs:
            if b is not leader:
                leader.fo.syncset.add(b.broker_id)
        await trio.sleep(1)
        etcd.cut_off(f"b{leader.broker_id}")
        # at every instant at most one broker believes it is master
        for _ in range(4 * TTL):
            await trio.sleep(1)
            assert len(masters(bs)) <= 1
        etcd.reconnect(f"b{leader.broker_id}")
        await trio.sleep(2 * TTL)
        new = masters(bs)
        assert len(new) == 1
        assert new[0] is not leader
        seen_epochs.append(new[0].master_epoch)
    assert seen_epochs == sorted(set(seen_epochs))


async def test_in_sync_drop_is_written_before_it_returns(nursery, etcd, autojump_clock):
    m, _s1, _s2 = await group(nursery, etcd)
    assert m.fo is not None
    m.fo.syncset.add(1)
    m.fo.syncset.add(2)
    await trio.sleep(1)
    assert await m.fo.syncset.drop(frozenset({2}), timeout=5)
    _, kvs = await etcd.client("t").range(KEYS.syncset)
    assert SyncSet.decode(kvs[0].value).members == {1}
    # cut off from etcd, a drop cannot be confirmed: the caller must not acknowledge
    etcd.cut_off("b0")
    assert not await m.fo.syncset.drop(frozenset({1}), timeout=1)


def test_decide_never_follows_its_own_previous_life():
    el = Elector(3, "a", "h", False)
    el.lease_granted(7, TTL, 0.0)
    old = MasterRecord(3, "a", "h", 4, lease=6)
    d = el.decide(GroupView(master=old, epoch=4, epoch_rev=9), 1.0)
    assert d.kind is Kind.WAIT


def test_decide_fences_at_the_deadline_from_the_keepalive_send_time():
    el = Elector(0, "a", "h", True)
    el.lease_granted(7, TTL, sent_at=100.0)
    mine = MasterRecord(0, "a", "h", 1, lease=7)
    view = GroupView(master=mine, epoch=1, epoch_rev=2)
    deadline = 100.0 + TTL - FENCE_MARGIN * TTL
    assert el.decide(view, deadline - 0.01).kind is Kind.LEAD
    assert el.decide(view, deadline).kind is Kind.FENCE
    el.keepalive_ok(TTL, sent_at=105.0)
    assert el.decide(view, deadline).kind is Kind.LEAD

"""The failover elector: a thin Trio actor around election.Elector.

    failover_elector ... decides after every change (group keys, own lease, fence deadline)
    ├─ _lease .......... grants this broker's lease and renews it every TTL/3; a renewal that
    │                    finds it gone grants a new one
    ├─ _view ........... reads the group's keys, then watches them (re-reading on every event:
    │                    the view is always one consistent revision)
    └─ _keep_syncset ... (master only) writes the in-sync set the send path asks for

It acts on the broker only through ``FailoverHooks`` (promote / follow / fence), so it runs
the same against the broker's role switch and against the tests' recorders.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Awaitable, Callable
from contextlib import aclosing

import attrs
import trio
import trio_util

from actors.failover.election import (
    Decision,
    Elector,
    GroupKeys,
    GroupView,
    Kind,
    MasterRecord,
    SyncSet,
    parse_view,
)
from actors.failover.etcd import Compare, Etcd, EtcdError, EtcdUnavailable, Put
from actors.wake import Wake

log = logging.getLogger(__name__)

RETRY = 0.5  # s between attempts when etcd does not answer
_ETCD_FAILURES = (EtcdUnavailable, EtcdError)


@attrs.define
class FailoverHooks:
    """How the elector changes the broker: each is awaited before the next decision."""

    promote: Callable[[int], Awaitable[None]]  # become master of this epoch
    follow: Callable[[MasterRecord], Awaitable[None]]  # become (stay) a slave of this master
    fence: Callable[[], Awaitable[None]]  # stop accepting writes now (lease may be lapsing)
    # the end of this broker's whole, dispatched records (a new epoch's start: never beyond
    # what the promotion keeps)
    log_end: Callable[[], int] = lambda: 0


@attrs.define(eq=False)
class SyncSetKeeper:
    """The in-sync set as the send path sees it.  ``written`` is what etcd holds for the
    current term; a send may be acknowledged only once every member of ``written`` has it, or
    once a lagging member was removed *in etcd* (``drop``) - never the other way round."""

    written: trio_util.AsyncValue[frozenset[int]] = attrs.Factory(
        lambda: trio_util.AsyncValue(frozenset())
    )
    wanted: trio_util.AsyncValue[frozenset[int]] = attrs.Factory(
        lambda: trio_util.AsyncValue(frozenset())
    )
    epoch: int = 0

    def reset(self, epoch: int, members: frozenset[int] = frozenset()) -> None:
        """A term begins (or resumes after a fence): ``members`` is what etcd holds for it -
        a master leading again in the same epoch must keep waiting for those it listed."""
        self.epoch = epoch
        self.written.value = members
        self.wanted.value = members

    def add(self, broker_id: int) -> None:
        """A slave caught up with this master's end: it may join."""
        if broker_id not in self.wanted.value:
            self.wanted.value = self.wanted.value | {broker_id}

    async def drop(self, ids: frozenset[int], timeout: float) -> bool:
        """Remove lagging members; True once etcd no longer lists any of them."""
        if not ids & self.written.value and not ids & self.wanted.value:
            return True
        self.wanted.value = self.wanted.value - ids
        with trio.move_on_after(timeout):
            await self.written.wait_value(lambda w: not (w & ids))
            return True
        return False


@attrs.define(eq=False)
class Failover:
    """The running elector's state, for the broker and the tests to look at."""

    etcd: Etcd
    keys: GroupKeys
    elector: Elector
    hooks: FailoverHooks
    ttl: int = 10
    syncset: SyncSetKeeper = attrs.Factory(SyncSetKeeper)
    view: GroupView = attrs.Factory(GroupView)
    changed: Wake = attrs.Factory(Wake)
    leading: int = 0  # the epoch this broker is master of (0: not master)
    # the highest end offset this master acknowledged a SYNC_MASTER send for (from its log end
    # when the term began: what the previous terms acknowledged lies below it); a slave that
    # reached it holds every acknowledged message and may join the in-sync set
    acked_end: int = 0
    following: MasterRecord | None = None
    decisions: int = 0

    def term_start(self) -> int | None:
        """The commit-log offset this master's epoch began at (None: not master, or the
        epoch key does not say): below it this log equals its predecessor's."""
        return dict(self.view.starts).get(self.leading) if self.leading else None

    @property
    def epoch(self) -> int:
        """The epoch of the master this broker is or follows (what the HA handshake checks)."""
        if self.leading:
            return self.leading
        return self.following.epoch if self.following is not None else 0


async def failover_elector(
    fo: Failover, *, task_status: trio.TaskStatus[Failover] = trio.TASK_STATUS_IGNORED
) -> None:
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_lease, fo)
        nursery.start_soon(_view, fo)
        nursery.start_soon(_keep_syncset, fo)
        task_status.started(fo)
        await _decide_loop(fo)


async def _decide_loop(fo: Failover) -> None:
    el = fo.elector
    while True:
        now = trio.current_time()
        d = el.decide(fo.view, now)
        fo.decisions += 1
        await _act(fo, d)
        # wake at the fence deadline while leading; otherwise on the next change
        deadline = el.fence_at if fo.leading else math.inf
        with trio.move_on_at(deadline):
            await fo.changed.wait()


async def _act(fo: Failover, d: Decision) -> None:
    if d.kind is Kind.LEAD:
        if fo.leading != d.epoch:
            log.warning("elected master of epoch %d", d.epoch)
            fo.following = None
            ss = fo.view.syncset
            fo.syncset.reset(
                d.epoch, ss.members if ss is not None and ss.epoch == d.epoch else frozenset()
            )
            fo.leading = d.epoch
            # nobody joins the in-sync set until the promotion made the log whole (a partial
            # replicated record dropped, every record dispatched): the promote hook then sets
            # acked_end to the log's end, which bounds everything earlier terms acknowledged
            fo.acked_end = 1 << 62
            await fo.hooks.promote(d.epoch)
        return
    if fo.leading:
        # holding the key no longer (lost, taken, lapsing): stop writing before anything else
        log.warning("master of epoch %d stops: %s", fo.leading, d.kind.value)
        fo.leading = 0
        await fo.hooks.fence()
    if d.kind is Kind.FOLLOW:
        assert d.master is not None
        if fo.following != d.master:
            log.warning(
                "following master %d at %s (epoch %d)",
                d.master.broker_id,
                d.master.addr,
                d.master.epoch,
            )
            fo.following = d.master
            await fo.hooks.follow(d.master)
    elif d.kind is Kind.CAMPAIGN:
        await _campaign(fo)


async def _campaign(fo: Failover) -> None:
    view, keys, el = fo.view, fo.keys, fo.elector
    record = el.campaign_record(view)
    syncset = SyncSet(record.epoch, el.broker_id)
    try:
        result = await fo.etcd.txn(
            [
                Compare(keys.master, "CREATE", 0),
                Compare(keys.epoch, "MOD", view.epoch_rev),
                Compare(keys.syncset, "MOD", view.syncset_rev),
            ],
            [
                Put(keys.master, record.encode(), lease=el.lease),
                Put(keys.epoch, view.epoch_value(record.epoch, fo.hooks.log_end())),
                Put(keys.syncset, syncset.encode()),
            ],
        )
    except _ETCD_FAILURES as exc:
        log.info("campaign for epoch %d failed: %s", record.epoch, exc)
        await trio.sleep(RETRY)
        fo.changed.set()
        return
    log.info("campaign for epoch %d: %s", record.epoch, "won" if result.succeeded else "lost")
    await _read_view(fo)


async def _lease(fo: Failover) -> None:
    el = fo.elector
    while True:
        sent = trio.current_time()
        try:
            lease, ttl = await fo.etcd.grant(fo.ttl)
        except _ETCD_FAILURES as exc:
            log.info("etcd lease grant failed: %s", exc)
            await trio.sleep(RETRY)
            continue
        el.lease_granted(lease, ttl, sent)
        fo.changed.set()
        while True:
            await trio.sleep(max(ttl / 3, 0.1))
            sent = trio.current_time()
            try:
                left = await fo.etcd.keepalive(lease)
            except _ETCD_FAILURES as exc:
                # keep trying: the fence deadline (not this loop) decides when to stop writing
                log.info("etcd keep-alive failed: %s", exc)
                fo.changed.set()
                continue
            if left <= 0:
                log.warning("etcd lease %x expired", lease)
                el.lease_lost()
                fo.changed.set()
                break
            el.keepalive_ok(left, sent)
            fo.changed.set()


async def _read_view(fo: Failover) -> int:
    revision, kvs = await fo.etcd.range(fo.keys.prefix, prefix=True)
    view = parse_view(
        fo.keys, revision, [(kv.key, kv.value, kv.mod_revision, kv.lease) for kv in kvs]
    )
    if view.revision >= fo.view.revision:
        fo.view = view
        fo.changed.set()
    return revision


async def _view(fo: Failover) -> None:
    while True:
        try:
            revision = await _read_view(fo)
            watch = fo.etcd.watch(fo.keys.prefix, prefix=True, start_revision=revision + 1)
            async with aclosing(watch):
                async for _events in watch:
                    await _read_view(fo)
        except _ETCD_FAILURES as exc:
            log.info("etcd watch of %r: %s", fo.keys.prefix, exc)
        await trio.sleep(RETRY)


async def _keep_syncset(fo: Failover) -> None:
    """While master: write ``wanted`` to etcd whenever it differs from what is written, under
    a compare that this broker still holds the master key."""
    keeper, keys = fo.syncset, fo.keys
    while True:
        await keeper.wanted.wait_value(lambda w: fo.leading != 0 and w != keeper.written.value)
        epoch, wanted = fo.leading, keeper.wanted.value
        view = fo.view
        if view.master is None or view.master.epoch != epoch:
            await fo.changed.wait()
            continue
        try:
            result = await fo.etcd.txn(
                [
                    Compare(keys.master, "LEASE", fo.elector.lease),
                    Compare(keys.epoch, "MOD", view.epoch_rev),
                ],
                [Put(keys.syncset, SyncSet(epoch, fo.elector.broker_id, wanted).encode())],
            )
        except _ETCD_FAILURES as exc:
            log.info("in-sync set not written: %s", exc)
            await trio.sleep(RETRY)
            continue
        if result.succeeded and fo.leading == epoch:
            log.info("in-sync set of epoch %d: %s", epoch, sorted(wanted))
            keeper.written.value = wanted
        elif not result.succeeded:
            await trio.sleep(RETRY)  # no longer master: the decision loop will see it

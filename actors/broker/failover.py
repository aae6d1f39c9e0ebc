"""The broker's side of automatic failover (actors/failover/): the elector's hooks on the role
switch (role_switch.py), the epoch this broker's log holds, and the in-sync set.

With ``etcdEndpoints`` set, every broker of the group starts as a SLAVE (``failover_configs``):
only an election makes a master, so a restarted old master never writes before etcd says so.

- promote: the role switch to the configured master role (SYNC_MASTER for a broker configured
  as a slave); its log now holds the new epoch.
- follow: the role switch to SLAVE (a demoted master), then the log of an older epoch is cut
  back to where the next epoch began (election.truncation_point) and the HA client follows the
  new master (actors/ha/client.py reads ``ctx.failover_master``).
- fence: the role switch to SLAVE at once - the store refuses the very next put.

Identity: the elector and the in-sync set know a broker by its configured ``brokerId`` (0 for
the configured master).  As a slave, a broker registers with that id, the configured master
with FORMER_MASTER_SLAVE_ID.

The in-sync set: a connected slave whose acknowledged offset reached every acknowledged send joins
(``_track_in_sync``); a SYNC_MASTER send is answered only once every member, joined or
joining, has it, or once a lagging member was removed in etcd (failover_gate.py).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import attrs
import trio

from actors.broker.role_switch import switch_role
from actors.failover.actor import Failover, FailoverHooks, failover_elector
from actors.failover.election import (
    Elector,
    GroupKeys,
    MasterRecord,
    group_prefix,
    truncation_point,
)
from actors.failover.etcd import Etcd, EtcdClient, parse_endpoints
from storage.config import BrokerRole, MessageStoreConfig

if TYPE_CHECKING:
    from actors.broker.context import BrokerContext

log = logging.getLogger(__name__)

FORMER_MASTER_SLAVE_ID = 100
EPOCH_FILE = "failoverEpoch.json"
IN_SYNC_CHECK = 0.1  # s between in-sync checks while master (no wake-up: a cheap comparison)

# What makes the group's etcd client from ``etcdEndpoints``: the real client unless set for
# the current task tree (a simulated cluster, tests/sim, gives each node its view of an
# in-memory etcd, as actors.remoting.transport.use_transport does for remoting).
etcd_factory: contextvars.ContextVar[Callable[[str], Etcd]] = contextvars.ContextVar("etcd_factory")


def _etcd_client(endpoints: str) -> Etcd:
    factory = etcd_factory.get(None)
    return factory(endpoints) if factory is not None else EtcdClient(parse_endpoints(endpoints))


@attrs.frozen
class FailoverIdentity:
    broker_id: int  # as configured: the elector's and the in-sync set's name for this broker
    master_role: BrokerRole  # the role a promotion switches to

    @property
    def slave_id(self) -> int:
        return self.broker_id or FORMER_MASTER_SLAVE_ID


def failover_configs(
    config: Any, store_config: MessageStoreConfig
) -> tuple[Any, MessageStoreConfig, FailoverIdentity | None]:
    """With failover on: the broker starts as a SLAVE; returns who it is to the elector."""
    if not config.etcdEndpoints:
        return config, store_config, None
    parse_endpoints(config.etcdEndpoints)  # a bad value fails at start-up, clearly
    configured = store_config.brokerRole
    ident = FailoverIdentity(
        config.brokerId if configured is BrokerRole.SLAVE else 0,
        configured if configured is not BrokerRole.SLAVE else BrokerRole.SYNC_MASTER,
    )
    config = attrs.evolve(config, brokerId=ident.slave_id)
    store_config = attrs.evolve(store_config, brokerRole=BrokerRole.SLAVE)
    return config, store_config, ident


def _epoch_path(ctx: BrokerContext) -> Path:
    return Path(ctx.store_config.storePathRootDir) / "config" / EPOCH_FILE


def load_held_epoch(ctx: BrokerContext) -> int:
    try:
        return int(json.loads(_epoch_path(ctx).read_text())["epoch"])
    except FileNotFoundError:
        return 0
    except (ValueError, KeyError, TypeError) as exc:
        # unreadable: treat the log as of no known epoch (it is cut back to the oldest start)
        log.error("%s unreadable (%s): treating the log as of epoch 0", _epoch_path(ctx), exc)
        return 0


def _write_held_epoch(path: Path, epoch: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with open(tmp, "w") as f:
        f.write(json.dumps({"epoch": epoch}))
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


@attrs.define(eq=False)
class BrokerFailover:
    ctx: BrokerContext
    ident: FailoverIdentity
    held_epoch: int = 0  # the epoch whose log this store holds (persisted)
    fo: Failover | None = None

    async def _hold(self, epoch: int) -> None:
        self.held_epoch = epoch
        await trio.to_thread.run_sync(_write_held_epoch, _epoch_path(self.ctx), epoch)

    async def promote(self, epoch: int) -> None:
        ctx = self.ctx
        ctx.failover_master.value = None
        switch_role(ctx, self.ident.master_role)
        # no checkpoint since the switch: nothing was acknowledged in this term yet
        assert self.fo is not None
        self.fo.acked_end = int(ctx.store.max_phy_offset)
        await self._hold(epoch)

    async def fence(self) -> None:
        ctx = self.ctx
        if ctx.role.value is not BrokerRole.SLAVE:
            switch_role(ctx, BrokerRole.SLAVE, broker_id=self.ident.slave_id)

    async def follow(self, master: MasterRecord) -> None:
        ctx = self.ctx
        if ctx.role.value is not BrokerRole.SLAVE:
            switch_role(ctx, BrokerRole.SLAVE, broker_id=self.ident.slave_id)
        # first stop following the old master (its connection is cancelled), then cut the log
        ctx.failover_master.value = master
        if master.epoch > self.held_epoch:
            assert self.fo is not None
            cut = truncation_point(self.fo.view, self.held_epoch, master.epoch)
            if cut is not None and cut < ctx.store.max_phy_offset:
                dropped = ctx.store.truncate_replicated(max(cut, ctx.store.min_phy_offset))
                log.warning(
                    "epoch %d -> %d: dropped %d bytes beyond %d",
                    self.held_epoch,
                    master.epoch,
                    dropped,
                    cut,
                )
            await self._hold(master.epoch)


async def broker_failover(
    ctx: Any,
    ident: FailoverIdentity,
    *,
    task_status: trio.TaskStatus[BrokerFailover] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = ctx.config
    bf = BrokerFailover(ctx, ident, held_epoch=await trio.to_thread.run_sync(load_held_epoch, ctx))
    client = _etcd_client(config.etcdEndpoints)
    elector = Elector(
        ident.broker_id,
        ctx.broker_addr,
        f"{config.brokerIP2 or config.brokerIP1}:{ctx.store_config.haListenPort}",
        configured_master=ident.broker_id == 0,
    )
    fo = Failover(
        client,
        GroupKeys(group_prefix(config.etcdKeyPrefix, config.brokerClusterName, config.brokerName)),
        elector,
        FailoverHooks(
            bf.promote,
            bf.follow,
            bf.fence,
            lambda: int(min(ctx.store.max_phy_offset, ctx.store.reput_from)),
        ),
        ttl=config.etcdLeaseTtlSeconds,
    )
    bf.fo = fo
    ctx.failover = fo
    async with trio.open_nursery() as nursery:
        await nursery.start(failover_elector, fo)
        nursery.start_soon(_track_in_sync, ctx, fo)
        task_status.started(bf)


async def _track_in_sync(ctx: BrokerContext, fo: Failover) -> None:
    """While master: a slave whose acknowledged offset reached every acknowledged send
    (``acked_end``) joins; under steady load it never catches the log's end itself."""
    while True:
        if fo.leading:
            rep = ctx.replication
            for peer, acked in list(rep.slaves.items()):
                broker_id = rep.ids.get(peer)
                if broker_id is not None and acked >= fo.acked_end:
                    fo.syncset.add(broker_id)
        await trio.sleep(IN_SYNC_CHECK)

"""The election of a broker group's master over etcd, sans-IO: keys, records and decisions.

Keys under ``{etcdKeyPrefix}/{brokerClusterName}/{brokerName}/``:

    master .... {"brokerId", "addr", "haAddr", "epoch"} under the master's lease: it vanishes
                when the master stops renewing (dead, or cut off from etcd)
    epoch ..... {"epoch", "starts"}: the last epoch elected and, for the latest epochs, the
                commit-log offset each began at (no lease: it outlives every master).  Like
                RocketMQ 5's epoch file: a broker whose log belongs to an older epoch cuts it
                back to where the next epoch began before following (see truncation_point)
    syncset ... {"epoch", "master", "members"}: the in-sync set of that epoch (RocketMQ 5's
                SyncStateSet) written by the master; only its master and members may be
                elected next, so no acknowledged message is lost by a failover

A campaign is one transaction: the master key absent, the epoch and syncset keys unchanged
since they were read (mod revisions) -> the master key under my lease, epoch + 1, and a new
in-sync set of only myself (slaves rejoin once they have caught up with me).

``decide`` turns what was last read from etcd plus the local lease state into one action;
the actor (actor.py) performs it and feeds the outcome back.  Fencing: a master whose lease
may have lapsed at etcd stops writing - the deadline is the send time of the last successful
keep-alive plus its TTL minus a margin, on the local monotonic clock, so it is never later
than etcd's own expiry (etcd counts from when it received the request).
"""

from __future__ import annotations

import enum

import attrs
import orjson

HISTORY = 64  # epochs whose start offsets the epoch key keeps
FENCE_MARGIN = 0.25  # of the TTL: stop writing this long before etcd could expire the lease


def group_prefix(key_prefix: str, cluster: str, broker_name: str) -> bytes:
    return f"{key_prefix.rstrip('/')}/{cluster}/{broker_name}/".encode()


@attrs.frozen
class GroupKeys:
    prefix: bytes

    @property
    def master(self) -> bytes:
        return self.prefix + b"master"

    @property
    def epoch(self) -> bytes:
        return self.prefix + b"epoch"

    @property
    def syncset(self) -> bytes:
        return self.prefix + b"syncset"


@attrs.frozen
class MasterRecord:
    broker_id: int
    addr: str
    ha_addr: str
    epoch: int
    lease: int = 0  # from the key's metadata, not its value

    def encode(self) -> bytes:
        return orjson.dumps(
            {
                "brokerId": self.broker_id,
                "addr": self.addr,
                "haAddr": self.ha_addr,
                "epoch": self.epoch,
            }
        )

    @classmethod
    def decode(cls, data: bytes, lease: int = 0) -> MasterRecord:
        d = orjson.loads(data)
        return cls(int(d["brokerId"]), str(d["addr"]), str(d["haAddr"]), int(d["epoch"]), lease)


@attrs.frozen
class SyncSet:
    epoch: int
    master: int
    members: frozenset[int] = frozenset()

    def encode(self) -> bytes:
        return orjson.dumps(
            {"epoch": self.epoch, "master": self.master, "members": sorted(self.members)}
        )

    @classmethod
    def decode(cls, data: bytes) -> SyncSet:
        d = orjson.loads(data)
        return cls(int(d["epoch"]), int(d["master"]), frozenset(int(m) for m in d["members"]))

    def eligible(self, broker_id: int) -> bool:
        return broker_id == self.master or broker_id in self.members


@attrs.frozen
class GroupView:
    """The group's keys as read at one revision (0 mod revision: the key does not exist)."""

    master: MasterRecord | None = None
    epoch: int = 0
    epoch_rev: int = 0
    syncset: SyncSet | None = None
    syncset_rev: int = 0
    revision: int = 0
    # (epoch, commit-log offset it began at), oldest first
    starts: tuple[tuple[int, int], ...] = ()

    def epoch_value(self, epoch: int, since: int) -> bytes:
        """The epoch key's value after electing ``epoch`` beginning at ``since``."""
        starts = [*self.starts, (epoch, since)][-HISTORY:]
        return orjson.dumps({"epoch": epoch, "starts": starts})


def truncation_point(view: GroupView, held: int, epoch: int) -> int | None:
    """Where a log of epoch ``held`` must be cut before following the master of ``epoch``:
    the lowest start offset of the epochs after ``held`` (each new master's log equals its
    predecessor's only below its start).  None: nothing to cut (same epoch).  If the history
    no longer reaches back to ``held``, the oldest start known (cutting more only re-fetches)."""
    if epoch <= held:
        return None
    later = [since for e, since in view.starts if held < e <= epoch]
    if not later:
        later = [since for _, since in view.starts[:1]]
    return min(later) if later else None


class Kind(enum.Enum):
    WAIT = "wait"  # nothing to do (no master, not eligible: wait for one)
    CAMPAIGN = "campaign"  # no master and eligible: try the transaction
    LEAD = "lead"  # this broker holds the master key: be (stay) master
    FOLLOW = "follow"  # another broker holds it: be its slave
    FENCE = "fence"  # this broker holds it but its lease may have lapsed: stop writing


@attrs.frozen
class Decision:
    kind: Kind
    epoch: int = 0
    master: MasterRecord | None = None


@attrs.define
class Elector:
    """One broker's view: who it is and what it knows of its own lease."""

    broker_id: int  # the id this broker has as a slave (a master registers 0)
    addr: str
    ha_addr: str
    configured_master: bool  # may win the group's very first election
    lease: int = 0  # 0: none granted yet (or lost)
    ttl: float = 0.0
    fence_at: float = float("-inf")  # local monotonic time

    # ---------------------------------------------------------------- lease events

    def lease_granted(self, lease: int, ttl: float, sent_at: float) -> None:
        self.lease, self.ttl = lease, ttl
        self.keepalive_ok(ttl, sent_at)

    def keepalive_ok(self, ttl: float, sent_at: float) -> None:
        """A keep-alive sent at ``sent_at`` renewed the lease for ``ttl`` seconds."""
        self.fence_at = sent_at + ttl - FENCE_MARGIN * self.ttl

    def lease_lost(self) -> None:
        self.lease = 0
        self.fence_at = float("-inf")

    # ---------------------------------------------------------------- decisions

    def holds(self, view: GroupView) -> bool:
        m = view.master
        return (
            m is not None
            and self.lease != 0
            and m.lease == self.lease
            and m.broker_id == self.broker_id
        )

    def eligible(self, view: GroupView) -> bool:
        if view.epoch == 0:
            return self.configured_master  # the group's first election
        return (
            view.syncset is not None
            and view.syncset.epoch == view.epoch
            and view.syncset.eligible(self.broker_id)
        )

    def decide(self, view: GroupView, now: float) -> Decision:
        m = view.master
        if m is not None and m.broker_id == self.broker_id and m.lease == self.lease and self.lease:
            if now >= self.fence_at:
                return Decision(Kind.FENCE, m.epoch, m)
            return Decision(Kind.LEAD, m.epoch, m)
        if m is not None:
            if m.broker_id == self.broker_id:
                # my id under a lease I no longer hold (a previous life of this broker): it
                # lapses by itself; never follow myself
                return Decision(Kind.WAIT, m.epoch)
            return Decision(Kind.FOLLOW, m.epoch, m)
        if self.lease and now < self.fence_at and self.eligible(view):
            return Decision(Kind.CAMPAIGN, view.epoch + 1)
        return Decision(Kind.WAIT, view.epoch)

    def campaign_record(self, view: GroupView) -> MasterRecord:
        return MasterRecord(self.broker_id, self.addr, self.ha_addr, view.epoch + 1, self.lease)


def parse_view(
    keys: GroupKeys, revision: int, kvs: list[tuple[bytes, bytes, int, int]]
) -> GroupView:
    """A GroupView from (key, value, mod_revision, lease) of the group's keys.  A value that
    does not parse is treated as absent for the master (it is someone's bug, and a campaign
    then fails on the key's existence) and as an empty history for the rest."""
    master = None
    epoch = epoch_rev = syncset_rev = 0
    syncset = None
    starts: tuple[tuple[int, int], ...] = ()
    for key, value, mod_rev, lease in kvs:
        try:
            if key == keys.master:
                master = MasterRecord.decode(value, lease)
            elif key == keys.epoch:
                d = orjson.loads(value)
                epoch, epoch_rev = int(d["epoch"]), mod_rev
                starts = tuple((int(e), int(o)) for e, o in d.get("starts", ()))
            elif key == keys.syncset:
                syncset, syncset_rev = SyncSet.decode(value), mod_rev
        except (ValueError, KeyError, TypeError, orjson.JSONDecodeError):
            continue
    return GroupView(master, epoch, epoch_rev, syncset, syncset_rev, revision, starts)

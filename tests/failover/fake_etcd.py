"""An in-memory etcd with etcd's semantics for autojump_clock tests: a global revision bumped
by every write (a txn is one revision), per-key create/mod revision, version and lease; leases
that expire on Trio's clock and delete their keys; txn compare-and-swap; watch from a
revision.  ``FakeEtcd.client(name)`` gives each broker its own connection, which a test can
cut (requests then time out, as a partitioned client's would)."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Sequence

import attrs
import trio

from actors.failover.etcd import (
    Compare,
    Delete,
    EtcdUnavailable,
    KeyValue,
    Put,
    TxnResult,
    WatchEvent,
    prefix_end,
)

REQUEST_TIMEOUT = 2.0


@attrs.define
class _Lease:
    ttl: int
    expires: float
    keys: set[bytes] = attrs.Factory(set)


@attrs.define(eq=False)
class FakeEtcd:
    revision: int = 1
    kvs: dict[bytes, KeyValue] = attrs.Factory(dict)
    leases: dict[int, _Lease] = attrs.Factory(dict)
    history: list[tuple[int, WatchEvent]] = attrs.Factory(list)
    next_lease: int = 0x1000
    cut: set[str] = attrs.Factory(set)
    changed: trio.Event = attrs.Factory(trio.Event)

    def client(self, name: str) -> FakeEtcdClient:
        return FakeEtcdClient(self, name)

    def cut_off(self, name: str) -> None:
        """Partition ``name`` from etcd: its requests time out, its watch breaks."""
        self.cut.add(name)
        self._bump()

    def reconnect(self, name: str) -> None:
        self.cut.discard(name)
        self._bump()

    def lease_expiry(self, lease: int) -> float:
        return self.leases[lease].expires

    # ---------------------------------------------------------------- server side

    def _bump(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    def expire(self) -> None:
        now = trio.current_time()
        for lease_id, lease in list(self.leases.items()):
            if lease.expires <= now:
                del self.leases[lease_id]
                if lease.keys:
                    self.revision += 1
                    for key in sorted(lease.keys):
                        self._delete(key)
                    self._bump()

    async def run(self) -> None:
        """Expires leases on time (start it in the test's nursery)."""
        while True:
            self.expire()
            nxt = min((lease.expires for lease in self.leases.values()), default=math.inf)
            with trio.move_on_at(nxt):
                await self.changed.wait()

    def _delete(self, key: bytes) -> None:
        old = self.kvs.pop(key, None)
        if old is None:
            return
        if old.lease and old.lease in self.leases:
            self.leases[old.lease].keys.discard(key)
        self.history.append(
            (self.revision, WatchEvent("DELETE", KeyValue(key, b"", 0, self.revision, 0, 0)))
        )

    def _put(self, key: bytes, value: bytes, lease: int) -> None:
        if lease and lease not in self.leases:
            raise ValueError("etcdserver: requested lease not found")
        old = self.kvs.get(key)
        if old is not None and old.lease and old.lease in self.leases:
            self.leases[old.lease].keys.discard(key)
        kv = KeyValue(
            key,
            value,
            old.create_revision if old else self.revision,
            self.revision,
            old.version + 1 if old else 1,
            lease,
        )
        self.kvs[key] = kv
        if lease:
            self.leases[lease].keys.add(key)
        self.history.append((self.revision, WatchEvent("PUT", kv)))

    def _compare(self, c: Compare) -> bool:
        kv = self.kvs.get(c.key)
        actual: int | bytes
        if c.target == "VALUE":
            actual = kv.value if kv else b""
            if kv is None:
                return False  # etcd: a value compare on a missing key fails
        elif c.target == "VERSION":
            actual = kv.version if kv else 0
        elif c.target == "CREATE":
            actual = kv.create_revision if kv else 0
        elif c.target == "MOD":
            actual = kv.mod_revision if kv else 0
        elif c.target == "LEASE":
            actual = kv.lease if kv else 0
        else:
            raise ValueError(c.target)
        want = c.value
        if c.result == "EQUAL":
            return actual == want
        if c.result == "NOT_EQUAL":
            return actual != want
        if c.result == "GREATER":
            return actual > want  # type: ignore[operator]
        return actual < want  # type: ignore[operator]


@attrs.define(eq=False)
class FakeEtcdClient:
    server: FakeEtcd
    name: str

    async def _reach(self) -> FakeEtcd:
        await trio.lowlevel.checkpoint()
        if self.name in self.server.cut:
            await trio.sleep(REQUEST_TIMEOUT)
            raise EtcdUnavailable(f"{self.name}: timed out (cut off)")
        self.server.expire()
        return self.server

    async def grant(self, ttl: int) -> tuple[int, int]:
        s = await self._reach()
        s.next_lease += 1
        s.leases[s.next_lease] = _Lease(ttl, trio.current_time() + ttl)
        s._bump()
        return s.next_lease, ttl

    async def keepalive(self, lease: int) -> int:
        s = await self._reach()
        entry = s.leases.get(lease)
        if entry is None:
            return 0
        entry.expires = trio.current_time() + entry.ttl
        s._bump()
        return entry.ttl

    async def revoke(self, lease: int) -> None:
        s = await self._reach()
        entry = s.leases.get(lease)
        if entry is not None:
            entry.expires = -math.inf
            s.expire()

    async def range(self, key: bytes, *, prefix: bool = False) -> tuple[int, list[KeyValue]]:
        s = await self._reach()
        if prefix:
            end = prefix_end(key)
            return s.revision, [kv for k, kv in sorted(s.kvs.items()) if key <= k < end]
        kv = s.kvs.get(key)
        return s.revision, [kv] if kv else []

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        s = await self._reach()
        s.revision += 1
        s._put(key, value, lease)
        s._bump()
        return s.revision

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Put | Delete],
        failure: Sequence[Put | Delete] = (),
    ) -> TxnResult:
        s = await self._reach()
        ok = all(s._compare(c) for c in compare)
        ops = success if ok else failure
        if ops:
            s.revision += 1
            for op in ops:
                if isinstance(op, Put):
                    s._put(op.key, op.value, op.lease)
                else:
                    s._delete(op.key)
            s._bump()
        return TxnResult(ok, s.revision)

    async def watch(
        self, key: bytes, *, prefix: bool = False, start_revision: int = 0
    ) -> AsyncGenerator[list[WatchEvent], None]:
        s = await self._reach()
        end = prefix_end(key) if prefix else key + b"\0"
        seen = start_revision - 1 if start_revision else s.revision
        while True:
            if self.name in s.cut:
                raise EtcdUnavailable(f"{self.name}: watch broken (cut off)")
            events = [ev for rev, ev in s.history if rev > seen and key <= ev.kv.key < end]
            seen = s.revision
            if events:
                yield events
            await s.changed.wait()

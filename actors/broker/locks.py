"""Order-consumption queue locks (reference §7.9), pure: time is a parameter.

group -> queue -> (client id, last refresh).  A lock lives 60 s unless refreshed; orderly
consumers refresh theirs every 20 s.  Locks are neither persisted nor replicated.
"""

from __future__ import annotations

from collections.abc import Iterable

import attrs

from protocol.bodies.common import MessageQueue

LOCK_MAX_LIVE_MS = 60_000


@attrs.define
class _Lock:
    client_id: str
    last_update_ms: int


class RebalanceLockManager:
    def __init__(self, max_live_ms: int = LOCK_MAX_LIVE_MS) -> None:
        self.max_live_ms = max_live_ms
        self._table: dict[str, dict[MessageQueue, _Lock]] = {}

    def _live(self, lock: _Lock, now_ms: int) -> bool:
        return now_ms - lock.last_update_ms <= self.max_live_ms

    def try_lock_batch(
        self, group: str, queues: Iterable[MessageQueue], client_id: str, now_ms: int
    ) -> set[MessageQueue]:
        """Lock what is free, expired or already ours; the queues granted."""
        locks = self._table.setdefault(group, {})
        granted = set()
        for queue in queues:
            lock = locks.get(queue)
            if lock is None or lock.client_id == client_id or not self._live(lock, now_ms):
                locks[queue] = _Lock(client_id, now_ms)
                granted.add(queue)
        return granted

    def unlock_batch(self, group: str, queues: Iterable[MessageQueue], client_id: str) -> None:
        locks = self._table.get(group)
        if not locks:
            return
        for queue in queues:
            lock = locks.get(queue)
            if lock is not None and lock.client_id == client_id:
                del locks[queue]
        if not locks:
            del self._table[group]

    def holder(self, group: str, queue: MessageQueue, now_ms: int) -> str | None:
        lock = self._table.get(group, {}).get(queue)
        return lock.client_id if lock is not None and self._live(lock, now_ms) else None

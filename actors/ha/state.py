"""What the master knows of its slaves: the HA server's own state, read by the send path.

Only the HA server's connection tasks change it.  ``acked`` is Java's push2SlaveMaxOffset (the
highest offset any slave acknowledged) as an OffsetWaiters, so a SYNC_MASTER send waits on it
the way a SYNC_FLUSH send waits on the flusher; ``transfer`` is rung on every append so the
connections' transfer loops never poll.
"""

from __future__ import annotations

import attrs

from actors.waiters import OffsetWaiters
from actors.wake import Wake


@attrs.define
class FlowMeter:
    """Bytes per second as RocketMQ 5's FlowMonitor reports them: those of the last whole
    second (``now`` in seconds, trio's clock)."""

    _second: int = -1
    _count: int = 0
    _last: int = 0

    def _roll(self, now: float) -> None:
        second = int(now)
        if second != self._second:
            self._last = self._count if second == self._second + 1 else 0
            self._second, self._count = second, 0

    def add(self, n: int, now: float) -> None:
        self._roll(now)
        self._count += n

    def per_second(self, now: float) -> int:
        self._roll(now)
        return self._last


@attrs.define(eq=False)
class SlaveLink:
    """One slave connection as the HA server's transfer task sees it."""

    transfer_from: int = -1  # the next offset it sends (-1: the slave has not reported yet)
    flow: FlowMeter = attrs.Factory(FlowMeter)


@attrs.define(eq=False)
class Following:
    """The slave's HA client link, for GET_BROKER_HA_STATUS (only the HA client changes it)."""

    master_addr: str | None = None  # the master's HA address while connected
    # a master demoted without truncateTo: compare its log with the new master's by content
    # before following (actors/ha/divergence.py); cleared once done
    verify_prefix: bool = False
    last_read_ms: int = 0
    last_write_ms: int = 0
    flow: FlowMeter = attrs.Factory(FlowMeter)


@attrs.define(eq=False)
class Replication:
    acked: OffsetWaiters = attrs.Factory(OffsetWaiters)
    transfer: Wake = attrs.Factory(Wake)
    # slave address -> its last acknowledged offset (-1: connected, nothing reported yet)
    slaves: dict[str, int] = attrs.Factory(dict)
    # slave address -> the broker id from its failover hello (failover only)
    ids: dict[str, int] = attrs.Factory(dict)
    # failover only: slave host -> the highest offset a plain (Java, no hello) slave on that
    # host acknowledged in this term: a plain slave may resume beyond the term's start only
    # from what this master sent it (actors/ha/server.py)
    plain_acked: dict[str, int] = attrs.Factory(dict)
    # rung on every report (what a wait for one particular slave's ack listens to)
    reported: Wake = attrs.Factory(Wake)
    # slave address -> its connection's transfer state
    links: dict[str, SlaveLink] = attrs.Factory(dict)

    def acked_by(self, broker_id: int) -> int:
        """The highest offset the slave with this broker id acknowledged (-1: not connected)."""
        return max(
            (self.slaves[p] for p, b in self.ids.items() if b == broker_id and p in self.slaves),
            default=-1,
        )

    def is_slave_ok(self, offset: int, fallbehind_max: int) -> bool:
        """Java's HAService.isSlaveOK: some slave is connected and the fastest one is less
        than ``fallbehind_max`` bytes behind ``offset``."""
        return bool(self.slaves) and offset - self.acked.current < fallbehind_max

    def lag_bytes(self, max_offset: int) -> int:
        """How far the slowest connected slave is behind (0 without slaves)."""
        if not self.slaves:
            return 0
        return max(0, max_offset - min(max(a, 0) for a in self.slaves.values()))

"""What the clients of a simulation did, and the properties it must have.

Producers record every send (its outcome, acknowledged or not) and consumers every delivery,
in virtual time; the harness records kills and membership changes.  ``check()`` then asserts:

* durability: every acknowledged message is delivered to every group that subscribes to its
  topic, unless a power loss of its broker after the acknowledgement could have taken it: under
  ASYNC_FLUSH a message not entirely below the commit log's flushed offset at that moment; under
  SYNC_FLUSH never (acknowledged means fsync'd).  A process kill (page cache survives) loses
  nothing that was written.
* exclusivity: no message is delivered to two consumers of one clustering group unless one of
  the two deliveries falls in a rebalance window (``rebalance_window`` seconds after a consumer
  joins, leaves or dies, or a broker dies or returns) - at-least-once redelivery after a
  membership change is RocketMQ's contract, a second owner in steady state is a bug;
* order: for orderly consumers, the messages of one sharding key are delivered in send order;
  a delivery may go back (redelivery from the last committed offset) only in a rebalance
  window, and never skips ahead of a message of the same key that is delivered later;
* delays: a delayed message is never delivered before its send began plus its level's delay.
"""

from __future__ import annotations

import collections
from collections.abc import Iterable

import attrs
import trio

# Upper bound of a record's bytes beyond its body (header, topic, properties): a message may
# be counted durable only if it ends below the flushed offset, and the ack tells only its start.
RECORD_OVERHEAD = 1024


@attrs.define
class Send:
    key: str
    topic: str
    body_size: int
    started: float
    group_key: str | None = None  # orderly: the sharding key
    seq: int = 0  # orderly: position within its key
    delay_ms: int = 0
    acked: float | None = None
    status: str = "pending"  # SEND_OK, FLUSH_DISK_TIMEOUT, ..., or the error's class
    broker: str | None = None  # the broker address the offset msgId names
    phys_offset: int | None = None
    queue_id: int | None = None
    queue_offset: int | None = None


@attrs.define
class Delivery:
    key: str
    group: str
    consumer: str
    at: float
    reconsume_times: int = 0
    queue: tuple[str, int] | None = None  # (broker address, queue id) it came from
    queue_offset: int = -1


@attrs.define
class PowerLoss:
    at: float
    broker: str
    flushed: int


class Violation(AssertionError):
    pass


@attrs.define
class History:
    rebalance_window: float = 60.0
    sends: dict[str, Send] = attrs.Factory(dict)
    deliveries: list[Delivery] = attrs.Factory(list)
    losses: list[PowerLoss] = attrs.Factory(list)
    membership: list[tuple[float, str]] = attrs.Factory(list)
    # group -> topics it subscribes to (every acked message of them must reach it)
    subscriptions: dict[str, set[str]] = attrs.Factory(dict)
    orderly_groups: set[str] = attrs.Factory(set)
    sync_flush: bool = False

    # ------------------------------------------------------------ recording

    def send_started(self, key: str, topic: str, body_size: int, **extra: object) -> Send:
        send = Send(key, topic, body_size, trio.current_time(), **extra)  # type: ignore[arg-type]
        self.sends[key] = send
        return send

    def send_finished(
        self,
        send: Send,
        status: str,
        offset_msg_id: str | None = None,
        queue_id: int | None = None,
        queue_offset: int | None = None,
    ) -> None:
        send.status = status
        send.queue_id, send.queue_offset = queue_id, queue_offset
        if status == "SEND_OK" or status.startswith("FLUSH_"):
            send.acked = trio.current_time()
        if offset_msg_id:
            first = offset_msg_id.split(",")[0]
            send.broker = _msg_id_broker(first)
            send.phys_offset = int(first[-16:], 16)

    def delivered(
        self,
        key: str,
        group: str,
        consumer: str,
        reconsume_times: int = 0,
        queue: tuple[str, int] | None = None,
        queue_offset: int = -1,
    ) -> None:
        now = trio.current_time()
        self.deliveries.append(
            Delivery(key, group, consumer, now, reconsume_times, queue, queue_offset)
        )

    def power_loss(self, broker: str, flushed: int) -> None:
        self.losses.append(PowerLoss(trio.current_time(), broker, flushed))
        self.membership_changed(f"power loss {broker}")

    def membership_changed(self, what: str) -> None:
        self.membership.append((trio.current_time(), what))

    # ------------------------------------------------------------ checking

    def in_window(self, at: float) -> bool:
        return any(t <= at <= t + self.rebalance_window for t, _ in self.membership)

    def acked_ok(self) -> list[Send]:
        return [s for s in self.sends.values() if s.status == "SEND_OK"]

    def may_be_lost(self, send: Send) -> bool:
        """True if a power loss after its ack could have taken it under the durability."""
        for loss in self.losses:
            if send.broker != loss.broker or send.acked is None or loss.at < send.acked:
                continue
            if send.phys_offset is None:
                return True
            end = send.phys_offset + send.body_size + RECORD_OVERHEAD
            if not self.sync_flush and end > loss.flushed:
                return True
        return False

    def skipped_by_offset_regression(self, group: str, send: Send) -> bool:
        """A power loss truncated the queue below the group's committed offset, so messages
        acknowledged after it at the reused queue offsets are skipped by the group.

        RocketMQ's own behaviour (Java's too): consumer offsets are committed for messages
        the reput made visible before they were flushed, and recovery does not move them
        back.  Allowed, and counted in ``summary()``; it is what a stricter broker could fix.
        """
        if send.acked is None:
            return False
        # a delayed message takes its place in the topic's queue when it becomes due
        placed = max(send.acked, send.started + send.delay_ms / 1000)
        for loss in self.losses:
            if send.broker != loss.broker or placed < loss.at:
                continue
            before = [
                d.queue_offset
                for d in self.deliveries
                if d.group == group and d.at <= loss.at and d.queue == (send.broker, send.queue_id)
            ]
            if not before:
                continue
            if send.delay_ms:
                return True  # its queue offset is assigned when it becomes due: unknown here
            if send.queue_offset is not None and send.queue_offset <= max(before):
                return True
        return False

    def lost(self) -> list[tuple[str, Send]]:
        delivered = {(d.group, d.key) for d in self.deliveries}
        return [
            (group, send)
            for group, topics in sorted(self.subscriptions.items())
            for send in self.acked_ok()
            if send.topic in topics
            and (group, send.key) not in delivered
            and not self.may_be_lost(send)
            and not self.skipped_by_offset_regression(group, send)
        ]

    def regression_skips(self) -> int:
        delivered = {(d.group, d.key) for d in self.deliveries}
        return sum(
            1
            for group, topics in self.subscriptions.items()
            for send in self.acked_ok()
            if send.topic in topics
            and (group, send.key) not in delivered
            and not self.may_be_lost(send)
            and self.skipped_by_offset_regression(group, send)
        )

    def double_owners(self) -> list[tuple[Delivery, Delivery]]:
        first: dict[tuple[str, str], list[Delivery]] = collections.defaultdict(list)
        bad: list[tuple[Delivery, Delivery]] = []
        for d in self.deliveries:
            if d.group in self.broadcast_groups:
                continue
            bad.extend(
                (other, d)
                for other in first[(d.group, d.key)]
                if other.consumer != d.consumer
                and not (self.in_window(other.at) or self.in_window(d.at))
            )
            first[(d.group, d.key)].append(d)
        return bad

    broadcast_groups: set[str] = attrs.Factory(set)

    def out_of_order(self) -> list[str]:
        problems = []
        by_stream: dict[tuple[str, str], list[tuple[Delivery, Send]]] = collections.defaultdict(
            list
        )
        for d in self.deliveries:
            send = self.sends.get(d.key)
            if d.group in self.orderly_groups and send is not None and send.group_key:
                by_stream[(d.group, send.group_key)].append((d, send))
        for (group, gkey), items in sorted(by_stream.items()):
            seen_max = -1
            delivered_seqs = [s.seq for _, s in items]
            for i, (d, send) in enumerate(items):
                if send.seq <= seen_max and not self.in_window(d.at):
                    problems.append(
                        f"{group}/{gkey}: seq {send.seq} again at {d.at:.3f} after {seen_max} "
                        "outside a rebalance window"
                    )
                if send.seq > seen_max + 1:
                    later = set(delivered_seqs[i + 1 :])
                    skipped = [q for q in range(seen_max + 1, send.seq) if q in later]
                    if skipped:
                        problems.append(
                            f"{group}/{gkey}: seq {send.seq} delivered at {d.at:.3f} before "
                            f"{skipped[:5]}"
                        )
                seen_max = max(seen_max, send.seq)
        return problems

    def early(self) -> list[tuple[Delivery, Send]]:
        bad = []
        for d in self.deliveries:
            send = self.sends.get(d.key)
            if send is not None and send.delay_ms and d.at < send.started + send.delay_ms / 1000:
                bad.append((d, send))
        return bad

    def check(self) -> None:
        report: list[str] = []
        for group, send in self.lost()[:10]:
            report.append(
                f"lost: {send.key} (acked at {send.acked:.3f}, delay {send.delay_ms} ms, "
                f"offset {send.phys_offset} on {send.broker}) never reached {group}"
            )
        for a, b in self.double_owners()[:10]:
            report.append(
                f"two owners: {a.key} to {a.consumer} at {a.at:.3f} and {b.consumer} at {b.at:.3f}"
            )
        report += self.out_of_order()[:10]
        for d, send in self.early()[:10]:
            report.append(
                f"early: {d.key} (delay {send.delay_ms} ms from {send.started:.3f}) at {d.at:.3f}"
            )
        if report:
            for loss in self.losses:
                report.append(
                    f"power loss of {loss.broker} at {loss.at:.3f}, flushed {loss.flushed}"
                )
            raise Violation("\n".join(report))

    def summary(self) -> dict[str, int]:
        statuses = collections.Counter(s.status for s in self.sends.values())
        return {
            "sends": len(self.sends),
            "acked": statuses["SEND_OK"],
            "deliveries": len(self.deliveries),
            "distinct_delivered": len({(d.group, d.key) for d in self.deliveries}),
            "power_losses": len(self.losses),
            "skipped_after_power_loss": self.regression_skips(),
            "membership_events": len(self.membership),
        }

    def trace(self) -> list[tuple[object, ...]]:
        """Everything recorded, in order: equal for two runs of one seed."""
        out: list[tuple[object, ...]] = [
            ("send", s.key, round(s.started, 6), s.status, s.phys_offset)
            for s in self.sends.values()
        ]
        out += [("deliver", d.key, d.group, d.consumer, round(d.at, 6)) for d in self.deliveries]
        out += [("member", round(t, 6), w) for t, w in self.membership]
        return out


def _msg_id_broker(offset_msg_id: str) -> str:
    """The "ip:port" an IPv4 offset msgId (32 hex digits) names."""
    raw = bytes.fromhex(offset_msg_id[:16])
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}:{int.from_bytes(raw[4:8], 'big')}"


def keys_of(messages: Iterable[object]) -> list[str]:
    return [getattr(m, "keys", "") for m in messages]

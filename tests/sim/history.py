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

With replication (broker groups of a master and slaves, ``replicated=True``):

* durability: an acknowledged message is on the master and a slave (SYNC_MASTER), so the loss of
  one broker - power loss included - excuses nothing; the scenarios fault one broker at a time;
* no write while SLAVE: no delivered message was stored by a broker at a time it was a SLAVE
  (its store host and timestamp against the role timeline the broker nodes record);
* one message per offset: no two acknowledged messages of one broker group name the same
  commit-log offset (all brokers of a group share one offset space: two masters, e.g. of two
  epochs, acknowledging the same offset is a split brain);
* every request answered (``expect_answers``): no request of a client timed out or lost its
  connection (scenarios without network faults or kills).
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
    stored: tuple[str, int] | None = None  # (store host, store timestamp in ms): who wrote it


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
    # replication: broker address -> [(time, role name or "DOWN")], recorded by the brokers
    roles: dict[str, list[tuple[float, str]]] = attrs.Factory(dict)
    # broker address -> its broker group (brokerName): the brokers sharing an offset space
    groups: dict[str, str] = attrs.Factory(dict)
    replicated: bool = False
    # requests that got no answer: (time, address, request code, error)
    unanswered: list[tuple[float, str, int, str]] = attrs.Factory(list)
    expect_answers: bool = False
    # virtual time 0 in the brokers' store timestamps (tests/sim/cluster.py EPOCH_MS)
    epoch_ms: int = 0

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
        stored: tuple[str, int] | None = None,
    ) -> None:
        now = trio.current_time()
        self.deliveries.append(
            Delivery(key, group, consumer, now, reconsume_times, queue, queue_offset, stored)
        )

    def role_changed(self, broker: str, role: str) -> None:
        timeline = self.roles.setdefault(broker, [])
        if not timeline or timeline[-1][1] != role:
            timeline.append((trio.current_time(), role))

    def request_unanswered(self, addr: str, code: int, error: str) -> None:
        self.unanswered.append((trio.current_time(), addr, code, error))

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
            if self.replicated:
                return False  # a slave has it: one broker's power loss takes nothing
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
            and not self.skipped_after_truncation(group, send)
        ]

    def skipped_after_truncation(self, group: str, send: Send) -> bool:
        """Replication: the group consumed an *unacknowledged* message at this send's queue
        offset of the broker group (read on a master before any slave had it), that message
        was cut from the log when a slave lacking it became master, and the new master wrote
        this acknowledged one at the same queue offset: the group's offset is past it.

        Apache RocketMQ 4.9 behaves the same (consumers read what is not yet replicated;
        RocketMQ 5's controller mode reads only up to the in-sync replicas' confirm offset).
        Allowed, and counted in ``summary()`` (``skipped_after_truncation``)."""
        if not self.replicated or send.queue_offset is None or send.broker is None:
            return False
        home = self.groups.get(send.broker, send.broker)
        for d in self.deliveries:
            if (
                d.group == group
                and d.key != send.key
                and d.queue is not None
                and d.queue[1] == send.queue_id
                and d.queue_offset == send.queue_offset
                and self.groups.get(d.queue[0], d.queue[0]) == home
            ):
                other = self.sends.get(d.key)
                if other is None or other.status != "SEND_OK":
                    return True
        return False

    def truncation_skips(self) -> int:
        delivered = {(d.group, d.key) for d in self.deliveries}
        return sum(
            1
            for group, topics in self.subscriptions.items()
            for send in self.acked_ok()
            if send.topic in topics
            and (group, send.key) not in delivered
            and self.skipped_after_truncation(group, send)
        )

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

    def written_while_slave(self) -> list[Delivery]:
        """Deliveries of messages their store host wrote while it was a SLAVE (or down).

        A store timestamp is the millisecond of the put (``int(t * 1000)``), so a message
        stamped s was written in [s, s + 1) ms: a violation only if a SLAVE interval [a, b)
        holds that whole millisecond (int(a * 1000) < s < int(b * 1000))."""
        bad = []
        for d in self.deliveries:
            if d.stored is None or d.stored[0] not in self.roles:
                continue
            host, stamp = d.stored[0], d.stored[1] - self.epoch_ms
            timeline = self.roles[host]
            for i, (start, role) in enumerate(timeline):
                if role not in ("SLAVE", "DOWN"):
                    continue
                end = timeline[i + 1][0] if i + 1 < len(timeline) else float("inf")
                end_ms = int(end * 1000) if end != float("inf") else stamp + 1
                if int(start * 1000) < stamp < end_ms:
                    bad.append(d)
                    break
        return bad

    def conflicting_acks(self) -> list[list[Send]]:
        """Acknowledged messages of one broker group at the same commit-log offset."""
        by_offset: dict[tuple[str, int], list[Send]] = collections.defaultdict(list)
        for send in self.acked_ok():
            if send.broker is not None and send.phys_offset is not None:
                group = self.groups.get(send.broker, send.broker)
                by_offset[(group, send.phys_offset)].append(send)
        return [sends for _, sends in sorted(by_offset.items()) if len(sends) > 1]

    def role_at(self, broker: str | None, at: float) -> str:
        role = "?"
        for t, r in self.roles.get(broker or "", ()):
            if t <= at:
                role = r
        return role

    def _describe_conflict(self, sends: list[Send]) -> str:
        acks = ", ".join(
            f"{s.key} by {s.broker} ({self.role_at(s.broker, s.acked or 0)}) at {s.acked:.3f}"
            for s in sends
        )
        return f"acknowledged twice at offset {sends[0].phys_offset}: {acks}"

    def check(self) -> None:
        report: list[str] = []
        for d in self.written_while_slave()[:10]:
            assert d.stored is not None
            report.append(
                f"written while SLAVE: {d.key} stored by {d.stored[0]} at "
                f"{(d.stored[1] - self.epoch_ms) / 1000:.3f} (roles {self.roles[d.stored[0]]})"
            )
        report.extend(self._describe_conflict(sends) for sends in self.conflicting_acks()[:10])
        if self.expect_answers:
            for at, addr, code, error in self.unanswered[:10]:
                report.append(f"unanswered: request {code} to {addr} at {at:.3f}: {error}")
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
            for broker, timeline in sorted(self.roles.items()):
                roles = ", ".join(f"{t:.3f} {r}" for t, r in timeline)
                report.append(f"roles of {broker}: {roles}")
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
            "skipped_after_truncation": self.truncation_skips(),
            "membership_events": len(self.membership),
            "role_changes": sum(len(t) for t in self.roles.values()),
            "unanswered": len(self.unanswered),
        }

    def trace(self) -> list[tuple[object, ...]]:
        """Everything recorded, in order: equal for two runs of one seed."""
        out: list[tuple[object, ...]] = [
            ("send", s.key, round(s.started, 6), s.status, s.phys_offset)
            for s in self.sends.values()
        ]
        out += [("deliver", d.key, d.group, d.consumer, round(d.at, 6)) for d in self.deliveries]
        out += [("member", round(t, 6), w) for t, w in self.membership]
        out += [
            ("role", broker, round(t, 6), role)
            for broker, timeline in sorted(self.roles.items())
            for t, role in timeline
        ]
        return out


def _msg_id_broker(offset_msg_id: str) -> str:
    """The "ip:port" an IPv4 offset msgId (32 hex digits) names."""
    raw = bytes.fromhex(offset_msg_id[:16])
    return f"{raw[0]}.{raw[1]}.{raw[2]}.{raw[3]}:{int.from_bytes(raw[4:8], 'big')}"


def keys_of(messages: Iterable[object]) -> list[str]:
    return [getattr(m, "keys", "") for m in messages]

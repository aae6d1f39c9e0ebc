"""Queue allocation strategies of the push consumer (reference §8.4), pure.

Each strategy answers: given every queue of a topic (``mq_all``) and every consumer of the
group (``cid_all``), both already sorted the way the rebalance sorts them, which queues does
``current_cid`` own?  The rules and edge cases follow the 4.9 Java classes exactly, because
a group may mix our consumers with Java/C++ ones: if two members disagree on the
assignment, a queue ends up consumed twice or not at all.
"""

from __future__ import annotations

import bisect
import hashlib
from collections.abc import Callable, Sequence
from typing import Protocol, TypeVar


class QueueLike(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def broker_name(self) -> str: ...

    @property
    def queue_id(self) -> int: ...


Q = TypeVar("Q", bound=QueueLike)


class AllocationError(ValueError):
    """The inputs cannot be allocated (empty client id, no queues, no consumers)."""


class AllocateStrategy(Protocol):
    """How a consumer group's queues are shared among its members (Java's
    AllocateMessageQueueStrategy); every member runs it on the same sorted inputs, so
    each takes a disjoint part without talking to the others."""

    @property
    def name(self) -> str:
        """The strategy's name as Java's (what the broker's consumer runtime info shows)."""
        ...

    def allocate(
        self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]
    ) -> list[Q]:
        """The queues of ``mq_all`` that member ``current_cid`` of ``cid_all`` takes."""
        ...


def _check(current_cid: str, mq_all: Sequence[object], cid_all: Sequence[str]) -> bool:
    """Java's AbstractAllocateMessageQueueStrategy.check: raise on bad input, False if not a member."""
    if not current_cid:
        raise AllocationError("currentCID is empty")
    if not mq_all:
        raise AllocationError("mqAll is null or mqAll empty")
    if not cid_all:
        raise AllocationError("cidAll is null or cidAll empty")
    return current_cid in cid_all


class AllocateAveragely:
    """Contiguous blocks; the first ``M % N`` consumers get one queue more (``AVG``)."""

    name = "AVG"

    def allocate(
        self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]
    ) -> list[Q]:
        if not _check(current_cid, mq_all, cid_all):
            return []
        m, n = len(mq_all), len(cid_all)
        index = cid_all.index(current_cid)
        mod = m % n
        if m <= n:
            size = 1
        elif mod > 0 and index < mod:
            size = m // n + 1
        else:
            size = m // n
        start = index * size if mod > 0 and index < mod else index * size + mod
        count = min(size, m - start)
        return [mq_all[(start + i) % m] for i in range(count)]


class AllocateAveragelyByCircle:
    """Round robin: queue ``j`` goes to consumer ``j % N`` (``AVG_BY_CIRCLE``)."""

    name = "AVG_BY_CIRCLE"

    def allocate(
        self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]
    ) -> list[Q]:
        if not _check(current_cid, mq_all, cid_all):
            return []
        index = cid_all.index(current_cid)
        return [mq for j, mq in enumerate(mq_all) if j % len(cid_all) == index]


class AllocateByConfig:
    """A fixed, user-configured list regardless of the group (``CONFIG``)."""

    name = "CONFIG"

    def __init__(self, queues: Sequence[QueueLike]) -> None:
        self.queues = list(queues)

    def allocate(
        self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]
    ) -> list[Q]:
        return list(self.queues)  # type: ignore[arg-type]  # configured by the caller, same type


def _java_split_at(text: str) -> list[str]:
    # Java's String.split drops trailing empty strings: "hz@" is one part, not two.
    parts = text.split("@")
    while parts and parts[-1] == "":
        parts.pop()
    return parts


class AllocateByMachineRoom:
    """Only queues on brokers named ``<room>@<name>`` with room in ``consumer_idcs`` (``MACHINE_ROOM``)."""

    name = "MACHINE_ROOM"

    def __init__(self, consumer_idcs: set[str]) -> None:
        self.consumer_idcs = set(consumer_idcs)

    def allocate(
        self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]
    ) -> list[Q]:
        if not _check(current_cid, mq_all, cid_all):
            return []
        index = cid_all.index(current_cid)
        eligible = []
        for mq in mq_all:
            parts = _java_split_at(mq.broker_name)
            if len(parts) == 2 and parts[0] in self.consumer_idcs:
                eligible.append(mq)
        n = len(cid_all)
        per, rem = divmod(len(eligible), n)
        result = eligible[index * per : index * per + per]
        if rem > index:
            result.append(eligible[index + per * n])
        return result


class AllocateMachineRoomNearby:
    """Queues of a room go to that room's consumers; rooms without consumers are shared by all.

    ``broker_room(mq)`` and ``consumer_room(cid)`` resolve the rooms (Java's
    MachineRoomResolver); each must return a non-empty string.
    """

    def __init__(
        self,
        inner: AllocateStrategy,
        broker_room: Callable[[QueueLike], str],
        consumer_room: Callable[[str], str],
    ) -> None:
        self.inner = inner
        self.broker_room = broker_room
        self.consumer_room = consumer_room

    @property
    def name(self) -> str:
        return f"MACHINE_ROOM_NEARBY-{self.inner.name}"

    def allocate(
        self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]
    ) -> list[Q]:
        if not _check(current_cid, mq_all, cid_all):
            return []
        room_queues: dict[str, list[Q]] = {}
        for mq in mq_all:
            room = self.broker_room(mq)
            if not room:
                raise AllocationError(f"machine room is null for mq {mq}")
            room_queues.setdefault(room, []).append(mq)
        room_consumers: dict[str, list[str]] = {}
        for cid in cid_all:
            room = self.consumer_room(cid)
            if not room:
                raise AllocationError(f"machine room is null for consumer id {cid}")
            room_consumers.setdefault(room, []).append(cid)
        result: list[Q] = []
        own_room = self.consumer_room(current_cid)
        own_queues = room_queues.pop(own_room, [])
        if own_queues:
            result += self.inner.allocate(group, current_cid, own_queues, room_consumers[own_room])
        # Java walks a TreeMap: rooms in sorted order.
        for room in sorted(room_queues):
            if room not in room_consumers:
                result += self.inner.allocate(group, current_cid, room_queues[room], cid_all)
        return result


def md5_hash(key: str) -> int:
    """ConsistentHashRouter.MD5Hash: the first 4 digest bytes as an unsigned big-endian number."""
    return int.from_bytes(hashlib.md5(key.encode()).digest()[:4], "big")


def queue_key(mq: QueueLike) -> str:
    """``MessageQueue.toString()`` — the ring key of a queue."""
    return f"MessageQueue [topic={mq.topic}, brokerName={mq.broker_name}, queueId={mq.queue_id}]"


class AllocateConsistentHash:
    """A hash ring with ``virtual_nodes`` points per consumer (``CONSISTENT_HASH``)."""

    name = "CONSISTENT_HASH"

    def __init__(self, virtual_nodes: int = 10, hash_fn: Callable[[str], int] = md5_hash) -> None:
        if virtual_nodes < 0:
            raise AllocationError(f"illegal virtualNodeCnt: {virtual_nodes}")
        self.virtual_nodes = virtual_nodes
        self.hash_fn = hash_fn

    def allocate(
        self, group: str, current_cid: str, mq_all: Sequence[Q], cid_all: Sequence[str]
    ) -> list[Q]:
        if not _check(current_cid, mq_all, cid_all):
            return []
        ring: dict[int, str] = {}
        for cid in cid_all:
            for k in range(self.virtual_nodes):
                # A colliding point is overwritten by the later node, as in Java's TreeMap.put.
                ring[self.hash_fn(f"{cid}-{k}")] = cid
        points = sorted(ring)
        result = []
        for mq in mq_all:
            h = self.hash_fn(queue_key(mq))
            i = bisect.bisect_left(points, h)
            owner = ring[points[i if i < len(points) else 0]]
            if owner == current_cid:
                result.append(mq)
        return result


def strategy_by_name(name: str) -> AllocateStrategy:
    """The strategies that need no configuration, by their Java ``getName()``."""
    table: dict[str, Callable[[], AllocateStrategy]] = {
        "AVG": AllocateAveragely,
        "AVG_BY_CIRCLE": AllocateAveragelyByCircle,
        "CONSISTENT_HASH": AllocateConsistentHash,
    }
    try:
        return table[name]()
    except KeyError:
        raise AllocationError(
            f"unknown allocation strategy {name!r}; choose one of {sorted(table)}"
        ) from None

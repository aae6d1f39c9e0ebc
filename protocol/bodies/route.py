"""Route bodies served by the NameServer (reference §3.3.1, §3.3.5, §9.4)."""

from __future__ import annotations

import attrs


@attrs.frozen(kw_only=True)
class QueueData:
    broker_name: str
    read_queue_nums: int = 0
    write_queue_nums: int = 0
    perm: int = 6  # PERM_READ | PERM_WRITE
    topic_sys_flag: int = 0


@attrs.frozen(kw_only=True)
class BrokerData:
    """``broker_addrs`` maps brokerId (0 = master) to ``"ip:port"``.

    Java writes the Long keys bare (``{0:"..."}``) or quoted in standard-JSON mode; both read.
    """

    cluster: str
    broker_name: str
    broker_addrs: dict[int, str] = attrs.field(factory=dict)

    @property
    def master_addr(self) -> str | None:
        return self.broker_addrs.get(0)


@attrs.frozen(kw_only=True)
class TopicRouteData:
    queue_datas: tuple[QueueData, ...] = ()
    broker_datas: tuple[BrokerData, ...] = ()
    filter_server_table: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    order_topic_conf: str | None = None


@attrs.frozen(kw_only=True)
class ClusterInfo:
    broker_addr_table: dict[str, BrokerData] = attrs.field(factory=dict)
    cluster_addr_table: dict[str, tuple[str, ...]] = attrs.field(factory=dict)

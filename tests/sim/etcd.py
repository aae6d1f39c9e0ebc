"""The broker group's etcd in a simulation: tests/failover's in-memory ``FakeEtcd`` (etcd's
revisions, leases on Trio's clock, txn, watch) as a host of the simulated network.

Brokers with ``etcdEndpoints`` get their client from ``actors.broker.failover.etcd_factory``,
which a simulated broker node sets to ``SimEtcd.client``: the fake's client named after the
broker's host.  The fake is not reached through the network's streams, so it follows the
network's state instead: whenever a host crashes, returns, or is cut from the etcd host
(``SimNetwork.on_change``), its client is cut off or reconnected (requests then time out
after the fake's 2 s and its watch breaks, as a partitioned client's would).
"""

from __future__ import annotations

import attrs

from tests.failover.fake_etcd import FakeEtcd, FakeEtcdClient
from tests.sim.network import SimNetwork

ETCD_HOST = "10.254.0.1"
ETCD_PORT = 2379


@attrs.define(eq=False)
class SimEtcd:
    net: SimNetwork
    host: str = ETCD_HOST
    port: int = ETCD_PORT
    server: FakeEtcd = attrs.Factory(FakeEtcd)
    hosts: set[str] = attrs.Factory(set)

    def __attrs_post_init__(self) -> None:
        self.net.on_change.append(self._follow_network)

    @property
    def endpoints(self) -> str:
        return f"{self.host}:{self.port}"

    def client(self, host: str) -> FakeEtcdClient:
        """The etcd client of the node on ``host``."""
        self.hosts.add(host)
        self._follow_network()
        return self.server.client(host)

    def _follow_network(self) -> None:
        for host in sorted(self.hosts):
            cut = self.net.is_down(host) or self.net.is_cut(host, self.host)
            if cut and host not in self.server.cut:
                self.server.cut_off(host)
            elif not cut and host in self.server.cut:
                self.server.reconnect(host)

    async def run(self) -> None:
        """Expire leases on time (start it in the simulation's nursery)."""
        await self.server.run()

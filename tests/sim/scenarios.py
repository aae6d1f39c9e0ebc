"""Seeded scenarios: minutes of virtual time, each fault's time, target and size from the seed.

Each scenario is ``async def scenario(sim)``: it builds a cluster in ``sim``, runs a workload,
injects its faults, lets the cluster settle and returns; the caller checks ``sim.history``.
Scenario-specific expectations (route expiry times, delivery latency) are asserted inside.
Replication's scenarios (role switch, failover) run broker groups of a master and slaves
(``BrokerNode`` with a slave role and the master's ``broker_name``) and reuse everything here.
"""

from __future__ import annotations

import functools
import random
from collections.abc import Callable

import trio

from actors.client.consumer import ConsumerSettings
from actors.remoting.client import open_remoting_client
from actors.remoting.transport import use_transport
from protocol.codes import SWITCH_BROKER_ROLE, RequestCode, ResponseCode
from protocol.command import RemotingCommand
from storage.config import BrokerRole
from tests.actors.broker.wire import send_v2
from tests.sim.cluster import BrokerNode, ClientNode, Simulation
from tests.sim.requests import answers_recorded
from tests.sim.workload import ProducerPlan, consumer_program, producer_program

TOPIC = "SimTopic"


def child_rng(sim: Simulation) -> random.Random:
    return random.Random(sim.rng.random())


async def base_cluster(sim: Simulation, brokers: int = 1) -> None:
    await sim.add_namesrv()
    for _ in range(brokers):
        await sim.add_broker()
    await sim.wait_route(TOPIC)


async def settle(sim: Simulation, *producers: ClientNode, after: float = 60.0) -> None:
    for p in producers:
        await p.finished()
    await trio.sleep(after)


async def broker_restart_under_load(sim: Simulation) -> None:
    """Two brokers, producers and consumers busy; brokers die (power loss or process kill,
    seeded) and come back after a seeded outage."""
    await base_cluster(sim, brokers=2)
    for i in range(2):
        await sim.add_client(f"c{i}", consumer_program("g1", TOPIC, rng=child_rng(sim)))
    producers = [
        await sim.add_client(
            f"p{i}", producer_program(ProducerPlan(TOPIC, 150, interval=0.2), child_rng(sim))
        )
        for i in range(2)
    ]
    for _ in range(2):
        await trio.sleep(sim.rng.uniform(3, 12))
        victim = sim.rng.choice(sim.brokers)
        await victim.kill(power_loss=sim.rng.random() < 0.7)
        await trio.sleep(sim.rng.uniform(0.5, 20))
        await victim.restart()
    await settle(sim, *producers)


async def namesrv_loss(sim: Simulation) -> None:
    """The only name server dies: running clients keep their routes and go on; a consumer
    joining while it is down waits; after its restart the broker re-registers (<= 30 s) and
    the newcomer gets its route."""
    await base_cluster(sim)
    await sim.add_client("c0", consumer_program("g1", TOPIC, rng=child_rng(sim)))
    producer = await sim.add_client(
        "p0", producer_program(ProducerPlan(TOPIC, 120, interval=0.5), child_rng(sim))
    )
    await trio.sleep(sim.rng.uniform(5, 15))
    ns = sim.namesrvs[0]
    await ns.kill(power_loss=False)
    await trio.sleep(1)
    await sim.add_client("c-late", consumer_program("g2", TOPIC, rng=child_rng(sim)))
    await trio.sleep(sim.rng.uniform(10, 40))
    acked_before = len(sim.history.acked_ok())
    await ns.restart()
    await settle(sim, producer, after=90)
    assert len(sim.history.acked_ok()) > acked_before or producer.sim.sent_counter["p0"] >= 120
    late = {d.key for d in sim.history.deliveries if d.group == "g2"}
    assert late, "the consumer that started while the name server was down got nothing"


async def _route_brokers(sim: Simulation, topic: str) -> set[str]:
    import json

    with use_transport(sim.net.node("10.255.0.2")):
        async with open_remoting_client(name="probe") as client:
            req = RemotingCommand.request(RequestCode.GET_ROUTEINFO_BY_TOPIC, {"topic": topic})
            reply = await client.invoke(sim.namesrvs[0].addr, req, 5)
    if reply.code != ResponseCode.SUCCESS:
        return set()
    return {d["brokerName"] for d in json.loads(reply.body or b"{}").get("brokerDatas", [])}


async def broker_expiry(sim: Simulation) -> None:
    """A broker goes silent (partitioned from the name server, its connection left open):
    the name server drops it once 120 s pass without a registration - not before, and
    within one 10 s scan after - and takes it back at the next registration after the heal."""
    await base_cluster(sim, brokers=2)
    b = sim.rng.choice(sim.brokers)
    ns = sim.namesrvs[0]
    await trio.sleep(sim.rng.uniform(0, 30))
    cut_at = trio.current_time()
    sim.net.partition(b.host, ns.host)
    sim.history.membership_changed(f"partition {b.name}")
    # the last registration that got through was at most 30 s before the cut
    gone_at = None
    while trio.current_time() - cut_at < 200:
        await trio.sleep(1)
        if b.broker_name not in await _route_brokers(sim, TOPIC):
            gone_at = trio.current_time()
            break
    assert gone_at is not None, "the silent broker was never expired"
    silent_for = gone_at - cut_at
    assert 120 - 30 <= silent_for <= 120 + 10 + 2, silent_for
    sim.net.heal(b.host, ns.host)
    healed_at = trio.current_time()
    while b.broker_name not in await _route_brokers(sim, TOPIC):
        await trio.sleep(1)
        assert trio.current_time() - healed_at <= 30 + 2 + 120, "never re-registered"


async def rebalance_storm(sim: Simulation) -> None:
    """Consumers of one group join, leave in order and die at seeded times while producers
    send; every acknowledged message is consumed and no two owners hold a queue at once
    outside the rebalance windows."""
    await base_cluster(sim, brokers=2)
    settings = ConsumerSettings(rebalance_interval=20.0)
    members: list[ClientNode] = [
        await sim.add_client(
            f"c{i}", consumer_program("g1", TOPIC, rng=child_rng(sim), settings=settings)
        )
        for i in range(3)
    ]
    producer = await sim.add_client(
        "p0", producer_program(ProducerPlan(TOPIC, 300, interval=0.3), child_rng(sim))
    )
    for step in range(8):
        await trio.sleep(sim.rng.uniform(2, 15))
        action = sim.rng.random()
        running = [m for m in members if m.running]
        if action < 0.4 or len(running) <= 1:
            members.append(
                await sim.add_client(
                    f"c{len(members)}",
                    consumer_program("g1", TOPIC, rng=child_rng(sim), settings=settings),
                )
            )
        elif action < 0.7:
            await sim.rng.choice(running).stop()
        else:
            await sim.rng.choice(running).kill(power_loss=False)
        del step
    if not any(m.running for m in members):
        await sim.add_client("c-last", consumer_program("g1", TOPIC, rng=child_rng(sim)))
    await settle(sim, producer, after=90)


async def long_polling_across_restarts(sim: Simulation) -> None:
    """A consumer long-polls (15 s suspend) an idle topic while the broker restarts: after the
    restart a new message reaches it within a few seconds, not after a poll timeout."""
    await base_cluster(sim)
    await sim.add_client("c0", consumer_program("g1", TOPIC, rng=child_rng(sim)))
    await trio.sleep(25)
    b = sim.brokers[0]
    for _ in range(2):
        await b.kill(power_loss=sim.rng.random() < 0.5)
        await trio.sleep(sim.rng.uniform(1, 10))
        await b.restart()
        # the consumer is back in a held pull once its next heartbeat (every 30 s) has told
        # the new incarnation its subscription: until then its pulls are refused
        # (SUBSCRIPTION_NOT_EXIST, retried after 3 s), as with Java's client
        await trio.sleep(sim.rng.uniform(35, 50))
        before = len(sim.history.deliveries)
        producer = await sim.add_client(
            f"p{sim.rng.randrange(1 << 30)}",
            producer_program(ProducerPlan(TOPIC, 1, interval=0.01), child_rng(sim)),
        )
        await producer.finished()
        sent_at = trio.current_time()
        while len(sim.history.deliveries) == before:
            await trio.sleep(0.05)
            waited = trio.current_time() - sent_at
            assert waited < 5, f"delivery waited {waited:.1f} s: for a poll timeout?"
        # flushed (thorough flush every 10 s) before the next kill: a power loss that took
        # a message the consumer has committed would make it wait for OFFSET_ILLEGAL's
        # 10 s correction (Java's too) instead of showing what long polling does
        await trio.sleep(15)
    await trio.sleep(30)


async def orderly_under_broker_restart(sim: Simulation) -> None:
    """Orderly producers and consumers while a broker restarts and a consumer joins: each
    sharding key's messages are consumed in send order."""
    await base_cluster(sim, brokers=1)
    await sim.add_client("c0", consumer_program("g1", TOPIC, orderly=True, rng=child_rng(sim)))
    producer = await sim.add_client(
        "p0",
        producer_program(ProducerPlan(TOPIC, 200, interval=0.1, order_keys=5), child_rng(sim)),
    )
    await trio.sleep(sim.rng.uniform(3, 10))
    await sim.add_client("c1", consumer_program("g1", TOPIC, orderly=True, rng=child_rng(sim)))
    await trio.sleep(sim.rng.uniform(3, 10))
    b = sim.brokers[0]
    await b.kill(power_loss=sim.rng.random() < 0.5)
    await trio.sleep(sim.rng.uniform(1, 10))
    await b.restart()
    await settle(sim, producer, after=90)


async def delayed_messages(sim: Simulation) -> None:
    """Messages with delay levels across a broker restart: none is delivered early."""
    await base_cluster(sim)
    await sim.add_client("c0", consumer_program("g1", TOPIC, rng=child_rng(sim)))
    producer = await sim.add_client(
        "p0",
        producer_program(ProducerPlan(TOPIC, 80, interval=0.3, delay_share=0.6), child_rng(sim)),
    )
    await trio.sleep(sim.rng.uniform(5, 20))
    b = sim.brokers[0]
    await b.kill(power_loss=sim.rng.random() < 0.5)
    await trio.sleep(sim.rng.uniform(1, 5))
    await b.restart()
    await settle(sim, producer, after=120)
    assert any(s.delay_ms for s in sim.history.sends.values())


async def network_chaos(sim: Simulation) -> None:
    """Producers and consumers while the network misbehaves: connections reset, links
    between a client and a broker cut for a while and healed, latencies change.  Nothing
    acknowledged may be lost, nothing owned twice outside the windows the faults open."""
    await base_cluster(sim, brokers=2)
    consumers = [
        await sim.add_client(f"c{i}", consumer_program("g1", TOPIC, rng=child_rng(sim)))
        for i in range(2)
    ]
    producer = await sim.add_client(
        "p0", producer_program(ProducerPlan(TOPIC, 150, interval=0.3), child_rng(sim))
    )
    clients = [*consumers, producer]
    for _ in range(10):
        await trio.sleep(sim.rng.uniform(1, 8))
        client, b = sim.rng.choice(clients), sim.rng.choice(sim.brokers)
        fault = sim.rng.random()
        sim.history.membership_changed(f"network fault {client.name} {b.name}")
        if fault < 0.4:
            sim.net.reset(client.host, b.host)
        elif fault < 0.8:
            sim.net.partition(client.host, b.host)
            await trio.sleep(sim.rng.uniform(2, 40))
            sim.net.heal(client.host, b.host)
        else:
            sim.net.set_link(client.host, b.host, sim.rng.uniform(0.01, 0.5), 0.05)
    sim.net.heal()
    await settle(sim, producer, after=120)


# A broker group under replication: registrations every 10 s (a demoted master learns its new
# master's HA address from the next registration reply), HA heartbeats every second.
GROUP_CONFIG = {"registerNameServerPeriod": 10_000, "slaveReadEnable": True}
GROUP_STORE = {"haSendHeartbeatInterval": 1000, "haHousekeepingInterval": 10_000}
# Clients of a replicated group poll the name servers every 5 s (Java's
# pollNameServerInterval): a client with a stale route sends to, and pulls from, a demoted
# master (refused: SERVICE_NOT_AVAILABLE, PULL_RETRY_IMMEDIATELY at once, again and again)
# until it polls.
ROUTE_POLL = 5.0


async def _wait_until(pred: Callable[[], object], timeout: float) -> None:
    with trio.fail_after(timeout):
        while not pred():  # noqa: ASYNC110 - polls the state of other nodes' actors
            await trio.sleep(0.1)


async def _switch(
    sim: Simulation,
    node: BrokerNode,
    role: BrokerRole,
    *,
    slave_id: int = 1,
    truncate_to: int | None = None,
) -> int:
    """SWITCH_BROKER_ROLE from an operator; the promoted broker's commit-log end."""
    fields = {"brokerRole": role.name}
    if role is BrokerRole.SLAVE:
        fields["brokerId"] = str(slave_id)
    if truncate_to is not None:
        fields["truncateTo"] = str(truncate_to)
    reply = await sim.admin(node.addr, RemotingCommand.request(SWITCH_BROKER_ROLE, fields))
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    sim.history.membership_changed(f"{node.name} -> {role.name}")
    return int(reply.ext_fields["maxPhyOffset"])


async def _stale_route_sends(sim: Simulation, node: BrokerNode, count: int = 2) -> None:
    """Sends straight to a broker, as from a producer whose route still names it master: a
    demoted or fenced broker must refuse them (and answer); whatever it acknowledges is held
    to the history's checks like any other send (delivered, not written while SLAVE)."""
    for _ in range(count):
        key = f"direct-{node.name}-{len(sim.history.sends)}"
        queue_id = sim.rng.randrange(4)
        send = sim.history.send_started(key, TOPIC, 16)
        request = send_v2(TOPIC, f"{key}|".encode() + b"x" * 16, queue_id=queue_id)
        reply = await sim.admin(node.addr, request)
        if reply.code == ResponseCode.SUCCESS:
            fields = reply.ext_fields
            sim.history.send_finished(
                send, "SEND_OK", fields.get("msgId"), queue_id, int(fields["queueOffset"])
            )
        else:
            sim.history.send_finished(send, f"code {reply.code}: {reply.remark}")


async def _master_slave_pair(sim: Simulation) -> tuple[BrokerNode, BrokerNode]:
    await sim.add_namesrv()
    nodes = []
    for i, role in enumerate((BrokerRole.SYNC_MASTER, BrokerRole.SLAVE)):
        nodes.append(
            await sim.add_broker(
                f"b{i}",
                broker_name="broker-a",
                # each node's id while a slave: two slaves of one group never share one
                config_overrides={**GROUP_CONFIG, "brokerId": 0 if i == 0 else 2},
                store_settings={**GROUP_STORE, "brokerRole": role},
            )
        )
    master, slave = nodes
    await sim.wait_route(TOPIC)
    assert master.handle is not None
    rep = master.handle.ctx.replication
    await _wait_until(lambda: rep is not None and rep.slaves, 30)
    return master, slave


async def role_switch_under_load(sim: Simulation) -> None:
    """A SYNC_MASTER/SLAVE group under load while an operator switches roles
    (SWITCH_BROKER_ROLE): switchovers (demote the master, promote the slave, cut the old
    master's unacknowledged tail) and flaps (demote, promote the same broker back), with sends
    and held pulls in flight.  Checked: no acknowledged message lost, nothing written by a
    broker while it was a SLAVE, every request answered (an error code counts; a timeout or
    a dropped connection does not)."""
    with answers_recorded(sim.history):
        master, other = await _master_slave_pair(sim)
        # each node's brokerId while a slave: two slaves of one group never share one
        slave_id = {master.name: 1, other.name: 2}
        sim.history.replicated = True
        for i in range(2):
            await sim.add_client(
                f"c{i}",
                consumer_program("g1", TOPIC, rng=child_rng(sim), route_poll=ROUTE_POLL),
            )
        producers = [
            await sim.add_client(
                f"p{i}",
                producer_program(
                    # longer than slaveTimeout: the broker answers FLUSH_SLAVE_TIMEOUT first
                    ProducerPlan(
                        TOPIC, 120, interval=0.3, send_timeout=10.0, route_poll=ROUTE_POLL
                    ),
                    child_rng(sim),
                ),
            )
            for i in range(2)
        ]
        for _ in range(5):
            await trio.sleep(sim.rng.uniform(2, 10))
            # demote first, then promote: never two masters; the master refuses writes from here
            await _switch(sim, master, BrokerRole.SLAVE, slave_id=slave_id[master.name])
            await _stale_route_sends(sim, master)
            await trio.sleep(sim.rng.uniform(0, 2))
            if sim.rng.random() < 0.6:
                end = await _switch(sim, other, BrokerRole.SYNC_MASTER)
                # what the old master has beyond the new master's end nobody acknowledged
                await _switch(
                    sim, master, BrokerRole.SLAVE, slave_id=slave_id[master.name], truncate_to=end
                )
                master, other = other, master
            else:
                await _switch(sim, master, BrokerRole.SYNC_MASTER)
        await settle(sim, *producers, after=90)
    assert sim.history.acked_ok(), "nothing was acknowledged"


FAILOVER_CONFIG = {**GROUP_CONFIG, "etcdLeaseTtlSeconds": 2}
FAILOVER_STORE = {
    "slaveTimeout": 1000,
    "haHousekeepingInterval": 5000,
    "haSendHeartbeatInterval": 500,
}


def _leader(group: list[BrokerNode]) -> BrokerNode | None:
    leaders = [b for b in group if b.leading]
    return max(leaders, key=lambda b: b.leading) if leaders else None


async def _wait_leader(group: list[BrokerNode], above: int, timeout: float) -> BrokerNode:
    with trio.fail_after(timeout):
        while True:
            leader = _leader(group)
            if leader is not None and leader.leading > above and leader.is_master:
                return leader
            await trio.sleep(0.1)


async def _wait_in_sync(leader: BrokerNode, timeout: float = 30) -> None:
    """Until a slave is in the master's in-sync set: every acknowledged message is then on
    two brokers, so the next single fault may take nothing acknowledged."""
    assert leader.handle is not None
    fo = leader.handle.ctx.failover
    assert fo is not None
    await _wait_until(lambda: bool(fo.syncset.written.value), timeout)


def _follows(node: BrokerNode, leader: BrokerNode) -> bool:
    if not node.running or node.is_master or node.handle is None:
        return False
    fo = node.handle.ctx.failover
    return fo is not None and fo.epoch == leader.leading


async def failover_under_load(sim: Simulation) -> None:
    """Three brokers of one group with failover, elected through etcd (the fake of
    tests/failover on the simulated network), under load; twice the master is killed (power
    loss or process kill), isolated from everyone, or cut from etcd only, and a slave takes
    over; the old master comes back and follows.  Checked: no acknowledged message lost, no
    two acknowledged messages at one offset of the group (two masters of different epochs),
    nothing written while a SLAVE."""
    etcd = await sim.add_etcd()
    await sim.add_namesrv()
    group = [
        await sim.add_broker(
            f"b{i}",
            broker_name="broker-a",
            config_overrides={**FAILOVER_CONFIG, "brokerId": i, "etcdEndpoints": etcd.endpoints},
            store_settings={
                **FAILOVER_STORE,
                "brokerRole": BrokerRole.SYNC_MASTER if i == 0 else BrokerRole.SLAVE,
            },
        )
        for i in range(3)
    ]
    leader = await _wait_leader(group, 0, 30)
    await _wait_in_sync(leader)
    await sim.wait_route(TOPIC)
    sim.history.replicated = True
    for i in range(2):
        await sim.add_client(
            f"c{i}", consumer_program("g1", TOPIC, rng=child_rng(sim), route_poll=ROUTE_POLL)
        )
    producers = [
        await sim.add_client(
            f"p{i}",
            producer_program(
                ProducerPlan(TOPIC, 150, interval=0.3, send_timeout=10.0, route_poll=ROUTE_POLL),
                child_rng(sim),
            ),
        )
        for i in range(2)
    ]
    for _ in range(2):
        await trio.sleep(sim.rng.uniform(3, 12))
        await _wait_in_sync(leader)
        old, epoch = leader, leader.leading
        fault = sim.rng.random()
        sim.history.membership_changed(f"fault of master {old.name} (epoch {epoch})")
        if fault < 0.4:
            await old.kill(power_loss=sim.rng.random() < 0.6)
        elif fault < 0.7:
            sim.net.isolate(old.host)  # a lost machine: everyone's timeouts notice
        else:
            sim.net.partition(old.host, etcd.host)  # still reaches clients and slaves
        leader = await _wait_leader([b for b in group if b is not old], epoch, 30)
        sim.history.membership_changed(f"{leader.name} leads epoch {leader.leading}")
        if fault >= 0.7:
            await _stale_route_sends(
                sim, old
            )  # fenced, and still reachable        await trio.sleep(sim.rng.uniform(2, 15))
        if not old.running:
            await old.restart()
        else:
            sim.net.heal(old.host) if fault < 0.7 else sim.net.heal(old.host, etcd.host)
        sim.history.membership_changed(f"{old.name} back")
        await _wait_until(functools.partial(_follows, old, leader), 60)
    await settle(sim, *producers, after=90)
    assert sim.history.acked_ok(), "nothing was acknowledged"


SCENARIOS = {
    f.__name__: f
    for f in (
        broker_restart_under_load,
        namesrv_loss,
        broker_expiry,
        rebalance_storm,
        long_polling_across_restarts,
        orderly_under_broker_restart,
        delayed_messages,
        network_chaos,
        role_switch_under_load,
        failover_under_load,
    )
}

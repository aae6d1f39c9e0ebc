"""Nodes start, stop, die and come back inside one Trio run under the autojump clock."""

from __future__ import annotations

import pytest
import trio

from storage.config import FlushDiskType
from tests.sim.cluster import Simulation
from tests.sim.workload import ProducerPlan, consumer_program, producer_program

pytestmark = pytest.mark.parametrize("seed", [3])


async def test_cluster_produces_and_consumes_on_the_simulated_network(
    sim: Simulation, autojump_clock
):
    await sim.add_namesrv()
    await sim.add_broker()
    await sim.wait_route("T")
    start = trio.current_time()
    await sim.add_client("c1", consumer_program("g", "T"))
    producer = await sim.add_client("p1", producer_program(ProducerPlan("T", 30), sim.rng))
    await producer.finished()
    await trio.sleep(30)
    sim.history.check()
    summary = sim.history.summary()
    assert summary["acked"] == 30
    assert summary["distinct_delivered"] == 30
    assert trio.current_time() - start > 30  # virtual time passed, not real
    assert sim.net.stats()["bytes"] > 30 * 100


async def test_killed_broker_restarts_on_what_a_power_loss_keeps(
    tmp_path, nursery, autojump_clock, deterministic
):
    sim = Simulation(7, nursery, tmp_path, flush=FlushDiskType.ASYNC_FLUSH)
    await sim.add_namesrv()
    b = await sim.add_broker(
        store_settings={"flushIntervalCommitLog": 60_000, "flushCommitLogThoroughInterval": 600_000}
    )
    await sim.wait_route("T")
    producer = await sim.add_client(
        "p1", producer_program(ProducerPlan("T", 40, interval=0.05), sim.rng)
    )
    await producer.finished()
    assert sim.history.summary()["acked"] == 40
    flushed = b.flushed_offset
    await b.kill(power_loss=True)
    assert b.last_image is not None
    assert b.last_image.unflushed_pages > 0
    assert b.last_image.lost_pages > 0  # seed 7 loses some: the test would not mean much else
    await b.restart()
    await sim.add_client("c1", consumer_program("g", "T"))
    await trio.sleep(60)
    hist = sim.history
    delivered = {d.key for d in hist.deliveries}
    # lost: only messages not entirely below the flushed offset; the checker agrees
    for send in hist.acked_ok():
        if send.key not in delivered:
            assert send.phys_offset + send.body_size > flushed - 2048
    assert len(delivered) < 40
    hist.check()


async def test_process_kill_keeps_every_written_message(sim: Simulation, autojump_clock):
    await sim.add_namesrv()
    b = await sim.add_broker(
        store_settings={"flushIntervalCommitLog": 60_000, "flushCommitLogThoroughInterval": 600_000}
    )
    await sim.wait_route("T")
    producer = await sim.add_client("p1", producer_program(ProducerPlan("T", 20), sim.rng))
    await producer.finished()
    await b.kill(power_loss=False)
    await b.restart()
    await sim.add_client("c1", consumer_program("g", "T"))
    await trio.sleep(60)
    assert sim.history.summary()["distinct_delivered"] == 20
    sim.history.check()


async def test_sync_flush_loses_no_acknowledged_message(
    tmp_path, nursery, autojump_clock, deterministic
):
    sim = Simulation(11, nursery, tmp_path, flush=FlushDiskType.SYNC_FLUSH)
    await sim.add_namesrv()
    b = await sim.add_broker()
    await sim.wait_route("T")
    producer = await sim.add_client(
        "p1", producer_program(ProducerPlan("T", 200, interval=0.01), sim.rng)
    )
    await trio.sleep(1.2)
    await b.kill(power_loss=True)  # mid-load
    await b.restart()
    await producer.finished()
    await sim.add_client("c1", consumer_program("g", "T"))
    await trio.sleep(90)
    hist = sim.history
    assert hist.losses
    assert hist.acked_ok()
    hist.check()

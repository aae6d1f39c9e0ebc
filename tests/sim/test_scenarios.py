"""The seeded scenarios of tests/sim/scenarios.py, each checked against its history.

Two seeds each by default (``--seeds N`` for a soak, ``--seed S`` to replay one).  Each runs
minutes of virtual time in a few seconds of real time.
"""

from __future__ import annotations

import pytest
import trio
import trio.testing

from storage.config import FlushDiskType
from tests.sim.cluster import Simulation
from tests.sim.scenarios import SCENARIOS


@pytest.mark.parametrize("name", sorted(SCENARIOS))
async def test_scenario(
    name: str, seed: int, deterministic: None, nursery, tmp_path, autojump_clock
):
    # the seed also picks the durability the broker runs with
    flush = FlushDiskType.SYNC_FLUSH if seed % 2 == 0 else FlushDiskType.ASYNC_FLUSH
    sim = Simulation(seed, nursery, tmp_path, flush=flush)
    start = trio.current_time()
    await SCENARIOS[name](sim)
    print(
        f"{name} seed={seed} {flush.name}: {trio.current_time() - start:.0f} s virtual, "
        f"{sim.history.summary()}, network {sim.net.stats()}"
    )
    sim.history.check()


def _run_once(name: str, seed: int, root) -> list[tuple[object, ...]]:
    import random

    random.seed(seed)
    trio._core._run._r.seed(seed)
    trace: list[tuple[object, ...]] = []

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            sim = Simulation(seed, nursery, root)
            await SCENARIOS[name](sim)
            trace.extend(sim.history.trace())
            trace.extend(sim.net.log)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return trace


@pytest.mark.parametrize("name", ["broker_restart_under_load", "rebalance_storm"])
def test_a_seed_replays_exactly(name: str, inline_threads: None, simulated_disk: None, tmp_path):
    import random

    state = random.getstate()
    try:
        first = _run_once(name, 5, tmp_path / "a")
        second = _run_once(name, 5, tmp_path / "b")
        other = _run_once(name, 6, tmp_path / "c")
    finally:
        random.setstate(state)
    assert len(first) > 100
    assert first == second
    assert first != other

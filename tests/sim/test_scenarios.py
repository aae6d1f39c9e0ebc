"""The seeded scenarios of tests/sim/scenarios.py, each checked against its history.

Two seeds each by default (``--seeds N`` for a soak, ``--seed S`` to replay one).  Each runs
minutes of virtual time in a few seconds of real time.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
import trio

from storage.config import FlushDiskType
from tests.sim import replay
from tests.sim.cluster import Simulation
from tests.sim.scenarios import SCENARIOS

REPO = Path(__file__).resolve().parents[2]


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


def test_a_seed_replays_exactly(inline_threads: None, simulated_disk: None, tmp_path):
    name = "orderly_under_broker_restart"
    state = random.getstate()
    try:
        first = replay.run(name, 5, tmp_path / "a")
        second = replay.run(name, 5, tmp_path / "b")
        other = replay.run(name, 7, tmp_path / "c")
    finally:
        random.setstate(state)
    assert len(first) > 100
    assert first == second
    assert first != other


def _replay_elsewhere(name: str, seed: int, hashseed: str) -> object:
    env = {**os.environ, "PYTHONHASHSEED": hashseed}
    out = subprocess.run(
        [sys.executable, "-m", "tests.sim.replay", name, str(seed)],
        cwd=REPO,
        env=env,
        capture_output=True,
        check=True,
        timeout=300,
    ).stdout
    return json.loads(out)


def test_a_seed_replays_in_another_process_whatever_its_string_hashing():
    """What the replay command relies on: a seed gives the same run in another process,
    also under another PYTHONHASHSEED (before trio's deterministic scheduling was turned on
    in the simulation, hash seeds 1 and 2 diverged after 29 s of this scenario)."""
    name = "broker_restart_under_load"
    first = _replay_elsewhere(name, 5, "1")
    again = _replay_elsewhere(name, 5, "2")
    assert isinstance(first, list)
    assert len(first) > 100
    assert first == again

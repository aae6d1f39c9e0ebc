"""Run one seeded scenario in this process and print its trace: how a seed is replayed in
another process (``python -m tests.sim.replay NAME SEED``).

The trace is everything the history recorded (sends with outcomes and offsets, deliveries,
membership and role changes) and the network's fault log, in order: two runs of one seed
under one PYTHONHASHSEED print the same trace (tests/sim/test_scenarios.py checks it).
"""

from __future__ import annotations

import json
import os
import random
import sys
import tempfile
from pathlib import Path

import pytest
import trio
import trio.testing

from storage.config import FlushDiskType
from tests.sim import inline_threads
from tests.sim.cluster import Simulation
from tests.sim.scenarios import SCENARIOS


def run(name: str, seed: int, root: Path) -> list[tuple[object, ...]]:
    """One run of a scenario as the ``deterministic`` fixture sets it up; its trace."""
    run_module = trio._core._run
    allowed = run_module._ALLOW_DETERMINISTIC_SCHEDULING
    # batches sorted by task creation before the seeded shuffle (tests/sim/conftest.py)
    run_module._ALLOW_DETERMINISTIC_SCHEDULING = True  # type: ignore[misc]
    try:
        return _run(name, seed, root)
    finally:
        run_module._ALLOW_DETERMINISTIC_SCHEDULING = allowed  # type: ignore[misc]


def _run(name: str, seed: int, root: Path) -> list[tuple[object, ...]]:
    random.seed(seed)
    trio._core._run._r.seed(seed)  # trio's scheduler shuffles runnable batches
    trace: list[tuple[object, ...]] = []
    flush = FlushDiskType.SYNC_FLUSH if seed % 2 == 0 else FlushDiskType.ASYNC_FLUSH

    async def main() -> None:
        async with trio.open_nursery() as nursery:
            sim = Simulation(seed, nursery, root, flush=flush)
            await SCENARIOS[name](sim)
            trace.extend(sim.history.trace())
            trace.extend(sim.net.log)
            nursery.cancel_scope.cancel()

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0))
    return trace


def _no_sync(fd: int) -> None:
    os.fstat(fd)


def main() -> None:
    name, seed = sys.argv[1], int(sys.argv[2])
    patch = pytest.MonkeyPatch()
    inline_threads.install(patch)
    patch.setattr(os, "fsync", _no_sync)
    patch.setattr(os, "fdatasync", _no_sync)
    with tempfile.TemporaryDirectory(prefix="sim-replay-") as root:
        trace = run(name, seed, Path(root))
    json.dump(trace, sys.stdout)


if __name__ == "__main__":
    main()

"""Simulation fixtures: one ``Simulation`` per seed, worker threads inline, seeds on demand.

``pytest tests/sim --seeds 200`` runs every seeded scenario with 200 seeds (a soak);
``--seed 1234`` replays one.  A failing scenario prints its seed and the replay command.
"""

from __future__ import annotations

import os
import random

import pytest
import trio

from tests.sim import inline_threads as inline
from tests.sim.cluster import Simulation

DEFAULT_SEEDS = 2


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("sim", "cluster simulation")
    group.addoption("--seeds", type=int, default=None, help="run each scenario with N seeds")
    group.addoption("--seed", type=int, default=None, help="run each scenario with this seed")
    group.addoption("--first-seed", type=int, default=1, help="first of the --seeds")


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    fixed = any(
        "seed" in str(mark.args[0]) for mark in metafunc.definition.iter_markers("parametrize")
    )
    if "seed" in metafunc.fixturenames and not fixed:
        one = metafunc.config.getoption("--seed")
        if one is not None:
            seeds = [one]
        else:
            count = metafunc.config.getoption("--seeds") or DEFAULT_SEEDS
            first = metafunc.config.getoption("--first-seed")
            seeds = list(range(first, first + count))
        metafunc.parametrize("seed", seeds, ids=[f"seed={s}" for s in seeds])


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    seed = getattr(item, "callspec", None) and item.callspec.params.get("seed")
    if report.failed and call.when == "call" and seed is not None:
        report.sections.append(("simulation seed", replay_command(item.nodeid, seed)))
    return report


def replay_command(nodeid: str, seed: int) -> str:
    """What replays a failing seed in another process: the seed decides every fault and
    workload choice, and the ``deterministic`` fixture makes the scheduling independent of
    memory addresses and string hashing (tests/sim/test_scenarios.py runs one seed under two
    PYTHONHASHSEEDs).  The hash seed is printed anyway, for a path no test has covered."""
    hashseed = os.environ.get("PYTHONHASHSEED")
    env = f"PYTHONHASHSEED={hashseed} " if hashseed not in (None, "random") else ""
    return f"seed {seed}: replay with  {env}.venv/bin/python -m pytest '{nodeid}' --seed {seed}"


@pytest.fixture
def inline_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    inline.install(monkeypatch)


@pytest.fixture
def simulated_disk(monkeypatch: pytest.MonkeyPatch) -> None:
    """fsync and fdatasync return at once: what a power loss keeps is decided by
    tests/sim/durable.py from the store's flushed positions, not by the real disk, and real
    syncs only cost wall time (most of a scenario's on a busy machine)."""
    monkeypatch.setattr(os, "fsync", _no_sync)
    monkeypatch.setattr(os, "fdatasync", _no_sync)


def _no_sync(fd: int) -> None:
    os.fstat(fd)  # still an error for a bad descriptor, as the real call would be


@pytest.fixture
def deterministic(
    seed: int, inline_threads: None, simulated_disk: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Seed every source of choice the code under test uses: the global ``random`` (queue
    picks, rebalance shuffles) and trio's scheduler (it shuffles runnable batches).  Trio's
    deterministic scheduling (what its Hypothesis plugin turns on, and pytest imports
    Hypothesis) sorts each batch by task creation before the seeded shuffle, so the order in
    which tasks were woken - by ``Event.set`` over a set of tasks, by deadlines tied in a heap
    ordered by ``id()`` - does not depend on memory addresses."""
    monkeypatch.setattr(trio._core._run, "_ALLOW_DETERMINISTIC_SCHEDULING", True)
    state = random.getstate()
    random.seed(seed)
    sched = getattr(trio._core._run, "_r", None)
    if isinstance(sched, random.Random):
        sched_state = sched.getstate()
        sched.seed(seed)
    yield
    random.setstate(state)
    if isinstance(sched, random.Random):
        sched.setstate(sched_state)


@pytest.fixture
async def sim(seed: int, deterministic: None, nursery: trio.Nursery, tmp_path) -> Simulation:
    return Simulation(seed, nursery, tmp_path)

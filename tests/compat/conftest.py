"""Fixtures for the compat tests: the real C++-based clients, the Maven build, and a namesrv +
broker per target.

``target`` is session-scoped and parametrized over ``apache`` (the reference, run from Maven
Central jars) and ``ours`` (apps/namesrv.py + apps/broker.py): each pair is started once and
shared by every test of that target, which keeps topics and groups apart by name (``names``).
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.compat.apache import start_apache
from tests.compat.jvm import Jvm, build
from tests.compat.ours import start_ours
from tests.compat.real_clients import install_real_clients
from tests.compat.servers import Names, Target

TARGETS = ("apache", "ours")


@pytest.fixture(scope="session")
def real_clients() -> Path:
    """The real C++-based clients, installed once per session; the folder of their scripts."""
    return install_real_clients()


@pytest.fixture(scope="session")
def jvm(tmp_path_factory: pytest.TempPathFactory) -> Jvm:
    return build(tmp_path_factory.mktemp("rocketmq-home"))


@pytest.fixture(scope="session", params=TARGETS)
def target(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Target]:
    work_dir = tmp_path_factory.mktemp(f"target-{request.param}")
    if request.param == "apache":
        running = start_apache(request.getfixturevalue("jvm"), work_dir)
    else:
        running = start_ours(work_dir)
    yield running
    # Apache's broker takes seconds to flush a store nobody reads again; ours gets the time to
    # show it shuts down cleanly.
    running.stop(grace=2.0 if request.param == "apache" else 10.0)


_serial = itertools.count()


@pytest.fixture
def names(request: pytest.FixtureRequest) -> Names:
    """Topic and group names no other test (of either target) uses; legal RocketMQ names."""
    stem = re.sub(r"[^A-Za-z0-9_-]", "_", request.node.name)[:60]
    n = next(_serial)
    return Names(topic=f"T_{stem}_{n}", group=f"G_{stem}_{n}")


@pytest.fixture
def client_dir(tmp_path: Path) -> Path:
    """Where a client JVM keeps its logs and local offsets."""
    path = tmp_path / "client"
    path.mkdir()
    return path

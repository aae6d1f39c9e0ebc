"""pytest fixtures for testing RocketMQ client code against an embedded broker.

Installed with the project as the ``rocketmq`` pytest11 plugin, so any test suite in the
same environment gets:

* ``rocketmq_cluster`` - async (pytest-trio): a name server and a broker started in the
  test's own Trio run on ports the OS picks, store under ``tmp_path``; an
  ``actors.testing.EmbeddedCluster`` with ``namesrv_addr``, ``broker_addr``,
  ``producer()``, ``push_consumer()``, ``lite_pull_consumer()`` and ``create_topic()``.
* ``rocketmq_cluster_sync`` - the same in a background thread for suites that are not Trio
  (or that test Java, C++ or other clients): ``namesrv_addr``, ``broker_addr``,
  ``create_topic()``.

Nothing here runs unless a test asks for a fixture: importing the plugin imports no broker
code, so it costs other test suites nothing.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest


@pytest.fixture
async def rocketmq_cluster(tmp_path: Path) -> AsyncIterator[Any]:
    from actors.testing.embedded import open_embedded_cluster

    async with open_embedded_cluster(tmp_path / "rocketmq") as cluster:
        yield cluster


@pytest.fixture
def rocketmq_cluster_sync(tmp_path: Path) -> Iterator[Any]:
    from actors.testing.embedded import ThreadedCluster

    with ThreadedCluster(tmp_path / "rocketmq-sync") as cluster:
        yield cluster

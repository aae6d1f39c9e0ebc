"""The project's own name server and broker, in-process on loopback (port 0), for the
client's end-to-end tests."""

from __future__ import annotations

import functools

import pytest

from actors.broker.app import broker
from actors.namesrv.app import namesrv
from actors.namesrv.config import NamesrvConfig
from tests.actors.broker.conftest import broker_config, small_store


@pytest.fixture
async def real_namesrv(nursery, tmp_path) -> str:
    addr = await nursery.start(
        functools.partial(namesrv, NamesrvConfig.in_dir(tmp_path / "ns"), host="127.0.0.1")
    )
    return str(addr)


@pytest.fixture
async def real_broker(nursery, tmp_path, real_namesrv):
    return await nursery.start(
        lambda task_status: broker(
            broker_config(real_namesrv),
            small_store(tmp_path / "store"),
            host="127.0.0.1",
            task_status=task_status,
        )
    )

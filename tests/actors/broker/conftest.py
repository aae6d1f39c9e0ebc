"""An in-process name server and broker on loopback, port 0, store under tmp_path."""

from __future__ import annotations

import functools

import attrs
import pytest
import trio

from actors.broker.app import BrokerHandle, broker
from actors.broker.config import BrokerConfig
from actors.namesrv.app import namesrv
from actors.namesrv.config import NamesrvConfig
from actors.remoting.client import open_remoting_client
from storage.config import MessageStoreConfig


def small_store(path, **overrides) -> MessageStoreConfig:
    # Small files so tests exercise rollover and stay cheap to preallocate.
    settings = {
        "storePathRootDir": str(path),
        "mappedFileSizeCommitLog": 1024 * 1024,
        "mappedFileSizeConsumeQueue": 1000 * 20,
        "maxHashSlotNum": 1000,
        "maxIndexNum": 4000,
    }
    return attrs.evolve(MessageStoreConfig(), **{**settings, **overrides})


def broker_config(namesrv_addr: str = "", **overrides) -> BrokerConfig:
    return BrokerConfig(
        brokerIP1="127.0.0.1",
        brokerName="broker-a",
        listenPort=0,
        namesrvAddr=namesrv_addr,
        **overrides,
    )


@pytest.fixture
async def namesrv_addr(nursery, tmp_path) -> str:
    addr = await nursery.start(
        functools.partial(namesrv, NamesrvConfig.in_dir(tmp_path / "ns"), host="127.0.0.1")
    )
    return str(addr)


async def start_broker(
    nursery: trio.Nursery, store_dir, namesrv_addr: str = "", *, store=None, **config
) -> BrokerHandle:
    handle: BrokerHandle = await nursery.start(
        functools.partial(
            broker,
            broker_config(namesrv_addr, **config),
            small_store(store_dir, **(store or {})),
            host="127.0.0.1",
        )
    )
    return handle


@pytest.fixture
async def broker_handle(nursery, tmp_path, namesrv_addr) -> BrokerHandle:
    return await start_broker(nursery, tmp_path / "store", namesrv_addr)


@pytest.fixture
async def client(nursery):
    async with open_remoting_client(name="test-client") as c:
        yield c

"""An in-process name server on a free loopback port, and a remoting client to ask it."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import trio

from actors.namesrv.app import namesrv
from actors.namesrv.config import NamesrvConfig
from actors.remoting.client import RemotingClient, open_remoting_client


@pytest.fixture
def ns_config(tmp_path: Path) -> NamesrvConfig:
    return NamesrvConfig.in_dir(tmp_path / "namesrv")


@pytest.fixture
async def namesrv_addr(nursery: trio.Nursery, ns_config: NamesrvConfig) -> str:
    addr: str = await nursery.start(functools.partial(namesrv, ns_config, host="127.0.0.1"))
    return addr


@pytest.fixture
async def client() -> AsyncIterator[RemotingClient]:
    async with open_remoting_client(name="test-client") as c:
        yield c

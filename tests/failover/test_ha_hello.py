"""The failover hello of the HA stream (protocol/ha.py, actors/ha/client.py): a slave follows
only a master of the epoch etcd elected - a stale master (it answers another epoch) is left
before a single byte of its log is taken.  The master's side is in test_broker_failover.py."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing

from actors.failover.election import MasterRecord
from actors.ha.client import _Diverged, _hello
from protocol.ha import HELLO_SIZE, decode_hello, encode_epoch

ELECTED = MasterRecord(0, "127.0.0.1:1", "127.0.0.1:2", epoch=5)


def _ctx() -> Any:
    return SimpleNamespace(
        failover=SimpleNamespace(elector=SimpleNamespace(broker_id=2)),
        store_config=SimpleNamespace(haHousekeepingInterval=5000),
    )


async def _master_answering(stream: trio.abc.Stream, epoch: int) -> tuple[int, int]:
    data = b""
    while len(data) < HELLO_SIZE:
        data += await stream.receive_some(HELLO_SIZE - len(data))
    await stream.send_all(encode_epoch(epoch))
    return decode_hello(data)


@pytest.mark.parametrize("answer", [4, 6, 0], ids=["older", "newer", "not-master"])
async def test_a_slave_leaves_a_master_of_another_epoch(autojump_clock, answer):
    slave, master = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        seen: list[tuple[int, int]] = []

        async def serve() -> None:
            seen.append(await _master_answering(master, answer))

        nursery.start_soon(serve)
        with pytest.raises(_Diverged):
            await _hello(_ctx(), slave, ELECTED)
    assert seen == [(2, 5)]  # its id and the epoch it means to follow


async def test_a_slave_follows_the_master_of_the_elected_epoch(autojump_clock):
    slave, master = trio.testing.memory_stream_pair()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_master_answering, master, 5)
        await _hello(_ctx(), slave, ELECTED)


async def test_a_master_that_never_answers_times_out(autojump_clock):
    slave, _master = trio.testing.memory_stream_pair()
    with pytest.raises(trio.TooSlowError):
        await _hello(_ctx(), slave, ELECTED)

"""kv_persister: a KV change is on disk before its request is answered."""

from __future__ import annotations

import json
from pathlib import Path

import trio
import trio.testing

from actors.namesrv.kvconfig import KvTable, load_kv_file
from actors.namesrv.persister import KvStore, kv_persister


async def test_change_is_written_before_wait_returns(tmp_path: Path) -> None:
    store = KvStore(tmp_path / "kv" / "kvConfig.json", KvTable())
    async with trio.open_nursery() as nursery:
        await nursery.start(kv_persister, store)
        store.table.put("NS", "k", "v")
        assert await store.wait_persisted() is None
        assert json.loads(store.path.read_text()) == {"configTable": {"NS": {"k": "v"}}}
        store.table.delete("NS", "k")
        assert await store.wait_persisted() is None
        assert load_kv_file(store.path) == {}
        nursery.cancel_scope.cancel()


async def test_concurrent_changes_all_land(tmp_path: Path) -> None:
    store = KvStore(tmp_path / "kvConfig.json", KvTable())

    async def put(i: int) -> None:
        store.table.put("NS", f"k{i}", str(i))
        assert await store.wait_persisted() is None

    async with trio.open_nursery() as nursery:
        await nursery.start(kv_persister, store)
        async with trio.open_nursery() as puts:
            for i in range(20):
                puts.start_soon(put, i)
        nursery.cancel_scope.cancel()
    assert load_kv_file(store.path) == {"NS": {f"k{i}": str(i) for i in range(20)}}


async def test_write_error_is_reported(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    store = KvStore(blocker / "kvConfig.json", KvTable())  # parent is a regular file
    async with trio.open_nursery() as nursery:
        await nursery.start(kv_persister, store)
        store.table.put("NS", "k", "v")
        error = await store.wait_persisted()
        assert error is not None
        assert "Error" in error
        nursery.cancel_scope.cancel()


async def test_pending_change_is_written_at_shutdown(tmp_path: Path) -> None:
    store = KvStore(tmp_path / "kvConfig.json", KvTable())
    async with trio.open_nursery() as nursery:
        await nursery.start(kv_persister, store)
        await trio.testing.wait_all_tasks_blocked()
        store.table.put("NS", "k", "v")  # no wait_persisted: nobody asked for the write yet
        nursery.cancel_scope.cancel()
    assert load_kv_file(store.path) == {"NS": {"k": "v"}}

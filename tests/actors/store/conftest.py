"""A small store for the store actors, with blocking calls run inline so virtual time is exact."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import attrs
import pytest
import trio

from storage.config import MessageStoreConfig
from storage.message_store import MessageInner, MessageStore


@pytest.fixture
def inline_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    """to_thread.run_sync runs the function in the Trio thread after a checkpoint: under
    autojump_clock a real worker thread would let virtual time jump while it runs."""

    async def run_sync(fn: Callable[..., Any], *args: Any, **_: Any) -> Any:
        await trio.lowlevel.checkpoint()
        return fn(*args)

    monkeypatch.setattr(trio.to_thread, "run_sync", run_sync)


def _virtual_ms() -> int:
    try:
        return int(trio.current_time() * 1000) + 1_700_000_000_000
    except RuntimeError:  # fixture teardown, after the run
        return 1_700_000_000_000


@pytest.fixture
def make_store(tmp_path: Any) -> Iterator[Callable[..., MessageStore]]:
    stores: list[MessageStore] = []

    def _make(**changes: Any) -> MessageStore:
        cfg = attrs.evolve(
            MessageStoreConfig(
                storePathRootDir=str(tmp_path / f"store{len(stores)}"),
                mappedFileSizeCommitLog=64 * 1024,
                mappedFileSizeConsumeQueue=100 * 20,
                maxHashSlotNum=64,
                maxIndexNum=256,
            ),
            **changes,
        )
        store = MessageStore(cfg, store_host="127.0.0.1:10911", now_ms=_virtual_ms)
        store.load()
        stores.append(store)
        return store

    yield _make
    for s in stores:
        s.shutdown()


def msg(queue_id: int = 0, tags: str = "A", body: bytes = b"hello") -> MessageInner:
    return MessageInner("T", queue_id, body, {"TAGS": tags}, born_host="127.0.0.1:1")

"""Small stores: tiny mapped files so every test crosses file boundaries."""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator

import attrs
import pytest

from storage.config import MessageStoreConfig
from storage.message_store import MessageInner, MessageStore

COMMIT_LOG_FILE = 4096
CQ_FILE = 10 * 20
STORE_HOST = "192.168.0.1:10911"


@pytest.fixture
def store_config(tmp_path) -> MessageStoreConfig:  # type: ignore[no-untyped-def]
    return MessageStoreConfig(
        storePathRootDir=str(tmp_path / "store"),
        mappedFileSizeCommitLog=COMMIT_LOG_FILE,
        mappedFileSizeConsumeQueue=CQ_FILE,
        maxHashSlotNum=64,
        maxIndexNum=32,
    )


class FakeClock:
    def __init__(self, start: int = 1_700_000_000_000) -> None:
        self.now = start

    def __call__(self) -> int:
        self.now += 1
        return self.now


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def open_store(store_config, clock) -> Iterator[Callable[..., MessageStore]]:  # type: ignore[no-untyped-def]
    opened: list[MessageStore] = []

    def _open(**changes: object) -> MessageStore:
        cfg = attrs.evolve(store_config, **changes)  # type: ignore[arg-type]
        store = MessageStore(cfg, store_host=STORE_HOST, now_ms=clock)
        store.load()
        opened.append(store)
        return store

    yield _open
    for store in opened:
        store.shutdown()


_seq = itertools.count()


def message(
    topic: str = "TopicTest",
    queue_id: int = 0,
    body: bytes | None = None,
    tags: str | None = "TagA",
    keys: str | None = None,
    **kw: object,
) -> MessageInner:
    n = next(_seq)
    props = {"UNIQ_KEY": f"U{n:030d}"}
    if tags is not None:
        props["TAGS"] = tags
    if keys is not None:
        props["KEYS"] = keys
    return MessageInner(
        topic=topic,
        queue_id=queue_id,
        body=body if body is not None else f"body-{n}".encode(),
        properties=props,
        born_timestamp=1_700_000_000_000,
        born_host="10.0.0.7:50000",
        **kw,
    )  # type: ignore[arg-type]

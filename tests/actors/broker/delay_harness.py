"""A real MessageStore on a trio-driven clock, for the delay, timer and retry tests.

The store's clock is ``T0 + trio.current_time()`` so ``autojump_clock`` moves store timestamps
and delivery deadlines together.  ``dispatch()`` is the reput dispatcher in miniature: it runs
``store.reput()`` and tells the listening services about the arrivals, synchronously, so every
put is visible by the time the next task runs.
"""

from __future__ import annotations

from pathlib import Path

import attrs
import trio

from actors.broker.delay import DelayLevels, rewrite_on_put
from protocol.message import MessageExt, decode_record
from storage.config import MessageStoreConfig
from storage.message_store import GetStatus, MessageInner, MessageStore
from storage.timer_wheel import TimerConfig

T0 = 1_700_000_000_000
STORE_HOST = "127.0.0.1:10911"


def clock_ms() -> int:
    try:
        return T0 + round(trio.current_time() * 1000)
    except RuntimeError:  # outside trio (store recovery at load time)
        return T0


def small_store_config(root: Path, **overrides: object) -> MessageStoreConfig:
    return MessageStoreConfig(
        storePathRootDir=str(root),
        mappedFileSizeCommitLog=256 * 1024,
        mappedFileSizeConsumeQueue=500 * 20,
        maxHashSlotNum=1000,
        maxIndexNum=4000,
        **overrides,  # type: ignore[arg-type]
    )


class Listener:
    def notify_arrival(self, topic: str, queue_id: int) -> None: ...


@attrs.define(eq=False)
class StoreHarness:
    root: Path
    store: MessageStore = attrs.field(init=False)
    levels: DelayLevels = attrs.field(init=False)
    timer: TimerConfig = attrs.Factory(TimerConfig)
    listeners: list[Listener] = attrs.Factory(list)
    config_overrides: dict[str, object] = attrs.Factory(dict)

    def __attrs_post_init__(self) -> None:
        self.open()

    def open(self) -> None:
        config = small_store_config(self.root, **self.config_overrides)
        self.levels = DelayLevels.parse(config.messageDelayLevel)
        self.store = MessageStore(config, store_host=STORE_HOST, now_ms=clock_ms)
        self.store.load()

    def restart(self) -> None:
        self.store.shutdown()
        self.open()

    @property
    def config_dir(self) -> Path:
        return Path(self.store.config.config_dir)

    def dispatch(self) -> None:
        for arrived in self.store.reput():
            for listener in self.listeners:
                listener.notify_arrival(arrived.topic, arrived.queue_id)

    def send(
        self,
        topic: str,
        properties: dict[str, str] | None = None,
        *,
        queue_id: int = 0,
        body: bytes = b"hello",
        reconsume_times: int = 0,
    ) -> MessageInner:
        """What the send handler does: rewrite, put, wake reput; returns the stored message."""
        msg = MessageInner(
            topic=topic,
            queue_id=queue_id,
            body=body,
            properties=dict(properties or {}),
            born_timestamp=clock_ms(),
            born_host="10.0.0.9:5555",
            reconsume_times=reconsume_times,
        )
        msg = rewrite_on_put(msg, self.levels, self.timer, clock_ms())
        result = self.store.put_message(msg)
        assert result.ok, result.status
        self.dispatch()
        return msg

    def read(self, topic: str, queue_id: int = 0) -> list[MessageExt]:
        out: list[MessageExt] = []
        offset = 0
        while True:
            got = self.store.get_message("test", topic, queue_id, offset, 32)
            if got.status is not GetStatus.FOUND:
                return out
            out.extend(decode_record(buf) for buf in got.buffers)
            offset = got.next_begin_offset

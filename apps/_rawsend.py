"""A lean load generator for bench_producer ``--client raw``: send frames, no Producer.

The full client (``actors.client.producer``) spends most of a core per few thousand sends
(cattrs headers, routing, fault tolerance); on a 2-core machine it would measure itself, not
the broker.  This sender builds SEND_MESSAGE_V2 / SEND_BATCH_MESSAGE requests from a fixed
field dict (what a Java producer puts on the wire: UNIQ_KEY, WAIT, TAGS/KEYS, born timestamp)
and uses the project's remoting client directly, round robin over the topic's queues on one
broker.  ``-w`` tasks each keep one request in flight: with one connection that is a
pipeline of depth w, so "sync" and "async" are the same thing here.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import trio

from actors.remoting.client import RemotingClient
from actors.remoting.errors import RemotingError
from protocol.codes import LanguageCode, RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.message import BatchEntry, MessageConst, encode_batch, properties_to_string
from protocol.msgid import UniqIdGenerator

if TYPE_CHECKING:
    from apps._bench import Pacer

# (seconds, messages) on success; (messages, broker answered) on failure.
OnSuccess = Callable[[float, int], None]
OnFailure = Callable[[int, bool], None]


class RawSender:
    def __init__(
        self,
        client: RemotingClient,
        addr: str,
        *,
        topic: str,
        queues: int,
        body: bytes,
        keys: bool,
        tag_count: int,
        group: str = "benchmark_raw",
        topics: int = 1,
    ) -> None:
        self.client = client
        self.addr = addr
        self.topic = topic
        # ``topics`` > 1: round robin over that many topics the broker does not have yet, each
        # created by its first send (autoCreateTopicEnable, default topic TBW102) while the
        # others are sending: the auto-create load.  A run-unique suffix keeps a second
        # run (--repeat) creating topics too.
        self.topics = (
            itertools.cycle([f"{topic}-{time.time_ns():x}-{i}" for i in range(topics)])
            if topics > 1
            else None
        )
        self.body = body
        self.keys = keys
        self.tag_count = tag_count
        # Auto-created topics get the header's default queue count ("d", 4 as a Java producer
        # sends it), so only queues 0..3 exist on them.
        self.queue_ids = itertools.cycle(range(min(queues, 4) if topics > 1 else queues))
        self.counter = itertools.count()
        self.ids = UniqIdGenerator()
        self.base = {
            "a": group,
            "b": topic,
            "c": "TBW102",
            "d": "4",
            "f": "0",
            "h": "0",
            "j": "0",
            "k": "false",
        }

    def _properties(self, now_ms: int) -> dict[str, str]:
        i = next(self.counter)
        props = {MessageConst.UNIQ_KEY: self.ids.next(now_ms), MessageConst.WAIT: "true"}
        if self.tag_count:
            props[MessageConst.TAGS] = f"TagA{i % self.tag_count}"
        if self.keys:
            props[MessageConst.KEYS] = str(i)
        return props

    def request(self, batch_size: int = 0, *, oneway: bool = False) -> RemotingCommand:
        now_ms = int(time.time() * 1000)
        ext = dict(self.base)
        ext["e"] = str(next(self.queue_ids))
        if self.topics is not None:
            ext["b"] = next(self.topics)
        ext["g"] = str(now_ms)
        if batch_size:
            entries = [
                BatchEntry(body=self.body, flag=0, properties=self._properties(now_ms))
                for _ in range(batch_size)
            ]
            ext["i"] = properties_to_string({MessageConst.WAIT: "true"})
            ext["m"] = "true"
            code, body = RequestCode.SEND_BATCH_MESSAGE, encode_batch(entries)
        else:
            ext["i"] = properties_to_string(self._properties(now_ms))
            ext["m"] = "false"
            code, body = RequestCode.SEND_MESSAGE_V2, self.body
        return RemotingCommand.request(code, ext, body, oneway=oneway, language=LanguageCode.PYTHON)

    async def loop(
        self,
        mode: str,
        batch_size: int,
        stop: trio.Event,
        on_success: OnSuccess,
        on_failure: OnFailure,
        timeout: float = 3.0,
        pacer: Pacer | None = None,
    ) -> None:
        n = batch_size if mode == "batch" else 1
        size = batch_size if mode == "batch" else 0
        while not stop.is_set():
            cmd = self.request(size, oneway=mode == "oneway")
            began = time.perf_counter() if pacer is None else await pacer.next()
            try:
                if mode == "oneway":
                    await self.client.invoke_oneway(self.addr, cmd)
                    on_success(time.perf_counter() - began, 1)
                    # Queuing a oneway frame need not block: let the writer and reader run.
                    await trio.lowlevel.checkpoint()
                    continue
                reply = await self.client.invoke(self.addr, cmd, timeout)
            except RemotingError:
                on_failure(n, False)
                continue
            # Like the producer's SendStatus: only SUCCESS is SEND_OK.
            if reply.code == ResponseCode.SUCCESS:
                on_success(time.perf_counter() - began, n)
            else:
                on_failure(n, True)

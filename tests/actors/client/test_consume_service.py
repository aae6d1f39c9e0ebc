"""The concurrent consume service on its own (a stub core, autojump clock): the consume
timeout watchdog, failures and the committed offset."""

from __future__ import annotations

import types

import trio
import trio.testing

from actors.client.consume_service import (
    ConcurrentConsumeService,
    ConsumeContext,
    ConsumeStatus,
)
from actors.client.consumer import AssignedQueue, ConsumerSettings
from actors.client.offset_store import OffsetTable
from actors.client.process_queue import ProcessQueue
from protocol.bodies.common import MessageQueue
from protocol.message import MessageConst, MessageExt

MQ = MessageQueue(topic="T", broker_name="b", queue_id=0)


class _Service(ConcurrentConsumeService):
    """Sends back into a list, with the time it happened."""

    sent_back: list[tuple[int, float]]

    async def _send_back(self, msg: MessageExt, delay_level: int, mq: MessageQueue) -> bool:
        self.sent_back.append((msg.queue_offset, trio.current_time()))
        return True


def _service(listener, **settings) -> tuple[_Service, OffsetTable]:  # type: ignore[no-untyped-def]
    table = OffsetTable()
    core = types.SimpleNamespace(
        settings=ConsumerSettings(**settings),
        group="g",
        clustering=True,
        now_ms=lambda: int(trio.current_time() * 1000),
        offset_store=table,
    )
    service = _Service(core, listener, None)  # type: ignore[arg-type]
    service.sent_back = []
    return service, table


async def _submit(service: ConcurrentConsumeService, bodies: list[bytes]) -> AssignedQueue:
    aq = AssignedQueue(MQ, ProcessQueue(), 0)
    msgs = [MessageExt(topic="T", body=b, queue_offset=i) for i, b in enumerate(bodies)]
    aq.pq.put(msgs)
    await service.submit(aq, msgs, True)
    return aq


async def test_calls_past_the_timeout_are_cut_and_count_as_failed(autojump_clock) -> None:
    finished: list[tuple[bytes, float]] = []

    async def listener(msgs: list[MessageExt], ctx: ConsumeContext) -> ConsumeStatus:
        body = msgs[0].body
        if body == b"stuck":
            await trio.sleep_forever()
        if body == b"slow":
            await trio.sleep(5)
        if body == b"swallows":
            try:
                await trio.sleep_forever()
            except trio.Cancelled:
                pass
        finished.append((body, trio.current_time()))
        return ConsumeStatus.CONSUME_SUCCESS

    service, table = _service(listener, consume_workers=2, consume_timeout=10.0)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        start = trio.current_time()
        await _submit(service, [b"ok", b"stuck", b"slow", b"swallows", b"late"])
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    # Two workers: "stuck" is cut at 10 s, "swallows" (started at 5 s) at 15 s; each worker
    # goes on with a new cancel scope ("late" runs after the first cut).
    assert [(o, t - start) for o, t in service.sent_back] == [(1, 10.0), (3, 15.0)]
    assert [(b, t - start) for b, t in finished] == [
        (b"ok", 0.0),
        (b"slow", 5.0),
        (b"late", 10.0),
        (b"swallows", 15.0),
    ]
    assert table.get(MQ) == 5


async def test_failed_batches_are_sent_back_and_listener_sees_start_time(autojump_clock) -> None:
    seen: list[tuple[str, str]] = []

    async def listener(msgs: list[MessageExt], ctx: ConsumeContext) -> ConsumeStatus:
        seen.extend((m.topic, m.properties[MessageConst.CONSUME_START_TIME]) for m in msgs)
        if msgs[0].body == b"boom":
            raise RuntimeError("listener bug")
        return ConsumeStatus.RECONSUME_LATER if len(msgs) == 2 else ConsumeStatus.CONSUME_SUCCESS

    service, table = _service(listener, consume_workers=3, consume_batch_size=2)
    async with trio.open_nursery() as nursery:
        await nursery.start(service.run)
        aq = await _submit(service, [b"a", b"b", b"boom"])
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    # [a, b] asked for a retry, [boom] raised: all three were sent back, so all are done.
    assert sorted(o for o, _ in service.sent_back) == [0, 1, 2]
    assert len(seen) == 3
    assert all(topic == "T" and start.isdigit() for topic, start in seen)
    assert aq.pq.msg_count == 0
    assert table.get(MQ) == 3

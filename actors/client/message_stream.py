"""``async for`` over a push consumer: the listener replaced by a rendezvous channel.

    async with PushConsumer("group", namesrv="127.0.0.1:9876") as consumer:   # no listener
        await consumer.subscribe("TopicTest")
        async for msg in consumer:
            await handle(msg)                  # finishing the body acknowledges msg
            if should_retry(msg):
                consumer.reconsume_later()     # ... unless it asks for msg to come again

``MessageStream`` is the consumer's listener: each listener call (a batch of
``consume_batch_size`` messages, one by default) waits in a channel of size 0 until the
loop takes it, then until the loop has finished with it, and returns the verdict the loop
gave.  So everything a listener has (retries through the broker, orderly queue locks, the
consume timeout, flow control, offsets committed only for what was consumed) holds for
the loop too.  The consumer runs one consume worker in this mode: the loop takes one
message at a time anyway, and a batch waiting in a second worker for the loop would have
its wait counted against the consume timeout.

When a message counts as consumed (its batch's listener call returns success):
* the loop asks for the next message after the last one of the batch (the body finished);
* or the consumer's ``async with`` block ends without an exception.

When it comes again later (RECONSUME_LATER, or for an orderly consumer the queue is
suspended a moment and the batch redelivered):
* the body calls ``consumer.reconsume_later()`` (the rest of its batch is skipped: it comes
  again with it);
* or the ``async with`` block ends with an exception while the body held it;
* or the body took longer than ``consume_timeout`` (the listener call was cut, as for any
  listener; finishing it later changes nothing).
"""

from __future__ import annotations

import attrs
import trio

from actors.client.consume_service import ConsumeContext, ConsumeOrderlyStatus, ConsumeStatus
from actors.client.errors import ClientError
from protocol.message import MessageExt

# How long leaving the consumer waits for the verdict of the message the loop held to be
# taken by its worker (it is runnable at once: this only bounds a wedged worker).
SETTLE_BUDGET = 1.0


@attrs.define(eq=False)
class _Delivery:
    """One listener call's batch, as the loop works through it."""

    msgs: list[MessageExt]
    ctx: ConsumeContext
    index: int = 0
    ok: bool = True
    settled: trio.Event = attrs.Factory(trio.Event)  # the loop's verdict is in
    returned: trio.Event = attrs.Factory(trio.Event)  # the listener call returned it


@attrs.define(eq=False)
class MessageStream:
    """The listener that feeds ``async for``; one loop at a time reads it."""

    orderly: bool
    _send: trio.MemorySendChannel[_Delivery] = attrs.field(init=False)
    _recv: trio.MemoryReceiveChannel[_Delivery] = attrs.field(init=False)
    _current: _Delivery | None = None
    _reading: bool = False

    def __attrs_post_init__(self) -> None:
        # Size 0: a batch stays in its worker until the loop takes it (the workers bound it).
        self._send, self._recv = trio.open_memory_channel[_Delivery](0)

    # ------------------------------------------------------------ the listener side

    async def __call__(
        self, msgs: list[MessageExt], ctx: ConsumeContext
    ) -> ConsumeStatus | ConsumeOrderlyStatus:
        delivery = _Delivery(msgs, ctx)
        try:
            await self._send.send(delivery)
            await delivery.settled.wait()
        finally:
            delivery.returned.set()
        if self.orderly:
            if delivery.ok:
                return ConsumeOrderlyStatus.SUCCESS
            return ConsumeOrderlyStatus.SUSPEND_CURRENT_QUEUE_A_MOMENT
        return ConsumeStatus.CONSUME_SUCCESS if delivery.ok else ConsumeStatus.RECONSUME_LATER

    # ------------------------------------------------------------ the loop side

    def __aiter__(self) -> MessageStream:
        return self

    async def __anext__(self) -> MessageExt:
        if self._reading:
            raise ClientError("one 'async for' at a time over a consumer")
        self._reading = True
        try:
            current = self._current
            if current is not None:
                current.index += 1
                if current.index < len(current.msgs):
                    await trio.lowlevel.checkpoint()
                    return current.msgs[current.index]
                self._settle(ok=True)  # the body finished the batch's last message
            delivery = await self._recv.receive()
            self._current = delivery
            return delivery.msgs[0]
        finally:
            self._reading = False

    def _settle(self, *, ok: bool) -> _Delivery | None:
        delivery, self._current = self._current, None
        if delivery is not None:
            delivery.ok = ok
            delivery.settled.set()
        return delivery

    def reconsume_later(self, delay_level: int = 0, suspend_seconds: float | None = None) -> None:
        """The message the loop holds (with the rest of its batch) comes again later.

        ``delay_level``: concurrent consumers, the retry's delay level (0: the broker's
        3 + reconsume times); ``suspend_seconds``: orderly consumers, how long the queue
        pauses first.
        """
        delivery = self._current
        if delivery is None:
            raise ClientError("reconsume_later() is for the message the 'async for' body holds")
        delivery.ctx.delay_level_when_next_consume = delay_level
        delivery.ctx.suspend_seconds = suspend_seconds
        self._settle(ok=False)

    @property
    def context(self) -> ConsumeContext | None:
        """The listener context of the message the loop holds (its queue), if any."""
        return None if self._current is None else self._current.ctx

    async def close(self, *, ok: bool) -> None:
        """The consumer is leaving: settle what the loop holds and let its worker take the
        verdict before the workers are cancelled (``ok``: the block ended normally)."""
        delivery = self._settle(ok=ok)
        if delivery is not None:
            with trio.move_on_after(SETTLE_BUDGET, shield=True):
                await delivery.returned.wait()


__all__ = ["MessageStream"]

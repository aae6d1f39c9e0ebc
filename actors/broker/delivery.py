"""Delayed delivery in the broker: the master-role actor and the arrival notifications.

``DelayedDelivery`` bundles the schedule service (delay levels, §7.3) and the timer service
(exact-time delivery) for one broker.  The role supervisor runs ``delayed_delivery`` in the
master scope; the reput dispatcher's arrivals pass through ``ArrivalTee`` so a level or the
timer topic wakes as soon as a new parked message is dispatched.  Parked messages are not
forwarded to long polling: nobody pulls the schedule or timer topics, and their consume-queue
tags codes (delivery times) would defeat the per-tag coalescing of arrivals.
"""

from __future__ import annotations

import functools
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import trio

from actors.broker.delay import TIMER_TOPIC
from actors.broker.durability import commit_log_durable
from actors.broker.schedule import ScheduleService
from actors.broker.timer import TimerService
from actors.store.reput import OfferSink
from storage.message_store import Arrived
from storage.timer_wheel import TimerConfig, TimerWheel
from storage.topic_config import SCHEDULE_TOPIC

if TYPE_CHECKING:
    from actors.broker.context import BrokerContext

TIMER_DIR = "timerwheel"
PARKING_TOPICS = frozenset({SCHEDULE_TOPIC, TIMER_TOPIC})


@attrs.define(eq=False)
class DelayedDelivery:
    schedule: ScheduleService
    timer: TimerService | None
    # what the send path checks timed messages against; with timerWheelEnable=false they are
    # refused (MESSAGE_ILLEGAL), as RocketMQ 5 refuses them
    timer_config: TimerConfig

    @classmethod
    def for_broker(
        cls, ctx: BrokerContext, timer_config: TimerConfig | None = None
    ) -> DelayedDelivery:
        """Built on the broker's context (actors.broker.context.BrokerContext)."""
        if timer_config is None:
            timer_config = TimerConfig()
        schedule = ScheduleService(
            ctx.store,
            ctx.delay_levels,
            ctx.delay_offsets,
            ctx.config_dir,
            ctx.now_ms,
            persist_interval=None,  # the broker's config persister writes delayOffset.json
        )
        timer = None
        if timer_config.timerWheelEnable:
            wheel = TimerWheel(Path(ctx.store_config.storePathRootDir) / TIMER_DIR, timer_config)
            timer = TimerService(
                ctx.store, wheel, ctx.now_ms, durable=functools.partial(commit_log_durable, ctx)
            )
        return cls(schedule, timer, timer_config)

    def notify_arrival(self, topic: str, queue_id: int) -> None:
        self.schedule.notify_arrival(topic, queue_id)
        if self.timer is not None:
            self.timer.notify_arrival(topic, queue_id)

    async def run(
        self, *, task_status: trio.TaskStatus[DelayedDelivery] = trio.TASK_STATUS_IGNORED
    ) -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(self.schedule.run)
            if self.timer is not None:
                await nursery.start(self.timer.run)
            task_status.started(self)


async def delayed_delivery(
    ctx: BrokerContext, *, task_status: trio.TaskStatus[DelayedDelivery] = trio.TASK_STATUS_IGNORED
) -> None:
    """The master-role actor (role.py): delivers delayed and timed messages while master."""
    delivery = ctx.delivery
    if delivery is None:
        raise RuntimeError("the broker's delayed delivery was not set up")
    await delivery.run(task_status=task_status)


@attrs.define(eq=False)
class ArrivalTee:
    """Stands in for the reput dispatcher's arrivals channel: notifies, then forwards."""

    downstream: OfferSink
    delivery: DelayedDelivery

    async def send(self, arrival: Arrived, /) -> None:
        if arrival.topic in PARKING_TOPICS:
            self.delivery.notify_arrival(arrival.topic, arrival.queue_id)
        else:
            await self.downstream.send(arrival)

    def offer(self, arrival: Arrived, /) -> bool:
        if arrival.topic in PARKING_TOPICS:
            self.delivery.notify_arrival(arrival.topic, arrival.queue_id)
            return True
        return self.downstream.offer(arrival)

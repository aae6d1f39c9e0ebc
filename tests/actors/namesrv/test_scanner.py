"""broker_scanner under a virtual clock: 5 s first scan, every 10 s, 120 s idle limit."""

from __future__ import annotations

import trio

from actors.namesrv.scanner import broker_scanner
from actors.namesrv.state import RouteTable, TopicQueues


class FakeChannel:
    def __init__(self) -> None:
        self.closed = False

    def close(self) -> None:
        self.closed = True


def register(routes: RouteTable, addr: str, name: str, channel: object | None, now: float) -> None:
    routes.register(
        cluster="C",
        broker_addr=addr,
        broker_name=name,
        broker_id=0,
        ha_server_addr="",
        data_version=(1, 1),
        topics=[TopicQueues(topic="T", read_queue_nums=4, write_queue_nums=4, perm=6)],
        filter_servers=[],
        channel=channel,
        now=now,
    )


async def test_idle_broker_is_dropped_at_the_first_scan_past_120_s(autojump_clock: object) -> None:
    routes = RouteTable()
    quiet, chatty = FakeChannel(), FakeChannel()
    start = trio.current_time()
    register(routes, "a:1", "broker-a", quiet, start)
    register(routes, "b:1", "broker-b", chatty, start)
    async with trio.open_nursery() as nursery:
        await nursery.start(broker_scanner, routes)
        # broker-b keeps registering every 30 s; broker-a never again.
        for _ in range(4):
            await trio.sleep(30)
            register(routes, "b:1", "broker-b", chatty, trio.current_time())
        # t = 120: scans ran at 5, 15, ..., 115; the scan at 125 is the first to see a > 120 s.
        await trio.sleep_until(start + 124.9)
        assert "a:1" in routes.live
        await trio.sleep_until(start + 125.1)
        assert "a:1" not in routes.live
        assert quiet.closed
        assert not chatty.closed
        route = routes.route("T")
        assert route is not None
        assert [b.broker_name for b in route.brokers] == ["broker-b"]
        nursery.cancel_scope.cancel()


async def test_broker_without_channel_expires_too(autojump_clock: object) -> None:
    routes = RouteTable()
    register(routes, "a:1", "broker-a", None, trio.current_time())
    async with trio.open_nursery() as nursery:
        await nursery.start(broker_scanner, routes)
        await trio.sleep(126)
        assert routes.live == {}
        assert routes.route("T") is None
        nursery.cancel_scope.cancel()

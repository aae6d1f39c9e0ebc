"""resetOffsetByTime against an online consumer of ours (issue 18): the broker sends
RESET_CONSUMER_CLIENT_OFFSET and our push consumer moves there and consumes again."""

from __future__ import annotations

import trio

from actors.client.consume_service import ConsumeStatus
from actors.client.message import Message
from actors.client.producer import Producer
from actors.client.push_consumer import ConsumeFromWhere, PushConsumer
from apps.admin import build_parser, run_command

TOPIC, GROUP, COUNT = "RESET_T", "reset_cg", 20


async def test_online_consumer_obeys_reset_offset_by_time(real_namesrv, real_broker) -> None:
    got: list[bytes] = []
    enough = trio.Event()
    want = COUNT

    async def listener(msgs, ctx):
        got.extend(m.body for m in msgs)
        if len(got) >= want:
            enough.set()
        return ConsumeStatus.CONSUME_SUCCESS

    with trio.fail_after(40):
        async with Producer("reset_pg", namesrv=real_namesrv) as producer:
            for i in range(COUNT):
                await producer.send(Message(TOPIC, f"m{i:02d}".encode()))
        consumer = PushConsumer(
            GROUP,
            namesrv=real_namesrv,
            listener=listener,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        )
        consumer.client_config.persist_offset_interval = 0.2
        consumer.subscribe(TOPIC)
        async with consumer:
            await enough.wait()
            # the broker knows the group's offsets (the reset needs them) once persisted
            ctx = real_broker.ctx
            for _ in range(400):
                if sum(ctx.offsets.offsets(GROUP, TOPIC).values()) >= COUNT:
                    break
                await trio.sleep(0.05)
            first = sorted(got)
            enough = trio.Event()
            want = 2 * COUNT
            args = build_parser().parse_args(
                ["resetOffsetByTime", "-n", real_namesrv, "-g", GROUP, "-t", TOPIC, "-s", "0"]
            )
            text, rows = await run_command(args)
            assert [r["offset"] for r in rows] == [0] * len(rows), text
            await enough.wait()
    assert sorted(got[COUNT:]) == first == sorted(f"m{i:02d}".encode() for i in range(COUNT))

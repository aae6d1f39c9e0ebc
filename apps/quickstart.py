"""RocketMQ's quickstart Producer and Consumer, on our client.

    python -m apps.quickstart produce -n 127.0.0.1:9876 -t TopicTest -g pg --count 10
    python -m apps.quickstart consume -n 127.0.0.1:9876 -t TopicTest -g cg --count 10

``produce`` sends ``Hello RocketMQ <i>`` with tag TagA and prints one SendResult line per
message; ``consume`` prints the received messages and exits once ``--count`` distinct
messages arrived (exit status 1 if ``--timeout`` passes first).
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Sequence

import trio

from actors.client.consume_service import ConsumeContext, ConsumeOrderlyStatus, ConsumeStatus
from actors.client.errors import ClientError
from actors.client.message import Message, MessageExt, client_msg_id
from actors.client.producer import Producer
from actors.client.push_consumer import ConsumeFromWhere, MessageModel, PushConsumer
from apps._security import add_security_options, client_options


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="quickstart", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name in ("produce", "consume"):
        p = sub.add_parser(name)
        p.add_argument(
            "-n",
            "--namesrv",
            # as Java's clients and tools: NAMESRV_ADDR when no address is given
            default=os.environ.get("NAMESRV_ADDR", "127.0.0.1:9876"),
            help="name server(s), a;b (default: $NAMESRV_ADDR, else 127.0.0.1:9876)",
        )
        p.add_argument("-t", "--topic", default="TopicTest")
        p.add_argument("-g", "--group", default="please_rename_unique_group_name")
        p.add_argument("--count", type=int, default=1000 if name == "produce" else 10)
        p.add_argument("-v", "--verbose", action="store_true")
        add_security_options(p)
    produce = sub.choices["produce"]
    produce.add_argument("--tag", default="TagA")
    produce.add_argument("--keys-prefix", default="KEY")
    produce.add_argument("--mode", choices=("sync", "oneway", "async", "batch"), default="sync")
    produce.add_argument("--orderly-keys", type=int, default=0, help="orderly send over N keys")
    consume = sub.choices["consume"]
    consume.add_argument("-e", "--expression", default="*", help='e.g. "TagA || TagB"')
    consume.add_argument("--broadcast", action="store_true")
    consume.add_argument("--orderly", action="store_true")
    consume.add_argument("--from-first", action="store_true", help="CONSUME_FROM_FIRST_OFFSET")
    consume.add_argument("--timeout", type=float, default=60.0, help="seconds, then exit 1")
    return parser


async def produce(args: argparse.Namespace) -> int:
    failed = 0
    done = trio.Event()
    pending = args.count

    def on_result(outcome: object) -> None:
        nonlocal failed, pending
        print(outcome, flush=True)
        if not hasattr(outcome, "status"):
            failed += 1
        pending -= 1
        if pending == 0:
            done.set()

    async with Producer(args.group, namesrv=args.namesrv, **client_options(args)) as producer:
        messages = [
            Message(
                args.topic,
                f"Hello RocketMQ {i}".encode(),
                tags=args.tag,
                keys=f"{args.keys_prefix}{i}",
            )
            for i in range(args.count)
        ]
        if args.mode == "batch":
            for start in range(0, len(messages), 32):
                print(await producer.send_batch(messages[start : start + 32]), flush=True)
            return 0
        for i, msg in enumerate(messages):
            try:
                if args.mode == "oneway":
                    await producer.send_oneway(msg)
                    print(f"sent oneway {i}", flush=True)
                elif args.mode == "async":
                    await producer.send_async(msg, on_result)
                elif args.orderly_keys > 0:
                    key = f"key{i % args.orderly_keys}"
                    print(await producer.send_orderly(msg, sharding_key=key), flush=True)
                else:
                    print(await producer.send(msg), flush=True)
            except ClientError as exc:
                failed += 1
                print(f"send {i} failed: {exc}", file=sys.stderr, flush=True)
        if args.mode == "async" and args.count:
            await done.wait()
    return 1 if failed else 0


async def consume(args: argparse.Namespace) -> int:
    seen: set[str] = set()
    done = trio.Event()

    async def listener(
        msgs: list[MessageExt], ctx: ConsumeContext
    ) -> ConsumeStatus | ConsumeOrderlyStatus:
        for msg in msgs:
            seen.add(client_msg_id(msg))
            print(
                f"Receive New Messages: topic={msg.topic} queueId={msg.queue_id} "
                f"queueOffset={msg.queue_offset} msgId={client_msg_id(msg)} "
                f"tags={msg.tags} body={msg.body.decode(errors='replace')}",
                flush=True,
            )
        if len(seen) >= args.count:
            done.set()
        return ConsumeOrderlyStatus.SUCCESS if args.orderly else ConsumeStatus.CONSUME_SUCCESS

    consumer = PushConsumer(
        args.group,
        namesrv=args.namesrv,
        listener=listener,
        orderly=args.orderly,
        message_model=MessageModel.BROADCASTING if args.broadcast else MessageModel.CLUSTERING,
        consume_from_where=(
            ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET
            if args.from_first
            else ConsumeFromWhere.CONSUME_FROM_LAST_OFFSET
        ),
        **client_options(args),
    )
    consumer.subscribe(args.topic, args.expression)
    async with consumer:
        print("Consumer Started.", flush=True)
        with trio.move_on_after(args.timeout):
            await done.wait()
    if len(seen) < args.count:
        print(f"TIMEOUT: got {len(seen)} of {args.count}", file=sys.stderr, flush=True)
        return 1
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)-5s %(name)s: %(message)s",
    )
    try:
        return trio.run(produce if args.command == "produce" else consume, args)
    except ClientError as exc:
        print(f"quickstart: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0


if __name__ == "__main__":
    sys.exit(main())

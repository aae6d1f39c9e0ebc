"""The broker's send path in one process, without sockets: CPU per message (issue 17).

    .venv/bin/python -m apps.bench_send_path [--messages 20000] [--per-read 1] [--batch 0]
                                             [--rounds 3] [--keys] [--json]

Starts the embedded name server and broker (the real actors: router, send handler, store,
reput, consume queues, index), creates the topic, then hands the broker's own router reads
of SEND_MESSAGE_V2 frames (each with its own UNIQ_KEY, as a Java producer sends them; or
SEND_BATCH_MESSAGE frames with ``--batch N``) through a ``Connection`` whose stream never
blocks, waits until reput has dispatched everything, and prints the process's CPU time per
message.  No socket, no kernel and no other process is inside the figure, so it is the one to
A/B a change of Python-level work (an object less per request, or the mypyc build of
scripts/build-mypyc.sh against pure Python) on a busy machine; it prints which of the hot
modules were imported compiled.  Rounds alternate nothing: run the two builds one after the
other, several times, and compare medians.  Figures only, no pass/fail.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

from actors.remoting.client import open_remoting_client
from actors.remoting.connection import Connection
from actors.testing.embedded import open_embedded_cluster
from protocol.codes import LanguageCode, RequestCode
from protocol.command import RemotingCommand
from protocol.frame import FrameDecoder, encode_command
from protocol.message import (
    BatchEntry,
    MessageConst,
    encode_batch,
    properties_to_string,
    string_to_properties,
)
from protocol.msgid import UniqIdGenerator
from storage.config import MessageStoreConfig
from storage.message_store import MessageInner, MessageStore

TOPIC = "SendPathTopic"
HOT_MODULES = (
    "protocol.command",
    "protocol.frame",
    "protocol.message",
    "storage.commitlog",
    "storage.message_store",
    "storage.index_service",
)


class CannedReads(trio.abc.Stream):
    """Hands out prepared reads one by one, then EOF; swallows what is sent.

    Both directions checkpoint like a socket that never blocks, so the other tasks (reput,
    the writer) run between reads as they would between real ones.
    """

    def __init__(self, reads: list[bytes]) -> None:
        self.reads = iter(reads)
        self.sent = 0

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        await trio.lowlevel.checkpoint()
        return next(self.reads, b"")

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        await trio.lowlevel.checkpoint()
        self.sent += len(data)

    async def wait_send_all_might_not_block(self) -> None:
        await trio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        await trio.lowlevel.checkpoint()


def build_reads(
    messages: int, per_read: int, batch: int, size: int, keys: bool, queues: int
) -> list[bytes]:
    """The frames a producer would send, grouped ``per_read`` to a read."""
    ids = UniqIdGenerator()
    body = (b"RocketMQ" * (size // 8 + 1))[:size]
    queue_ids = itertools.cycle(range(queues))
    counter = itertools.count()
    now_ms = int(time.time() * 1000)
    base = {"a": "bench_send_path", "b": TOPIC, "c": "TBW102", "d": "4", "f": "0"}
    base |= {"g": str(now_ms), "h": "0", "j": "0", "k": "false"}

    def props() -> dict[str, str]:
        p = {MessageConst.UNIQ_KEY: ids.next(now_ms), MessageConst.WAIT: "true"}
        if keys:
            p[MessageConst.KEYS] = str(next(counter))
        return p

    frames = []
    for opaque in range(messages // max(batch, 1)):
        ext = dict(base, e=str(next(queue_ids)))
        if batch:
            entries = [BatchEntry(body=body, flag=0, properties=props()) for _ in range(batch)]
            ext |= {"i": properties_to_string({MessageConst.WAIT: "true"}), "m": "true"}
            code, payload = RequestCode.SEND_BATCH_MESSAGE, encode_batch(entries)
        else:
            ext |= {"i": properties_to_string(props()), "m": "false"}
            code, payload = RequestCode.SEND_MESSAGE_V2, body
        cmd = RemotingCommand.request(code, ext, payload, opaque=opaque, language=LanguageCode.JAVA)
        frames.append(encode_command(cmd))
    return [b"".join(frames[i : i + per_read]) for i in range(0, len(frames), per_read)]


def slice_figures(messages: int) -> dict[str, float]:
    """``--slice``: only the work of the modules scripts/build-mypyc.sh compiles, no actors.

    Decode of ``messages`` request frames, their puts into a bare MessageStore, its reput
    (consume queues and index) and the reply encode, each timed with process CPU (second of
    two passes), in microseconds per message.
    """
    reads = build_reads(messages, messages, 0, 1024, False, 4)
    now_ms = int(time.time() * 1000)
    with tempfile.TemporaryDirectory(prefix="bench-send-path-") as work:
        store = MessageStore(
            attrs.evolve(MessageStoreConfig(), storePathRootDir=work), store_host="127.0.0.1:10911"
        )
        store.load()
        figures: dict[str, float] = {}
        for _ in range(2):
            clock = time.process_time
            t0 = clock()
            decoder = FrameDecoder()
            decoder.feed(reads[0])
            cmds = []
            while (cmd := decoder.next_command()) is not None:
                cmds.append(cmd)
            t1 = clock()
            for cmd in cmds:
                ext = cmd.ext_fields
                props = string_to_properties(ext["i"])
                props.pop(MessageConst.WAIT, None)
                result = store.put_message(
                    MessageInner(
                        topic=TOPIC,
                        queue_id=int(ext["e"]),
                        body=cmd.body,
                        properties=props,
                        born_timestamp=now_ms,
                        born_host="127.0.0.1:5555",
                    )
                )
                if result.append is None:
                    raise SystemExit(f"bench_send_path: the store refused a put: {result.status}")
            t2 = clock()
            while store.reput():
                pass
            t3 = clock()
            for cmd in cmds:
                reply_ext = {"msgId": "7F00000100002A9F0000000000000000", "queueId": ext["e"]}
                reply_ext |= {"queueOffset": "123", "MSG_REGION": "DefaultRegion"}
                encode_command(cmd.reply(0, None, reply_ext))
            t4 = clock()
            spans = {"decode": t1 - t0, "put": t2 - t1, "reput": t3 - t2, "encode": t4 - t3}
            figures = {k: round(v / messages * 1e6, 2) for k, v in spans.items()}
        store.shutdown()
    figures["total"] = round(sum(figures.values()), 2)
    return figures


def compiled_modules() -> list[str]:
    return [
        name
        for name in HOT_MODULES
        if str(getattr(sys.modules.get(name), "__file__", "")).endswith(".so")
    ]


async def run(args: argparse.Namespace) -> dict[str, Any]:
    per_round: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-send-path-", dir=args.dir) as work:
        async with open_embedded_cluster(Path(work)) as cluster:
            await cluster.create_topic(TOPIC, args.queues)
            # The broker's router, taken from the server side of a real connection.
            async with open_remoting_client(name="bench-send-path") as client:
                await client.invoke(
                    cluster.broker_addr,
                    RemotingCommand.request(RequestCode.GET_BROKER_RUNTIME_INFO),
                    5.0,
                )
                broker = cluster._broker
                assert broker is not None
                server_side = next(iter(broker.server.channels))
                router = server_side.router
            store = broker.ctx.store
            for _ in range(args.rounds):
                reads = build_reads(
                    args.messages, args.per_read, args.batch, args.size, args.keys, args.queues
                )
                stream = CannedReads(reads)
                conn = Connection(
                    stream, router, peer="127.0.0.1:1", local="canned", idle_timeout=None
                )
                began = time.process_time()
                async with trio.open_nursery() as nursery:
                    await nursery.start(conn.run)
                # the store offers no event for "reput caught up"; a figures tool may poll
                while store.dispatch_behind_bytes() > 0:  # noqa: ASYNC110
                    await trio.sleep(0.001)
                used = time.process_time() - began
                per_round.append(used / args.messages * 1e6)
                if not args.quiet:
                    print(f"  round {len(per_round)}: {per_round[-1]:.1f} us CPU per message")
    return {
        "messages": args.messages,
        "per_read": args.per_read,
        "batch": args.batch,
        "us_per_msg": [round(v, 2) for v in per_round],
        "median_us_per_msg": round(statistics.median(per_round), 2),
        "compiled": compiled_modules(),
        "loadavg": [round(v, 2) for v in os.getloadavg()],
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="bench_send_path",
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--messages", type=int, default=20_000, help="per round")
    parser.add_argument("--per-read", type=int, default=1, help="frames in one read")
    parser.add_argument(
        "--batch", type=int, default=0, help="messages per batch request (0: single)"
    )
    parser.add_argument("-s", "--size", type=int, default=1024, help="body bytes")
    parser.add_argument("-k", "--keys", action="store_true", help="a KEYS property per message")
    parser.add_argument("--queues", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--dir", default=None, help="parent folder of the temporary store")
    parser.add_argument("--quiet", action="store_true")
    parser.add_argument("--json", action="store_true", help="end with one JSON line")
    parser.add_argument(
        "--slice",
        action="store_true",
        help="only decode, store put, reput and reply encode (the compiled modules' share)",
    )
    args = parser.parse_args(argv)
    if min(args.messages, args.per_read, args.size, args.rounds, args.queues) < 1 or args.batch < 0:
        parser.error("counts must be positive")
    if args.slice:
        figures = slice_figures(args.messages)
        import_compiled = ", ".join(compiled_modules()) or "none (pure Python)"
        print(
            "slice, us CPU per message: "
            + " ".join(f"{k} {v:.2f}" for k, v in figures.items())
            + f"; compiled: {import_compiled}; load {os.getloadavg()[0]:.2f}"
        )
        if args.json:
            print(json.dumps({"slice": figures, "compiled": compiled_modules()}))
        return 0
    result = trio.run(run, args)
    compiled = ", ".join(result["compiled"]) or "none (pure Python)"
    print(
        f"send path: {result['median_us_per_msg']:.1f} us CPU per message (median of "
        f"{len(result['us_per_msg'])}: {result['us_per_msg']}), {args.per_read} frame(s) per read"
        + (f", batches of {args.batch}" if args.batch else "")
        + f"; compiled: {compiled}; load {result['loadavg'][0]}"
    )
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    return 0


if __name__ == "__main__":
    sys.exit(main())

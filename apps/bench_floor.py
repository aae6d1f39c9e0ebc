"""The floor for the benchmarks' ratios: the smallest send server our design could be.

    python -m apps.bench_floor --port 9877 [--dir DIR]

One trio task per connection reads, decodes every whole frame of the read with the project's
own codec (``FrameDecoder``), appends each send's body to one preallocated memory-mapped file
(a memcpy, as the commit log's append is), and writes all replies of that read with a single
``send_all``.  No router, no handler tasks, no topic checks, no consume queues, no reput.

So that an unchanged producer can be pointed at it, it also plays the name server: every topic
routes to itself (``--queues`` queues); heartbeats, unregistering and topic creation succeed.
The bench tools run it as a child process, like the broker, and print their figures as ratios
to it.
"""

from __future__ import annotations

import argparse
import mmap
import os
import sys
import tempfile
from collections.abc import Sequence

import trio

from protocol.bodies.route import BrokerData, ClusterInfo, QueueData, TopicRouteData
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.convert import encode_body
from protocol.errors import ProtocolError
from protocol.frame import FrameDecoder, encode_command
from protocol.message import decode_batch
from protocol.msgid import create_offset_msg_id

FILE_SIZE = 1 << 30
SEND_CODES = frozenset(
    {RequestCode.SEND_MESSAGE, RequestCode.SEND_MESSAGE_V2, RequestCode.SEND_BATCH_MESSAGE}
)
ALWAYS_OK = frozenset(
    {RequestCode.HEART_BEAT, RequestCode.UNREGISTER_CLIENT, RequestCode.UPDATE_AND_CREATE_TOPIC}
)
BROKER_NAME = "floor"


class Floor:
    """State shared by all connections: the mapped file and the per-queue offsets."""

    def __init__(self, path: str, address: str, queues: int, file_size: int = FILE_SIZE) -> None:
        self.address = address
        self.queues = queues
        self.file_size = file_size
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        os.posix_fallocate(fd, 0, file_size)
        self.mm = mmap.mmap(fd, file_size)
        os.close(fd)
        self.pos = 0
        self.wrote = 0  # bytes ever appended (the "physical offset")
        self.queue_offsets = [0] * queues
        self.ext = {"MSG_REGION": "DefaultRegion", "TRACE_ON": "true"}

    def append(self, body: bytes) -> int:
        end = self.pos + len(body)
        if end > self.file_size:  # wrap: the floor keeps nothing, it only pays for the copy
            self.pos, end = 0, len(body)
        self.mm[self.pos : end] = body
        self.pos = end
        offset = self.wrote
        self.wrote += len(body)
        return offset

    def answer(self, req: RemotingCommand) -> RemotingCommand | None:
        code = req.code
        if code in SEND_CODES:
            return self.send(req)
        if code in ALWAYS_OK:
            return req.reply(ResponseCode.SUCCESS)
        if code == RequestCode.GET_ROUTEINFO_BY_TOPIC:
            return req.reply(ResponseCode.SUCCESS, body=encode_body(self.route()))
        if code == RequestCode.GET_BROKER_CLUSTER_INFO:
            return req.reply(ResponseCode.SUCCESS, body=encode_body(self.cluster()))
        return req.reply(ResponseCode.REQUEST_CODE_NOT_SUPPORTED, f"floor: code {code}")

    def send(self, req: RemotingCommand) -> RemotingCommand:
        ext = req.ext_fields
        queue_id = int(ext.get("e") or ext.get("queueId") or 0) % self.queues
        count = 1
        if req.code == RequestCode.SEND_BATCH_MESSAGE:
            try:
                count = len(decode_batch(req.body))
            except ProtocolError as exc:
                return req.reply(ResponseCode.MESSAGE_ILLEGAL, str(exc))
        phys = self.append(req.body)
        step = len(req.body) // count
        ids = [create_offset_msg_id(self.address, phys + i * step) for i in range(count)]
        queue_offset = self.queue_offsets[queue_id]
        self.queue_offsets[queue_id] += count
        fields = {
            **self.ext,
            "msgId": ",".join(ids),
            "queueId": str(queue_id),
            "queueOffset": str(queue_offset),
        }
        return req.reply(ResponseCode.SUCCESS, None, fields)

    def route(self) -> TopicRouteData:
        return TopicRouteData(
            queue_datas=(
                QueueData(
                    broker_name=BROKER_NAME,
                    read_queue_nums=self.queues,
                    write_queue_nums=self.queues,
                ),
            ),
            broker_datas=(self.broker_data(),),
        )

    def cluster(self) -> ClusterInfo:
        return ClusterInfo(
            broker_addr_table={BROKER_NAME: self.broker_data()},
            cluster_addr_table={"FloorCluster": (BROKER_NAME,)},
        )

    def broker_data(self) -> BrokerData:
        return BrokerData(
            cluster="FloorCluster", broker_name=BROKER_NAME, broker_addrs={0: self.address}
        )


async def serve_connection(floor: Floor, stream: trio.SocketStream) -> None:
    decoder = FrameDecoder()
    try:
        while data := await stream.receive_some(64 * 1024):
            decoder.feed(data)
            replies = []
            while (cmd := decoder.next_command()) is not None:
                reply = floor.answer(cmd)
                if reply is not None and not cmd.is_oneway:
                    replies.append(encode_command(reply))
            if replies:
                await stream.send_all(b"".join(replies))
    except (trio.BrokenResourceError, ProtocolError):
        pass
    finally:
        await trio.aclose_forcefully(stream)


async def floor_server(
    path: str,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    queues: int = 8,
    file_size: int = FILE_SIZE,
    task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve until cancelled; ``started`` reports the bound port.

    ``file_size``: the preallocated data file's size (tests pass a small one: disk is shared).
    """
    listeners = await trio.open_tcp_listeners(port, host=host)
    bound = listeners[0].socket.getsockname()[1]
    floor = Floor(path, f"{host}:{bound}", queues, file_size)

    async def handler(stream: trio.SocketStream) -> None:
        await serve_connection(floor, stream)

    async with trio.open_nursery() as nursery:
        await nursery.start(trio.serve_listeners, handler, listeners)
        task_status.started(bound)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench_floor", description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--queues", type=int, default=8)
    parser.add_argument("--dir", help="folder of the data file (default: a temp folder)")
    args = parser.parse_args(argv)
    folder = args.dir or tempfile.mkdtemp(prefix="bench-floor-")
    path = os.path.join(folder, "floor.data")
    try:
        trio.run(lambda: floor_server(path, port=args.port, queues=args.queues))
    except KeyboardInterrupt:
        pass
    finally:
        if os.path.exists(path):
            os.unlink(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())

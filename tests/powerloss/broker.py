"""A broker subprocess whose store lives on a LazyFS mount, and the power loss that hits both.

``power_loss()`` = ``kill -9`` of the broker, the file system drops every unsynced change,
unmount, a fresh file-system daemon on the same backing directory, the broker started again
(abnormal recovery: the ``abort`` file is still there).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import trio

from actors.remoting.client import RemotingClient
from protocol import fastjson
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.message import MessageExt, decode_records
from tests.actors.broker.wire import pull
from tests.compat.processes import child_env, free_port, write_properties
from tests.powerloss.mount import REPO, LazyMount
from tests.powerloss.warm import ForkedProcess, Zygote

T = 10  # seconds for one request: generous, the file system daemon shares two cores


def req(code: RequestCode, body: bytes = b"", **ext: object) -> RemotingCommand:
    return RemotingCommand.request(code, {k: str(v) for k, v in ext.items()}, body)


class PowerLossBroker:
    def __init__(
        self, mount: LazyMount, work: Path, *, flush: str, settings: dict[str, object] | None = None
    ) -> None:
        self.mount = mount
        self.work = work
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        self.flush = flush
        self.settings = settings or {}
        self.proc: ForkedProcess | None = None
        self.zygote: Zygote | None = None  # forks the broker processes (warm.py)
        self.starts = 0
        self.timings: list[tuple[float, float, float]] = []  # kill, remount, restart (seconds)

    @property
    def store(self) -> Path:
        return self.mount.path / "store"

    @property
    def durable_store(self) -> Path:
        """The same store as the disk holds it: only what was made durable."""
        return self.mount.backing / "store"

    def start(self) -> None:
        self.starts += 1
        # a fresh port per start: on a shared machine another test may take a port in the
        # second it is free, and a check must never talk to someone else's broker
        self.port = free_port()
        self.addr = f"127.0.0.1:{self.port}"
        conf = write_properties(
            self.work / "broker.conf",
            {
                "brokerName": "broker-powerloss",
                "brokerIP1": "127.0.0.1",
                "listenPort": self.port,
                "namesrvAddr": "",
                "storePathRootDir": self.store,
                "flushDiskType": self.flush,
                # small files: rounds cross file boundaries; glibc emulates posix_fallocate on
                # FUSE one block at a time, so the index stays small too
                "mappedFileSizeCommitLog": 128 * 1024,
                "mappedFileSizeConsumeQueue": 300 * 20,
                "maxHashSlotNum": 512,
                "maxIndexNum": 2048,
                # a small timer wheel: rebuilding the default one (3 days of 1 s slots) after
                # every unclean stop costs a third of a second through FUSE
                "timerMaxDelaySec": 3600,
                "mappedFileSizeTimerLog": 64 * 1024,
                **self.settings,
            },
        )
        if self.zygote is None:
            self.zygote = Zygote(log_dir=self.work / "logs", cwd=REPO, env=child_env())
        self.proc = self.zygote.spawn(
            f"broker-{self.starts}",
            ["-c", str(conf)],
            log_path=self.work / "logs" / f"broker-{self.starts}.out",
            env=child_env(HOME=str(self.work)),
        )

    async def wait_ready(self) -> None:
        """Until *this* broker says it serves on its port (its own log, not merely an open
        port: that could be another process's)."""
        assert self.proc is not None
        serving = f"serving on {self.addr},"
        with trio.fail_after(60):
            while True:
                assert self.proc.alive(), self.proc.describe()
                try:
                    if serving in self.proc.log_path.read_text(errors="replace"):
                        return
                except FileNotFoundError:
                    pass
                await trio.sleep(0.02)

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.kill()
        assert self.proc.wait(30) is not None, f"broker pid {self.proc.pid} survived SIGKILL"

    async def power_loss(self) -> None:
        """Broker and disk lose power at the same instant: the file system crashes right after
        SIGKILL is sent, not once the broker is gone.  A killed process may take a while to go
        (an fsync it was in finishes first), and an fsync that completes after the power failed
        must not count, whoever was waiting for it."""
        assert self.proc is not None
        t0 = time.monotonic()
        self.proc.kill()
        self.mount.crash()
        self.kill()  # and reap it
        t1 = time.monotonic()
        # in this thread, blocking: the daemons are spawned with PR_SET_PDEATHSIG, which fires
        # when the spawning *thread* exits (a trio worker thread does after 10 s idle)
        self.mount.unmount()
        self.mount.mount()
        t2 = time.monotonic()
        assert (self.store / "abort").exists(), "the abort file was never made durable"
        self.start()
        await self.wait_ready()
        t3 = time.monotonic()
        self.timings.append((t1 - t0, t2 - t1, t3 - t2))

    def stop(self) -> None:
        if self.proc is not None:
            code = self.proc.stop(grace=20)
            assert code == 0, self.proc.describe()

    def close(self) -> None:
        """Whatever state the test ended in: no broker process left behind."""
        if self.proc is not None and self.proc.alive():
            self.kill()
        if self.zygote is not None:
            self.zygote.close()
            self.zygote = None

    def describe(self) -> str:
        return self.proc.describe() if self.proc is not None else "broker never started"


async def pull_all(
    client: RemotingClient, addr: str, topic: str, queue_id: int
) -> list[MessageExt]:
    """Every message of one queue from offset 0, in queue order."""
    out: list[MessageExt] = []
    offset = 0
    while True:
        reply = await client.invoke(
            addr, pull(topic, queue_id=queue_id, offset=offset, suspend_ms=0, max_msgs=32), T
        )
        if reply.code != ResponseCode.SUCCESS:
            assert reply.code in (ResponseCode.PULL_NOT_FOUND, ResponseCode.PULL_OFFSET_MOVED), (
                f"pull {topic}/{queue_id}@{offset}: {reply.code} {reply.remark}"
            )
            return out
        out.extend(decode_records(reply.body, check_crc=True))
        offset = int(reply.ext_fields["nextBeginOffset"])


async def max_offset(client: RemotingClient, addr: str, topic: str, queue_id: int) -> int:
    reply = await client.invoke(
        addr, req(RequestCode.GET_MAX_OFFSET, topic=topic, queueId=queue_id), T
    )
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    return int(reply.ext_fields["offset"])


async def all_topics(client: RemotingClient, addr: str) -> dict[str, object]:
    reply = await client.invoke(addr, req(RequestCode.GET_ALL_TOPIC_CONFIG), T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    table: dict[str, object] = json.loads(reply.body)["topicConfigTable"]
    return table


async def all_groups(client: RemotingClient, addr: str) -> dict[str, object]:
    reply = await client.invoke(addr, req(RequestCode.GET_ALL_SUBSCRIPTIONGROUP_CONFIG), T)
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    table: dict[str, object] = fastjson.loads(reply.body)["subscriptionGroupTable"]
    return table


async def consumer_offset(
    client: RemotingClient, addr: str, group: str, topic: str, queue_id: int
) -> int | None:
    """The group's committed offset; None where it has none (0 counts as none: the broker
    answers 0 for a group that never committed on a young queue, see handlers/offsets.py)."""
    reply = await client.invoke(
        addr,
        req(RequestCode.QUERY_CONSUMER_OFFSET, consumerGroup=group, topic=topic, queueId=queue_id),
        T,
    )
    if reply.code == ResponseCode.QUERY_NOT_FOUND:
        return None
    assert reply.code == ResponseCode.SUCCESS, reply.remark
    value = int(reply.ext_fields["offset"])
    return value or None


def durable_offsets(broker: PowerLossBroker) -> dict[str, dict[int, int]]:
    """consumerOffset.json as the disk holds it (read from the backing directory)."""
    path = broker.durable_store / "config" / "consumerOffset.json"
    try:
        text = path.read_text()
    except FileNotFoundError:
        return {}
    table: dict[str, dict[int, int]] = fastjson.loads(text)["offsetTable"]
    return table

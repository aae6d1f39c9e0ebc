"""kill -9 under SYNC_FLUSH while a client sends; after a restart every acknowledged message is there.

The broker runs as a subprocess (apps/broker.py, as a user starts it).  Eight senders keep
sending while the broker is killed; a reply of SUCCESS means "flushed to disk" under SYNC_FLUSH,
so each such message must come back from a pull after the (abnormal) recovery.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import pytest
import trio

from actors.remoting.client import open_remoting_client
from protocol.codes import ResponseCode
from protocol.message import decode_records
from tests.actors.broker.wire import pull, send_v2
from tests.compat.processes import ManagedProcess, child_env, free_port, spawn, write_properties
from tests.store_sizes import SMALL_FILES

pytestmark = pytest.mark.crash

REPO = Path(__file__).resolve().parents[2]
TOPIC = "CrashTopic"
QUEUES = 4
SENDERS = 8
KILL_AFTER_ACKS = 1000


def start(work: Path, port: int) -> ManagedProcess:
    conf = write_properties(
        work / "broker.conf",
        {
            "brokerName": "broker-crash",
            "brokerIP1": "127.0.0.1",
            "listenPort": port,
            "namesrvAddr": "",
            "storePathRootDir": work / "store",
            "flushDiskType": "SYNC_FLUSH",
            # small files, so the run crosses several file boundaries before the kill
            "mappedFileSizeCommitLog": 256 * 1024,
            **SMALL_FILES,
            "mappedFileSizeConsumeQueue": 600 * 20,
        },
    )
    argv = [sys.executable, "apps/broker.py", "-c", str(conf)]
    return spawn("broker", argv, log_dir=work / "logs", cwd=REPO, env=child_env(HOME=str(work)))


async def wait_listening(port: int, proc: ManagedProcess) -> None:
    with trio.fail_after(30):
        while True:
            assert proc.alive(), proc.describe()
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.05)
                continue
            await stream.aclose()
            return


async def test_acknowledged_messages_survive_kill_9(tmp_path):
    port = free_port()
    addr = f"127.0.0.1:{port}"
    proc = start(tmp_path, port)
    acked: set[bytes] = set()
    killed = trio.Event()
    try:
        await wait_listening(port, proc)
        async with open_remoting_client(name="crash-client") as client:

            async def sender(n: int) -> None:
                i = 0
                while not killed.is_set():
                    # ~1 KiB records: the kill lands after several commit-log file rolls
                    body = f"s{n}-{i}-".encode().ljust(1000, b"x")
                    try:
                        reply = await client.invoke(
                            addr, send_v2(TOPIC, body, queue_id=i % QUEUES), 5
                        )
                    except Exception:
                        return  # the broker is gone
                    if reply.code == ResponseCode.SUCCESS:
                        acked.add(body)
                    i += 1
                    if len(acked) >= KILL_AFTER_ACKS and not killed.is_set():
                        os.kill(proc.pid, signal.SIGKILL)
                        killed.set()

            with trio.fail_after(60):
                async with trio.open_nursery() as nursery:
                    for n in range(SENDERS):
                        nursery.start_soon(sender, n)
        assert killed.is_set()
        proc.popen.wait(10)
        assert (tmp_path / "store" / "abort").exists()  # an abnormal end, recovery ahead

        proc = start(tmp_path, port)
        await wait_listening(port, proc)
        found: set[bytes] = set()
        async with open_remoting_client(name="crash-reader") as client:
            for queue_id in range(QUEUES):
                offset = 0
                while True:
                    reply = await client.invoke(
                        addr, pull(TOPIC, queue_id=queue_id, offset=offset), 5
                    )
                    if reply.code != ResponseCode.SUCCESS:
                        break
                    msgs = decode_records(reply.body)
                    found.update(m.body for m in msgs)
                    offset = int(reply.ext_fields["nextBeginOffset"])
        missing = acked - found
        assert not missing, f"{len(missing)} of {len(acked)} acknowledged messages lost"
    finally:
        proc.stop()
    assert proc.popen.returncode == 0
    assert not (tmp_path / "store" / "abort").exists()

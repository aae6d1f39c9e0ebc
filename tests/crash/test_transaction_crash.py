"""kill -9 between prepare and commit (reference §7.6): after the restart the broker's check-back
resolves every pending transaction; nothing committed is lost, nothing rolled back appears.

The broker runs as a subprocess under SYNC_FLUSH (an answered END_TRANSACTION is on disk) and
checks unresolved transactions after 1 s, every second.  The "producer" is a raw remoting
client that registers its group by heartbeat and answers CHECK_TRANSACTION_STATE itself.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import time
from pathlib import Path

import pytest
import trio

from actors.remoting.client import open_remoting_client
from actors.remoting.router import RequestContext, Router
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.message import MessageConst, decode_record, decode_records
from protocol.msgid import new_uniq_id
from tests.actors.broker.wire import props, pull, send_v2
from tests.compat.processes import ManagedProcess, child_env, free_port, spawn, write_properties
from tests.crash.test_broker_crash import REPO, wait_listening
from tests.store_sizes import SMALL_FILES

pytestmark = pytest.mark.crash

TOPIC = "TxCrashTopic"
GROUP = "tx_crash_pg"
COMMIT, ROLLBACK = 8, 12
PER_KIND = 10


def start(work: Path, port: int) -> ManagedProcess:
    conf = write_properties(
        work / "broker.conf",
        {
            "brokerName": "broker-tx-crash",
            "brokerIP1": "127.0.0.1",
            "listenPort": port,
            "namesrvAddr": "",
            "storePathRootDir": work / "store",
            "flushDiskType": "SYNC_FLUSH",
            "mappedFileSizeCommitLog": 256 * 1024,
            **SMALL_FILES,
            "transactionCheckInterval": 1000,
            "transactionTimeOut": 1000,
        },
    )
    argv = [sys.executable, "apps/broker.py", "-c", str(conf)]
    return spawn("broker", argv, log_dir=work / "logs", cwd=REPO, env=child_env(HOME=str(work)))


def heartbeat() -> RemotingCommand:
    body = json.dumps(
        {
            "clientID": "127.0.0.1@tx-crash",
            "consumerDataSet": [],
            "producerDataSet": [{"groupName": GROUP}],
        }
    ).encode()
    return RemotingCommand.request(RequestCode.HEART_BEAT, {}, body)


def end(sent: dict[str, str], kind: int, uniq: str, *, from_check: bool = False) -> RemotingCommand:
    return RemotingCommand.request(
        RequestCode.END_TRANSACTION,
        {
            "producerGroup": GROUP,
            "tranStateTableOffset": sent["tranStateTableOffset"],
            "commitLogOffset": sent["commitLogOffset"],
            "commitOrRollback": str(kind),
            "fromTransactionCheck": "true" if from_check else "false",
            "msgId": uniq,
            "transactionId": uniq,
        },
        oneway=from_check,
    )


async def prepare(client, addr: str, body: bytes) -> tuple[dict[str, str], str]:
    properties = props(tags="T", **{MessageConst.TRAN_MSG: "true", MessageConst.PGROUP: GROUP})
    uniq = properties[MessageConst.UNIQ_KEY] = new_uniq_id()
    reply = await client.invoke(
        addr,
        send_v2(TOPIC, body, properties=properties, a=GROUP, f=4, g=time.time_ns() // 1_000_000),
        5,
    )
    assert reply.code == ResponseCode.SUCCESS, reply
    sent = {
        "tranStateTableOffset": reply.ext_fields["queueOffset"],
        "commitLogOffset": str(int(reply.ext_fields["msgId"][-16:], 16)),
    }
    return sent, uniq


async def test_kill_between_prepare_and_commit(tmp_path: Path) -> None:
    port = free_port()
    addr = f"127.0.0.1:{port}"
    proc = start(tmp_path, port)
    committed: set[bytes] = set()
    rolled_back: set[bytes] = set()
    pending: dict[str, bytes] = {}
    try:
        await wait_listening(port, proc)
        async with open_remoting_client(name="tx-crash-client") as client:
            for i in range(PER_KIND):
                body = f"commit-{i}".encode()
                sent, uniq = await prepare(client, addr, body)
                reply = await client.invoke(addr, end(sent, COMMIT, uniq), 5)
                assert reply.code == ResponseCode.SUCCESS, reply
                committed.add(body)
                body = f"rollback-{i}".encode()
                sent, uniq = await prepare(client, addr, body)
                reply = await client.invoke(addr, end(sent, ROLLBACK, uniq), 5)
                assert reply.code == ResponseCode.SUCCESS, reply
                rolled_back.add(body)
                body = f"pending-{i}".encode()
                _, uniq = await prepare(client, addr, body)
                pending[uniq] = body
        os.kill(proc.pid, signal.SIGKILL)  # before anyone ends the pending ones
        proc.popen.wait(10)
        assert (tmp_path / "store" / "abort").exists()

        proc = start(tmp_path, port)
        await wait_listening(port, proc)
        checked: dict[str, int] = {}
        all_checked = trio.Event()

        async def on_check(ctx: RequestContext, req: RemotingCommand) -> None:
            msg = decode_record(req.body)
            uniq = req.ext_fields["msgId"]
            assert msg.topic == TOPIC
            checked[uniq] = checked.get(uniq, 0) + 1
            # the producer's local state: pending-<even> committed, pending-<odd> rolled back
            kind = COMMIT if int(msg.body.split(b"-")[1]) % 2 == 0 else ROLLBACK
            await ctx.channel.send(end(req.ext_fields, kind, uniq, from_check=True))
            if set(checked) >= set(pending):
                all_checked.set()

        router = Router("tx-crash-producer")
        router.register(RequestCode.CHECK_TRANSACTION_STATE, on_check)
        expected = committed | {b for b in pending.values() if int(b.split(b"-")[1]) % 2 == 0}
        found: list[bytes] = []
        async with open_remoting_client(router, name="tx-crash-producer") as client:
            with trio.fail_after(60):
                reply = await client.invoke(addr, heartbeat(), 5)
                assert reply.code == ResponseCode.SUCCESS
                await all_checked.wait()
                while set(found) != expected:
                    await trio.sleep(0.5)
                    found = []
                    for queue_id in range(4):
                        offset = 0
                        while True:
                            reply = await client.invoke(
                                addr, pull(TOPIC, queue_id=queue_id, offset=offset), 5
                            )
                            if reply.code != ResponseCode.SUCCESS:
                                break
                            found += [m.body for m in decode_records(reply.body)]
                            offset = int(reply.ext_fields["nextBeginOffset"])
                # a further round must not ask again about anything resolved
                await trio.sleep(3)
        assert set(checked) == set(pending), "only the pending transactions are checked back"
        assert all(n == 1 for n in checked.values()), checked
        assert sorted(found) == sorted(expected), "each committed message exactly once"
        assert not set(found) & rolled_back
    finally:
        proc.stop()
    assert proc.popen.returncode == 0

"""A broker with aclEnable=true (issue 19): verification in the router, NO_PERMISSION (16)
refusals, our client's signing, and plain_acl.yml reloaded when it changes."""

from __future__ import annotations

import logging
import re
from pathlib import Path
from types import SimpleNamespace

import pytest
import trio

from actors.broker.acl import AclGuard, acl_file_watcher
from actors.client.errors import ClientError
from actors.client.message import Message, SendStatus
from actors.client.producer import Producer
from actors.client.pull_consumer import LitePullConsumer
from actors.client.push_consumer import ConsumeFromWhere
from actors.remoting.client import open_remoting_client
from actors.remoting.router import RequestContext
from protocol.acl import AclConfigError, SessionCredentials, sign_request
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from tests.actors.broker.conftest import start_broker
from tests.actors.broker.wire import send_v2

T = 5
ACL_YML = """
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - allowed=PUB|SUB
      - TBW102=PUB
  - accessKey: adminKey
    secretKey: adminSecret
    admin: true
"""
USER = SessionCredentials("RocketMQ", "12345678")
ADMIN = SessionCredentials("adminKey", "adminSecret")
ABSENT = "org.apache.rocketmq.acl.common.AclException: No accessKey is configured"


@pytest.fixture
def acl_file(tmp_path: Path) -> Path:
    path = tmp_path / "plain_acl.yml"
    path.write_text(ACL_YML)
    return path


async def acl_broker(nursery, tmp_path: Path, acl_file: Path, namesrv_addr: str = ""):
    return await start_broker(
        nursery, tmp_path / "store", namesrv_addr, aclEnable=True, plainAclFile=str(acl_file)
    )


def create_topic(topic: str) -> RemotingCommand:
    return RemotingCommand.request(
        RequestCode.UPDATE_AND_CREATE_TOPIC,
        {
            "topic": topic,
            "defaultTopic": "TBW102",
            "readQueueNums": "4",
            "writeQueueNums": "4",
            "perm": "6",
            "topicFilterType": "SINGLE_TAG",
            "topicSysFlag": "0",
            "order": "false",
        },
    )


async def test_refusals_are_no_permission_with_apache_texts(nursery, tmp_path, acl_file, caplog):
    handle = await acl_broker(nursery, tmp_path, acl_file)
    addr = handle.address
    caplog.set_level(logging.WARNING, logger="actors.broker.acl")
    async with open_remoting_client(name="acl-test") as client:
        unsigned = await client.invoke(addr, send_v2("allowed"), T)
        assert (unsigned.code, unsigned.remark) == (ResponseCode.NO_PERMISSION, ABSENT)
        await trio.sleep(1.1)  # refusals are logged once per address and second
        wrong = await client.invoke(
            addr, sign_request(send_v2("allowed"), SessionCredentials("RocketMQ", "wrong-one")), T
        )
        assert wrong.code == ResponseCode.NO_PERMISSION
        assert wrong.remark.endswith("Check signature failed for accessKey=RocketMQ")
        denied = await client.invoke(addr, sign_request(send_v2("other"), USER), T)
        assert denied.code == ResponseCode.NO_PERMISSION
        assert denied.remark.endswith("No default permission for topic:other")
        ok = await client.invoke(addr, sign_request(send_v2("allowed"), USER), T)
        assert ok.code == ResponseCode.SUCCESS
        # Admin-only codes, and codes no handler serves: the check comes first.
        not_admin = await client.invoke(addr, sign_request(create_topic("NewT"), USER), T)
        assert not_admin.code == ResponseCode.NO_PERMISSION
        assert not_admin.remark.endswith(
            "Need admin permission for request code=17, but accessKey=RocketMQ is not"
        )
        admin = await client.invoke(addr, sign_request(create_topic("NewT"), ADMIN), T)
        assert admin.code == ResponseCode.SUCCESS
        unknown = await client.invoke(addr, RemotingCommand.request(9999), T)
        assert (unknown.code, unknown.remark) == (ResponseCode.NO_PERMISSION, ABSENT)
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "accessKey=None" in logged
    assert "accessKey=RocketMQ): Check signature failed" in logged
    assert "from 127.0.0.1:" in logged
    assert "12345678" not in logged
    assert "wrong-one" not in logged


async def test_our_clients_sign_when_given_credentials(nursery, tmp_path, acl_file, namesrv_addr):
    await acl_broker(nursery, tmp_path, acl_file, namesrv_addr)
    with trio.fail_after(30):
        async with Producer("pg", namesrv=namesrv_addr, credentials=USER) as producer:
            results = [await producer.send(Message("allowed", f"m{i}".encode())) for i in range(5)]
        assert all(r.status is SendStatus.SEND_OK for r in results)
        async with LitePullConsumer(
            "cg",
            namesrv=namesrv_addr,
            credentials=USER,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        ) as consumer:
            await consumer.subscribe("allowed")
            got: list = []
            while len(got) < 5:
                got += await consumer.poll(timeout=1.0)
        assert sorted(m.body for m in got) == [f"m{i}".encode() for i in range(5)]
        async with Producer("pg2", namesrv=namesrv_addr) as unsigned:
            with pytest.raises(ClientError, match=re.escape(f"CODE: 16 DESC: {ABSENT}")):
                await unsigned.send(Message("allowed", b"x"))


async def test_file_changes_are_picked_up_by_the_broker(nursery, tmp_path, acl_file):
    # Real clock: the broker's watcher looks every 5 s (autojump and real sockets do not mix:
    # the clock would jump past request timeouts while a reply is on its way).
    handle = await acl_broker(nursery, tmp_path, acl_file)
    async with open_remoting_client(name="acl-test") as client:
        before = await client.invoke(handle.address, sign_request(send_v2("later"), USER), T)
        assert before.code == ResponseCode.NO_PERMISSION
        acl_file.write_text(ACL_YML.replace("allowed=PUB|SUB", "later=PUB"))
        with trio.fail_after(8):
            while True:
                cmd = sign_request(send_v2("later"), USER)
                if (await client.invoke(handle.address, cmd, T)).code == ResponseCode.SUCCESS:
                    break
                await trio.sleep(0.25)


def _ctx(peer: str = "127.0.0.1:5555") -> RequestContext:
    return RequestContext(SimpleNamespace(peer=peer))  # type: ignore[arg-type]


async def test_watcher_reloads_keeps_rules_on_broken_or_missing_files(
    nursery, acl_file, autojump_clock
):
    guard = AclGuard.load(acl_file)
    await nursery.start(acl_file_watcher, guard)
    later = sign_request(send_v2("later"), USER)
    assert guard(_ctx(), later) is not None
    acl_file.write_text(ACL_YML.replace("allowed=PUB|SUB", "later=PUB"))
    await trio.sleep(4)
    assert guard(_ctx(), later) is not None  # not looked yet: every 5 s, as Java
    await trio.sleep(2)
    assert guard(_ctx(), later) is None
    acl_file.write_text("accounts: [\n")  # a broken edit keeps the rules in force
    await trio.sleep(6)
    assert guard(_ctx(), later) is None
    acl_file.unlink()  # so does a file moved away
    await trio.sleep(6)
    assert guard(_ctx(), later) is None
    acl_file.write_text(ACL_YML)  # and a new file is read again
    await trio.sleep(6)
    assert guard(_ctx(), later) is not None


async def test_refusal_log_lines_are_rate_limited(nursery, tmp_path, acl_file, caplog):
    handle = await acl_broker(nursery, tmp_path, acl_file)
    caplog.set_level(logging.WARNING, logger="actors.broker.acl")
    async with open_remoting_client(name="acl-test") as client:
        for _ in range(50):
            reply = await client.invoke(handle.address, send_v2("allowed"), T)
            assert reply.code == ResponseCode.NO_PERMISSION
    lines = [r for r in caplog.records if r.name == "actors.broker.acl"]
    assert 1 <= len(lines) < 10


async def test_broken_file_stops_the_start(nursery, tmp_path, acl_file):
    acl_file.write_text("accounts:\n  - accessKey: short\n    secretKey: 12345678\n")
    with pytest.raises(BaseExceptionGroup) as info:
        async with trio.open_nursery() as inner:
            await acl_broker(inner, tmp_path, acl_file)
    assert info.group_contains(AclConfigError, match="longer than 6")


async def test_missing_file_refuses_everyone(nursery, tmp_path):
    handle = await acl_broker(nursery, tmp_path, tmp_path / "absent.yml")
    async with open_remoting_client(name="acl-test") as client:
        reply = await client.invoke(handle.address, sign_request(send_v2("allowed"), USER), T)
    assert reply.code == ResponseCode.NO_PERMISSION
    assert reply.remark.endswith("No acl config for RocketMQ")


async def test_without_acl_signed_and_unsigned_requests_pass(nursery, tmp_path):
    handle = await start_broker(nursery, tmp_path / "store")
    assert handle.ctx is not None
    async with open_remoting_client(name="acl-test") as client:
        for cmd in (send_v2("T"), sign_request(send_v2("T"), USER)):
            assert (await client.invoke(handle.address, cmd, T)).code == ResponseCode.SUCCESS

"""Transactional messages (reference §7.6): prepare, END_TRANSACTION, check-back, check-max,
immunity, progress across a restart and the bounded op map; a real store on virtual time."""

from __future__ import annotations

from pathlib import Path

import attrs
import pytest
import trio

from actors.broker.clients import ClientChannelInfo
from actors.broker.config import BrokerConfig
from actors.broker.context import BrokerContext
from actors.broker.handlers.end_transaction import EndTransactionHandler
from actors.broker.handlers.send import SendHandler
from actors.broker.transaction import check_round, check_settings, transaction_checker
from actors.remoting.router import RequestContext, Router
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.message import MessageConst, MessageExt, MessageSysFlag, decode_record
from storage.consumer_offsets import ConsumerOffsetTable
from storage.transaction import (
    CHECK_GROUP,
    CHECK_MAX_TOPIC,
    HALF_TOPIC,
    OP_TOPIC,
    HalfQueueCheck,
)
from tests.actors.broker.delay_harness import StoreHarness, clock_ms
from tests.actors.broker.wire import props, send_v2

TOPIC = "TopicTx"
COMMIT = MessageSysFlag.TRANSACTION_COMMIT
ROLLBACK = MessageSysFlag.TRANSACTION_ROLLBACK


@attrs.define(eq=False)
class FakeChannel:
    """A producer's connection as the check service sees it: what was sent to it."""

    peer: str = "10.0.0.9:5555"
    local: str = "127.0.0.1:10911"
    closed: bool = False
    sent: list[RemotingCommand] = attrs.Factory(list)
    # set: a send hangs (a stuck connection) after setting the event
    hang: trio.Event | None = None

    async def send(self, cmd: RemotingCommand) -> None:
        if self.hang is not None:
            self.hang.set()
            await trio.sleep_forever()
        self.sent.append(cmd)


class TxBroker:
    def __init__(self, root: Path, **broker_config: object) -> None:
        self.h = StoreHarness(root)
        self.config = BrokerConfig(brokerIP1="127.0.0.1", brokerName="broker-a", **broker_config)  # type: ignore[arg-type]
        self._make_ctx()

    def _make_ctx(self) -> None:
        self.ctx = BrokerContext.create(
            self.config, self.h.store.config, self.h.store, now_ms=clock_ms
        )
        self.ctx.topics.create_if_absent(TOPIC, 4, 6, 0, clock_ms())
        self.router = Router()
        SendHandler(self.ctx).register(self.router)
        EndTransactionHandler(self.ctx).register(self.router)
        self.channel = FakeChannel()

    def restart(self) -> None:
        """Stop (persisting the offsets as the broker's persister does) and start again."""
        self.ctx.offsets.persist(self.ctx.config_dir)
        self.h.restart()
        self._make_ctx()

    def register_producer(self, group: str = "pg") -> None:
        self.ctx.producers.register(
            group, ClientChannelInfo(self.channel, "client-1", "JAVA", 409, clock_ms())
        )

    async def call(self, req: RemotingCommand) -> RemotingCommand | None:
        reply = await self.router.dispatch(RequestContext(self.channel), req)  # type: ignore[arg-type]
        self.h.dispatch()
        return reply

    async def prepare(self, body: bytes = b"tx", group: str = "pg", **extra: str) -> dict[str, str]:
        properties = props(**{MessageConst.TRAN_MSG: "true", MessageConst.PGROUP: group, **extra})
        req = send_v2(TOPIC, body, queue_id=1, properties=properties, a=group, f=str(0x4))
        req = attrs.evolve(req, ext_fields={**req.ext_fields, "g": str(clock_ms())})
        reply = await self.call(req)
        assert reply is not None
        assert reply.code == ResponseCode.SUCCESS, reply
        return {**reply.ext_fields, "uniq": properties[MessageConst.UNIQ_KEY]}

    async def end(
        self,
        sent: dict[str, str],
        kind: int,
        *,
        group: str = "pg",
        from_check: bool = False,
        **override: str,
    ) -> RemotingCommand | None:
        offset = int(sent["msgId"][-16:], 16)
        ext = {
            "producerGroup": group,
            "tranStateTableOffset": sent["queueOffset"],
            "commitLogOffset": str(offset),
            "commitOrRollback": str(kind),
            "fromTransactionCheck": "true" if from_check else "false",
            "msgId": sent["uniq"],
            "transactionId": sent["uniq"],
        }
        ext.update(override)
        return await self.call(
            RemotingCommand.request(RequestCode.END_TRANSACTION, ext, oneway=True)
        )

    def read(self, topic: str, queue_id: int = 0) -> list[MessageExt]:
        return self.h.read(topic, queue_id)

    async def check_round(self) -> list[RemotingCommand]:
        before = len(self.channel.sent)
        self.h.dispatch()
        await check_round(self.ctx)
        self.h.dispatch()
        return self.channel.sent[before:]


def answer_fields(check: RemotingCommand) -> dict[str, str]:
    """What a producer quotes back from a check-back request."""
    ext = check.ext_fields
    offset_id = ext["offsetMsgId"]
    return {"msgId": offset_id, "queueOffset": ext["tranStateTableOffset"], "uniq": ext["msgId"]}


@pytest.fixture
def tx(tmp_path: Path) -> TxBroker:
    return TxBroker(tmp_path)


async def test_prepare_is_invisible_until_commit(tx: TxBroker) -> None:
    sent = await tx.prepare(b"order-1")
    assert tx.read(TOPIC, 1) == []
    halves = tx.read(HALF_TOPIC)
    assert len(halves) == 1
    half = halves[0]
    assert half.properties[MessageConst.REAL_TOPIC] == TOPIC
    assert half.properties[MessageConst.REAL_QID] == "1"
    assert half.sys_flag & MessageSysFlag.TRANSACTION_MASK == 0
    assert sent["queueOffset"] == "0"

    reply = await tx.end(sent, COMMIT)
    assert reply is not None
    assert reply.code == ResponseCode.SUCCESS, reply
    [real] = tx.read(TOPIC, 1)
    assert real.body == b"order-1"
    # kept, as Apache 4.9.7 stores them (the differential test's tx_pull_committed)
    assert real.properties[MessageConst.REAL_TOPIC] == TOPIC
    assert real.properties[MessageConst.TRAN_MSG] == "true"
    assert real.properties[MessageConst.UNIQ_KEY] == sent["uniq"]
    assert real.sys_flag & MessageSysFlag.TRANSACTION_MASK == COMMIT
    assert real.prepared_transaction_offset == half.commit_log_offset
    [op] = tx.read(OP_TOPIC)
    assert op.body == b"0"
    assert op.tags == "d"


async def test_rollback_writes_only_the_op(tx: TxBroker) -> None:
    sent = await tx.prepare()
    reply = await tx.end(sent, ROLLBACK)
    assert reply is not None
    assert reply.code == ResponseCode.SUCCESS
    assert reply.remark == "not set any response code"
    assert tx.read(TOPIC, 1) == []
    assert [op.body for op in tx.read(OP_TOPIC)] == [b"0"]


@pytest.mark.parametrize(
    ("override", "remark"),
    [
        ({"producerGroup": "other"}, "The producer group wrong"),
        ({"tranStateTableOffset": "7"}, "The transaction state table offset wrong"),
        ({"commitLogOffset": "1"}, "Find prepared transaction message failed"),
        ({"commitLogOffset": "999999"}, "Find prepared transaction message failed"),
    ],
)
async def test_end_transaction_checks(tx: TxBroker, override: dict[str, str], remark: str) -> None:
    sent = await tx.prepare()
    reply = await tx.end(sent, COMMIT, **override)
    assert reply is not None
    assert (reply.code, reply.remark) == (ResponseCode.SYSTEM_ERROR, remark)
    assert tx.read(TOPIC, 1) == []
    assert tx.read(OP_TOPIC) == []


async def test_unknown_state_is_not_answered(tx: TxBroker) -> None:
    sent = await tx.prepare()
    assert await tx.end(sent, 0) is None
    assert await tx.end(sent, 0, from_check=True) is None
    assert tx.read(OP_TOPIC) == []


async def test_end_transaction_refused_on_slave(tx: TxBroker) -> None:
    from storage.config import BrokerRole

    sent = await tx.prepare()
    tx.ctx.role.value = BrokerRole.SLAVE
    reply = await tx.end(sent, COMMIT)
    assert reply is not None
    assert reply.code == ResponseCode.SLAVE_NOT_AVAILABLE


async def test_check_back_after_timeout_then_commit(tx: TxBroker, autojump_clock) -> None:
    tx.register_producer()
    sent = await tx.prepare(b"unknown")
    await trio.sleep(5)
    assert await tx.check_round() == []  # younger than transactionTimeOut (6 s)
    await trio.sleep(2)
    [check] = await tx.check_round()
    assert check.code == RequestCode.CHECK_TRANSACTION_STATE
    assert check.is_oneway
    assert check.ext_fields["msgId"] == sent["uniq"] == check.ext_fields["transactionId"]
    assert check.ext_fields["tranStateTableOffset"] == "1"  # the copy's queue offset
    body = decode_record(check.body)
    assert (body.topic, body.queue_id, body.body) == (TOPIC, 1, b"unknown")
    assert body.properties[MessageConst.TRANSACTION_CHECK_TIMES] == "1"
    assert body.properties[MessageConst.WAIT] == "false"  # as Apache's check-back shows
    assert body.commit_log_offset == int(check.ext_fields["commitLogOffset"])

    reply = await tx.end(answer_fields(check), COMMIT, from_check=True)
    assert reply is not None
    assert reply.code == ResponseCode.SUCCESS, reply
    assert [m.body for m in tx.read(TOPIC, 1)] == [b"unknown"]
    await trio.sleep(60)
    assert await tx.check_round() == []
    assert tx.ctx.offsets.query(CHECK_GROUP, HALF_TOPIC, 0) == 2
    assert tx.ctx.offsets.query(CHECK_GROUP, OP_TOPIC, 0) == 1


async def test_committed_and_rolled_back_are_never_checked(tx: TxBroker, autojump_clock) -> None:
    tx.register_producer()
    a = await tx.prepare(b"a")
    b = await tx.prepare(b"b")
    c = await tx.prepare(b"c")
    await tx.end(c, COMMIT)
    await tx.end(a, ROLLBACK)
    await trio.sleep(10)
    [check] = await tx.check_round()
    assert decode_record(check.body).body == b"b"
    assert b["uniq"] == check.ext_fields["msgId"]
    assert [m.body for m in tx.read(TOPIC, 1)] == [b"c"]


async def test_producer_that_never_answers_is_discarded_after_check_max(
    tmp_path: Path, autojump_clock
) -> None:
    tx = TxBroker(tmp_path, transactionCheckMax=3)
    tx.register_producer()
    await tx.prepare(b"silent")
    checks = []
    for _ in range(6):
        await trio.sleep(61)
        checks += await tx.check_round()
    assert [c.ext_fields["msgId"] for c in checks] == [checks[0].ext_fields["msgId"]] * 3
    times = [decode_record(c.body).properties[MessageConst.TRANSACTION_CHECK_TIMES] for c in checks]
    assert times == ["1", "2", "3"]
    [discarded] = tx.read(CHECK_MAX_TOPIC)
    assert discarded.body == b"silent"
    assert CHECK_MAX_TOPIC in tx.ctx.topics
    assert tx.read(TOPIC, 1) == []


async def test_no_live_producer_does_not_use_up_checks(tmp_path: Path, autojump_clock) -> None:
    tx = TxBroker(tmp_path, transactionCheckMax=3)
    await tx.prepare(b"orphan")
    for _ in range(5):
        await trio.sleep(61)
        assert await tx.check_round() == []  # nobody to ask: put back, not counted
    assert tx.read(CHECK_MAX_TOPIC) == []
    tx.register_producer()
    await trio.sleep(61)
    [check] = await tx.check_round()
    assert decode_record(check.body).properties[MessageConst.TRANSACTION_CHECK_TIMES] == "1"
    tx.channel.closed = True  # a closed connection is not a live producer
    await trio.sleep(61)
    assert await tx.check_round() == []


async def test_check_immunity(tx: TxBroker, autojump_clock) -> None:
    tx.register_producer()
    sent = await tx.prepare(b"slow", **{MessageConst.CHECK_IMMUNITY_TIME_IN_SECONDS: "30"})
    await trio.sleep(10)
    assert await tx.check_round() == []  # within immunity: put back, not asked
    halves = tx.read(HALF_TOPIC)
    assert halves[-1].properties[MessageConst.TRAN_PREPARED_QUEUE_OFFSET] == "0"
    await trio.sleep(25)
    [check] = await tx.check_round()
    assert check.ext_fields["msgId"] == sent["uniq"]


async def test_immunity_copy_resolved_by_the_original_op(tx: TxBroker, autojump_clock) -> None:
    tx.register_producer()
    sent = await tx.prepare(b"slow", **{MessageConst.CHECK_IMMUNITY_TIME_IN_SECONDS: "30"})
    await trio.sleep(10)
    assert await tx.check_round() == []
    await tx.end(sent, COMMIT)  # the producer quotes the original
    await trio.sleep(5)
    assert await tx.check_round() == []
    await trio.sleep(60)
    assert await tx.check_round() == []
    assert len(tx.read(TOPIC, 1)) == 1


async def test_restart_neither_loses_nor_repeats(tx: TxBroker, autojump_clock) -> None:
    tx.register_producer()
    await tx.prepare(b"one")
    await trio.sleep(7)
    [first] = await tx.check_round()
    tx.restart()
    tx.register_producer()
    await tx.prepare(b"two")
    assert await tx.check_round() == []  # "one"'s copy was stored this instant: next round
    await trio.sleep(7)
    checks = await tx.check_round()
    # the copy of "one" (checked again: nobody answered) and "two"; "one" itself not again
    assert sorted(decode_record(c.body).body for c in checks) == [b"one", b"two"]
    one = next(c for c in checks if decode_record(c.body).body == b"one")
    assert decode_record(one.body).properties[MessageConst.TRANSACTION_CHECK_TIMES] == "2"
    assert first.ext_fields["msgId"] == one.ext_fields["msgId"]


async def test_op_map_is_bounded_and_still_exact(tmp_path: Path, autojump_clock) -> None:
    """Committed halves whose ops lie far ahead in the op queue: with room for two ops in
    memory the walk re-reads the op queue instead of holding them, and checks exactly the
    pending one."""
    tx = TxBroker(tmp_path)
    tx.register_producer()
    sent = [await tx.prepare(f"m{i}".encode()) for i in range(12)]
    # ops in reverse order: the first ops read name the last halves
    for i in reversed(range(12)):
        if i != 3:
            await tx.end(sent[i], COMMIT)
    await trio.sleep(10)
    tx.h.dispatch()
    settings = attrs.evolve(check_settings(tx.ctx), max_ops_in_memory=2, max_done_ops=3)
    walk = HalfQueueCheck(tx.h.store, tx.ctx.offsets, settings, clock_ms)
    checks = []
    while not walk.finished:
        got, _ = walk.step(4)
        checks += got
        assert len(walk._remove) <= 2
        assert len(walk._done_ops) <= 3
    assert [c.message.body for c in checks] == [b"m3"]
    walk.save()
    assert tx.ctx.offsets.query(CHECK_GROUP, HALF_TOPIC, 0) == 12
    # the done set forgot ops past its cap: the op offset stays behind, a lower bound
    assert 1 <= tx.ctx.offsets.query(CHECK_GROUP, OP_TOPIC, 0) < 11
    tx.h.dispatch()
    await trio.sleep(1)
    again = HalfQueueCheck(tx.h.store, tx.ctx.offsets, settings, clock_ms)
    checks = []
    while not again.finished:
        got, _ = again.step(4)
        checks += got
    # only m3's copy (nobody answered) is asked about again; no committed one ever
    assert [c.message.body for c in checks] == [b"m3"]
    # with room for the done ops, the op offset moves past all eleven
    roomy = attrs.evolve(settings, max_done_ops=100)
    walk = HalfQueueCheck(tx.h.store, ConsumerOffsetTable(), roomy, clock_ms)
    while not walk.finished:
        walk.step(4)
    assert walk._op_next == 11


async def test_check_service_actor_timing_and_cancel(tmp_path: Path, autojump_clock) -> None:
    tx = TxBroker(tmp_path, transactionCheckInterval=60_000)
    tx.register_producer()
    await tx.prepare(b"x")

    async def reput() -> None:
        while True:
            await tx.ctx.reput_wake.wait()
            tx.h.dispatch()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reput)
        await nursery.start(transaction_checker, tx.ctx)
        await trio.sleep(59)
        assert tx.channel.sent == []  # the first round is one interval after start
        await trio.sleep(2)
        assert len(tx.channel.sent) == 1
        await trio.sleep(60)
        assert len(tx.channel.sent) == 2
        nursery.cancel_scope.cancel()
    # restartable: a new service resumes from the recorded offsets
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reput)
        await nursery.start(transaction_checker, tx.ctx)
        await trio.sleep(61)
        assert len(tx.channel.sent) == 3
        nursery.cancel_scope.cancel()


def test_offsets_survive_in_consumer_offset_json(tmp_path: Path) -> None:
    table = ConsumerOffsetTable()
    table.commit(CHECK_GROUP, HALF_TOPIC, 0, 5)
    table.persist(tmp_path)
    assert ConsumerOffsetTable.load(tmp_path).query(CHECK_GROUP, HALF_TOPIC, 0) == 5


# ---------------------------------------------------------------- SYNC_FLUSH


class SyncFlushTx(TxBroker):
    """No flusher runs: ``ctx.flushed`` moves only when the test says (test_durable_writes)."""

    def __init__(self, root: Path) -> None:
        from storage.config import FlushDiskType

        self.h = StoreHarness(root, config_overrides={"flushDiskType": FlushDiskType.SYNC_FLUSH})
        self.config = BrokerConfig(brokerIP1="127.0.0.1", brokerName="broker-a")
        self._make_ctx()


async def test_commit_waits_until_real_and_op_are_flushed(tmp_path: Path, autojump_clock) -> None:
    from tests.actors.broker.test_durable_writes import answered_only_after_flush

    tx = SyncFlushTx(tmp_path)
    tx.ctx.flushed.advance(tx.h.store.max_phy_offset)
    prepare = tx.prepare()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _keep_flushed(tx))
        sent = await prepare
        nursery.cancel_scope.cancel()
    offset = int(sent["msgId"][-16:], 16)
    ext = {
        "producerGroup": "pg",
        "tranStateTableOffset": sent["queueOffset"],
        "commitLogOffset": str(offset),
        "commitOrRollback": str(COMMIT),
        "fromTransactionCheck": "false",
        "msgId": sent["uniq"],
    }
    req = RemotingCommand.request(RequestCode.END_TRANSACTION, ext)
    reply = await answered_only_after_flush(tx, req)  # type: ignore[arg-type]
    assert reply.code == ResponseCode.SUCCESS
    tx.h.dispatch()
    assert len(tx.read(TOPIC, 1)) == 1
    assert len(tx.read(OP_TOPIC)) == 1


async def test_commit_flush_timeout_is_not_success(tmp_path: Path, autojump_clock) -> None:
    tx = SyncFlushTx(tmp_path)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(lambda: _keep_flushed(tx))
        sent = await tx.prepare()
        nursery.cancel_scope.cancel()
    reply = await tx.end(sent, COMMIT)  # nobody flushes: syncFlushTimeout passes
    assert reply is not None
    assert reply.code == ResponseCode.FLUSH_DISK_TIMEOUT


async def _keep_flushed(tx: TxBroker) -> None:
    while True:
        tx.ctx.flushed.advance(tx.h.store.max_phy_offset)
        await trio.sleep(0.001)


async def test_cancelled_mid_round_then_restarted(tmp_path: Path, autojump_clock) -> None:
    """A role switch cancels the service while a check-back is being sent: the progress made
    stays recorded, and the restarted service asks again about the copy, never about the
    original a second time."""
    tx = TxBroker(tmp_path, transactionCheckInterval=60_000)
    tx.register_producer()
    await tx.prepare(b"x")
    blocked = tx.channel.hang = trio.Event()

    async def reput() -> None:
        while True:
            await tx.ctx.reput_wake.wait()
            tx.h.dispatch()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(reput)
        await nursery.start(transaction_checker, tx.ctx)
        await blocked.wait()
        nursery.cancel_scope.cancel()  # the role scope ends mid-send
    assert tx.ctx.offsets.query(CHECK_GROUP, HALF_TOPIC, 0) == 1  # past the original
    tx.channel.hang = None
    async with trio.open_nursery() as nursery:
        nursery.start_soon(reput)
        await nursery.start(transaction_checker, tx.ctx)
        await trio.sleep(61)
        nursery.cancel_scope.cancel()
    [check] = tx.channel.sent
    assert check.ext_fields["tranStateTableOffset"] == "2"  # the copy's copy
    halves = tx.read(HALF_TOPIC)
    assert len(halves) == 3  # original, the copy of the cancelled round, this round's copy
    assert decode_record(check.body).properties[MessageConst.TRANSACTION_CHECK_TIMES] == "2"

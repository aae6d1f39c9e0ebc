"""TransactionProducer against the project's broker (in-process, loopback): commit, rollback,
unknown -> check-back -> commit; exactly the committed messages are consumed."""

from __future__ import annotations

import pytest
import trio

from actors.broker.app import broker
from actors.client.errors import ClientError
from actors.client.message import Message, MessageExt, SendStatus
from actors.client.pull_consumer import LitePullConsumer
from actors.client.push_consumer import ConsumeFromWhere
from actors.client.transaction_producer import LocalTransactionState, TransactionProducer
from protocol.message import MessageConst
from tests.actors.broker.conftest import broker_config, small_store

State = LocalTransactionState


@pytest.fixture
async def tx_broker(nursery, tmp_path, real_namesrv):
    # short check timings: the check-back comes within about two seconds
    return await nursery.start(
        lambda task_status: broker(
            broker_config(real_namesrv, transactionCheckInterval=500, transactionTimeOut=500),
            small_store(tmp_path / "store"),
            host="127.0.0.1",
            task_status=task_status,
        )
    )


async def test_commit_rollback_and_check_back(real_namesrv, tx_broker) -> None:
    checked: list[MessageExt] = []
    check_done = trio.Event()
    states = {b"commit": State.COMMIT_MESSAGE, b"rollback": State.ROLLBACK_MESSAGE}
    args_seen = []

    async def execute(msg: Message, arg: object) -> LocalTransactionState:
        args_seen.append(arg)
        if msg.body == b"boom":
            raise RuntimeError("local transaction crashed")
        return states.get(msg.body, State.UNKNOW)

    async def check(msg: MessageExt) -> LocalTransactionState:
        checked.append(msg)
        check_done.set()
        return State.ROLLBACK_MESSAGE if msg.body == b"boom" else State.COMMIT_MESSAGE

    with trio.fail_after(30):
        async with TransactionProducer(
            "txpg", namesrv=real_namesrv, execute=execute, check=check
        ) as producer:
            results = {}
            for body in (b"commit", b"rollback", b"unknown", b"boom"):
                results[body] = await producer.send_message_in_transaction(
                    Message("TX1", body, tags="T"), arg=body.decode()
                )
            assert args_seen == ["commit", "rollback", "unknown", "boom"]
            assert all(r.status is SendStatus.SEND_OK for r in results.values())
            assert results[b"commit"].local_state is State.COMMIT_MESSAGE
            assert results[b"unknown"].local_state is State.UNKNOW
            assert results[b"boom"].local_state is State.UNKNOW
            while len({m.body for m in checked}) < 2:
                await check_done.wait()
                check_done = trio.Event()
        assert {m.body for m in checked} == {b"unknown", b"boom"}
        unknown = next(m for m in checked if m.body == b"unknown")
        assert unknown.topic == "TX1"
        assert unknown.properties[MessageConst.UNIQ_KEY] == results[b"unknown"].transaction_id

        async with LitePullConsumer(
            "txcg",
            namesrv=real_namesrv,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        ) as consumer:
            await consumer.subscribe("TX1")
            got: list[MessageExt] = []
            while len(got) < 2:
                got += await consumer.poll(timeout=1.0)
            got += await consumer.poll(timeout=1.0)
    assert sorted(m.body for m in got) == [b"commit", b"unknown"]
    assert all(m.properties[MessageConst.REAL_TOPIC] == "TX1" for m in got)


async def test_clear_errors(real_namesrv, tx_broker) -> None:
    async def never(*_: object) -> LocalTransactionState:
        raise AssertionError("must not run")

    for bad in ("", "bad group!", "CLIENT_INNER_PRODUCER", "DEFAULT_PRODUCER", "g" * 256):
        with pytest.raises(ClientError):
            TransactionProducer(bad, namesrv=real_namesrv, execute=never, check=never)
    with trio.fail_after(30):
        async with TransactionProducer(
            "txpg2", namesrv=real_namesrv, execute=never, check=never
        ) as producer:
            with pytest.raises(ClientError, match=r"illegal|forbidden"):
                await producer.send_message_in_transaction(Message("bad topic", b"x"))


async def test_check_backs_reach_their_group_through_a_shared_instance(
    real_namesrv, tx_broker
) -> None:
    checked: dict[str, list[bytes]] = {"txa": [], "txb": []}
    both = trio.Event()

    def producer(group: str) -> TransactionProducer:
        async def execute(msg: Message, arg: object) -> LocalTransactionState:
            return State.UNKNOW

        async def check(msg: MessageExt) -> LocalTransactionState:
            checked[group].append(msg.body)
            if all(checked.values()):
                both.set()
            return State.COMMIT_MESSAGE

        return TransactionProducer(
            group, namesrv=real_namesrv, execute=execute, check=check, instance_name="tx-shared"
        )

    with trio.fail_after(30):
        async with producer("txa") as a, producer("txb") as b:
            assert a.core.instance is b.core.instance
            await a.send_message_in_transaction(Message("TX3", b"from a"))
            await b.send_message_in_transaction(Message("TX3", b"from b"))
            await both.wait()
    assert set(checked["txa"]) == {b"from a"}
    assert set(checked["txb"]) == {b"from b"}

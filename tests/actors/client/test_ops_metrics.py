"""/metrics, /healthz and /readyz of a broker under load (issue 18): the counters Prometheus
scrapes agree with what was sent and consumed.  Real loopback sockets, our own client."""

from __future__ import annotations

import functools

import attrs
import h11
import pytest
import trio
from prometheus_client.parser import text_string_to_metric_families

from actors.broker.app import broker, pick_free_port
from actors.broker.handlers.ops import rewrite_properties
from actors.client.message import Message
from actors.client.producer import Producer
from actors.client.pull_consumer import LitePullConsumer
from actors.client.push_consumer import ConsumeFromWhere
from actors.namesrv.app import namesrv
from actors.namesrv.config import NamesrvConfig
from tests.actors.broker.conftest import broker_config, small_store

TOPIC, GROUP, COUNT = "METRICS_T", "metrics_cg", 300


async def http_get(port: int, path: str) -> tuple[int, bytes]:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        await stream.send_all(
            conn.send(h11.Request(method="GET", target=path, headers=[("Host", "x")]))
            + conn.send(h11.EndOfMessage())
        )
        status, body = 0, b""
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                conn.receive_data(await stream.receive_some(65536))
            elif isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, body


def samples(text: bytes) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    out = {}
    for family in text_string_to_metric_families(text.decode()):
        for s in family.samples:
            out[(s.name, frozenset(s.labels.items()))] = s.value
    return out


def pick(found: dict, name: str, **labels: str) -> float:
    total = 0.0
    for (n, ls), value in found.items():
        if n == name and set(labels.items()) <= ls:
            total += value
    return total


async def test_metrics_agree_with_what_was_sent_and_consumed(
    nursery, tmp_path, real_namesrv
) -> None:
    config = broker_config(
        real_namesrv,
        metricsExporterType="PROM",
        metricsPromExporterHost="127.0.0.1",
        metricsPromExporterPort=0,
    )
    handle = await nursery.start(
        lambda task_status: broker(
            config, small_store(tmp_path / "store"), host="127.0.0.1", task_status=task_status
        )
    )
    port = handle.ctx.ops.http_port
    assert port
    assert (await http_get(port, "/healthz"))[0] == 200
    with trio.fail_after(30):
        for _ in range(600):  # ready once registered with the name server
            if (await http_get(port, "/readyz"))[0] == 200:
                break
            await trio.sleep(0.05)
        sent_bytes_before = 0
        async with Producer("metrics_pg", namesrv=real_namesrv) as producer:
            await producer.send(Message(TOPIC, b"first"))  # creates the topic
            scrapes = 0

            async def scrape_under_load() -> None:
                nonlocal scrapes
                while True:
                    status, _ = await http_get(port, "/metrics")
                    assert status == 200
                    scrapes += 1
                    await trio.sleep(0.01)

            async with trio.open_nursery() as load:
                load.start_soon(scrape_under_load)
                for i in range(COUNT - 1):
                    await producer.send(Message(TOPIC, f"m{i:04d}".encode()))
                load.cancel_scope.cancel()
        assert scrapes > 0
        async with LitePullConsumer(
            GROUP,
            namesrv=real_namesrv,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        ) as consumer:
            await consumer.subscribe(TOPIC)
            got: list = []
            while len(got) < COUNT:
                got += await consumer.poll(timeout=1.0)
            await consumer.commit()
            _, text = await http_get(port, "/metrics")
    found = samples(text)
    stats = handle.ctx.stats
    assert pick(found, "rocketmq_messages_in_total", topic=TOPIC) == COUNT
    assert (
        pick(found, "rocketmq_throughput_in_total", topic=TOPIC)
        == stats.put_bytes_by_topic[TOPIC]
        > sent_bytes_before
    )
    assert (
        pick(found, "rocketmq_messages_out_total", topic=TOPIC, consumer_group=GROUP)
        == len(got)
        == COUNT
    )
    assert pick(found, "rocketmq_rpc_latency_count", request_code="send_message") == COUNT
    assert (
        pick(found, "rocketmq_rpc_latency_bucket", request_code="send_message", le="+Inf") == COUNT
    )
    assert pick(found, "rocketmq_consumer_lag_messages", topic=TOPIC, consumer_group=GROUP) == 0
    assert (
        pick(found, "rocketmq_consumer_queue_lag_messages", topic=TOPIC, consumer_group=GROUP) == 0
    )
    assert pick(found, "rocketmq_storage_flush_behind_bytes") >= 0
    assert 0 <= pick(found, "rocketmq_brokeruntime_commitlog_disk_ratio") <= 1
    assert (await http_get(port, "/nope"))[0] == 404


def test_config_rewrite_keeps_comments_and_order() -> None:
    text = "# the broker\nbrokerName=a\n\n# flush\nflushIntervalCommitLog = 500\nlistenPort=10911\n"
    out = rewrite_properties(text, {"flushIntervalCommitLog": "600", "newKey": "x"})
    assert out == (
        "# the broker\nbrokerName=a\n\n# flush\nflushIntervalCommitLog=600\nlistenPort=10911\nnewKey=x\n"
    )


async def test_namesrv_metrics_and_health(nursery, tmp_path) -> None:
    port = pick_free_port("127.0.0.1")
    config = attrs.evolve(
        NamesrvConfig.in_dir(tmp_path / "ns"),
        metricsExporterType="PROM",
        metricsPromExporterHost="127.0.0.1",
        metricsPromExporterPort=port,
    )
    ns_addr = await nursery.start(functools.partial(namesrv, config, host="127.0.0.1"))
    assert (await http_get(port, "/healthz"))[0] == 200
    assert (await http_get(port, "/readyz"))[0] == 200
    _, text = await http_get(port, "/metrics")
    assert pick(samples(text), "rocketmq_namesrv_brokers") == 0
    await nursery.start(
        lambda task_status: broker(
            broker_config(str(ns_addr)),
            small_store(tmp_path / "store"),
            host="127.0.0.1",
            task_status=task_status,
        )
    )
    _, text = await http_get(port, "/metrics")
    found = samples(text)
    assert pick(found, "rocketmq_namesrv_brokers", cluster="DefaultCluster") == 1
    assert pick(found, "rocketmq_namesrv_topics") > 0
    assert len([k for k in found if k[0] == "rocketmq_namesrv_broker_idle_seconds"]) == 1


async def test_rmqadmin_signs_with_acl_keys(nursery, tmp_path, real_namesrv, monkeypatch) -> None:
    """On a broker with aclEnable=true, rmqadmin needs an admin account's keys: from its flags
    (--access-key/--secret-key as the other tools) or from $ROCKETMQ_HOME/conf/tools.yml, as mqadmin reads them."""
    from apps.admin import AdminError, build_parser, run_command

    acl = tmp_path / "plain_acl.yml"
    acl.write_text(
        "accounts:\n  - accessKey: adminKey\n    secretKey: adminSecret\n    admin: true\n"
    )
    handle = await nursery.start(
        lambda task_status: broker(
            broker_config(real_namesrv, aclEnable=True, plainAclFile=str(acl)),
            small_store(tmp_path / "store"),
            host="127.0.0.1",
            task_status=task_status,
        )
    )
    status = ["brokerStatus", "-n", real_namesrv, "-b", handle.address]
    monkeypatch.delenv("ROCKETMQ_HOME", raising=False)
    with pytest.raises(AdminError, match="accessKey"):
        await run_command(build_parser().parse_args(status))
    args = build_parser().parse_args(
        [*status, "--access-key", "adminKey", "--secret-key", "adminSecret"]
    )
    _, data = await run_command(args)
    assert data[handle.address]["brokerVersionDesc"]
    home = tmp_path / "home"
    (home / "conf").mkdir(parents=True)
    (home / "conf" / "tools.yml").write_text("accessKey: adminKey\nsecretKey: adminSecret\n")
    monkeypatch.setenv("ROCKETMQ_HOME", str(home))
    _, data = await run_command(build_parser().parse_args(status))
    assert data[handle.address]["brokerVersionDesc"]


def test_rmqadmin_reports_a_failure_in_one_line(capsys) -> None:
    from apps.admin import main

    nobody = f"127.0.0.1:{pick_free_port('127.0.0.1')}"
    assert main(["topicList", "-n", nobody]) == 1
    err = capsys.readouterr().err
    assert err.startswith(f"rmqadmin topicList: {nobody}")
    assert len(err.strip().splitlines()) == 1

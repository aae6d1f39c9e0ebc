"""mqadmin (rocketmq-tools 4.9.8, MQAdminStartup) against each target (issue 9, "mqadmin").

One JVM sets up known state (see compat.AdminBatch: 15 messages, a group 5 behind, a consumer
and a producer online) and then runs every command in order; each test reads one command's
output and checks it answered without an exception and with the figures that state implies.
"""

from __future__ import annotations

import json
import re

import attrs
import pytest

from tests.compat.jvm import Jvm
from tests.compat.servers import Target

pytestmark = [pytest.mark.compat, pytest.mark.java]


@attrs.frozen
class AdminRun:
    target: Target
    topic: str
    group: str
    setup: dict[str, str]
    outputs: dict[str, str]  # label -> stdout
    errors: dict[str, str]  # label -> stderr

    def out(self, label: str) -> str:
        text = self.outputs[label]
        problem = re.search(r"Exception|command failed", text + self.errors[label])
        assert problem is None, (
            f"{label} against {self.target.name} failed:\n{text}\n{self.errors[label]}"
        )
        return text

    @property
    def lag_group(self) -> str:
        return f"{self.group}_LAG"


def commands(target: Target, topic: str, group: str) -> list[tuple[str, list[str]]]:
    ns = ["-n", target.namesrv_addr]
    cluster = ["-c", target.cluster]
    broker = ["-b", target.broker_addr]
    return [
        ("clusterList", ["clusterList", *ns]),
        ("updateTopic", ["updateTopic", *ns, *cluster, "-t", f"{topic}_NEW", "-r", "3", "-w", "3"]),
        ("topicRoute", ["topicRoute", *ns, "-t", f"{topic}_NEW"]),
        (
            "updateTopic2",
            ["updateTopic", *ns, *cluster, "-t", f"{topic}_DEL", "-r", "2", "-w", "2"],
        ),
        ("topicList", ["topicList", *ns]),
        ("deleteTopic", ["deleteTopic", *ns, *cluster, "-t", f"{topic}_DEL"]),
        ("topicListAfterDelete", ["topicList", *ns]),
        ("topicStatus", ["topicStatus", *ns, "-t", topic]),
        ("consumerProgress", ["consumerProgress", *ns, "-g", f"{group}_LAG"]),
        ("consumerConnection", ["consumerConnection", *ns, "-g", f"{group}_ON"]),
        ("producerConnection", ["producerConnection", *ns, "-g", f"{group}_P", "-t", topic]),
        ("queryMsgById", ["queryMsgById", *ns, "-i", "{offsetMsgId}"]),
        ("queryMsgByKey", ["queryMsgByKey", *ns, "-t", topic, "-k", f"{group}-K1"]),
        ("brokerStatus", ["brokerStatus", *ns, *broker]),
        ("getBrokerConfig", ["getBrokerConfig", *ns, *broker]),
        ("updateSubGroup", ["updateSubGroup", *ns, *cluster, "-g", f"{group}_SUB", "-r", "5"]),
    ]


@pytest.fixture(scope="module")
def admin(jvm: Jvm, target: Target, tmp_path_factory: pytest.TempPathFactory) -> AdminRun:
    topic = f"T_mqadmin_{target.name}"
    group = f"G_mqadmin_{target.name}"
    batch = commands(target, topic, group)
    done = jvm.run_client(
        "mqadmin",
        {"namesrv": target.namesrv_addr, "topic": topic, "group": group},
        work_dir=tmp_path_factory.mktemp(f"mqadmin-{target.name}"),
        stdin="".join("\t".join(args) + "\n" for _, args in batch),
    )
    lines = done.stdout.splitlines()
    status = lines[-1] if lines else "<no output>"
    assert status.startswith("OK "), (
        f"mqadmin run against {target.name} exited {done.returncode}: {status}\n"
        f"{done.stdout[-4000:]}\n{done.stderr[-2000:]}\n--- servers\n{target.diagnose()}"
    )
    setup = json.loads(next(line for line in lines if line.startswith("SETUP "))[6:])
    results = [json.loads(line) for line in lines if line.startswith("{")]
    assert len(results) == len(batch)
    return AdminRun(
        target=target,
        topic=topic,
        group=group,
        setup=setup,
        outputs={label: r["out"] for (label, _), r in zip(batch, results, strict=True)},
        errors={label: r["err"] for (label, _), r in zip(batch, results, strict=True)},
    )


def table(text: str) -> list[list[str]]:
    """Rows of a whitespace-aligned mqadmin table, header (``#...``) and blank lines dropped."""
    return [line.split() for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_cluster_list(admin: AdminRun) -> None:
    rows = [r for r in table(admin.out("clusterList")) if admin.target.broker_addr in r]
    assert len(rows) == 1, admin.outputs["clusterList"]
    row = rows[0]
    assert row[:4] == [
        admin.target.cluster,
        admin.target.broker_name,
        "0",
        admin.target.broker_addr,
    ]


def test_update_topic_and_route(admin: AdminRun) -> None:
    assert f"create topic to {admin.target.broker_addr} success" in admin.out("updateTopic")
    route = admin.out("topicRoute")
    assert re.search(r'"writeQueueNums":\s*3', route), route
    assert re.search(r'"readQueueNums":\s*3', route), route
    assert f'"brokerName":"{admin.target.broker_name}"' in route.replace(" ", "")
    assert admin.target.broker_addr in route


def test_topic_list_and_delete(admin: AdminRun) -> None:
    before = set(admin.out("topicList").split())
    assert {admin.topic, f"{admin.topic}_NEW", f"{admin.topic}_DEL", "TBW102"} <= before
    assert "success" in admin.out("deleteTopic")
    after = set(admin.out("topicListAfterDelete").split())
    assert f"{admin.topic}_DEL" not in after
    assert {admin.topic, f"{admin.topic}_NEW"} <= after


def test_topic_status(admin: AdminRun) -> None:
    # Columns: broker name, queue id, min offset, max offset, last updated.
    rows = [r for r in table(admin.out("topicStatus")) if r[0] == admin.target.broker_name]
    assert sorted(int(r[1]) for r in rows) == [0, 1, 2, 3]
    assert all(int(r[2]) == 0 for r in rows)
    assert sum(int(r[3]) for r in rows) == 15


def test_consumer_progress_shows_the_lag(admin: AdminRun) -> None:
    text = admin.out("consumerProgress")
    rows = [r for r in table(text) if r[0] == admin.topic]
    # topic, broker, queue, broker offset, consumer offset, diff, ...
    assert sorted(int(r[2]) for r in rows) == [0, 1, 2, 3]
    assert sum(int(r[3]) for r in rows) == 15
    assert sum(int(r[4]) for r in rows) == 10
    assert all(int(r[5]) == int(r[3]) - int(r[4]) for r in rows)
    assert re.search(r"Diff Total:\s*5\b", text), text


def test_consumer_connection(admin: AdminRun) -> None:
    text = admin.out("consumerConnection")
    assert f"@{admin.group}_ON" in text  # client id ip@instanceName
    assert "JAVA" in text
    assert "V4_9_8" in text
    assert re.search(rf"{re.escape(admin.topic)}\s+\*", text), text  # subscription: topic, "*"
    assert "CONSUME_PASSIVELY" in text
    assert "CLUSTERING" in text


def test_producer_connection(admin: AdminRun) -> None:
    rows = table(admin.out("producerConnection"))
    assert len(rows) == 1, admin.outputs["producerConnection"]
    assert rows[0][1] == admin.setup["producerClientId"]
    assert rows[0][3:] == ["JAVA", "V4_9_8"]


def test_query_msg_by_id(admin: AdminRun) -> None:
    text = admin.out("queryMsgById")
    fields = dict(
        (k.strip(), v.strip())
        for k, _, v in (line.partition(":") for line in text.splitlines())
        if _
    )
    assert fields["OffsetID"] == admin.setup["offsetMsgId"]
    assert fields["Topic"] == admin.topic
    assert fields["Tags"] == "[TagA]"
    assert fields["Keys"] == f"[{admin.group}-K1]"
    assert fields["Store Host"] == admin.target.broker_addr
    assert admin.setup["msgId"] in fields["Properties"]


def test_query_msg_by_key(admin: AdminRun) -> None:
    rows = table(admin.out("queryMsgByKey"))
    # Message id (UNIQ_KEY), queue id, queue offset.
    assert len(rows) == 10, admin.outputs["queryMsgByKey"]
    assert admin.setup["msgId"] in {r[0] for r in rows}
    assert len({(r[1], r[2]) for r in rows}) == 10


def key_values(text: str, sep: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, found, value = line.partition(sep)
        if found:
            out[key.strip()] = value.strip()
    return out


def test_broker_status(admin: AdminRun) -> None:
    status = key_values(admin.out("brokerStatus"), ":")
    assert int(status["msgPutTotalTodayNow"]) >= 15, status
    assert int(status["msgGetTotalTodayNow"]) >= 15, status
    assert status["brokerVersionDesc"].startswith("V4_9"), status


def test_get_broker_config(admin: AdminRun) -> None:
    config = key_values(admin.out("getBrokerConfig"), "=")
    assert config["brokerName"] == admin.target.broker_name
    assert config["brokerClusterName"] == admin.target.cluster
    assert config["listenPort"] == admin.target.broker_addr.rpartition(":")[2]
    assert config["autoCreateTopicEnable"] == "true"


def test_update_sub_group(admin: AdminRun) -> None:
    text = admin.out("updateSubGroup")
    assert f"create subscription group to {admin.target.broker_addr} success" in text
    assert f"groupName={admin.group}_SUB" in text
    assert "retryMaxTimes=5" in text

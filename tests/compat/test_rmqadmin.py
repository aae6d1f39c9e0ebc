"""rmqadmin (apps/admin.py) side by side with Apache's mqadmin 4.9.8 on one cluster of ours.

One JVM sets up the state of compat.AdminBatch (15 messages, a group 5 behind and offline, a
consumer and a producer online) and stays up; each command is then run by mqadmin inside that
JVM and by rmqadmin as a subprocess, one right after the other, and their rows compared.
What cannot be equal is left out and said so per test: rates (taken a moment apart), and
mqadmin's extra lines (message body path, message tracks).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

from tests.compat.jvm import Jvm
from tests.compat.ours import REPO, start_ours
from tests.compat.processes import child_env
from tests.compat.servers import Target

pytestmark = [pytest.mark.compat, pytest.mark.java]


@attrs.define
class SideBySide:
    target: Target
    proc: subprocess.Popen[str]
    setup: dict[str, str]
    topic: str
    group: str
    stderr_path: Path

    def mqadmin(self, *args: str) -> str:
        line = "\t".join(args)
        for key, value in self.setup.items():
            line = line.replace("{" + key + "}", value)
        assert self.proc.stdin is not None
        assert self.proc.stdout is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        while True:
            out = self.proc.stdout.readline()
            assert out, (
                f"mqadmin JVM ended ({self.proc.poll()}):\n"
                + self.stderr_path.read_text(errors="replace")[-3000:]
            )
            if out.startswith("{"):
                result = json.loads(out)
                assert "Exception" not in result["err"], result["err"]
                return str(result["out"])

    def ours(self, *args: str, ok: bool = True) -> str:
        argv = [a.format(**self.setup) for a in args]
        done = subprocess.run(
            [sys.executable, "-m", "apps.admin", *argv],
            cwd=REPO,
            env=child_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        if ok:
            assert done.returncode == 0, done.stderr
        return done.stdout

    def both(self, *args: str) -> tuple[str, str]:
        return self.mqadmin(*args), self.ours(*args)

    @property
    def ns(self) -> list[str]:
        return ["-n", self.target.namesrv_addr]


@pytest.fixture(scope="module")
def sbs(jvm: Jvm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SideBySide]:
    work = tmp_path_factory.mktemp("ops-rmqadmin")
    target = start_ours(work / "cluster")
    topic, group = "T_rmqadmin", "G_rmqadmin"
    client_dir = work / "client"
    client_dir.mkdir()
    cmd = jvm.command(
        "compat.Main",
        ["mqadmin", "--namesrv", target.namesrv_addr, "--topic", topic, "--group", group],
        server=False,
        work_dir=client_dir,
        heap="192m",
        extra_flags=("-XX:TieredStopAtLevel=1", "-XX:+UseSerialGC"),
    )
    stderr_path = work / "mqadmin-jvm.stderr"
    stderr = stderr_path.open("w")
    proc = subprocess.Popen(
        cmd,
        env=jvm.env(),
        cwd=client_dir,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=stderr,
        text=True,
    )
    try:
        assert proc.stdout is not None
        setup: dict[str, str] = {}
        for line in proc.stdout:
            if line.startswith("SETUP "):
                setup = json.loads(line[6:])
                break
        assert setup, "the JVM's set-up failed"
        sbs = SideBySide(target, proc, setup, topic, group, stderr_path)
        # the online group commits its offsets every 5 s: compare only once they are in
        deadline = time.monotonic() + 20
        while "Diff Total: 0" not in sbs.ours("consumerProgress", *sbs.ns, "-g", f"{group}_ON"):
            assert time.monotonic() < deadline, "the online group never caught up"
            time.sleep(0.5)
        yield sbs
    finally:
        if proc.stdin is not None:
            proc.stdin.close()
        if proc.stdout is not None:
            proc.stdout.close()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        stderr.close()
        target.stop(grace=10.0)


def rows(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines() if line.strip()]


def fields(text: str, sep: str = ":") -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        key, found, value = line.partition(sep)
        if found and not line.startswith("MessageTrack"):
            out[key.strip()] = value.strip()
    return out


def test_cluster_list(sbs: SideBySide) -> None:
    java, ours = sbs.both("clusterList", *sbs.ns)
    # header the same; per broker: cluster, name, BID, addr, version, disk ratio (to 0.01)
    assert rows(java)[0] == rows(ours)[0]
    j, o = rows(java)[1:], rows(ours)[1:]
    assert [r[:5] for r in j] == [r[:5] for r in o]
    # the disk is shared with other processes: its ratio may move between the two reads
    assert all(abs(float(a[-1]) - float(b[-1])) <= 0.01 for a, b in zip(j, o, strict=True))


def test_topic_list(sbs: SideBySide) -> None:
    java, ours = sbs.both("topicList", *sbs.ns)
    assert sorted(java.split()) == sorted(ours.split())
    java, ours = sbs.both("topicList", *sbs.ns, "-c")
    assert rows(java)[0] == rows(ours)[0]
    assert sorted(map(tuple, rows(java)[1:])) == sorted(map(tuple, rows(ours)[1:]))


def _route(text: str) -> object:
    # fastjson writes the broker ids as bare keys: {0:"..."}
    return json.loads(re.sub(r"([{,]\s*)(\d+):", r'\1"\2":', text))


def test_topic_route_and_status(sbs: SideBySide) -> None:
    java, ours = sbs.both("topicRoute", *sbs.ns, "-t", sbs.topic)
    assert _route(java) == _route(ours)
    java, ours = sbs.both("topicStatus", *sbs.ns, "-t", sbs.topic)
    assert rows(java) == rows(ours)
    assert sum(int(r[3]) for r in rows(ours)[1:]) == 15


def test_consumer_progress(sbs: SideBySide) -> None:
    java, ours = sbs.both("consumerProgress", *sbs.ns, "-g", f"{sbs.group}_LAG")
    assert rows(java) == rows(ours)
    assert "Diff Total: 5" in ours
    java, ours = sbs.both("consumerProgress", *sbs.ns)
    # every column but #TPS, a rate read a moment apart
    assert [r[:5] + r[6:] for r in rows(java)] == [r[:5] + r[6:] for r in rows(ours)]


def test_connections(sbs: SideBySide) -> None:
    java, ours = sbs.both("consumerConnection", *sbs.ns, "-g", f"{sbs.group}_ON")
    # mqadmin lists the subscriptions in HashMap order
    assert sorted(rows(java)) == sorted(rows(ours))
    assert rows(java)[:2] == rows(ours)[:2]
    java, ours = sbs.both("producerConnection", *sbs.ns, "-g", f"{sbs.group}_P", "-t", sbs.topic)
    assert rows(java) == rows(ours)
    assert len(rows(ours)) == 1


def _message(text: str) -> dict[str, object]:
    got: dict[str, object] = dict(fields(text))
    got.pop("Message Body Path", None)  # mqadmin writes the body to a file; we do not
    props = str(got.pop("Properties"))
    got["Properties"] = set(props.strip("{}").split(", "))  # Java's HashMap order
    return got


def test_query_messages(sbs: SideBySide) -> None:
    java, ours = sbs.both("queryMsgById", *sbs.ns, "-i", "{offsetMsgId}")
    assert _message(java) == _message(ours)
    java, ours = sbs.both("queryMsgByUniqueKey", *sbs.ns, "-t", sbs.topic, "-i", "{msgId}")
    assert _message(java) == _message(ours)
    java, ours = sbs.both("queryMsgByKey", *sbs.ns, "-t", sbs.topic, "-k", f"{sbs.group}-K1")
    assert rows(java)[0] == rows(ours)[0]
    assert sorted(rows(java)[1:]) == sorted(rows(ours)[1:])
    assert len(rows(ours)) == 11


def test_broker_status_and_config(sbs: SideBySide) -> None:
    broker = ["-b", sbs.target.broker_addr]
    java, ours = sbs.both("brokerStatus", *sbs.ns, *broker)
    j, o = fields(java), fields(ours)
    assert set(j) == set(o)
    for key in (
        "brokerVersionDesc",
        "msgPutTotalTodayNow",
        "commitLogMaxOffset",
        "putMessageTimesTotal",
        "putMessageSizeTotal",
    ):
        assert j[key] == o[key], key
    java, ours = sbs.both("getBrokerConfig", *sbs.ns, *broker)
    assert fields(java, "=") == fields(ours, "=")
    # a live key set by either tool is seen by the other
    sbs.ours("updateBrokerConfig", *sbs.ns, *broker, "-k", "waitTimeMillsInSendQueue", "-v", "321")
    assert (
        fields(sbs.mqadmin("getBrokerConfig", *sbs.ns, *broker), "=")["waitTimeMillsInSendQueue"]
        == "321"
    )
    sbs.mqadmin(
        "updateBrokerConfig", *sbs.ns, *broker, "-k", "waitTimeMillsInSendQueue", "-v", "222"
    )
    assert (
        fields(sbs.ours("getBrokerConfig", *sbs.ns, *broker), "=")["waitTimeMillsInSendQueue"]
        == "222"
    )


def test_topic_and_group_changes(sbs: SideBySide) -> None:
    c = ["-c", sbs.target.cluster]
    outputs = {}
    for who, run in (("java", sbs.mqadmin), ("ours", sbs.ours)):
        t, g = f"T_changes_{who}", f"G_changes_{who}"
        outputs[who] = [
            run("updateTopic", *sbs.ns, *c, "-t", t, "-r", "3", "-w", "3").replace(t, "T"),
            run("updateTopicPerm", *sbs.ns, *c, "-t", t, "-p", "4").replace(t, "T"),
            run("deleteTopic", *sbs.ns, *c, "-t", t).replace(t, "T"),
            run("updateSubGroup", *sbs.ns, *c, "-g", g, "-r", "5").replace(g, "G"),
            run("deleteSubGroup", *sbs.ns, *c, "-g", g).replace(g, "G"),
        ]
    assert [rows(x) for x in outputs["java"]] == [rows(x) for x in outputs["ours"]]
    topics = sbs.ours("topicList", *sbs.ns).split()
    assert "T_changes_java" not in topics
    assert "T_changes_ours" not in topics


def test_stats_all(sbs: SideBySide) -> None:
    java, ours = sbs.both("statsAll", *sbs.ns, "-t", sbs.topic)
    j, o = rows(java), rows(ours)
    assert j[0] == o[0]
    # topic, group, accumulation and the 24 h counts exactly; the TPS columns are rates read
    # a moment apart
    # (groups in HashSet order)
    assert sorted(r[:3] + r[5:] for r in j[1:]) == sorted(r[:3] + r[5:] for r in o[1:])
    assert any(int(r[5]) == 15 for r in o[1:]), ours  # in 24 h: the 15 sent


def test_reset_offset_by_time_offline_group(sbs: SideBySide) -> None:
    lag = f"{sbs.group}_LAG"
    # mqadmin: the group is offline, so the broker answers CONSUMER_NOT_ONLINE and mqadmin
    # sets the offsets itself; to the start:
    sbs.mqadmin("resetOffsetByTime", *sbs.ns, "-g", lag, "-t", sbs.topic, "-s", "0")
    java, ours = sbs.both("consumerProgress", *sbs.ns, "-g", lag)
    assert rows(java) == rows(ours)
    assert "Diff Total: 15" in ours
    # ours to now: each queue at its newest message (the store's search by time, as
    # mqadmin's fallback uses it); mqadmin sees the same
    sbs.ours("resetOffsetByTime", *sbs.ns, "-g", lag, "-t", sbs.topic, "-s", "now")
    java, ours = sbs.both("consumerProgress", *sbs.ns, "-g", lag)
    assert rows(java) == rows(ours)
    assert all(int(r[5]) <= 1 for r in rows(ours)[1:] if r[0] == sbs.topic), ours


def test_wipe_and_add_write_perm(sbs: SideBySide) -> None:
    name = ["-b", sbs.target.broker_name]
    # each wipes (or adds) the same topics: the count is the broker's topics either way
    assert rows(sbs.ours("wipeWritePerm", *sbs.ns, *name)) == rows(
        sbs.mqadmin("wipeWritePerm", *sbs.ns, *name)
    )
    assert rows(sbs.ours("addWritePerm", *sbs.ns, *name)) == rows(
        sbs.mqadmin("addWritePerm", *sbs.ns, *name)
    )


def test_json_output(sbs: SideBySide) -> None:
    data = json.loads(sbs.ours("consumerProgress", *sbs.ns, "-g", f"{sbs.group}_LAG", "--json"))
    assert {"queues", "consumeTps", "diffTotal"} <= set(data)
    assert sum(q["brokerOffset"] for q in data["queues"] if q["topic"] == sbs.topic) == 15


def test_reset_offset_by_time_online_java_consumer(sbs: SideBySide) -> None:
    """The group online in the JVM gets RESET_CONSUMER_CLIENT_OFFSET from our broker; Apache's
    client obeys it: it pulls the topic's 15 messages again (the broker's 24 h count of what
    the group got grows by 15) and commits back to the end."""
    online = f"{sbs.group}_ON"

    def got_by_group() -> int:
        rows_ = rows(sbs.ours("statsAll", *sbs.ns, "-t", sbs.topic))
        return int(next(r for r in rows_[1:] if r[1] == online)[6])

    before = got_by_group()
    text = sbs.ours("resetOffsetByTime", *sbs.ns, "-g", online, "-t", sbs.topic, "-s", "0")
    assert [r[2] for r in rows(text)[2:]] == ["0"] * 4, text
    # generous: the stats come from 10 s snapshots, and each look is a new rmqadmin process
    deadline = time.monotonic() + 90
    while got_by_group() < before + 15:
        assert time.monotonic() < deadline, f"the Java consumer did not pull again: {before}"
        time.sleep(0.5)
    while "Diff Total: 0" not in sbs.ours("consumerProgress", *sbs.ns, "-g", online):
        assert time.monotonic() < deadline, "the Java consumer did not commit back to the end"
        time.sleep(0.5)

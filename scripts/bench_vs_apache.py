"""Apache RocketMQ 4.9.7's broker and ours, side by side, driven by the same clients (issue 17).

Started by ``scripts/bench-vs-apache.sh``.  Starts Apache's namesrv + broker (the jars the
compat tests use, tests/compat/java) and ours (apps/namesrv.py + apps/broker.py), each in a
folder of its own, then for every round and every load runs the load against both, in
alternating order so drift in the machine's load hits both alike:

* ``java-sync``: Apache's own benchmark Producer (org.apache.rocketmq.example.benchmark,
  rocketmq-example 4.7.0 on a 4.9.7 client), ``-w 16 -s 1024``; its 10 s lines are averaged;
* ``raw-sync`` / ``raw-batch`` / ``raw-oneway``: apps/bench_producer.py ``--client raw``;
* ``raw-oneway-5k``: the same oneway load paced at 5,000 msg/s (``--rate``, open loop), below
  both brokers' capacity, so its p999 shows the broker's stalls rather than the client waiting
  for a saturated broker (flat out, the slower side sets the pace);
* ``raw-topics-1000``: raw sync sends round robin over 1,000 topics of new names, each
  auto-created by its first send (``--topics 1000 --warmup 0``: the creations are measured);
* ``java-drain``: a backlog drained by Java's push consumer.  First ``--backlog`` messages of
  1 KiB go to a topic of the measurement's own (``DrainTopic-<round>``, 8 queues created on
  each broker by bench_producer's admin call) through apps/bench_producer.py ``--client raw
  --mode batch --batch-size 64 -w 4 --warmup 0 --count N`` (which checks its count every
  0.25 s, so a few thousand more get stored: the row says how many were drained); once every
  queue's max offset shows them all, a fresh group (``DrainGroup-<round>``) drains the topic
  with Apache's benchmark Consumer, run unchanged by scripts/DrainProbe.java (the client's
  defaults: 20 consume threads, one message per listener call, pulls of 32).  The benchmark
  Consumer has no consume-from option: it keeps the client's default
  CONSUME_FROM_LAST_OFFSET, under which a new group starts at offset 0 only while the queue's
  first message is "in memory" (4.9's QUERY_CONSUMER_OFFSET rule: within 40 % of RAM
  of the commit log's end), else at the queue's end, missing the whole backlog.  So the group's
  offset is committed as 0 on every queue (UPDATE_CONSUMER_OFFSET) before the consumer
  starts: CONSUME_FROM_FIRST_OFFSET whatever the RAM; the probe reports where it started.
  The rate is the messages consumed between the first and the last consumed message over that
  time, read by the probe every 5 ms from the client's own consume offsets; broker CPU is read
  over the same span (and the consumer JVM's, in the row's note: on 2 cores it takes most).
  Not the benchmark's TPS lines: each averages the last 9 s, printed every 10 s from the
  JVM's start, so a drain of a few seconds ends before the first line, and a longer one has
  lines straddling its start and end (idle time counted as draining).

Each measurement also reads the broker's CPU time from /proc before and after, so the table
shows broker CPU per message beside msgs/s, with the load average.  Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import select
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import attrs
import trio

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from apps._bench import CLOCK_TICKS  # noqa: E402
from protocol.codes import RequestCode, ResponseCode  # noqa: E402
from protocol.command import RemotingCommand  # noqa: E402
from tests.compat import jvm as jvm_mod  # noqa: E402
from tests.compat.apache import start_apache  # noqa: E402
from tests.compat.ours import start_ours  # noqa: E402
from tests.compat.raw import RawConnection, connect  # noqa: E402
from tests.compat.servers import Target  # noqa: E402

BENCH_CLASSPATH = jvm_mod.JAVA_DIR / "bench" / "target" / "classpath.txt"
JAVA_PRODUCER = "org.apache.rocketmq.example.benchmark.Producer"
TPS_LINE = re.compile(r"Send TPS:\s*([\d.]+)")
DRAIN_PROBE = REPO / "scripts" / "DrainProbe.java"
DRAIN_LINE = re.compile(r"^DRAIN (start|first|progress|done) (\d+) (-?\d+)$")
DRAIN_QUEUES = 8
# The push consumer's log line when a queue's cache is full (it logs 1 in 1,000 such pauses).
FLOW_CONTROL = "so do flow control"

LOADS: dict[str, list[str] | None] = {
    "java-sync": None,
    "java-drain": None,
    "raw-sync": ["--mode", "sync", "-w", "16"],
    "raw-batch": ["--mode", "batch", "--batch-size", "64", "-w", "4"],
    "raw-oneway": ["--mode", "oneway", "-w", "4"],
    "raw-oneway-5k": ["--mode", "oneway", "-w", "4", "--rate", "5000"],
    # the issue's auto-created topics row: every run 1,000 new topics, all measured
    "raw-topics-1000": ["--mode", "sync", "-w", "16", "--topics", "1000", "--warmup", "0"],
}


@attrs.frozen
class Figure:
    tps: float
    broker_us_per_msg: float | None
    loadavg: float
    p999_ms: float | None = None  # bench_producer's loads only
    note: str = ""


@attrs.frozen
class Settings:
    seconds: float  # per producer measurement
    backlog: int  # messages per java-drain measurement
    drain_timeout: float


def cpu_seconds(pid: int) -> float:
    text = Path(f"/proc/{pid}/stat").read_text()
    rest = text[text.rindex(")") + 2 :].split()
    return (int(rest[11]) + int(rest[12])) / CLOCK_TICKS


def broker_pid(target: Target) -> int:
    return target.processes[-1].pid


def run_java_producer(jvm: jvm_mod.Jvm, target: Target, seconds: float, work: Path) -> float:
    """Apache's benchmark Producer for ``seconds``; the mean of its 10 s TPS lines."""
    classpath = BENCH_CLASSPATH.read_text().strip()
    cmd = [
        "java",
        "-Xms256m",
        "-Xmx256m",
        *jvm_mod.JAVA17_OPENS,
        f"-Duser.home={work}",
        f"-Drocketmq.client.logRoot={work / 'clientlogs'}",
        "-cp",
        classpath,
        JAVA_PRODUCER,
        "-n",
        target.namesrv_addr,
        "-t",
        "BenchTopic",
        "-w",
        "16",
        "-s",
        "1024",
    ]
    out = work / "java-producer.log"
    with out.open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=jvm.env())
        try:
            time.sleep(seconds)
        finally:
            _stop(proc)
    values = [float(v) for v in TPS_LINE.findall(out.read_text(errors="replace"))]
    # the first line includes the client's start-up and route lookups
    values = values[1:] if len(values) > 1 else values
    return sum(values) / len(values) if values else 0.0


def _bench_producer(target: Target, args: list[str]) -> tuple[dict[str, Any] | None, str]:
    """apps/bench_producer.py ``--client raw`` against ``target`` with ``args``: its JSON
    summary (None if it failed) and the tail of its output, for the error."""
    cmd = [
        sys.executable,
        "-m",
        "apps.bench_producer",
        "-n",
        target.namesrv_addr,
        "--label",
        target.name,
        "--client",
        "raw",
        "--quiet",
        "--json",
        *args,
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    tail = done.stdout[-2000:] + done.stderr[-2000:]
    if done.returncode != 0 or not lines:
        return None, tail
    summary: dict[str, Any] = json.loads(lines[-1])
    return summary, tail


def run_bench_producer(target: Target, extra: list[str], seconds: float) -> dict[str, float]:
    summary, tail = _bench_producer(target, ["--duration", str(seconds), "--warmup", "2", *extra])
    if summary is None:
        sys.stderr.write(tail)
        return {"tps": 0.0}
    return {"tps": float(summary["tps"]), "p999_ms": float(summary["p999_ms"])}


def store_backlog(target: Target, topic: str, count: int) -> int:
    """``count`` 1 KiB messages into ``topic`` (created with DRAIN_QUEUES queues); those acked."""
    args = ["-t", topic, "--queues", str(DRAIN_QUEUES), "-s", "1024"]
    args += ["--mode", "batch", "--batch-size", "64", "-w", "4", "--count", str(count)]
    # no unmeasured sends first: the backlog is exactly what the run reports as sent
    args += ["--warmup", "0"]
    summary, tail = _bench_producer(target, args)
    if summary is None:
        raise RuntimeError(f"backlog not stored:\n{tail}")
    if summary["failed"]:
        sys.stderr.write(f"{target.name}: {summary['failed']} backlog sends failed\n")
    return int(summary["sent"])


def _req(code: RequestCode, fields: dict[str, object]) -> RemotingCommand:
    return RemotingCommand.request(code, {k: str(v) for k, v in fields.items()})


async def _queue_max_offsets(conn: RawConnection, topic: str) -> list[int]:
    offsets = []
    for queue in range(DRAIN_QUEUES):
        reply = await conn.call(
            _req(RequestCode.GET_MAX_OFFSET, {"topic": topic, "queueId": queue})
        )
        if reply.code != ResponseCode.SUCCESS:
            raise RuntimeError(f"GET_MAX_OFFSET {topic}/{queue}: {reply.code} {reply.remark}")
        offsets.append(int(reply.ext_fields["offset"]))
    return offsets


async def _prepare_drain(broker_addr: str, topic: str, group: str, sent: int) -> int:
    """Wait until the queues hold every acked message; start ``group`` at offset 0 on each."""
    deadline = trio.current_time() + 30.0
    async with connect(broker_addr) as conn:
        # The sends are acked once in the commit log; the consume queues follow (the reput).
        previous = -1
        while True:
            stored = sum(await _queue_max_offsets(conn, topic))
            if stored >= sent and stored == previous:
                break
            if trio.current_time() > deadline:
                raise RuntimeError(f"{topic}: {stored} of {sent} acked messages in its queues")
            previous = stored
            await trio.sleep(0.2)
        for queue in range(DRAIN_QUEUES):
            fields = {"consumerGroup": group, "topic": topic, "queueId": queue, "commitOffset": 0}
            reply = await conn.call(_req(RequestCode.UPDATE_CONSUMER_OFFSET, fields))
            if reply.code != ResponseCode.SUCCESS:
                raise RuntimeError(f"UPDATE_CONSUMER_OFFSET {group}/{queue}: {reply.code}")
    return stored


def _stop(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def run_java_drain(
    jvm: jvm_mod.Jvm, target: Target, settings: Settings, round_no: int, work: Path
) -> Figure:
    """Store a backlog, then time Apache's benchmark Consumer draining it (module docstring)."""
    topic, group = f"DrainTopic-{round_no}", f"DrainGroup-{round_no}"
    sent = store_backlog(target, topic, settings.backlog)
    expected = trio.run(_prepare_drain, target.broker_addr, topic, group, sent)
    logs = work / f"drain-{round_no}"
    cmd = [
        "java",
        "-Xms256m",
        "-Xmx256m",
        *jvm_mod.JAVA17_OPENS,
        f"-Duser.home={logs}",
        f"-Drocketmq.client.logRoot={logs / 'clientlogs'}",
        "-cp",
        BENCH_CLASSPATH.read_text().strip(),
        str(DRAIN_PROBE),
        group,
        str(expected),
        str(DRAIN_QUEUES),
        # the benchmark Consumer's options: -p false keeps the group name as given
        *("-n", target.namesrv_addr, "-t", topic, "-g", group, "-p", "false"),
    ]
    logs.mkdir(parents=True, exist_ok=True)
    pid = broker_pid(target)
    # what -> (client ms, count, broker CPU s, consumer JVM CPU s)
    marks: dict[str, tuple[int, int, float, float]] = {}
    deadline = time.monotonic() + settings.drain_timeout
    with (logs / "consumer.log").open("wb") as log:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=log, env=jvm.env(), cwd=logs)
        assert proc.stdout is not None
        try:
            while "done" not in marks:
                left = deadline - time.monotonic()
                if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
                    break
                line = proc.stdout.readline()
                if not line:
                    break
                log.write(line)
                match = DRAIN_LINE.match(line.decode(errors="replace").strip())
                if match:
                    what, ms, count = match.groups()
                    marks[what] = (int(ms), int(count), cpu_seconds(pid), cpu_seconds(proc.pid))
        finally:
            _stop(proc)
    flow = _count_lines(logs / "clientlogs", FLOW_CONTROL)
    notes = [f"flow-control warnings {flow}"] if flow else []
    start = marks.get("start")
    if start is not None and start[1] != 0:
        notes.append(f"started at offset sum {start[1]}, not 0")
    first, done = marks.get("first"), marks.get("done")
    if first is None or done is None:
        got = max((m[1] for m in marks.values()), default=0)
        sys.stderr.write(
            f"{target.name}: drained {got:,} of {expected:,} in {settings.drain_timeout:g} s "
            f"(log {logs / 'consumer.log'})\n"
        )
        return Figure(0.0, None, os.getloadavg()[0], note=f"timeout at {got:,}/{expected:,}")
    messages = done[1] - first[1]
    seconds = (done[0] - first[0]) / 1000
    tps = messages / seconds if seconds > 0 else 0.0
    per_msg = (done[2] - first[2]) / messages * 1e6 if messages else None
    # The consumer's CPU too: on 2 cores a busy client JVM, not the broker, may set the pace.
    client_us = (done[3] - first[3]) / messages * 1e6 if messages else 0.0
    notes.insert(0, f"{expected:,} in {seconds:.2f} s, consumer JVM {client_us:.0f} us/msg")
    return Figure(tps, per_msg, os.getloadavg()[0], note=", ".join(notes))


def _count_lines(folder: Path, needle: str) -> int:
    return sum(
        path.read_text(errors="replace").count(needle)
        for path in folder.rglob("*.log")
        if path.is_file()
    )


def measure(
    load: str, target: Target, jvm: jvm_mod.Jvm, settings: Settings, round_no: int, work: Path
) -> Figure:
    if load == "java-drain":
        return run_java_drain(jvm, target, settings, round_no, work)
    seconds = settings.seconds
    pid = broker_pid(target)
    before_cpu, before = cpu_seconds(pid), time.monotonic()
    extra = LOADS[load]
    p999: float | None = None
    if extra is None:
        tps = run_java_producer(jvm, target, seconds, work)
    else:
        got = run_bench_producer(target, extra, seconds)
        tps, p999 = got["tps"], got.get("p999_ms")
    elapsed = time.monotonic() - before
    used = cpu_seconds(pid) - before_cpu
    # CPU over the whole run (start-up included) against the messages of the measured rate
    messages = tps * elapsed
    per_msg = used / messages * 1e6 if messages else None
    return Figure(tps, per_msg, os.getloadavg()[0], p999)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=25.0, help="per producer measurement")
    parser.add_argument(
        "--backlog", type=int, default=200_000, help="messages per java-drain measurement"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=300.0, help="java-drain: seconds to drain at most"
    )
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds")
    parser.add_argument("--loads", default=",".join(LOADS), help=f"from {', '.join(LOADS)}")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    loads = [load.strip() for load in args.loads.split(",") if load.strip()]
    unknown = [load for load in loads if load not in LOADS]
    if unknown:
        parser.error(f"unknown load(s): {', '.join(unknown)}")
    settings = Settings(args.seconds, args.backlog, args.drain_timeout)
    work = Path(tempfile.mkdtemp(prefix="bench-vs-apache-"))
    jvm = jvm_mod.build(work / "rocketmq-home")
    if not BENCH_CLASSPATH.exists():
        sys.stderr.write(f"{BENCH_CLASSPATH} missing: run scripts/java-setup.sh\n")
        return 1
    targets = {
        "apache": start_apache(jvm, work / "apache"),
        "ours": start_ours(work / "ours"),
    }
    results: dict[tuple[str, str], list[Figure]] = {}
    try:
        for r in range(args.rounds):
            order = ["apache", "ours"] if r % 2 == 0 else ["ours", "apache"]
            for load in loads:
                for name in order:
                    fig = measure(load, targets[name], jvm, settings, r + 1, work / name)
                    results.setdefault((load, name), []).append(fig)
                    per = f"{fig.broker_us_per_msg:.0f}" if fig.broker_us_per_msg else "-"
                    tail = f"  p999 {fig.p999_ms:.2f} ms" if fig.p999_ms is not None else ""
                    tail += f"  ({fig.note})" if fig.note else ""
                    print(
                        f"round {r + 1} {load:<13} {name:<7} {fig.tps:>10,.0f} msg/s  "
                        f"broker {per:>5} us/msg  load {fig.loadavg:.1f}{tail}",
                        flush=True,
                    )
    finally:
        for target in targets.values():
            for proc in reversed(target.processes):
                proc.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(
        f"{'load':<13} {'apache msg/s':>14} {'ours msg/s':>14} {'ours/apache':>12} "
        f"{'apache us/msg':>14} {'ours us/msg':>12} {'apache p999':>12} {'ours p999':>12}"
    )

    def span(load: str, name: str, field: str, fmt: str = ",.0f") -> str:
        values = [getattr(f, field) for f in results.get((load, name), [])]
        values = [v for v in values if v]
        if not values:
            return "-"
        lo, hi = min(values), max(values)
        return f"{lo:{fmt}}" if lo == hi else f"{lo:{fmt}}-{hi:{fmt}}"

    for load in loads:
        a = [f.tps for f in results.get((load, "apache"), []) if f.tps]
        o = [f.tps for f in results.get((load, "ours"), []) if f.tps]
        ratio = f"{sum(o) / len(o) / (sum(a) / len(a)):.2f}" if a and o else "-"
        print(
            f"{load:<13} {span(load, 'apache', 'tps'):>14} {span(load, 'ours', 'tps'):>14} "
            f"{ratio:>12} {span(load, 'apache', 'broker_us_per_msg'):>14} "
            f"{span(load, 'ours', 'broker_us_per_msg'):>12} "
            f"{span(load, 'apache', 'p999_ms', '.1f'):>12} {span(load, 'ours', 'p999_ms', '.1f'):>12}"
        )
    print(f"load average at the end: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

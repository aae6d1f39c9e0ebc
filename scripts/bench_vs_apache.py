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
  for a saturated broker (flat out, the slower side sets the pace).

Each measurement also reads the broker's CPU time from /proc before and after, so the table
shows broker CPU per message beside msgs/s, with the load average.  Figures, never pass/fail.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import attrs

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from apps._bench import CLOCK_TICKS  # noqa: E402
from tests.compat import jvm as jvm_mod  # noqa: E402
from tests.compat.apache import start_apache  # noqa: E402
from tests.compat.ours import start_ours  # noqa: E402
from tests.compat.servers import Target  # noqa: E402

BENCH_CLASSPATH = jvm_mod.JAVA_DIR / "bench" / "target" / "classpath.txt"
JAVA_PRODUCER = "org.apache.rocketmq.example.benchmark.Producer"
TPS_LINE = re.compile(r"Send TPS:\s*([\d.]+)")

LOADS = {
    "java-sync": None,
    "raw-sync": ["--mode", "sync", "-w", "16"],
    "raw-batch": ["--mode", "batch", "--batch-size", "64", "-w", "4"],
    "raw-oneway": ["--mode", "oneway", "-w", "4"],
    "raw-oneway-5k": ["--mode", "oneway", "-w", "4", "--rate", "5000"],
}


@attrs.frozen
class Figure:
    tps: float
    broker_us_per_msg: float | None
    loadavg: float
    p999_ms: float | None = None  # bench_producer's loads only


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
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    values = [float(v) for v in TPS_LINE.findall(out.read_text(errors="replace"))]
    # the first line includes the client's start-up and route lookups
    values = values[1:] if len(values) > 1 else values
    return sum(values) / len(values) if values else 0.0


def run_bench_producer(target: Target, extra: list[str], seconds: float) -> dict[str, float]:
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
        "--duration",
        str(seconds),
        "--warmup",
        "2",
        "--quiet",
        "--json",
        *extra,
    ]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, check=False)
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    if done.returncode != 0 or not lines:
        sys.stderr.write(done.stdout[-2000:] + done.stderr[-2000:])
        return {"tps": 0.0}
    summary = json.loads(lines[-1])
    return {"tps": float(summary["tps"]), "p999_ms": float(summary["p999_ms"])}


def measure(load: str, target: Target, jvm: jvm_mod.Jvm, seconds: float, work: Path) -> Figure:
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
    parser.add_argument("--seconds", type=float, default=25.0, help="per measurement")
    parser.add_argument("--rounds", type=int, default=2, help="alternated rounds")
    parser.add_argument("--loads", default=",".join(LOADS), help=f"from {', '.join(LOADS)}")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args()
    loads = [load.strip() for load in args.loads.split(",") if load.strip()]
    unknown = [load for load in loads if load not in LOADS]
    if unknown:
        parser.error(f"unknown load(s): {', '.join(unknown)}")
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
                    fig = measure(load, targets[name], jvm, args.seconds, work / name)
                    results.setdefault((load, name), []).append(fig)
                    per = f"{fig.broker_us_per_msg:.0f}" if fig.broker_us_per_msg else "-"
                    tail = f"  p999 {fig.p999_ms:.2f} ms" if fig.p999_ms is not None else ""
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

"""Smoke tests of the bench tools: they run, talk to real servers and print their JSON line.

No timing assertions: figures depend on the machine.  The statistics and the floor server
are checked for what they compute, not for speed.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import trio
from hypothesis import given
from hypothesis import strategies as st

from actors.client.message import Message, SendStatus
from actors.client.producer import Producer
from apps import _bench, _bench_servers, bench_producer
from apps._bench import Histogram, Meter, Proc, _bucket, _bucket_value, parse_cpus
from apps.bench_floor import floor_server
from apps.bench_topics import window_figures
from tests.store_sizes import SMALL_FILES

REPO = Path(__file__).resolve().parents[2]
SMALL_STORE = [
    f"--broker-set={key}={value}"
    for key, value in {"mappedFileSizeCommitLog": 16 << 20, **SMALL_FILES}.items()
]
FLOOR_FILE = 16 << 20  # the floor preallocates its file; 1 GiB per test fills a CI disk


# ---------------------------------------------------------------- statistics


@given(st.integers(min_value=0, max_value=1 << 30))
def test_bucket_holds_its_value_within_1_6_percent(us: int) -> None:
    mid = _bucket_value(_bucket(us))
    assert abs(mid - us) <= max(0.5, us / 64)


@given(st.integers(min_value=0, max_value=1 << 30), st.integers(min_value=0, max_value=1 << 20))
def test_buckets_are_ordered(a: int, b: int) -> None:
    assert _bucket(a) <= _bucket(a + b)


def test_percentiles_of_a_known_spread() -> None:
    h = Histogram()
    for us in range(1, 10_001):  # 1 us .. 10 ms, uniform
        h.record(us)
    assert h.count == 10_000
    assert h.max_us == 10_000
    assert h.mean_us == pytest.approx(5000.5)
    assert h.percentile(50) == pytest.approx(5000, rel=0.016)
    assert h.percentile(99) == pytest.approx(9900, rel=0.016)
    assert h.percentile(100) <= 10_000
    assert Histogram().percentile(99) == 0.0


def test_batch_observations_and_merge() -> None:
    a, b = Histogram(), Histogram()
    a.record(100, n=32)
    b.record(3000)
    a.merge(b)
    assert a.count == 33
    assert a.percentile(50) == 100
    assert a.max_us == 3000


def test_meter_counts_only_while_measuring() -> None:
    meter = Meter(measuring=False)
    meter.success(0.001)
    meter.failure()
    meter.measuring = True
    meter.success(0.002, n=4)
    meter.failure(response=True)
    window, _ = meter.roll()
    assert (meter.ok, meter.failed, meter.response_failed) == (4, 0, 1)
    assert (window.ok, window.response_failed) == (4, 1)
    line = _bench.window_line(window, 1.0)
    for part in ("Send TPS: 4", "Max RT(ms): 2.000", "Response Failed: 1", "p99(ms)"):
        assert part in line
    assert meter.window.ok == 0


def test_proc_reads_cpu_rss_and_affinity_of_this_process() -> None:
    me = Proc("bench", os.getpid())
    sample = me.sample()
    assert sample is not None
    assert sample.cpu_seconds >= 0
    assert sample.last_cpu in os.sched_getaffinity(0)
    assert (me.peak_rss_mib() or 0) > 1
    assert me.affinity() == _bench.cpu_list(os.sched_getaffinity(0))
    assert Proc("gone", 2**22 + 7).sample() is None
    assert parse_cpus("0-2,5") == {0, 1, 2, 5}
    assert parse_cpus("") is None


def test_median_of_runs() -> None:
    runs = [{"tps": 10.0, "sent": 5, "label": "x"}, {"tps": 30.0, "sent": 7, "label": "x"}]
    runs.append({"tps": 20.0, "sent": 6, "label": "x"})
    assert _bench.median_of(runs) == {"tps": 20.0, "sent": 6, "label": "x", "runs": 3}


async def test_pacer_spaces_slots_and_keeps_late_ones_due(autojump_clock: trio.abc.Clock) -> None:
    pacer = _bench.Pacer(100, now=trio.current_time)
    start = trio.current_time()
    dues = [await pacer.next() for _ in range(5)]
    assert dues == pytest.approx([start + i / 100 for i in range(5)])
    assert trio.current_time() == pytest.approx(start + 0.04)
    await trio.sleep(1)  # the sender stalls: the slots it missed are still due, and due now
    late = [await pacer.next() for _ in range(3)]
    assert late == pytest.approx([start + i / 100 for i in range(5, 8)])
    assert trio.current_time() == pytest.approx(start + 1.04)  # no waiting while behind


# ---------------------------------------------------------------- floor + producer modes


async def test_floor_serves_an_unchanged_producer(tmp_path: Path) -> None:
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: floor_server(
                str(tmp_path / "floor.data"),
                queues=4,
                file_size=FLOOR_FILE,
                task_status=task_status,
            )
        )
        addr = f"127.0.0.1:{port}"
        with trio.fail_after(20):
            await _bench_servers.ensure_topic(addr, "FloorTopic", 4)
            async with Producer("pg", namesrv=addr) as producer:
                one = await producer.send(Message("FloorTopic", b"x" * 100))
                batch = await producer.send_batch([Message("FloorTopic", b"y")] * 5)
        assert one.status is SendStatus.SEND_OK
        assert batch.status is SendStatus.SEND_OK
        assert len(batch.offset_msg_id.split(",")) == 5
        assert (tmp_path / "floor.data").stat().st_size == FLOOR_FILE
        nursery.cancel_scope.cancel()


async def _against_floor(tmp_path: Path, args: argparse.Namespace) -> dict[str, Any]:
    """One bench_producer run against a floor server started for it."""
    async with trio.open_nursery() as nursery:
        port = await nursery.start(
            lambda task_status: floor_server(
                str(tmp_path / "f.data"), file_size=FLOOR_FILE, task_status=task_status
            )
        )
        with trio.fail_after(30):
            result = await bench_producer.run_target(
                "floor", f"127.0.0.1:{port}", args, [Proc("me", os.getpid())]
            )
        nursery.cancel_scope.cancel()
    return result


@pytest.mark.parametrize("client", ["producer", "raw"])
async def test_rate_paces_the_senders(tmp_path: Path, client: str) -> None:
    args = bench_producer.build_parser().parse_args(
        [
            *("--mode", "oneway", "-w", "4", "--rate", "500", "--count", "300"),
            *("--warmup", "0.1", "--quiet", "--client", client),
        ]
    )
    result = await _against_floor(tmp_path, args)
    assert result["sent"] >= 300
    assert result["tps"] <= 500 * 1.1  # flat out, the floor takes tens of thousands per second


@pytest.mark.parametrize("client", ["producer", "raw"])
@pytest.mark.parametrize("mode", ["sync", "async", "oneway", "batch"])
async def test_each_mode_runs_against_the_floor(tmp_path: Path, mode: str, client: str) -> None:
    args = bench_producer.build_parser().parse_args(
        [
            "--client",
            client,
            "--mode",
            mode,
            "-w",
            "4",
            "--count",
            "200",
            "--warmup",
            "0.1",
            "-k",
            "-c",
            "3",
            "--batch-size",
            "8",
            "--quiet",
        ]
    )
    result = await _against_floor(tmp_path, args)
    assert result["sent"] >= 200
    assert result["failed"] == 0
    assert result["tps"] > 0
    assert 0 < result["p50_ms"] <= result["p99_ms"] <= result["max_ms"]
    assert "me_cpu_s" in result


# ---------------------------------------------------------------- the tools as users run them


def _run_tool(module: str, *args: str, timeout: float = 120) -> dict[str, object]:
    done = subprocess.run(
        [sys.executable, "-m", module, *args, "--json"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    last = done.stdout.strip().splitlines()[-1]
    result = json.loads(last)
    assert isinstance(result, dict)
    assert "CPUs: 2 online" in done.stdout or "CPUs:" in done.stdout
    return result


@pytest.mark.slow
def test_bench_producer_against_our_servers_and_the_floor(tmp_path: Path) -> None:
    result = _run_tool(
        "apps.bench_producer",
        "--count", "300", "--warmup", "0.2", "-w", "4", "--floor",
        "--dir", str(tmp_path), *SMALL_STORE,
    )  # fmt: skip
    for key in ("tps", "p50_ms", "p99_ms", "sent", "failed", "broker_cpu_us_per_msg"):
        assert key in result
    assert result["sent"] >= 300
    assert result["failed"] == 0
    assert isinstance(result["floor"], dict)
    assert result["floor"]["sent"] >= 300
    assert result["ratio_tps"] is not None
    assert result["broker_peak_rss_mib"] > 0


@pytest.mark.slow
def test_bench_topics_times_each_creation_in_windows(tmp_path: Path) -> None:
    result = _run_tool(
        "apps.bench_topics",
        "--count", "60", "--windows", "3", "--queues", "4", "--dir", str(tmp_path), *SMALL_STORE,
    )  # fmt: skip
    assert result["topics"] == 60
    assert [(w["from"], w["to"]) for w in result["windows"]] == [(0, 20), (20, 40), (40, 60)]
    assert all(0 < w["median_ms"] <= w["p99_ms"] for w in result["windows"])
    assert result["growth"] > 0
    assert result["broker_cpu_s"] > 0


def test_window_figures_cut_the_run_in_equal_parts() -> None:
    parts = window_figures([float(i) for i in range(1, 11)], 2)
    assert parts == [
        {"from": 0, "to": 5, "median_ms": 3.0, "p99_ms": 5.0, "mean_ms": 3.0},
        {"from": 5, "to": 10, "median_ms": 8.0, "p99_ms": 10.0, "mean_ms": 8.0},
    ]
    assert [(p["from"], p["to"]) for p in window_figures([1.0] * 7, 3)] == [(0, 2), (2, 4), (4, 6)]


@pytest.mark.slow
def test_bench_consumer_drains_a_backlog(tmp_path: Path) -> None:
    result = _run_tool(
        "apps.bench_consumer",
        "--backlog", "500", "--dir", str(tmp_path), *SMALL_STORE,
    )  # fmt: skip
    assert result["received"] >= 500
    assert result["prefill_tps"] > 0
    assert result["tps"] > 0
    assert result["p99_ms"] >= result["p50_ms"]


def test_parsers_take_rocketmq_option_names() -> None:
    args = bench_producer.build_parser().parse_args(
        ["-n", "a:1", "-t", "T", "-w", "3", "-s", "10", "-k", "-c", "2", "--label", "apache"]
    )
    assert (args.namesrv, args.topic, args.threads, args.size) == ("a:1", "T", 3, 10)
    assert args.keys
    assert args.tag_count == 2
    assert args.label == "apache"
    assert isinstance(args, argparse.Namespace)


@pytest.mark.slow
def test_bench_consumer_live_fed_by_a_producer_child(tmp_path: Path) -> None:
    result = _run_tool(
        "apps.bench_consumer",
        "--duration", "3", "--warmup", "2", "--dir", str(tmp_path), *SMALL_STORE,
    )  # fmt: skip
    assert result["received"] > 0
    assert "producer_cpu_s" in result


def test_profile_files_are_named_per_server() -> None:
    broker, floor = Proc("broker", 11), Proc("floor", 12)
    assert _bench.profile_target([Proc("bench", 1), broker], "out/p.svg") == (
        broker,
        "out/p.broker.svg",
    )
    assert _bench.profile_target([floor], "prof") == (floor, "prof.floor")
    assert _bench.profile_target([broker], None) == (None, None)
    assert _bench.profile_target([Proc("bench", 1)], "p.svg") == (None, None)


# ---------------------------------------------------------------- issue 17 tools


def test_raw_sender_rotates_over_new_topics() -> None:
    from typing import Any, cast

    from apps._rawsend import RawSender

    sender = RawSender(
        cast(Any, None), "127.0.0.1:1", topic="T", queues=4, body=b"x", keys=False, tag_count=0,
        topics=3,
    )  # fmt: skip
    names = [sender.request().ext_fields["b"] for _ in range(6)]
    assert len(set(names)) == 3
    assert names[:3] == names[3:]
    assert all(name.startswith("T-") for name in names)
    one = RawSender(
        cast(Any, None), "127.0.0.1:1", topic="T", queues=4, body=b"x", keys=False, tag_count=0
    )
    assert {one.request().ext_fields["b"] for _ in range(3)} == {"T"}


@pytest.mark.slow
def test_bench_producer_sends_to_auto_created_topics(tmp_path: Path) -> None:
    result = _run_tool(
        "apps.bench_producer", "--client", "raw", "--topics", "5",
        "--count", "60", "--warmup", "0", "-w", "4",
        "--dir", str(tmp_path), *SMALL_STORE,
    )  # fmt: skip
    # a send to a topic the broker lacks fails unless the broker created it on that send
    assert result["sent"] >= 60
    assert result["failed"] == 0


def test_bench_send_path_slice_times_every_stage() -> None:
    from apps.bench_send_path import slice_figures

    figures = slice_figures(300)
    for stage in ("decode", "put", "reput", "encode"):
        assert figures[stage] > 0, stage
    assert figures["total"] >= figures["decode"] + figures["reput"]


def test_bench_send_path_runs_the_broker_in_process(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from apps import bench_send_path

    assert (
        bench_send_path.main(
            ["--messages", "300", "--rounds", "1", "--json", "--quiet", "--dir", str(tmp_path)]
        )
        == 0
    )
    line = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(line)
    assert result["messages"] == 300
    assert result["us_per_msg"][0] > 0

"""What apps/bench_producer.py and apps/bench_consumer.py share.

* ``Histogram``: latencies in integer microseconds, log-linear buckets (64 per power of two,
  under 1.6 % error), so a long run costs a fixed 2,048 counters instead of a list of floats
  that would inflate the bench's own peak RSS.
* ``Meter``: counts and latencies of one run, a per-second window (RocketMQ's benchmark
  lines) and the whole-run totals.
* ``Proc`` and ``placement_lines``: CPU time, last CPU, affinity and peak RSS of a process from
  /proc (psutil-free), because on a 2-core machine where each process runs moves latency a lot.
* ``Ticker``: the once-a-second line, a rich live status line on a terminal.

The servers a run starts and the topic set-up are in apps/_bench_servers.py.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import attrs
import trio

try:
    from rich.console import Console
    from rich.live import Live
    from rich.text import Text
except ImportError as exc:  # rich is the bench extra, not a runtime dependency
    raise SystemExit(
        "the bench tools need rich: pip install 'trio-rocketmq[bench]' "
        f"(or pip install rich): {exc}"
    ) from exc

from apps._security import add_security_options

ROOT = Path(__file__).resolve().parent.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

# ---------------------------------------------------------------- latency statistics

_SUB_BITS = 6
_EXACT = 1 << (_SUB_BITS + 1)  # values below this get a bucket each
_BUCKETS = 2048  # up to 2^31 us (~36 min): far beyond any timeout


def _bucket(us: int) -> int:
    if us < _EXACT:
        return us if us > 0 else 0
    shift = us.bit_length() - (_SUB_BITS + 1)
    index = (shift << _SUB_BITS) + (us >> shift)
    return index if index < _BUCKETS else _BUCKETS - 1


def _bucket_value(index: int) -> float:
    """The middle of bucket ``index``, in microseconds."""
    if index < _EXACT:
        return float(index)
    shift = (index >> _SUB_BITS) - 1
    low = (index - (shift << _SUB_BITS)) << shift
    return low + ((1 << shift) - 1) / 2


class Histogram:
    """Latency counts in microseconds; percentiles within 1.6 %, exact below 128 us."""

    __slots__ = ("count", "counts", "max_us", "total_us")

    def __init__(self) -> None:
        self.counts = [0] * _BUCKETS
        self.count = 0
        self.total_us = 0
        self.max_us = 0

    def record(self, us: int, n: int = 1) -> None:
        """``n`` observations of ``us`` microseconds (a batch send counts each message)."""
        self.counts[_bucket(us)] += n
        self.count += n
        self.total_us += us * n
        if us > self.max_us:
            self.max_us = us

    def merge(self, other: Histogram) -> None:
        counts = self.counts
        for i, c in enumerate(other.counts):
            if c:
                counts[i] += c
        self.count += other.count
        self.total_us += other.total_us
        self.max_us = max(self.max_us, other.max_us)

    def percentile(self, q: float) -> float:
        """The ``q``-th percentile (0-100) in microseconds; 0 when empty."""
        if not self.count:
            return 0.0
        rank = max(1, round(q / 100 * self.count))
        seen = 0
        for i, c in enumerate(self.counts):
            seen += c
            if seen >= rank:
                return min(_bucket_value(i), float(self.max_us))
        return float(self.max_us)

    @property
    def mean_us(self) -> float:
        return self.total_us / self.count if self.count else 0.0


@attrs.define(eq=False)
class Window:
    """One reporting interval's counts (RocketMQ's benchmark prints one per second)."""

    started: float
    ok: int = 0
    failed: int = 0
    response_failed: int = 0
    latency: Histogram = attrs.Factory(Histogram)


@attrs.define(eq=False)
class Meter:
    """Counts of one run: ``ok`` messages with their latencies, failures by kind."""

    window: Window = attrs.Factory(lambda: Window(time.perf_counter()))
    total: Histogram = attrs.Factory(Histogram)
    ok: int = 0
    failed: int = 0  # the request never got an answer (timeout, connection)
    response_failed: int = 0  # the broker answered with an error code
    measuring: bool = True

    def success(self, seconds: float, n: int = 1) -> None:
        if not self.measuring:
            return
        us = int(seconds * 1_000_000)
        self.window.ok += n
        self.window.latency.record(us, n)
        self.ok += n
        self.total.record(us, n)

    def failure(self, n: int = 1, *, response: bool = False) -> None:
        if not self.measuring:
            return
        if response:
            self.window.response_failed += n
            self.response_failed += n
        else:
            self.window.failed += n
            self.failed += n

    def roll(self) -> tuple[Window, float]:
        """Close the current window; (the window, its length in seconds)."""
        now = time.perf_counter()
        window, self.window = self.window, Window(now)
        return window, now - window.started


def window_line(window: Window, seconds: float, verb: str = "Send") -> str:
    """A line shaped like RocketMQ's benchmark output, plus p50/p99."""
    lat = window.latency
    tps = window.ok / seconds if seconds > 0 else 0.0
    stamp = time.strftime("%Y-%m-%d %H:%M:%S")
    return (
        f"Current Time: {stamp} | {verb} TPS: {tps:,.0f} | Max RT(ms): {lat.max_us / 1000:.3f}"
        f" | Average RT(ms): {lat.mean_us / 1000:.3f} | {verb} Failed: {window.failed}"
        f" | Response Failed: {window.response_failed}"
        f" | p50(ms): {lat.percentile(50) / 1000:.3f} | p99(ms): {lat.percentile(99) / 1000:.3f}"
    )


# ---------------------------------------------------------------- processes


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return f.read()
    except OSError:
        return None


@attrs.frozen
class ProcSample:
    cpu_seconds: float  # user + system, all threads
    last_cpu: int  # the CPU it last ran on


@attrs.frozen
class Proc:
    """A process we report on, by pid (ours, a child, or one named with --broker-pid)."""

    name: str
    pid: int

    def sample(self) -> ProcSample | None:
        text = _read(f"/proc/{self.pid}/stat")
        if text is None:
            return None
        # Fields after the command name, which may itself hold spaces or parentheses.
        rest = text[text.rindex(")") + 2 :].split()
        utime, stime = int(rest[11]), int(rest[12])
        return ProcSample((utime + stime) / CLOCK_TICKS, int(rest[36]))

    def peak_rss_mib(self) -> float | None:
        text = _read(f"/proc/{self.pid}/status")
        for line in (text or "").splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
        return None

    def affinity(self) -> str:
        try:
            return cpu_list(os.sched_getaffinity(self.pid))
        except OSError:
            return "?"


def cpu_list(cpus: Iterable[int]) -> str:
    return ",".join(str(c) for c in sorted(cpus))


def parse_cpus(text: str | None) -> set[int] | None:
    """ "0", "1", "0,1" or "0-1" -> a CPU set; None/"" -> no pinning."""
    if not text:
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


@attrs.define(eq=False)
class CpuWatch:
    """CPU seconds each process used between ``start`` and ``stop``."""

    procs: Sequence[Proc]
    _before: dict[int, ProcSample] = attrs.Factory(dict)
    used: dict[int, float] = attrs.Factory(dict)
    last_cpu: dict[int, int] = attrs.Factory(dict)
    wall: float = 0.0
    _t0: float = 0.0

    def start(self) -> None:
        self._t0 = time.perf_counter()
        self._before = {p.pid: s for p in self.procs if (s := p.sample()) is not None}

    def stop(self) -> None:
        self.wall = time.perf_counter() - self._t0
        for p in self.procs:
            after = p.sample()
            before = self._before.get(p.pid)
            if after is not None and before is not None:
                self.used[p.pid] = after.cpu_seconds - before.cpu_seconds
                self.last_cpu[p.pid] = after.last_cpu


def calibrate(rounds: int = 20_000) -> float:
    """Microseconds for one fixed piece of Python work (a remoting header's json.dumps).

    On a shared machine the same code runs several times slower when others are busy; this
    figure, printed and kept in the JSON beside the results, says how slow the interpreter
    was at the time, so runs made under different loads can be compared.
    """
    head = {"code": 310, "extFields": {"a": "g", "b": "BenchTopic", "e": "3"}, "flag": 0}
    dumps = json.dumps
    start = time.perf_counter()
    for _ in range(rounds):
        dumps(head, separators=(",", ":"))
    return (time.perf_counter() - start) * 1e6 / rounds


def placement_lines(watch: CpuWatch) -> list[str]:
    """Where each process ran and how busy it was: placement moves latency a lot on 2 cores."""
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    lines = [
        f"CPUs: {os.cpu_count()} online, load average {load}, "
        f"calibration {calibrate():.2f} us per header json.dumps"
    ]
    for p in watch.procs:
        used = watch.used.get(p.pid)
        busy = f"{used:.2f} s CPU ({100 * used / watch.wall:.0f}% of one core)" if used else "n/a"
        rss = p.peak_rss_mib()
        lines.append(
            f"  {p.name:<8} pid {p.pid:<7} affinity {p.affinity():<5} last on CPU "
            f"{watch.last_cpu.get(p.pid, '?')}  {busy}, peak RSS "
            + (f"{rss:.0f} MiB" if rss is not None else "n/a")
        )
    return lines


def find_py_spy() -> str | None:
    """py-spy from this environment or PATH; a tool for whoever profiles, not a dependency."""
    local = Path(sys.executable).with_name("py-spy")
    return str(local) if local.exists() else shutil.which("py-spy")


def profile_target(procs: Sequence[Proc], path: str | None) -> tuple[Proc | None, str | None]:
    """The server to profile and its output file: ``x.svg`` becomes ``x.broker.svg`` or
    ``x.floor.svg`` (each target its own file; a later run of the same target overwrites)."""
    server = next((p for p in procs if p.name in ("broker", "floor")), None)
    if server is None or path is None:
        return None, None
    stem, dot, ext = path.rpartition(".")
    return server, f"{stem}.{server.name}.{ext}" if dot else f"{path}.{server.name}"


@contextlib.asynccontextmanager
async def profiled(proc: Proc | None, path: str | None) -> AsyncIterator[None]:
    """Sample ``proc`` with py-spy into ``path`` (flamegraph .svg, else raw stacks) meanwhile.

    ``--nonblocking`` keeps py-spy from pausing the process at each sample.  Note that py-spy
    counts trio's idle worker threads (a timed lock wait in ``WorkerThread._work``) as busy.
    """
    if proc is None or path is None:
        yield
        return
    spy = find_py_spy()
    if spy is None:
        raise SystemExit("--profile needs py-spy: .venv/bin/pip install py-spy")
    fmt = "flamegraph" if path.endswith(".svg") else "raw"
    cmd = [spy, "record", "--nonblocking", "-r", "200", "-f", fmt, "-o", path]
    cmd += ["-p", str(proc.pid)]
    spy_proc = await trio.lowlevel.open_process(cmd, stdout=subprocess.DEVNULL)
    try:
        yield
    finally:
        spy_proc.send_signal(signal.SIGINT)  # py-spy writes its output on SIGINT
        with trio.move_on_after(20, shield=True):
            await spy_proc.wait()
        if spy_proc.returncode is None:
            spy_proc.kill()
        print(f"profile of {proc.name} (pid {proc.pid}) written to {path}", flush=True)


# ---------------------------------------------------------------- output


class Ticker:
    """Prints a line per interval; on a terminal a rich status line shows live progress."""

    def __init__(self, title: str, *, quiet: bool = False) -> None:
        self.title = title
        self.quiet = quiet
        self.console = Console(stderr=False, highlight=False)
        self._live: Live | None = None

    def __enter__(self) -> Ticker:
        if self.console.is_terminal and not self.quiet:
            self._live = Live(Text(self.title), console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def line(self, text: str) -> None:
        if self.quiet:
            return
        if self._live is not None:
            self._live.console.print(text, markup=False)
        else:
            print(text, flush=True)

    def status(self, text: str) -> None:
        if self._live is not None:
            self._live.update(Text(f"{self.title}: {text}", style="bold"))


def say(text: str = "") -> None:
    print(text, flush=True)


def emit_json(obj: dict[str, Any]) -> None:
    """The final machine-readable line (one line, last on stdout)."""
    print(json.dumps(obj, separators=(",", ":"), sort_keys=False), flush=True)


def median_of(results: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Per-key median over repeated runs (numbers only; other values from the last run)."""
    if len(results) == 1:
        return dict(results[0])
    merged = dict(results[-1])
    for key, value in results[-1].items():
        if isinstance(value, int | float) and not isinstance(value, bool):
            values = [r[key] for r in results if isinstance(r.get(key), int | float)]
            med = statistics.median(values)
            if all(isinstance(v, int) for v in values):
                merged[key] = round(med)
            else:
                merged[key] = round(med, 3)
    merged["runs"] = len(results)
    return merged


class Pacer:
    """Open-loop pacing shared by all senders: send ``rate`` requests/s in total.

    ``next()`` waits for the next slot and returns when that slot was due; a sender measures
    latency from there, not from when it got round to sending, so a stall delays every slot
    queued behind it and the percentiles show it (no coordinated omission).
    """

    def __init__(self, rate: float, now: Callable[[], float] = time.perf_counter) -> None:
        self.interval = 1.0 / rate
        self.now = now  # the clock latencies are measured on
        self.due: float | None = None

    async def next(self) -> float:
        now = self.now()
        # slots stay due however late they are: a sender that fell behind catches up in a burst
        due = self.due = now if self.due is None else self.due + self.interval
        if due > now:
            await trio.sleep(due - now)
        return due


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Options both tools take (RocketMQ's names where RocketMQ has one)."""
    parser.add_argument("-n", "--namesrv", help="name server(s) to use; default: start ours")
    parser.add_argument("-t", "--topic", default="BenchTopic")
    parser.add_argument("-s", "--size", type=int, default=1024, help="message body bytes")
    parser.add_argument("--label", help="name of the target in the output (default: ours/target)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds to measure")
    parser.add_argument("--count", type=int, help="messages to measure (instead of --duration)")
    parser.add_argument("--warmup", type=float, default=1.0, help="seconds not measured first")
    parser.add_argument("--queues", type=int, default=8, help="queues of the bench topic")
    parser.add_argument("--json", action="store_true", help="end with a one-line JSON summary")
    parser.add_argument("--quiet", action="store_true", help="no per-second lines")
    parser.add_argument("--broker-pid", type=int, help="report this broker's CPU and RSS (-n)")
    parser.add_argument(
        "--flush", choices=("ASYNC_FLUSH", "SYNC_FLUSH"), default="ASYNC_FLUSH", help="our broker"
    )
    parser.add_argument(
        "--broker-set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra broker.conf key for the broker we start (repeatable)",
    )
    parser.add_argument("--bench-cpus", help="pin this process, e.g. 0")
    parser.add_argument("--server-cpus", help="pin the servers we start, e.g. 1")
    parser.add_argument("--dir", help="parent folder of the store we create (default: temp)")
    parser.add_argument(
        "--profile",
        metavar="FILE",
        help="py-spy the broker during the measured window (.svg flamegraph, else raw stacks)",
    )
    add_security_options(parser)


# ---------------------------------------------------------------- run loop helpers


async def tick_until(
    meter: Meter,
    ticker: Ticker,
    done: Callable[[], bool],
    *,
    verb: str,
    progress: Callable[[], str],
    interval: float = 1.0,
) -> None:
    """Print a window line every ``interval`` until ``done()``; the last partial one too."""
    next_tick = time.perf_counter() + interval
    while not done():
        with trio.move_on_after(min(0.25, max(0.0, next_tick - time.perf_counter()))):
            await trio.sleep_forever()
        ticker.status(progress())
        if time.perf_counter() >= next_tick:
            window, seconds = meter.roll()
            ticker.line(window_line(window, seconds, verb))
            next_tick += interval
    window, seconds = meter.roll()
    if seconds > 0.05 and (window.ok or window.failed or window.response_failed):
        ticker.line(window_line(window, seconds, verb))


def summary_fields(meter: Meter, seconds: float) -> dict[str, Any]:
    lat = meter.total
    return {
        "tps": round(meter.ok / seconds, 1) if seconds > 0 else 0.0,
        "p50_ms": round(lat.percentile(50) / 1000, 3),
        "p99_ms": round(lat.percentile(99) / 1000, 3),
        "p999_ms": round(lat.percentile(99.9) / 1000, 3),
        "max_ms": round(lat.max_us / 1000, 3),
        "avg_ms": round(lat.mean_us / 1000, 3),
        "seconds": round(seconds, 3),
    }


def cpu_fields(watch: CpuWatch, messages: int) -> dict[str, Any]:
    """CPU seconds per process and, per message, in microseconds."""
    out: dict[str, Any] = {}
    for p in watch.procs:
        used = watch.used.get(p.pid)
        if used is None:
            continue
        out[f"{p.name}_cpu_s"] = round(used, 3)
        if messages:
            out[f"{p.name}_cpu_us_per_msg"] = round(used * 1e6 / messages, 2)
        rss = p.peak_rss_mib()
        if rss is not None:
            out[f"{p.name}_peak_rss_mib"] = round(rss, 1)
    return out

"""Several broker processes on one machine, one per core: ``python apps/brokers.py -c conf/broker.conf --processes N``.

Why processes: a Python broker runs its hot path on one core (the GIL), and RocketMQ's own
answer to "more brokers than one JVM can drive" is several broker groups in one cluster.
So process ``i`` is broker group ``<brokerName>-<i>`` of the same ``brokerClusterName``,
listening on ``listenPort + 10*i`` (its HA port is one above) with its store under
``<storePathRootDir>/<brokerName>-<i>``; each registers with the name servers like any
broker, so producers spread their queues over every group and consumers rebalance across
them with no change on the client side.  Topics auto-created by sends are created on each
group the producer writes to; ``updateTopic -c <cluster>`` creates one on every group.

```
trio.run(serve)
└─ root nursery
   ├─ signal_watcher ........ SIGINT/SIGTERM -> stop every child (SIGTERM, orderly), exit 0
   └─ supervise(broker-i) ... one per process: apps/broker.py as a child, restarted with
                              backoff if it dies (RestartPolicy), stopped by cancellation
```
Every argument other than ``--processes``/``--pin`` is passed to each child unchanged, so
``-c``, ``-n`` and ``--key=value`` mean what they mean for apps/broker.py.
"""

from __future__ import annotations

import functools
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path

import trio

from actors.shutdown import signal_watcher
from actors.supervisor import RestartPolicy, supervise
from apps import _cli
from apps.broker import build_config

log = logging.getLogger("brokers")

PORT_STRIDE = 10
BROKER_APP = Path(__file__).resolve().parent / "broker.py"
# A child that keeps dying is not restarted forever: the launcher stops with an error.
CHILD_POLICY = RestartPolicy(max_restarts=5, within_seconds=60, backoff_max=5)
STOP_GRACE = 30.0  # s a child gets for its orderly shutdown before SIGKILL


def child_overrides(
    index: int, broker_name: str, listen_port: int, store_root: str
) -> dict[str, str]:
    name = f"{broker_name}-{index}"
    return {
        "brokerName": name,
        # port 0 stays 0: each child picks a free port of its own
        "listenPort": str(listen_port + PORT_STRIDE * index if listen_port else 0),
        "storePathRootDir": str(Path(store_root) / name),
    }


async def run_child(
    argv: list[str],
    cpu: int | None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """One broker process until it exits (a crash for the supervisor) or we are cancelled
    (SIGTERM, orderly; SIGKILL after STOP_GRACE)."""

    def pin() -> None:  # in the child, before exec
        if cpu is not None:
            os.sched_setaffinity(0, {cpu})

    async def deliver_cancel(process: trio.Process) -> None:
        process.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_GRACE):
            await process.wait()
            return
        log.warning("broker pid %d ignored SIGTERM for %gs; killing it", process.pid, STOP_GRACE)
        process.kill()

    task_status.started()
    result = await trio.run_process(
        argv,
        check=False,
        deliver_cancel=deliver_cancel,
        preexec_fn=pin,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise RuntimeError(f"broker process exited with status {result.returncode}")
    # exit 0 is an orderly stop someone asked the child for: not restarted
    log.info("broker process %s stopped (exit 0)", argv[-3])


async def serve(children: list[tuple[str, list[str], int | None]]) -> None:
    async with trio.open_nursery() as root:
        stop = trio.Event()
        await root.start(signal_watcher, lambda reason: stop.set())
        async with trio.open_nursery() as brokers:
            for name, argv, cpu in children:
                log.info("starting %s%s", name, f" on CPU {cpu}" if cpu is not None else "")
                brokers.start_soon(
                    functools.partial(supervise, name, run_child, argv, cpu, policy=CHILD_POLICY),
                    name=name,
                )
            await stop.wait()
            log.info("stopping %d broker process(es)", len(children))
            brokers.cancel_scope.cancel(reason="stop requested")
        root.cancel_scope.cancel(reason="brokers stopped")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _cli.make_parser(
        "brokers", "several RocketMQ 4.9 compatible broker processes", namesrv_option=True
    )
    parser.add_argument(
        "--processes", type=int, default=os.cpu_count() or 1, help="broker processes (cores)"
    )
    parser.add_argument("--pin", action="store_true", help="pin process i to CPU i")
    args, overrides = _cli.parse_args(parser, argv)
    _cli.setup_logging(args.log_level)
    if args.processes < 1:
        sys.stderr.write("brokers: --processes must be at least 1\n")
        return 1
    try:
        config, store_config, _, _ = build_config(_cli.collect_properties(args, overrides))
    except _cli.CliError as exc:
        sys.stderr.write(f"brokers: {exc}\n")
        return 1
    # what the children get: everything but our own options
    passed: list[str] = []
    skip = False
    for item in argv:
        if skip:
            skip = False
            continue
        if item in ("--processes", "--pin") or item.startswith("--processes="):
            skip = item == "--processes"
            continue
        passed.append(item)
    cpus = sorted(os.sched_getaffinity(0))
    children = []
    for i in range(args.processes):
        extra = child_overrides(
            i, config.brokerName, config.listenPort, store_config.storePathRootDir
        )
        child_argv = [
            sys.executable,
            str(BROKER_APP),
            *passed,
            *(f"--{key}={value}" for key, value in extra.items()),
        ]
        cpu = cpus[i % len(cpus)] if args.pin else None
        children.append((extra["brokerName"], child_argv, cpu))
    if args.printConfigItem:
        # each child's effective config, as apps/broker.py -p prints it
        return max(
            subprocess.run(child_argv, check=False).returncode for _, child_argv, _ in children
        )
    return _cli.run(functools.partial(serve, children), name="brokers")


if __name__ == "__main__":
    sys.exit(main())

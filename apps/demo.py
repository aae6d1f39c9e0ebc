"""The main job: a name server and a broker on an embedded default config, driven by the quickstart.

    python apps/demo.py [--count 20] [--keep-store]

Starts ``apps/namesrv.py`` and ``apps/broker.py`` as child processes (ports picked free, store in
a temporary folder), produces ``--count`` messages with the quickstart producer, consumes them with
the quickstart push consumer, then stops both servers with SIGTERM and reports their exit status.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

import trio

ROOT = Path(__file__).resolve().parent.parent

NAMESRV_CONF = """\
listenPort={namesrv_port}
kvConfigPath={home}/namesrv/kvConfig.json
"""

BROKER_CONF = """\
brokerClusterName=DefaultCluster
brokerName=broker-a
brokerId=0
brokerRole=ASYNC_MASTER
brokerIP1=127.0.0.1
listenPort={broker_port}
namesrvAddr=127.0.0.1:{namesrv_port}
autoCreateTopicEnable=true
storePathRootDir={home}/store
mappedFileSizeCommitLog=67108864
flushDiskType=ASYNC_FLUSH
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def wait_listening(port: int, proc: trio.Process, name: str) -> None:
    with trio.fail_after(30):
        while True:
            if proc.returncode is not None:
                raise RuntimeError(f"{name} exited with status {proc.returncode}")
            try:
                stream = await trio.open_tcp_stream("127.0.0.1", port)
            except OSError:
                await trio.sleep(0.1)
                continue
            await stream.aclose()
            return


async def stop(proc: trio.Process, name: str) -> int:
    if proc.returncode is None:
        proc.send_signal(signal.SIGTERM)
    with trio.move_on_after(20):
        await proc.wait()
    if proc.returncode is None:
        proc.kill()
        await proc.wait()
    code = proc.returncode
    assert code is not None  # waited for above
    print(f"demo: {name} stopped with exit status {code}", flush=True)
    return code


async def run_demo(home: Path, count: int) -> int:
    namesrv_port, broker_port = free_port(), free_port()
    values = {"namesrv_port": namesrv_port, "broker_port": broker_port, "home": home}
    (home / "namesrv.conf").write_text(NAMESRV_CONF.format(**values))
    (home / "broker.conf").write_text(BROKER_CONF.format(**values))
    python = sys.executable
    env = {**os.environ, "ROCKETMQ_HOME": str(home)}
    namesrv_addr = f"127.0.0.1:{namesrv_port}"
    status = 1
    namesrv = await trio.lowlevel.open_process(
        [python, str(ROOT / "apps/namesrv.py"), "-c", str(home / "namesrv.conf")], env=env
    )
    try:
        await wait_listening(namesrv_port, namesrv, "namesrv")
        print(f"demo: namesrv listening on {namesrv_addr}", flush=True)
        broker = await trio.lowlevel.open_process(
            [python, str(ROOT / "apps/broker.py"), "-c", str(home / "broker.conf")], env=env
        )
        try:
            await wait_listening(broker_port, broker, "broker")
            print(f"demo: broker listening on 127.0.0.1:{broker_port}", flush=True)
            quickstart = [python, str(ROOT / "apps/quickstart.py")]
            common = ["-n", namesrv_addr, "-t", "DemoTopic", "--count", str(count)]
            produced = await trio.run_process(
                [*quickstart, "produce", *common, "-g", "DemoProducer"], check=False, env=env
            )
            consumed = await trio.run_process(
                [*quickstart, "consume", *common, "-g", "DemoConsumer", "--timeout", "60"],
                check=False,
                env=env,
            )
            ok = produced.returncode == 0 and consumed.returncode == 0
            print(
                f"demo: produce exit {produced.returncode}, consume exit {consumed.returncode}: "
                + ("all messages sent and received" if ok else "FAILED"),
                flush=True,
            )
            status = 0 if ok else 1
        finally:
            if await stop(broker, "broker") != 0:
                status = 1
    finally:
        if await stop(namesrv, "namesrv") != 0:
            status = 1
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="demo", description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20, help="messages to produce and consume")
    parser.add_argument("--keep-store", action="store_true", help="keep the temporary folder")
    args = parser.parse_args(argv)
    home = Path(tempfile.mkdtemp(prefix="rocketmq-demo-"))
    try:
        return trio.run(run_demo, home, args.count)
    finally:
        if args.keep_store:
            print(f"demo: store kept in {home}")
        else:
            shutil.rmtree(home, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())

"""TLS with the Java client 4.9.8's switch (``-Dtls.enable=true``) and with our client,
against our namesrv and broker in ``permissive`` mode (issue 19).

Java's client in its default test mode (``tls.test.mode.enable=true``) encrypts without
checking the server's certificate; ours checks it against the test CA.  The servers' logs
must show the connections as TLS, so a client that silently fell back to plain text fails.
The enforcing mode and plain-text peers are covered in tests/actors/remoting/test_tls.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import trio
import trustme

from actors.client.message import Message, SendStatus
from actors.client.producer import Producer
from actors.client.pull_consumer import LitePullConsumer
from actors.client.push_consumer import ConsumeFromWhere
from actors.remoting.tls import client_context
from tests.compat.jvm import Jvm
from tests.compat.ours import start_ours
from tests.compat.servers import Target

pytestmark = pytest.mark.compat


@pytest.fixture(scope="module")
def ca_and_target(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Target]]:
    work_dir = tmp_path_factory.mktemp("tls-ours")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_path, key_path, ca_path = work_dir / "s.pem", work_dir / "s.key", work_dir / "ca.pem"
    cert.private_key_pem.write_to_path(str(key_path))
    cert_path.write_bytes(b"".join(blob.bytes() for blob in cert.cert_chain_pems))
    ca.cert_pem.write_to_path(str(ca_path))
    tls = {
        "tls.server.mode": "permissive",
        "tls.server.certPath": cert_path,
        "tls.server.keyPath": key_path,
    }
    target = start_ours(work_dir, tls, tls)
    yield ca_path, target
    target.stop(grace=10.0)


def tls_connections(target: Target) -> int:
    return sum(p.log_path.read_text(errors="replace").count("(TLS)") for p in target.processes)


@pytest.mark.java
def test_java_client_with_tls_enable(
    jvm: Jvm, ca_and_target: tuple[Path, Target], tmp_path: Path
) -> None:
    _, target = ca_and_target
    before = tls_connections(target)
    done = jvm.run_client(
        "sync",
        {
            "namesrv": target.namesrv_addr,
            "topic": "T_java_tls",
            "group": "G_java_tls",
            "count": "8",
        },
        work_dir=tmp_path / "client",
        system_properties={"tls.enable": "true"},
    )
    last = (done.stdout.strip().splitlines() or ["<no output>"])[-1]
    assert done.returncode == 0, (
        f"{last}\n{done.stdout[-3000:]}\n{done.stderr[-2000:]}\n{target.diagnose()}"
    )
    assert last.startswith("OK "), last
    # namesrv and broker connections of the producer and the consumer, all through TLS
    assert tls_connections(target) >= before + 2, target.diagnose()


async def test_our_client_with_tls(ca_and_target: tuple[Path, Target]) -> None:
    ca_path, target = ca_and_target
    before = tls_connections(target)
    ctx = client_context(trust_cert_path=ca_path)
    with trio.fail_after(60):
        async with Producer("pg_tls", namesrv=target.namesrv_addr, tls=ctx) as producer:
            results = [
                await producer.send(Message("T_ours_tls", f"{i}".encode())) for i in range(5)
            ]
        assert all(r.status is SendStatus.SEND_OK for r in results)
        async with LitePullConsumer(
            "cg_tls",
            namesrv=target.namesrv_addr,
            tls=ctx,
            consume_from_where=ConsumeFromWhere.CONSUME_FROM_FIRST_OFFSET,
        ) as consumer:
            await consumer.subscribe("T_ours_tls")
            got: list = []
            while len(got) < 5:
                got += await consumer.poll(timeout=1.0)
    assert sorted(int(m.body) for m in got) == list(range(5))
    assert tls_connections(target) >= before + 2

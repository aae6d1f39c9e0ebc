"""The etcd client's failure modes over real loopback sockets: a silent endpoint times out and
the next one answers, garbage is an EtcdError, no endpoint is EtcdUnavailable."""

from __future__ import annotations

import pytest
import trio

from actors.failover.etcd import EtcdClient, EtcdError, EtcdUnavailable, parse_endpoints, prefix_end


async def serve(nursery: trio.Nursery, reply: bytes | None) -> int:
    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            await stream.receive_some(65536)
            if reply is None:
                await trio.sleep_forever()
            await stream.send_all(reply)

    listeners = await nursery.start(trio.serve_tcp, handler, 0)
    return int(listeners[0].socket.getsockname()[1])


def http(body: bytes, status: str = "200 OK") -> bytes:
    return b"HTTP/1.1 " + status.encode() + b"\r\nContent-Length: %d\r\n\r\n" % len(body) + body


async def test_a_silent_endpoint_times_out_and_the_next_answers(nursery, autojump_clock):
    silent = await serve(nursery, None)
    good = await serve(nursery, http(b'{"header":{"revision":"7"}}'))
    client = EtcdClient(parse_endpoints(f"127.0.0.1:{silent},127.0.0.1:{good}"), timeout=1.0)
    assert await client.put(b"k", b"v") == 7
    assert await client.put(b"k", b"v") == 7  # the good one is tried first now


async def test_garbage_is_an_etcd_error(nursery, autojump_clock):
    port = await serve(nursery, http(b"<html>nope</html>"))
    client = EtcdClient(parse_endpoints(f"127.0.0.1:{port}"))
    with pytest.raises(EtcdError):
        await client.range(b"k")
    port = await serve(
        nursery,
        http(b'{"error":"etcdserver: requested lease not found","code":5}', "404 Not Found"),
    )
    with pytest.raises(EtcdError, match="lease not found"):
        await EtcdClient(parse_endpoints(f"127.0.0.1:{port}")).keepalive(1)
    port = await serve(nursery, http(b'{"unexpected": 1}'))
    with pytest.raises(EtcdError):
        await EtcdClient(parse_endpoints(f"127.0.0.1:{port}")).put(b"k", b"v")


async def test_no_endpoint_is_unavailable(autojump_clock):
    with trio.socket.socket() as s:
        await s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with pytest.raises(EtcdUnavailable):
        await EtcdClient(parse_endpoints(f"127.0.0.1:{port}"), timeout=1.0).grant(5)


def test_endpoints_and_prefix_end():
    assert parse_endpoints("http://a:1, b:2") == [("a", 1), ("b", 2)]
    for bad in ("", "a", "a:x", ":1"):
        with pytest.raises(ValueError, match="etcd"):
            parse_endpoints(bad)
    assert prefix_end(b"/r/") == b"/r0"
    assert prefix_end(b"a\xff") == b"b"

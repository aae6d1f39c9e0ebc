"""A small etcd v3 client under Trio: etcd's JSON gateway over HTTP/1.1 (h11 on trio streams).

Why the gateway and h11: Python's etcd libraries are gRPC + asyncio (python-etcd3 is
unmaintained, aetcd is asyncio-only); the gateway is part of every etcd v3 server and speaks
plain JSON on the client port, and h11 is a well-kept sans-IO HTTP/1.1 implementation, so the
client is a few dozen lines of Trio with no event-loop bridge.

Only what the failover elector needs: leases (grant, keep-alive, revoke), range, put, txn
(compare-and-swap) and watch.  Keys and values are bytes (base64 on the wire); etcd's int64
fields arrive as JSON strings.  Every request has a timeout; a request that fails on one
endpoint is tried on the next, and ``EtcdUnavailable`` is raised when none answered.
"""

from __future__ import annotations

import base64
from collections.abc import AsyncGenerator, Sequence
from typing import Any, Protocol

import attrs
import h11
import orjson
import trio

REQUEST_TIMEOUT = 2.0  # s, per endpoint
RECEIVE_SIZE = 64 * 1024
MAX_BODY = 4 << 20  # a reply larger than this is refused rather than buffered


class EtcdError(Exception):
    """etcd answered with an error (not a transport failure)."""


class EtcdUnavailable(Exception):
    """No endpoint answered within the timeout."""


@attrs.frozen
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


@attrs.frozen
class Compare:
    """etcd's Compare: ``target`` is VALUE, VERSION, CREATE, MOD or LEASE; result EQUAL,
    GREATER, LESS or NOT_EQUAL."""

    key: bytes
    target: str
    value: int | bytes
    result: str = "EQUAL"


@attrs.frozen
class Put:
    key: bytes
    value: bytes
    lease: int = 0


@attrs.frozen
class Delete:
    key: bytes


@attrs.frozen
class TxnResult:
    succeeded: bool
    revision: int


@attrs.frozen
class WatchEvent:
    kind: str  # "PUT" or "DELETE"
    kv: KeyValue


class Etcd(Protocol):
    """What the elector uses; the real client and the tests' fake both provide it."""

    async def grant(self, ttl: int) -> tuple[int, int]: ...
    async def keepalive(self, lease: int) -> int: ...
    async def revoke(self, lease: int) -> None: ...
    async def range(self, key: bytes, *, prefix: bool = False) -> tuple[int, list[KeyValue]]: ...
    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int: ...
    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Put | Delete],
        failure: Sequence[Put | Delete] = (),
    ) -> TxnResult: ...
    def watch(
        self, key: bytes, *, prefix: bool = False, start_revision: int = 0
    ) -> AsyncGenerator[list[WatchEvent], None]: ...


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _unb64(text: str | None) -> bytes:
    return base64.b64decode(text) if text else b""


def prefix_end(prefix: bytes) -> bytes:
    """etcd's range_end for "every key starting with prefix"."""
    end = bytearray(prefix)
    while end:
        if end[-1] < 0xFF:
            end[-1] += 1
            return bytes(end)
        end.pop()
    return b"\0"


def _kv(obj: dict[str, Any]) -> KeyValue:
    return KeyValue(
        key=_unb64(obj.get("key")),
        value=_unb64(obj.get("value")),
        create_revision=int(obj.get("create_revision", 0)),
        mod_revision=int(obj.get("mod_revision", 0)),
        version=int(obj.get("version", 0)),
        lease=int(obj.get("lease", 0)),
    )


def _op(op: Put | Delete) -> dict[str, Any]:
    if isinstance(op, Put):
        put: dict[str, Any] = {"key": _b64(op.key), "value": _b64(op.value)}
        if op.lease:
            put["lease"] = str(op.lease)
        return {"request_put": put}
    return {"request_delete_range": {"key": _b64(op.key)}}


def _compare(c: Compare) -> dict[str, Any]:
    field = {
        "VALUE": "value",
        "VERSION": "version",
        "CREATE": "create_revision",
        "MOD": "mod_revision",
        "LEASE": "lease",
    }[c.target]
    value: Any = _b64(c.value) if isinstance(c.value, bytes) else str(c.value)
    return {"key": _b64(c.key), "target": c.target, "result": c.result, field: value}


def parse_endpoints(text: str) -> list[tuple[str, int]]:
    """``etcdEndpoints``: comma-separated host:port (an http:// prefix is allowed)."""
    out = []
    for part in text.split(","):
        part = part.strip().removeprefix("http://")
        if not part:
            continue
        host, sep, port = part.rpartition(":")
        if not sep or not host or not port.isdigit():
            raise ValueError(f"bad etcd endpoint {part!r}: expected host:port")
        out.append((host, int(port)))
    if not out:
        raise ValueError("etcdEndpoints is empty")
    return out


class EtcdClient:
    """One HTTP connection per request (loopback or LAN: cheap, and no connection state to
    repair after a failure); a watch keeps its own connection open."""

    def __init__(
        self, endpoints: Sequence[tuple[str, int]], timeout: float = REQUEST_TIMEOUT
    ) -> None:
        self.endpoints = list(endpoints)
        self.timeout = timeout
        self._good = 0  # the endpoint that answered last is tried first

    # ------------------------------------------------------------------ transport

    async def _open(
        self, path: str, body: dict[str, Any]
    ) -> tuple[trio.SocketStream, h11.Connection, str]:
        errors = []
        n = len(self.endpoints)
        for i in range(n):
            idx = (self._good + i) % n
            host, port = self.endpoints[idx]
            try:
                with trio.fail_after(self.timeout):
                    stream = await trio.open_tcp_stream(host, port)
            except (OSError, trio.TooSlowError) as exc:
                errors.append(f"{host}:{port}: {exc or 'timeout'}")
                continue
            payload = orjson.dumps(body)
            conn = h11.Connection(h11.CLIENT)
            data = conn.send(
                h11.Request(
                    method="POST",
                    target=path,
                    headers=[
                        ("Host", f"{host}:{port}"),
                        ("Content-Type", "application/json"),
                        ("Content-Length", str(len(payload))),
                    ],
                )
            )
            data += conn.send(h11.Data(data=payload)) + conn.send(h11.EndOfMessage())
            try:
                with trio.fail_after(self.timeout):
                    await stream.send_all(data)
            except (OSError, trio.BrokenResourceError, trio.TooSlowError) as exc:
                await stream.aclose()
                errors.append(f"{host}:{port}: {exc or 'timeout'}")
                continue
            self._good = idx
            return stream, conn, f"{host}:{port}"
        raise EtcdUnavailable("; ".join(errors))

    async def _next_event(self, stream: trio.SocketStream, conn: h11.Connection) -> Any:
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                data = await stream.receive_some(RECEIVE_SIZE)
                conn.receive_data(data)
                continue
            return event

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """One unary request; the parsed JSON reply."""
        for _attempt in range(len(self.endpoints)):
            stream, conn, where = await self._open(path, body)
            try:
                with trio.fail_after(self.timeout):
                    async with stream:
                        status, data = await self._read_all(stream, conn)
            except (
                OSError,
                trio.BrokenResourceError,
                trio.TooSlowError,
                h11.RemoteProtocolError,
            ) as exc:
                self._good += 1
                last = f"{where}: {exc or 'timeout'}"
                continue
            try:
                reply = orjson.loads(data) if data else {}
            except orjson.JSONDecodeError as exc:
                raise EtcdError(f"{path} at {where}: not JSON: {data[:200]!r}") from exc
            if not isinstance(reply, dict):
                raise EtcdError(f"{path} at {where}: unexpected reply {data[:200]!r}")
            if status != 200 or ("error" in reply and "result" not in reply):
                raise EtcdError(
                    f"{path} at {where}: HTTP {status}: {reply.get('error') or reply.get('message') or data[:200]!r}"
                )
            # streaming RPCs (lease keep-alive) answer {"result": {...}} per message
            return reply.get("result", reply)  # type: ignore[no-any-return]
        raise EtcdUnavailable(last)

    async def _read_all(self, stream: trio.SocketStream, conn: h11.Connection) -> tuple[int, bytes]:
        status = 0
        body = bytearray()
        while True:
            event = await self._next_event(stream, conn)
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
                if len(body) > MAX_BODY:
                    raise EtcdError(f"reply larger than {MAX_BODY} bytes")
                if status == 200 and b"\n" in body and body.lstrip().startswith(b'{"result"'):
                    # a streaming reply: its first message is all we asked for
                    return status, bytes(body.split(b"\n", 1)[0])
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return status, bytes(body)

    # ------------------------------------------------------------------ API
    # A reply without the fields etcd always sends is an EtcdError (never a KeyError that
    # would take the elector down).

    async def grant(self, ttl: int) -> tuple[int, int]:
        """A new lease: (id, granted TTL in seconds)."""
        r = await self.call("/v3/lease/grant", {"TTL": ttl})
        try:
            return int(r["ID"]), int(r["TTL"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EtcdError(f"lease grant: unexpected reply {r!r}") from exc

    async def keepalive(self, lease: int) -> int:
        """Renew once; the remaining TTL (0 or less: the lease is gone)."""
        r = await self.call("/v3/lease/keepalive", {"ID": str(lease)})
        try:
            return int(r.get("TTL", 0))
        except (TypeError, ValueError) as exc:
            raise EtcdError(f"keep-alive: unexpected reply {r!r}") from exc

    async def revoke(self, lease: int) -> None:
        await self.call("/v3/lease/revoke", {"ID": str(lease)})

    async def range(self, key: bytes, *, prefix: bool = False) -> tuple[int, list[KeyValue]]:
        body: dict[str, Any] = {"key": _b64(key)}
        if prefix:
            body["range_end"] = _b64(prefix_end(key))
        r = await self.call("/v3/kv/range", body)
        try:
            return int(r["header"]["revision"]), [_kv(kv) for kv in r.get("kvs", ())]
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise EtcdError(f"range: unexpected reply {r!r}") from exc

    async def put(self, key: bytes, value: bytes, *, lease: int = 0) -> int:
        body: dict[str, Any] = {"key": _b64(key), "value": _b64(value)}
        if lease:
            body["lease"] = str(lease)
        r = await self.call("/v3/kv/put", body)
        try:
            return int(r["header"]["revision"])
        except (KeyError, TypeError, ValueError) as exc:
            raise EtcdError(f"put: unexpected reply {r!r}") from exc

    async def txn(
        self,
        compare: Sequence[Compare],
        success: Sequence[Put | Delete],
        failure: Sequence[Put | Delete] = (),
    ) -> TxnResult:
        r = await self.call(
            "/v3/kv/txn",
            {
                "compare": [_compare(c) for c in compare],
                "success": [_op(op) for op in success],
                "failure": [_op(op) for op in failure],
            },
        )
        try:
            return TxnResult(bool(r.get("succeeded", False)), int(r["header"]["revision"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise EtcdError(f"txn: unexpected reply {r!r}") from exc

    async def watch(
        self, key: bytes, *, prefix: bool = False, start_revision: int = 0
    ) -> AsyncGenerator[list[WatchEvent], None]:
        """Batches of events until the connection breaks (then EtcdUnavailable): the caller
        re-reads and watches again from the revision it has seen."""
        create: dict[str, Any] = {"key": _b64(key)}
        if prefix:
            create["range_end"] = _b64(prefix_end(key))
        if start_revision:
            create["start_revision"] = str(start_revision)
        stream, conn, where = await self._open("/v3/watch", {"create_request": create})
        async with stream:
            buf = bytearray()
            try:
                while True:
                    event = await self._next_event(stream, conn)
                    if isinstance(event, h11.Response):
                        if event.status_code != 200:
                            raise EtcdError(f"watch at {where}: HTTP {event.status_code}")
                        continue
                    if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                        raise EtcdUnavailable(f"watch at {where} ended")
                    if not isinstance(event, h11.Data):
                        continue
                    buf += event.data
                    if len(buf) > MAX_BODY:
                        raise EtcdError("watch message larger than the limit")
                    while b"\n" in buf:
                        line, _, rest = bytes(buf).partition(b"\n")
                        buf = bytearray(rest)
                        if not line.strip():
                            continue
                        try:
                            msg = orjson.loads(line)
                            result = msg.get("result", {})
                        except (orjson.JSONDecodeError, AttributeError) as exc:
                            raise EtcdError(
                                f"watch at {where}: bad message {line[:200]!r}"
                            ) from exc
                        if "error" in msg:
                            raise EtcdError(f"watch at {where}: {msg['error']}")
                        if result.get("canceled"):
                            raise EtcdError(
                                f"watch at {where} canceled: {result.get('cancel_reason')}"
                            )
                        events = [
                            WatchEvent(e.get("type", "PUT"), _kv(e.get("kv", {})))
                            for e in result.get("events", ())
                        ]
                        if events:
                            yield events
            except (OSError, trio.BrokenResourceError, h11.RemoteProtocolError) as exc:
                raise EtcdUnavailable(f"watch at {where}: {exc}") from exc

"""A web dashboard for a cluster: ``python -m apps.dashboard -n NAMESRV --port 8080 [--admin]``.

What rocketmq-dashboard's main pages show, on one page: the cluster and its brokers (role,
TPS, disk), topics with per-queue offsets, consumer groups with their lag, message lookup by
id and by key, and a live TPS chart.  Read-only unless started with ``--admin`` (then a topic
can be created from the page).

Served under Trio by hypercorn's trio worker: the page's data comes from the same coroutines
as rmqadmin (apps/admin.py) over one long-lived remoting client, which must live in the same
trio run as the HTTP server; hypercorn is a maintained ASGI server that runs natively on trio
(no anyio bridge to another loop).  The ASGI app itself is a handful of JSON routes and one
static page, so no web framework.
"""

from __future__ import annotations

import argparse
import functools
import json
import logging
import os
import sys
import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from importlib import resources
from typing import Any

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

from actors.remoting.client import open_remoting_client
from apps import admin
from apps.admin import Admin, AdminError

log = logging.getLogger(__name__)

Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]
MAX_BODY = 64 * 1024


def _ns(**kw: Any) -> argparse.Namespace:
    return argparse.Namespace(**kw)


class Dashboard:
    """The ASGI application: ``GET /`` is the page, ``/api/...`` its JSON."""

    def __init__(self, a: Admin, *, allow_admin: bool) -> None:
        self.a = a
        self.allow_admin = allow_admin

    async def __call__(self, scope: dict[str, Any], receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        query = dict(urllib.parse.parse_qsl(scope.get("query_string", b"").decode()))
        method, path = scope["method"], scope["path"]
        try:
            if method == "GET" and path == "/":
                page = resources.files("apps").joinpath("dashboard.html").read_bytes()
                await _reply(send, 200, page, "text/html; charset=utf-8")
                return
            if method == "GET" and path.startswith("/api/"):
                data = await self.get(path[5:], query)
            elif method == "POST" and path == "/api/topic":
                if not self.allow_admin:
                    await _json(send, 403, {"error": "read-only dashboard: start it with --admin"})
                    return
                body = await _body(receive)
                data = await self.create_topic(json.loads(body or b"{}"))
            else:
                await _json(send, 404, {"error": f"no {method} {path}"})
                return
        except AdminError as exc:
            await _json(send, 502, {"error": str(exc)})
            return
        except (KeyError, ValueError) as exc:
            await _json(send, 400, {"error": f"bad request: {exc}"})
            return
        await _json(send, 200, data)

    async def get(self, what: str, q: dict[str, str]) -> Any:
        a = self.a
        if what == "cluster":
            _, rows = await admin.cluster_list(a, _ns(clusterName=None))
            for row in rows:
                row["role"] = "MASTER" if row["brokerId"] == 0 else "SLAVE"
            return {"brokers": rows, "admin": self.allow_admin}
        if what == "topics":
            _, topics = await admin.topic_list(a, _ns(clusterModel=False))
            return sorted(topics)
        if what == "topic":
            _, rows = await admin.topic_status(a, _ns(topic=q["t"]))
            return rows
        if what == "groups":
            _, rows = await admin.consumer_progress(a, _ns(consumerGroup=None))
            return rows
        if what == "group":
            _, data = await admin.consumer_progress(a, _ns(consumerGroup=q["g"]))
            return data
        if what == "message/id":
            _, data = await admin.query_msg_by_id(a, _ns(msgId=q["id"]))
            return [data]
        if what == "message/key":
            _, data = await admin.query_msg_by_key(a, _ns(topic=q["t"], msgKey=q["k"]))
            return data
        raise KeyError(what)

    async def create_topic(self, body: dict[str, Any]) -> Any:
        args = _ns(
            topic=str(body["topic"]),
            clusterName=str(body["cluster"]),
            brokerAddr=None,
            readQueueNums=int(body.get("queues", 8)),
            writeQueueNums=int(body.get("queues", 8)),
            perm=6,
            order=False,
        )
        _, data = await admin.update_topic(self.a, args)
        return data


async def _body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += bytes(message.get("body", b""))
        if len(body) > MAX_BODY:
            raise ValueError("request body too large")
        if not message.get("more_body"):
            return body


async def _reply(send: Send, status: int, body: bytes, content_type: str) -> None:
    headers = [(b"content-type", content_type.encode()), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _json(send: Send, status: int, data: Any) -> None:
    await _reply(send, status, json.dumps(data, default=str).encode(), "application/json")


async def run(
    namesrv: list[str],
    host: str,
    port: int,
    allow_admin: bool,
    *,
    task_status: trio.TaskStatus[list[str]] = trio.TASK_STATUS_IGNORED,
) -> None:
    config = Config()
    config.bind = [f"{host}:{port}"]
    config.accesslog = None
    config.errorlog = None
    async with open_remoting_client(name="dashboard") as client:
        app = Dashboard(Admin(client, namesrv), allow_admin=allow_admin)
        await serve(app, config, task_status=task_status)  # type: ignore[arg-type]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="rmq-dashboard", description=__doc__.split("\n")[0])
    parser.add_argument("-n", "--namesrvAddr", default=os.environ.get("NAMESRV_ADDR", ""))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    parser.add_argument("--admin", action="store_true", help="allow changes (create topic)")
    args = parser.parse_args(argv)
    namesrv = [x.strip() for x in args.namesrvAddr.split(";") if x.strip()]
    if not namesrv:
        sys.stderr.write("rmq-dashboard: give -n or set NAMESRV_ADDR\n")
        return 1
    logging.basicConfig(level="INFO", format="%(asctime)s %(levelname)-5s %(name)s: %(message)s")
    log.info(
        "dashboard for %s on http://%s:%d (%s)",
        namesrv,
        args.host,
        args.port,
        "admin" if args.admin else "read-only",
    )
    try:
        trio.run(functools.partial(run, namesrv, args.host, args.port, args.admin))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""A server's reply reduced to what must agree between Apache's broker and ours.

An *observation* keeps the response code, flag, language and serialize type; the header keys
with the kind of each value (``<int>``, ``<offset-msg-ids@broker>``, ...) or, where the value is
deterministic, the value itself; the remark (exactly, or only whether there is one); and the
body as JSON key paths with value types, as decoded message records, or as chosen properties.
Addresses and folders that differ between two runs are replaced by placeholders. The *raw*
form keeps the exact reply for the golden files.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any, Literal

import attrs

from protocol import fastjson
from protocol.codes import RequestCode, ResponseCode
from protocol.command import RemotingCommand
from protocol.fastjson import ObjectKey
from protocol.message import MessageExt, decode_records
from protocol.msgid import decode_offset_msg_id
from protocol.properties import parse_properties
from tests.compat.servers import Target

BodyKind = Literal["none", "json", "records", "properties"]


@attrs.frozen
class Capture:
    step: str
    request: dict[str, Any]
    reply: dict[str, Any] | None  # None: the server sent nothing (e.g. a oneway request)
    observation: dict[str, Any]


def _kind(value: str, target: Target) -> str:
    if value == target.broker_addr:
        return "<broker-addr>"
    if re.fullmatch(r"-?\d+", value):
        return "<int>"
    if re.fullmatch(r"[0-9A-F]{32}(,[0-9A-F]{32})*", value):
        hosts = {decode_offset_msg_id(part)[0] for part in value.split(",")}
        return "<offset-msg-ids@broker>" if hosts == {target.broker_addr} else "<offset-msg-ids>"
    if value in ("true", "false"):
        return "<bool>"
    return "<str>"


def _anonymize(value: Any, target: Target) -> Any:
    """Addresses differ between targets; everything else is compared as is."""
    if isinstance(value, str):
        return value.replace(target.broker_addr, "<broker-addr>").replace(
            target.namesrv_addr, "<namesrv-addr>"
        )
    return value


def _anonymize_tree(value: Any, target: Target) -> Any:
    """Addresses and the target's folder (e.g. in ``commitLogDiskRatio_<path>`` keys) neutralised."""
    folder = str(target.log_dir)
    if isinstance(value, dict):
        return {
            (k.replace(folder, "<work-dir>") if isinstance(k, str) else k): _anonymize_tree(
                v, target
            )
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [_anonymize_tree(v, target) for v in value]
    if isinstance(value, str):
        return _anonymize(value, target).replace(folder, "<work-dir>")
    return value


def _drop_keys(value: Any, pattern: re.Pattern[str]) -> Any:
    if isinstance(value, dict):
        return {
            k: _drop_keys(v, pattern)
            for k, v in value.items()
            if not (isinstance(k, str) and pattern.fullmatch(k))
        }
    if isinstance(value, list):
        return [_drop_keys(v, pattern) for v in value]
    return value


def json_shape(value: Any, maps: frozenset[str], path: str = "$") -> set[str]:
    """Every key path of a JSON value with the type found there.

    Objects at a path listed in ``maps`` are maps keyed by data (topic names, queues, broker
    ids): their keys collapse to ``{}`` so only the shape of their values counts.
    """
    out: set[str] = set()
    if isinstance(value, dict):
        if path in maps:
            out.add(f"{path}:map")
            for key, item in value.items():
                key_type = "object" if isinstance(key, ObjectKey) else type(key).__name__
                out.add(f"{path}{{}}:key-{key_type}")
                out |= json_shape(item, maps, f"{path}{{}}")
        else:
            out.add(f"{path}:object")
            for key, item in value.items():
                out |= json_shape(item, maps, f"{path}.{key}")
    elif isinstance(value, list):
        out.add(f"{path}:list")
        for item in value:
            out |= json_shape(item, maps, f"{path}[]")
    else:
        out.add(f"{path}:{type(value).__name__}")
    return out


def record_view(msg: MessageExt, target: Target) -> dict[str, Any]:
    born_ip = msg.born_host.rpartition(":")[0]
    return {
        "topic": msg.topic,
        "queueId": msg.queue_id,
        "queueOffset": msg.queue_offset,
        "flag": msg.flag,
        "sysFlag": msg.sys_flag,
        "bodyCRC": msg.body_crc,
        "storeSize": msg.store_size,
        "body": msg.body.decode(errors="replace"),
        "reconsumeTimes": msg.reconsume_times,
        "preparedTransactionOffset": msg.prepared_transaction_offset,
        "bornHost": f"{born_ip}:<port>",
        "storeHost": _anonymize(msg.store_host, target),
        "properties": dict(sorted(msg.properties.items())),
    }


def observe(
    request: RemotingCommand,
    reply: RemotingCommand | None,
    target: Target,
    *,
    exact_ext: Iterable[str] = (),
    exact_remark: bool = False,
    body: BodyKind = "none",
    maps: Iterable[str] = (),
    ignore: str | None = None,
    property_keys: Iterable[str] = (),
) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any] | None, Any]:
    """(observation, raw request, raw reply, decoded body) of one exchange.

    ``body`` says how to read the reply body: ``none`` (only whether there is one), ``json``
    (shape; ``maps`` lists the paths of data-keyed maps, object keys fully matching the regex
    ``ignore`` are left out), ``records`` (stored messages) or
    ``properties`` (the values of ``property_keys``). A ``None`` reply means none was sent.
    """
    if reply is None:
        return {"reply": None}, _request_raw(request), None, None
    exact = set(exact_ext)
    observation: dict[str, Any] = {
        "code": reply.code,
        "flag": reply.flag,
        "language": reply.language.name,
        "serializeType": reply.serialize_type.name,
        "remark": _anonymize(reply.remark, target)
        if exact_remark
        else ("<str>" if reply.remark else None),
        "extFields": {
            key: _anonymize(value, target) if key in exact else _kind(value, target)
            for key, value in sorted(reply.ext_fields.items())
        },
    }
    raw: dict[str, Any] = {
        "code": reply.code,
        "codeName": _code_name(reply.code),
        "flag": reply.flag,
        "language": reply.language.name,
        "version": reply.version,
        "remark": reply.remark,
        "extFields": dict(sorted(reply.ext_fields.items())),
        "serializeType": reply.serialize_type.name,
        "bodyLength": len(reply.body),
    }
    decoded: Any = None
    if not reply.body:
        observation["body"] = None
    elif body == "json":
        decoded = fastjson.loads(reply.body)
        tree = _anonymize_tree(decoded, target)
        if ignore is not None:
            tree = _drop_keys(tree, re.compile(ignore))
        observation["body"] = sorted(json_shape(tree, frozenset(maps)))
        raw["body"] = reply.body.decode()
    elif body == "records":
        decoded = decode_records(reply.body)
        observation["body"] = [record_view(m, target) for m in decoded]
        raw["body"] = [_record_raw(m) for m in decoded]
    elif body == "properties":
        decoded = parse_properties(reply.body.decode())
        observation["body"] = {key: _anonymize(decoded.get(key), target) for key in property_keys}
        raw["body"] = reply.body.decode()
    else:
        observation["body"] = "<bytes>"
    return observation, _request_raw(request), raw, decoded


def _code_name(code: int) -> str:
    try:
        return ResponseCode(code).name
    except ValueError:
        return str(code)


def _request_raw(request: RemotingCommand) -> dict[str, Any]:
    try:
        name = RequestCode(request.code).name
    except ValueError:
        name = str(request.code)
    return {
        "code": request.code,
        "codeName": name,
        "flag": request.flag,
        "serializeType": request.serialize_type.name,
        "extFields": dict(request.ext_fields),
        "body": request.body.decode(errors="replace") if request.body else None,
    }


def _record_raw(msg: MessageExt) -> dict[str, Any]:
    return {
        "topic": msg.topic,
        "queueId": msg.queue_id,
        "queueOffset": msg.queue_offset,
        "commitLogOffset": msg.commit_log_offset,
        "sysFlag": msg.sys_flag,
        "bornHost": msg.born_host,
        "storeHost": msg.store_host,
        "bornTimestamp": msg.born_timestamp,
        "storeTimestamp": msg.store_timestamp,
        "storeSize": msg.store_size,
        "body": msg.body.decode(errors="replace"),
        "properties": msg.properties,
        "offsetMsgId": msg.msg_id,
    }


def differences(expected: Any, actual: Any, path: str = "") -> list[str]:
    """Readable list of where two observations disagree."""
    if isinstance(expected, dict) and isinstance(actual, dict):
        out = []
        for key in sorted(set(expected) | set(actual), key=str):
            sub = f"{path}.{key}" if path else str(key)
            if key not in actual:
                out.append(f"{sub}: missing (expected {expected[key]!r})")
            elif key not in expected:
                out.append(f"{sub}: unexpected {actual[key]!r}")
            else:
                out += differences(expected[key], actual[key], sub)
        return out
    if (
        isinstance(expected, list)
        and isinstance(actual, list)
        and all(isinstance(x, str) for x in expected + actual)
        and path.endswith("body")
    ):
        # A JSON shape: a set of key paths.
        missing = sorted(set(expected) - set(actual))
        extra = sorted(set(actual) - set(expected))
        return [f"{path}: missing {p}" for p in missing] + [
            f"{path}: unexpected {p}" for p in extra
        ]
    if isinstance(expected, list) and isinstance(actual, list) and len(expected) == len(actual):
        out = []
        for i, (e, a) in enumerate(zip(expected, actual, strict=True)):
            out += differences(e, a, f"{path}[{i}]")
        return out
    if expected != actual:
        return [f"{path}: expected {expected!r}, got {actual!r}"]
    return []

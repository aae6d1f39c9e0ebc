"""plain_acl.yml and the decision of Java's PlainAccessValidator / PlainPermissionManager
(4.9.7, reference §10.2-10.3).

Decision order, as Java's: the request's resources are derived first (a malformed heartbeat
body or header is refused even from a white-listed address); then a peer matching a global
white address passes; a request without ``AccessKey`` or with an unknown one is refused; a
peer matching the account's ``whiteRemoteAddress`` passes unsigned; the signature must match;
a PUB of ``RMQ_SYS_TRACE_TOPIC`` passes; admin-only codes need ``admin: true``; each resource
needs its explicit permission, else the account's default for topics or groups.

Groups are resources named by their retry topic (``%RETRY%<group>``).  When several resources
fail, Java names the first in its HashMap's iteration order; ``_java_hashmap_order`` keeps
that order so the refusal text is the same.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import attrs
import yaml

from protocol import fastjson
from protocol.acl.addresses import AddressPattern, AddressPatternError, parse_address_pattern
from protocol.acl.signing import ACCESS_KEY, SIGNATURE, UNIQUE_KEY_QUERY, sign, signature_content
from protocol.codes import RequestCode

DENY = 1
ANY = 2
PUB = 4
SUB = 8

RETRY_PREFIX = "%RETRY%"
TRACE_TOPIC = "RMQ_SYS_TRACE_TOPIC"
# Permission.ADMIN_CODE: the requests only an admin account may make.
ADMIN_CODES = frozenset(
    {
        RequestCode.UPDATE_AND_CREATE_TOPIC,
        RequestCode.UPDATE_BROKER_CONFIG,
        RequestCode.DELETE_TOPIC_IN_BROKER,
        RequestCode.UPDATE_AND_CREATE_SUBSCRIPTIONGROUP,
        RequestCode.DELETE_SUBSCRIPTIONGROUP,
    }
)
# AclConstants.ACCESS_KEY_MIN_LENGTH / SECRET_KEY_MIN_LENGTH: keys must be longer than this.
KEY_MIN_LENGTH = 6
_PERMS = {"PUB": PUB, "SUB": SUB, "PUB|SUB": PUB | SUB, "SUB|PUB": PUB | SUB, "DENY": DENY}


class AclConfigError(ValueError):
    """plain_acl.yml cannot be used; the message says where (never quoting a secret)."""


def parse_perm(text: str | None) -> int:
    """Permission.parsePermFromString: anything but PUB, SUB, PUB|SUB, SUB|PUB is DENY."""
    return DENY if text is None else _PERMS.get(text.strip(), DENY)


def perm_allows(needed: int, owned: int) -> bool:
    """Permission.checkPermission."""
    if owned & DENY:
        return False
    if needed & ANY:
        return bool(owned & (PUB | SUB))
    return bool(needed & owned)


def retry_topic(group: str) -> str:
    return RETRY_PREFIX + group


def _describe(resource: str) -> str:
    if resource.startswith(RETRY_PREFIX):
        return f"group:{resource[len(RETRY_PREFIX) :]}"
    return f"topic:{resource}"


@attrs.frozen
class Account:
    access_key: str
    secret_key: str = attrs.field(repr=False)
    white: AddressPattern
    admin: bool
    default_topic_perm: int
    default_group_perm: int
    # None when the account lists neither topicPerms nor groupPerms (Java's null map, which
    # lets an admin pass every resource check).
    perms: Mapping[str, int] | None


@attrs.frozen
class Refusal:
    """Why a request is refused, in Java's words, and by which account (if any)."""

    reason: str
    access_key: str | None

    @property
    def remark(self) -> str:
        return f"org.apache.rocketmq.acl.common.AclException: {self.reason}"


@attrs.frozen
class PlainAcl:
    """One loaded plain_acl.yml."""

    global_white: tuple[AddressPattern, ...] = ()
    accounts: Mapping[str, Account] = attrs.field(factory=dict)
    # Things Java also only logs (a repeated accessKey: the first account wins).
    warnings: tuple[str, ...] = ()

    def check(
        self, code: int, ext_fields: Mapping[str, str | None], body: bytes, peer_ip: str
    ) -> Refusal | None:
        """None when the request may proceed, else the refusal."""
        access_key = ext_fields.get(ACCESS_KEY)
        try:
            needed = required_resources(code, ext_fields, body)
        except _ResourceError as exc:
            return Refusal(str(exc), access_key)
        for pattern in self.global_white:
            if pattern.matches(peer_ip):
                return None
        if access_key is None:
            return Refusal("No accessKey is configured", None)
        account = self.accounts.get(access_key)
        if account is None:
            return Refusal(f"No acl config for {access_key}", access_key)
        if account.white.matches(peer_ip):
            return None
        content = signature_content(ext_fields, body, skip=(SIGNATURE, UNIQUE_KEY_QUERY))
        if sign(content, account.secret_key) != ext_fields.get(SIGNATURE):
            return Refusal(f"Check signature failed for accessKey={access_key}", access_key)
        if needed.get(TRACE_TOPIC) == PUB:
            return None
        return _check_perm(code, needed, account)


def _check_perm(code: int, needed: Mapping[str, int], account: Account) -> Refusal | None:
    if code in ADMIN_CODES and not account.admin:
        return Refusal(
            f"Need admin permission for request code={code}, "
            f"but accessKey={account.access_key} is not",
            account.access_key,
        )
    if not needed or (account.perms is None and account.admin):
        return None
    owned = account.perms or {}
    for resource in _java_hashmap_order(needed):
        perm = owned.get(resource)
        if perm is None:
            is_group = resource.startswith(RETRY_PREFIX)
            perm = account.default_group_perm if is_group else account.default_topic_perm
        if not perm_allows(needed[resource], perm):
            return Refusal(f"No default permission for {_describe(resource)}", account.access_key)
    return None


# ------------------------------------------------------------------ resources of a request


class _ResourceError(Exception):
    pass


# Java decodes the headers of UNREGISTER_CLIENT, GET_CONSUMER_LIST_BY_GROUP and
# UPDATE_CONSUMER_OFFSET here; 4.9.7's decodeCommandCustomHeader logs a missing @CFNotNull
# field and goes on (checked on the jar), so a missing field is simply no resource.


def required_resources(code: int, ext: Mapping[str, str | None], body: bytes) -> dict[str, int]:
    """PlainAccessValidator.parse: the resources a request touches and the permission it needs.

    Insertion order is Java's ``put`` order (it decides the HashMap's iteration order).
    """
    needed: dict[str, int] = {}

    def add(resource: str | None, perm: int) -> None:
        if resource is not None:
            needed[resource] = perm

    def group(name: str | None) -> str | None:
        return None if name is None else retry_topic(name)

    if code == RequestCode.SEND_MESSAGE or code == RequestCode.SEND_MESSAGE_V2:
        topic_key, group_key = (
            ("topic", "group") if code == RequestCode.SEND_MESSAGE else ("b", "a")
        )
        topic = ext.get(topic_key)
        if topic is not None and topic.startswith(RETRY_PREFIX):
            add(group(ext.get(group_key)), SUB)
        else:
            add(topic, PUB)
    elif code == RequestCode.CONSUMER_SEND_MSG_BACK:
        add(group(ext.get("group")), SUB)
    elif code == RequestCode.PULL_MESSAGE:
        add(ext.get("topic"), SUB)
        add(group(ext.get("consumerGroup")), SUB)
    elif code == RequestCode.QUERY_MESSAGE:
        add(ext.get("topic"), SUB)
    elif code == RequestCode.HEART_BEAT:
        for group_name, topics in _heartbeat_consumers(body):
            add(group(group_name), SUB)
            for topic in topics:
                add(topic, SUB)
    elif code == RequestCode.UNREGISTER_CLIENT or code == RequestCode.GET_CONSUMER_LIST_BY_GROUP:
        add(group(ext.get("consumerGroup")), SUB)
    elif code == RequestCode.UPDATE_CONSUMER_OFFSET:
        add(group(ext.get("consumerGroup")), SUB)
        add(ext.get("topic"), SUB)
    return needed


def _heartbeat_consumers(body: bytes) -> list[tuple[str | None, list[str | None]]]:
    try:
        data = fastjson.loads(body) if body else None
    except fastjson.JsonDecodeError as exc:
        raise _ResourceError(f"heartbeat body is not JSON: {exc}") from None
    if not isinstance(data, dict):
        raise _ResourceError("heartbeat body is not a HeartbeatData object")
    consumers: list[tuple[str | None, list[str | None]]] = []
    for consumer in _objects(data.get("consumerDataSet")):
        topics = [
            _opt_str(sub.get("topic")) for sub in _objects(consumer.get("subscriptionDataSet"))
        ]
        consumers.append((_opt_str(consumer.get("groupName")), topics))
    return consumers


def _objects(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
        raise _ResourceError("heartbeat body has a malformed consumer or subscription set")
    return value


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def _java_string_hash(text: str) -> int:
    h = 0
    data = text.encode("utf-16-be", "surrogatepass")
    for i in range(0, len(data), 2):
        h = (31 * h + ((data[i] << 8) | data[i + 1])) & 0xFFFFFFFF
    return h


def _java_hashmap_order(keys: Iterable[str]) -> list[str]:
    """The iteration order of a java.util.HashMap filled with ``keys`` in this order.

    Buckets ascend; within a bucket entries keep insertion order (resizes preserve it).
    Treeified buckets (8+ collisions in one bucket) are not modelled: not a real case here.
    """
    ordered = list(dict.fromkeys(keys))
    capacity = 16
    while len(ordered) > capacity * 3 // 4:
        capacity *= 2

    def bucket(key: str) -> int:
        h = _java_string_hash(key)
        return (h ^ (h >> 16)) & (capacity - 1)

    return [
        key for _, key in sorted(enumerate(ordered), key=lambda item: (bucket(item[1]), item[0]))
    ]


# ------------------------------------------------------------------ plain_acl.yml


def _text(value: Any) -> str | None:
    # snakeyaml + fastjson turn scalars into strings: "secretKey: 12345678" is an int in YAML.
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float | str):
        return str(value)
    raise AclConfigError(f"expected a scalar, got {type(value).__name__}")


def _bool(value: Any, where: str) -> bool:
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise AclConfigError(f"{where}: admin must be true or false, got {value!r}")


def _string_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise AclConfigError(f"{where} must be a list")
    return [_text(item) or "" for item in value]


def _resource_perms(items: list[str], *, groups: bool, where: str) -> dict[str, int]:
    perms: dict[str, int] = {}
    for item in items:
        # StringUtils.split(s, "="): empty pieces are dropped; exactly two must remain.
        pieces = [p for p in item.split("=") if p]
        if len(pieces) != 2:
            kind = "group" if groups else "topic"
            raise AclConfigError(f"{where}: Parse resource permission failed for {kind}:{item}")
        name = pieces[0].strip()
        perms[retry_topic(name) if groups else name] = parse_perm(pieces[1])
    return perms


def _account(raw: Any, index: int) -> Account:
    where = f"accounts[{index}]"
    if not isinstance(raw, dict):
        raise AclConfigError(f"{where} is not a mapping")
    access_key = _text(raw.get("accessKey"))
    secret_key = _text(raw.get("secretKey"))
    if (
        access_key is None
        or secret_key is None
        or len(access_key) <= KEY_MIN_LENGTH
        or len(secret_key) <= KEY_MIN_LENGTH
    ):
        raise AclConfigError(
            f"{where}: accessKey={access_key} and its secretKey cannot be null "
            f"and length should longer than {KEY_MIN_LENGTH}"
        )
    try:
        white = parse_address_pattern(_text(raw.get("whiteRemoteAddress")))
    except AddressPatternError as exc:
        raise AclConfigError(f"{where} (accessKey={access_key}): {exc}") from None
    group_items = _string_list(raw.get("groupPerms"), f"{where}.groupPerms")
    topic_items = _string_list(raw.get("topicPerms"), f"{where}.topicPerms")
    perms: dict[str, int] | None = None
    if group_items or topic_items:
        perms = _resource_perms(group_items, groups=True, where=where)
        perms.update(_resource_perms(topic_items, groups=False, where=where))
    return Account(
        access_key=access_key,
        secret_key=secret_key,
        white=white,
        admin=_bool(raw.get("admin"), where),
        default_topic_perm=parse_perm(_text(raw.get("defaultTopicPerm"))),
        default_group_perm=parse_perm(_text(raw.get("defaultGroupPerm"))),
        perms=perms,
    )


def parse_plain_acl(text: str) -> PlainAcl:
    """Parse plain_acl.yml; an empty file is an ACL with no accounts (everything refused)."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise AclConfigError(f"not valid YAML: {exc}") from None
    if data is None:
        return PlainAcl()
    if not isinstance(data, dict):
        raise AclConfigError("the top level must be a mapping")
    white: list[AddressPattern] = []
    for item in _string_list(data.get("globalWhiteRemoteAddresses"), "globalWhiteRemoteAddresses"):
        try:
            white.append(parse_address_pattern(item))
        except AddressPatternError as exc:
            raise AclConfigError(f"globalWhiteRemoteAddresses: {exc}") from None
    raw_accounts = data.get("accounts")
    if raw_accounts is not None and not isinstance(raw_accounts, list):
        raise AclConfigError("accounts must be a list")
    accounts: dict[str, Account] = {}
    warnings: list[str] = []
    for index, raw in enumerate(raw_accounts or ()):
        account = _account(raw, index)
        if account.access_key in accounts:
            warnings.append(f"accessKey {account.access_key} is repeated; the first account counts")
            continue
        accounts[account.access_key] = account
    # Blank patterns match nothing; dropping them keeps the per-request loop short.
    return PlainAcl(
        global_white=tuple(p for p in white if p.kind != "none"),
        accounts=accounts,
        warnings=tuple(warnings),
    )

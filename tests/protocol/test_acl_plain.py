"""Signing (reference §10.1 vectors) and the plain ACL decision (§10.2, Java's PlainAccessValidator)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from protocol.acl import (
    AclConfigError,
    SessionCredentials,
    parse_plain_acl,
    sign,
    sign_request,
    signature_content,
)
from protocol.acl.plain import _java_hashmap_order, _java_string_hash, required_resources
from protocol.codes import RequestCode
from protocol.command import RemotingCommand

ACL_YML = """
globalWhiteRemoteAddresses:
  - 10.10.103.*
accounts:
  - accessKey: RocketMQ
    secretKey: 12345678
    whiteRemoteAddress:
    admin: false
    defaultTopicPerm: DENY
    defaultGroupPerm: SUB
    topicPerms:
      - topicA=DENY
      - topicB=PUB|SUB
      - topicC=SUB
    groupPerms:
      - groupA=DENY
      - groupB=PUB|SUB
  - accessKey: rocketmq2
    secretKey: 12345678
    whiteRemoteAddress: 192.168.1.*
    admin: true
"""
USER = SessionCredentials("RocketMQ", "12345678")
ADMIN = SessionCredentials("rocketmq2", "12345678")
PEER = "127.0.0.1"


def test_reference_vectors() -> None:
    get_max = sign_request(
        RemotingCommand.request(RequestCode.GET_MAX_OFFSET, {"topic": "TopicTest", "queueId": "0"}),
        USER,
    )
    assert get_max.ext_fields["Signature"] == "81TVNXFMLTfMm08aNFX+r9iZBrY="
    heartbeat = sign_request(
        RemotingCommand.request(RequestCode.HEART_BEAT, {}, b'{"clientID":"x"}'), USER
    )
    assert heartbeat.ext_fields["Signature"] == "SC9kzFTBVLXXAqxyRji08hY5LG4="


def test_cpp_client_capture_without_credentials() -> None:
    # ../shared/clients/README.md: the C++ client signs with an empty key when it has none.
    ext = {"AccessKey": "", "OnsChannel": "ALIYUN", "topic": "TopicTest"}
    assert sign(signature_content(ext, b""), "") == "N/YT7X6tJe5UfutmW+uNwTTJ7Fc="


def test_java_string_order_and_hash() -> None:
    # Java sorts by UTF-16 code units: U+1F600 is D83D DE00 there, before U+FF5E.
    assert signature_content({"\uff5e": "a", "\U0001f600": "b"}, b"") == b"ba"
    assert _java_string_hash("%RETRY%groupA") == (hash_java("%RETRY%groupA"))


def hash_java(text: str) -> int:
    h = 0
    for ch in text:
        h = (31 * h + ord(ch)) & 0xFFFFFFFF
    return h


def check(acl_text: str, cmd: RemotingCommand, peer: str = PEER) -> str | None:
    refusal = parse_plain_acl(acl_text).check(cmd.code, cmd.ext_fields, cmd.body, peer)
    return None if refusal is None else refusal.reason


def send(topic: str, group: str = "pg") -> RemotingCommand:
    return RemotingCommand.request(
        RequestCode.SEND_MESSAGE_V2, {"a": group, "b": topic, "e": "0"}, b"body"
    )


def pull(topic: str, group: str) -> RemotingCommand:
    return RemotingCommand.request(
        RequestCode.PULL_MESSAGE, {"topic": topic, "consumerGroup": group, "queueId": "0"}
    )


def test_missing_and_unknown_keys() -> None:
    assert check(ACL_YML, send("topicB")) == "No accessKey is configured"
    assert check(
        ACL_YML, sign_request(send("topicB"), SessionCredentials("nobody1", "whatever"))
    ) == ("No acl config for nobody1")


def test_signature_must_match() -> None:
    assert check(ACL_YML, sign_request(send("topicB"), USER)) is None
    wrong = sign_request(send("topicB"), SessionCredentials("RocketMQ", "87654321"))
    assert check(ACL_YML, wrong) == "Check signature failed for accessKey=RocketMQ"


@given(
    st.dictionaries(st.text(min_size=1), st.text(), max_size=5), st.binary(max_size=64), st.data()
)
def test_any_tampering_is_refused(ext: dict[str, str], body: bytes, data: st.DataObject) -> None:
    ext = {k: v for k, v in ext.items() if k not in ("AccessKey", "Signature", "SecurityToken")}
    signed = sign_request(RemotingCommand.request(RequestCode.GET_MAX_OFFSET, ext, body), USER)
    assert check(ACL_YML, signed) is None
    if ext and data.draw(st.booleans()):
        key = data.draw(st.sampled_from(sorted(ext)))
        changed = dict(signed.ext_fields, **{key: ext[key] + "x"})
        tampered = RemotingCommand.request(RequestCode.GET_MAX_OFFSET, changed, body)
    else:
        tampered = RemotingCommand.request(
            RequestCode.GET_MAX_OFFSET, signed.ext_fields, body + b"x"
        )
    assert check(ACL_YML, tampered) == "Check signature failed for accessKey=RocketMQ"


def test_unique_key_query_is_not_signed() -> None:
    signed = sign_request(RemotingCommand.request(RequestCode.GET_MAX_OFFSET, {"topic": "t"}), USER)
    added = RemotingCommand.request(
        RequestCode.GET_MAX_OFFSET, dict(signed.ext_fields, _UNIQUE_KEY_QUERY="true")
    )
    assert check(ACL_YML, added) is None


def test_topic_and_group_permissions() -> None:
    assert (
        check(ACL_YML, sign_request(send("topicA"), USER))
        == "No default permission for topic:topicA"
    )
    assert (
        check(ACL_YML, sign_request(send("topicC"), USER))
        == "No default permission for topic:topicC"
    )
    assert (
        check(ACL_YML, sign_request(send("other"), USER)) == "No default permission for topic:other"
    )
    assert check(ACL_YML, sign_request(pull("topicC", "groupB"), USER)) is None
    assert (
        check(ACL_YML, sign_request(pull("topicC", "groupA"), USER))
        == "No default permission for group:groupA"
    )
    # A group not listed falls back to defaultGroupPerm (SUB).
    assert check(ACL_YML, sign_request(pull("topicB", "anyGroup"), USER)) is None


def test_send_to_retry_topic_needs_sub_on_the_group() -> None:
    # A %RETRY% topic is checked as the producer group's retry topic, SUB (Java's quirk).
    assert check(ACL_YML, sign_request(send("%RETRY%groupA", group="groupB"), USER)) is None
    assert check(ACL_YML, sign_request(send("%RETRY%x", group="groupA"), USER)) == (
        "No default permission for group:groupA"
    )


def test_trace_topic_publish_always_passes_when_signed() -> None:
    assert check(ACL_YML, sign_request(send("RMQ_SYS_TRACE_TOPIC"), USER)) is None


def test_admin_codes_need_admin() -> None:
    delete = RemotingCommand.request(RequestCode.DELETE_TOPIC_IN_BROKER, {"topic": "topicB"})
    assert check(ACL_YML, sign_request(delete, USER)) == (
        "Need admin permission for request code=215, but accessKey=RocketMQ is not"
    )
    assert check(ACL_YML, sign_request(delete, ADMIN)) is None
    # An admin without any topicPerms/groupPerms passes every resource check.
    assert check(ACL_YML, sign_request(send("topicA"), ADMIN)) is None


def test_white_addresses() -> None:
    # Global white list: no key needed at all.
    assert check(ACL_YML, send("topicA"), peer="10.10.103.7") is None
    # The account's white list: unsigned (but keyed) requests pass from there.
    keyed = RemotingCommand.request(
        RequestCode.DELETE_TOPIC_IN_BROKER, {"topic": "x", "AccessKey": "rocketmq2"}
    )
    assert check(ACL_YML, keyed, peer="192.168.1.9") is None
    assert (
        check(ACL_YML, keyed, peer="192.168.2.9")
        == "Check signature failed for accessKey=rocketmq2"
    )


def test_malformed_heartbeat_is_refused_even_from_a_white_address() -> None:
    bad = RemotingCommand.request(RequestCode.HEART_BEAT, {}, b"{not json")
    reason = check(ACL_YML, bad, peer="10.10.103.7")
    assert reason is not None
    assert reason.startswith("heartbeat body is not JSON")


def test_heartbeat_resources() -> None:
    body = (
        b'{"clientID":"c","consumerDataSet":[{"groupName":"groupB","subscriptionDataSet":'
        b'[{"topic":"topicC"},{"topic":"%RETRY%groupB"}]}],"producerDataSet":[]}'
    )
    assert required_resources(RequestCode.HEART_BEAT, {}, body) == {
        "%RETRY%groupB": 8,
        "topicC": 8,
    }
    assert (
        check(
            ACL_YML, sign_request(RemotingCommand.request(RequestCode.HEART_BEAT, {}, body), USER)
        )
        is None
    )


def test_missing_header_fields_are_no_resource() -> None:
    # 4.9.7's decodeCommandCustomHeader only logs a missing @CFNotNull field.
    cmd = sign_request(
        RemotingCommand.request(RequestCode.UNREGISTER_CLIENT, {"producerGroup": "p"}), USER
    )
    assert required_resources(cmd.code, cmd.ext_fields, cmd.body) == {}
    assert check(ACL_YML, cmd) is None


def test_hashmap_order_decides_which_refusal_is_named() -> None:
    # UPDATE_CONSUMER_OFFSET puts the group first, then the topic; Java's HashMap (16 buckets,
    # (hash ^ hash >>> 16) & 15) iterates "topicA" (bucket 0) before "%RETRY%groupA" (bucket 8).
    keys = ["%RETRY%groupA", "topicA"]
    buckets = {k: (hash_java(k) ^ (hash_java(k) >> 16)) & 15 for k in keys}
    assert buckets == {"topicA": 0, "%RETRY%groupA": 8}
    assert _java_hashmap_order(keys) == ["topicA", "%RETRY%groupA"]
    update = RemotingCommand.request(
        RequestCode.UPDATE_CONSUMER_OFFSET,
        {"consumerGroup": "groupA", "topic": "topicA", "queueId": "0", "commitOffset": "1"},
    )
    assert check(ACL_YML, sign_request(update, USER)) == "No default permission for topic:topicA"


def test_config_errors() -> None:
    with pytest.raises(AclConfigError, match="longer than 6"):
        parse_plain_acl("accounts:\n  - accessKey: short\n    secretKey: 12345678\n")
    with pytest.raises(AclConfigError, match="Parse resource permission failed"):
        parse_plain_acl(
            "accounts:\n  - accessKey: RocketMQ\n    secretKey: 12345678\n    topicPerms: [a]\n"
        )
    with pytest.raises(AclConfigError, match="address pattern"):
        parse_plain_acl("globalWhiteRemoteAddresses: [300.1.1.1]\n")
    with pytest.raises(AclConfigError, match="YAML"):
        parse_plain_acl("accounts: [\n")


def test_config_error_never_quotes_the_secret() -> None:
    with pytest.raises(AclConfigError) as info:
        parse_plain_acl("accounts:\n  - accessKey: RocketMQ\n    secretKey: s3cr\n")
    assert "s3cr" not in str(info.value)


def test_empty_file_refuses_everyone() -> None:
    assert check("", sign_request(send("t"), USER)) == "No acl config for RocketMQ"


def test_repeated_access_key_first_wins() -> None:
    acl = parse_plain_acl(
        "accounts:\n"
        "  - {accessKey: RocketMQ, secretKey: 12345678, admin: true}\n"
        "  - {accessKey: RocketMQ, secretKey: 99999999}\n"
    )
    assert acl.accounts["RocketMQ"].admin
    assert acl.warnings


def test_unknown_perm_string_is_deny() -> None:
    text = "accounts:\n  - {accessKey: RocketMQ, secretKey: 12345678, defaultTopicPerm: pub}\n"
    assert check(text, sign_request(send("t"), USER)) == "No default permission for topic:t"


def test_credentials_repr_hides_the_secret() -> None:
    assert "12345678" not in repr(USER)

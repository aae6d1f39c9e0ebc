"""RocketMQ 4.9's plain ACL (reference §10), sans-IO: request signing, address patterns,
plain_acl.yml and the permission decision.  The broker applies it in its router
(actors/broker/acl.py); our client signs with ``signing.sign_request``."""

from protocol.acl.plain import (
    ADMIN_CODES,
    Account,
    AclConfigError,
    PlainAcl,
    Refusal,
    parse_plain_acl,
)
from protocol.acl.signing import (
    ACCESS_KEY,
    SECURITY_TOKEN,
    SIGNATURE,
    SessionCredentials,
    sign,
    sign_request,
    signature_content,
)

__all__ = [
    "ACCESS_KEY",
    "ADMIN_CODES",
    "SECURITY_TOKEN",
    "SIGNATURE",
    "Account",
    "AclConfigError",
    "PlainAcl",
    "Refusal",
    "SessionCredentials",
    "parse_plain_acl",
    "sign",
    "sign_request",
    "signature_content",
]

"""The request signature of Java's AclClientRPCHook and PlainAccessValidator (reference §10.1).

Content = the values of extFields in ascending key order (Java's String order: UTF-16 code
units), the key ``Signature`` left out, followed by the body; signature = Base64(HMAC-SHA1(
secretKey, content)).  Keys are not part of the content, so the client adds ``AccessKey``
(and ``SecurityToken``) before signing and the server recomputes from what arrived.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Iterable, Mapping

import attrs

from protocol.command import RemotingCommand

ACCESS_KEY = "AccessKey"
SIGNATURE = "Signature"
SECURITY_TOKEN = "SecurityToken"
# The server leaves this one out of the content too (MixAll.UNIQUE_MSG_QUERY_FLAG).
UNIQUE_KEY_QUERY = "_UNIQUE_KEY_QUERY"


def _java_order(key: str) -> bytes:
    # Java compares Strings by UTF-16 code units; Python by code points.  They differ only
    # above U+FFFF, but a signature that differs there would be refused for no visible reason.
    return key.encode("utf-16-be", "surrogatepass")


def signature_content(
    ext_fields: Mapping[str, str | None],
    body: bytes,
    *,
    skip: Iterable[str] = (SIGNATURE,),
) -> bytes:
    """The bytes that are signed.  A null value enters as ``null``, as StringBuilder appends it."""
    left_out = set(skip)
    text = "".join(
        "null" if ext_fields[key] is None else str(ext_fields[key])
        for key in sorted(ext_fields, key=_java_order)
        if key not in left_out
    )
    # A lone surrogate becomes "?", as Java's getBytes(UTF_8) makes it.
    return text.encode("utf-8", "replace") + body


def sign(content: bytes, secret_key: str) -> str:
    digest = hmac.new(secret_key.encode("utf-8", "replace"), content, hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


@attrs.frozen
class SessionCredentials:
    """An account's keys, as the client holds them; the secret never appears in a repr."""

    access_key: str
    secret_key: str = attrs.field(repr=False)
    security_token: str | None = attrs.field(default=None, repr=False)

    def __attrs_post_init__(self) -> None:
        if not self.access_key or not self.secret_key:
            raise ValueError("an access key and a secret key are both needed to sign requests")


def sign_request(cmd: RemotingCommand, credentials: SessionCredentials) -> RemotingCommand:
    """``cmd`` with ``AccessKey`` (and ``SecurityToken``) added and signed, as
    AclClientRPCHook.doBeforeRequest does; the opaque is not signed, so it may change later."""
    ext = dict(cmd.ext_fields)
    ext.pop(SIGNATURE, None)
    ext[ACCESS_KEY] = credentials.access_key
    if credentials.security_token is not None:
        ext[SECURITY_TOKEN] = credentials.security_token
    ext[SIGNATURE] = sign(signature_content(ext, cmd.body), credentials.secret_key)
    return attrs.evolve(cmd, ext_fields=ext)

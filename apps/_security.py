"""Client-side security options shared by the tools: ACL credentials (and TLS).

``--access-key``/``--secret-key`` sign every request as Java's AclClientRPCHook does, for a
broker with ``aclEnable=true``.
"""

from __future__ import annotations

import argparse
from typing import Any

from actors.remoting.client import RequestHook
from protocol.acl import SessionCredentials, sign_request


def add_security_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("security")
    group.add_argument("--access-key", help="ACL access key (broker with aclEnable=true)")
    group.add_argument("--secret-key", help="ACL secret key (with --access-key)")


def credentials(args: argparse.Namespace) -> SessionCredentials | None:
    access_key = getattr(args, "access_key", None)
    secret_key = getattr(args, "secret_key", None)
    if not access_key and not secret_key:
        return None
    if not (access_key and secret_key):
        raise SystemExit("--access-key and --secret-key go together")
    return SessionCredentials(access_key, secret_key)


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for Producer, PushConsumer and LitePullConsumer."""
    return {"credentials": credentials(args)}


def request_hook(args: argparse.Namespace) -> RequestHook | None:
    """For a bare remoting client (open_remoting_client's ``request_hook``)."""
    creds = credentials(args)
    if creds is None:
        return None

    def hook(cmd: Any) -> Any:
        return sign_request(cmd, creds)

    return hook


def forwarded(args: argparse.Namespace) -> list[str]:
    """The same options for a child tool's command line."""
    creds = credentials(args)
    return (
        []
        if creds is None
        else ["--access-key", creds.access_key, "--secret-key", creds.secret_key]
    )

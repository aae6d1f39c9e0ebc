"""Client-side security options shared by the tools: ACL credentials and TLS.

``--access-key``/``--secret-key`` sign every request as Java's AclClientRPCHook does, for a
broker with ``aclEnable=true``.  ``--tls`` connects with TLS, checking the server's certificate
against the system's CAs, or ``--tls-ca FILE``'s; ``--tls-insecure`` checks nothing (Java's
default test mode).
"""

from __future__ import annotations

import argparse
import ssl
from typing import Any

from actors.remoting.client import RequestHook
from actors.remoting.tls import client_context
from protocol.acl import SessionCredentials, sign_request


def add_security_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("security")
    group.add_argument("--access-key", help="ACL access key (broker with aclEnable=true)")
    group.add_argument("--secret-key", help="ACL secret key (with --access-key)")
    group.add_argument("--tls", action="store_true", help="connect with TLS")
    group.add_argument("--tls-ca", metavar="FILE", help="CA certificate(s) to check servers with")
    group.add_argument(
        "--tls-insecure", action="store_true", help="TLS without checking the server certificate"
    )


def credentials(args: argparse.Namespace) -> SessionCredentials | None:
    access_key = getattr(args, "access_key", None)
    secret_key = getattr(args, "secret_key", None)
    if not access_key and not secret_key:
        return None
    if not (access_key and secret_key):
        raise SystemExit("--access-key and --secret-key go together")
    return SessionCredentials(access_key, secret_key)


def ssl_context(args: argparse.Namespace) -> ssl.SSLContext | None:
    tls_ca = getattr(args, "tls_ca", None)
    insecure = getattr(args, "tls_insecure", False)
    if not (getattr(args, "tls", False) or tls_ca or insecure):
        return None
    return client_context(trust_cert_path=tls_ca, verify=not insecure)


def client_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for Producer, PushConsumer and LitePullConsumer."""
    ctx = ssl_context(args)
    return {"credentials": credentials(args), "tls": ctx if ctx is not None else False}


def remoting_options(args: argparse.Namespace) -> dict[str, Any]:
    """Keyword arguments for open_remoting_client."""
    return {"request_hook": request_hook(args), "ssl_context": ssl_context(args)}


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

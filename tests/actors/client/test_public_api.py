"""The client's public API (issue 18): importable from ``actors.client``, every name and
every public method or property of its classes documented."""

from __future__ import annotations

import enum
import inspect

import actors.client as client

KINDS = ("Producer", "PushConsumer", "LitePullConsumer", "TransactionProducer", "Message")


def own_doc(obj: object) -> str:
    doc = obj.__dict__.get("__doc__") if inspect.isclass(obj) else getattr(obj, "__doc__", None)
    return (doc or "").strip()


def undocumented() -> list[str]:
    missing = []
    for name in client.__all__:
        obj = getattr(client, name)
        if not own_doc(obj):
            missing.append(name)
        if not inspect.isclass(obj) or issubclass(obj, enum.Enum | Exception):
            continue
        for attr, value in vars(obj).items():
            if attr.startswith("_") and attr not in ("__aenter__", "__aiter__", "__anext__"):
                continue
            func = value.fget if isinstance(value, property) else value
            if inspect.isfunction(func) and not own_doc(func):
                missing.append(f"{name}.{attr}")
    return missing


def test_every_kind_imports_from_one_place() -> None:
    assert set(KINDS) <= set(client.__all__)
    for name in client.__all__:
        assert getattr(client, name) is not None


def test_public_api_has_docstrings() -> None:
    assert undocumented() == []

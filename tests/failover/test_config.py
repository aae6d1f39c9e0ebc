"""The failover keys in broker.conf: shown by ``apps/broker.py -p``, refused when malformed."""

from __future__ import annotations

import subprocess
from pathlib import Path

from tests.apps.app_process import run_app


def _print_config(tmp_path: Path, *keys: str) -> subprocess.CompletedProcess[str]:
    """``apps/broker.py -c conf/broker.conf -p`` with ``keys`` (``--key=value``) on top."""
    return run_app("broker", tmp_path, "-c", "conf/broker.conf", "-p", *keys)


def test_print_shows_the_failover_keys_with_defaults(tmp_path: Path) -> None:
    done = _print_config(tmp_path, "--etcdEndpoints=127.0.0.1:2379,10.0.0.2:2379")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert "etcdEndpoints=127.0.0.1:2379,10.0.0.2:2379" in lines
    assert "etcdLeaseTtlSeconds=10" in lines
    assert "etcdKeyPrefix=/rocketmq" in lines


def test_malformed_endpoints_are_refused_with_the_key_named(tmp_path: Path) -> None:
    done = _print_config(tmp_path, "--etcdEndpoints=nohost")
    assert done.returncode != 0
    assert "etcdEndpoints" in done.stderr
    assert "host:port" in done.stderr


def test_a_lease_ttl_below_one_second_is_refused(tmp_path: Path) -> None:
    done = _print_config(tmp_path, "--etcdEndpoints=127.0.0.1:2379", "--etcdLeaseTtlSeconds=0")
    assert done.returncode != 0
    assert "etcdLeaseTtlSeconds" in done.stderr
    ok = _print_config(tmp_path, "--etcdEndpoints=127.0.0.1:2379", "--etcdLeaseTtlSeconds=1")
    assert ok.returncode == 0, ok.stderr
    assert "etcdLeaseTtlSeconds=1" in ok.stdout.splitlines()

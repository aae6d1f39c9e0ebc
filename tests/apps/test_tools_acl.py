"""The tools' --access-key/--secret-key against a broker with aclEnable=true (issue 19)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.store_sizes import SMALL_FILES

REPO = Path(__file__).resolve().parents[2]
ACL_YML = """
accounts:
  - accessKey: benchAdmin
    secretKey: benchSecret
    admin: true
"""


def _bench(tmp_path: Path, *keys: str) -> subprocess.CompletedProcess[str]:
    acl = tmp_path / "plain_acl.yml"
    acl.write_text(ACL_YML)
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "apps.bench_producer",
            "--count",
            "100",
            "--warmup",
            "0",
            "-w",
            "2",
            "--json",
            "--quiet",
            "--dir",
            str(tmp_path),
            "--broker-set",
            "mappedFileSizeCommitLog=16777216",
            *(f"--broker-set={k}={v}" for k, v in SMALL_FILES.items()),
            "--broker-set",
            "aclEnable=true",
            "--broker-set",
            f"plainAclFile={acl}",
            *keys,
        ],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_bench_producer_signs_with_the_given_keys(tmp_path: Path) -> None:
    done = _bench(tmp_path, "--access-key", "benchAdmin", "--secret-key", "benchSecret")
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["sent"] >= 100
    assert result["failed"] == 0


def test_bench_producer_without_keys_is_refused(tmp_path: Path) -> None:
    done = _bench(tmp_path)
    assert done.returncode != 0
    assert "No accessKey is configured" in done.stdout + done.stderr

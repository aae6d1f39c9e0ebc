"""The stock RocketMQ 4.9.8 Java client against each target (issue 9, "Java client conformance").

Each program (tests/compat/java/client) sends, consumes and checks on its own and exits
non-zero on any failure; its last line says what it saw.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat.jvm import Jvm, check_program
from tests.compat.servers import Names, Target

pytestmark = [pytest.mark.compat, pytest.mark.java]

PROGRAMS = {
    "sync": "sync sends, concurrent clustering push consumer, ids/keys/offsets as sent",
    "async": "async sends with callbacks, lite pull consumer (subscribe)",
    "oneway": "oneway sends, lite pull consumer (assign + seekToBegin)",
    "batch": "one batch send, consecutive offsets in one queue",
    "orderly": "queue selector sends, orderly push consumer keeps per-order sequence",
    "delay": "delay levels 1 and 2 delivered to the real topic no earlier than due",
    "clustering": "two consumers of one clustering group split the queues, no duplicates",
    "broadcast": "two broadcasting consumers each get everything",
    "tag-filter": "subscription 'TagA || TagC' gets exactly those tags",
}


def run_program(
    jvm: Jvm,
    target: Target,
    names: Names,
    program: str,
    work_dir: Path,
    system_properties: dict[str, str] | None = None,
) -> None:
    done = jvm.run_client(
        program,
        {"namesrv": target.namesrv_addr, "topic": names.topic, "group": names.group},
        work_dir=work_dir,
        system_properties=system_properties,
    )
    check_program(
        done,
        f"{program} against {target.name}",
        f"client log under {work_dir}\n--- servers\n{target.diagnose()}",
    )


@pytest.mark.parametrize("program", list(PROGRAMS))
def test_program(jvm: Jvm, target: Target, names: Names, program: str, client_dir: Path) -> None:
    run_program(jvm, target, names, program, client_dir)


@pytest.mark.parametrize("program", ["sync", "orderly"])
def test_program_with_binary_headers(
    jvm: Jvm, target: Target, names: Names, program: str, client_dir: Path
) -> None:
    """The same client with rocketmq.serialize.type=ROCKETMQ: every request and reply uses the
    binary header (namesrv and broker must answer in the form they were asked in)."""
    run_program(jvm, target, names, program, client_dir, {"rocketmq.serialize.type": "ROCKETMQ"})


@pytest.mark.parametrize("target", ["apache", "ours"], indirect=True)
def test_transaction(jvm: Jvm, target: Target, names: Names, client_dir: Path) -> None:
    """Commit delivered, rollback dropped, unknown resolved through the broker's check-back."""
    run_program(jvm, target, names, "transaction", client_dir)

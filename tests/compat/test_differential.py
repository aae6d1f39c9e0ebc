"""The same raw request sequence against Apache's broker and ours (issue 9, "Differential test").

Apache's observations are kept as golden files (tests/compat/golden/<step>.json, which also hold
the exact replies for re-implementers). Against ``apache`` each step checks that the golden file
still describes the live reference; against ``ours`` each step checks that ours answers the same.
Regenerate from the live reference with ``COMPAT_UPDATE_GOLDEN=1`` (apache target only).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

from tests.compat.differential import STEPS, run_scenario
from tests.compat.observe import Capture, differences
from tests.compat.servers import Target

pytestmark = [pytest.mark.compat, pytest.mark.java]

GOLDEN = Path(__file__).resolve().parent / "golden"
UPDATE = os.environ.get("COMPAT_UPDATE_GOLDEN") == "1"

_runs: dict[str, tuple[dict[str, Capture], BaseException | None]] = {}


def scenario_for(target: Target) -> tuple[dict[str, Capture], BaseException | None]:
    """The scenario runs once per target; every step test reads its part."""
    if target.name not in _runs:
        captures, error = trio.run(run_scenario, target, "T_differential", "G_differential")
        _runs[target.name] = ({c.step: c for c in captures}, error)
        if UPDATE and target.name == "apache" and error is None:
            GOLDEN.mkdir(exist_ok=True)
            for capture in captures:
                document = {
                    "step": capture.step,
                    "request": capture.request,
                    "reply": capture.reply,
                    "observation": capture.observation,
                }
                path = GOLDEN / f"{capture.step}.json"
                path.write_text(json.dumps(document, indent=2, sort_keys=False) + "\n")
    return _runs[target.name]


@pytest.mark.parametrize("step", STEPS)
def test_step(target: Target, step: str) -> None:
    captures, error = scenario_for(target)
    capture = captures.get(step)
    assert capture is not None, (
        f"the scenario against {target.name} stopped before {step!r}: {error!r}\n"
        f"--- servers\n{target.diagnose()}"
    )
    golden_path = GOLDEN / f"{step}.json"
    assert golden_path.exists(), (
        f"no {golden_path}; run the apache target with COMPAT_UPDATE_GOLDEN=1"
    )
    expected = json.loads(golden_path.read_text())["observation"]
    found = differences(expected, capture.observation)
    assert not found, (
        f"{step}: {target.name} differs from Apache's reply ({golden_path.name}):\n  "
        + "\n  ".join(found)
        + f"\n--- request\n{json.dumps(capture.request)}\n--- reply\n{json.dumps(capture.reply)}"
    )

"""Processes started ahead of time: imports done, waiting for one line on stdin to go on.

A power-loss round restarts the file-system daemon and the broker; most of a Python process's
start is importing (about 2 s of the broker's, on two busy cores), none of which touches the
store. Starting the next process while the current one runs keeps 50 rounds within a minute or
two; what runs after "go" is exactly what ``python apps/broker.py ...`` runs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.compat.processes import ManagedProcess, _die_with_parent


class Warm:
    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        *,
        log_dir: Path,
        cwd: Path,
        env: Mapping[str, str],
    ) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.log_path = log_dir / f"{name}.out"
        self.name = name
        with self.log_path.open("wb") as log:
            self.popen = subprocess.Popen(
                list(argv),
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=log,
                stderr=subprocess.STDOUT,
                preexec_fn=_die_with_parent,
            )

    def go(self) -> ManagedProcess:
        assert self.popen.stdin is not None
        self.popen.stdin.write(b"go\n")
        self.popen.stdin.close()
        return ManagedProcess(name=self.name, popen=self.popen, log_path=self.log_path)

    def discard(self) -> None:
        if self.popen.stdin is not None and not self.popen.stdin.closed:
            self.popen.stdin.close()  # EOF: it exits without doing anything
        try:
            self.popen.wait(5)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()


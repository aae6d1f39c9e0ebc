"""Processes started ahead of time, so a power-loss round does not wait for imports.

A round restarts the file-system daemon and the broker; most of a Python process's start is
importing (about 1.5 s of CPU for the broker), none of which touches the store.  ``Warm``: a
process started while the current one runs, waiting for one line on stdin to go on (the next
file-system daemon).  ``Zygote``: broker processes forked from one that imported the broker once
(zygote.py); each then runs ``apps.broker.main`` as ``python apps/broker.py`` would.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

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


ZYGOTE = Path(__file__).with_name("zygote.py")


class Zygote:
    """The client of tests/powerloss/zygote.py: broker processes forked from one that imported
    the broker once."""

    def __init__(self, *, log_dir: Path, cwd: Path, env: Mapping[str, str]) -> None:
        log_dir.mkdir(parents=True, exist_ok=True)
        self.cwd = cwd
        with (log_dir / "zygote.out").open("wb") as log:
            self.popen = subprocess.Popen(
                [sys.executable, str(ZYGOTE)],
                cwd=cwd,
                env=dict(env),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                preexec_fn=_die_with_parent,
            )

    def _call(self, **cmd: object) -> dict[str, Any]:
        assert self.popen.stdin is not None
        assert self.popen.stdout is not None
        self.popen.stdin.write(json.dumps(cmd).encode() + b"\n")
        self.popen.stdin.flush()
        line = self.popen.stdout.readline()
        if not line:
            raise RuntimeError(f"broker zygote exited ({self.popen.poll()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def spawn(
        self, name: str, argv: Sequence[str], *, log_path: Path, env: Mapping[str, str]
    ) -> ForkedProcess:
        pid = self._call(
            op="spawn", argv=list(argv), log=str(log_path), cwd=str(self.cwd), env=dict(env)
        )["pid"]
        return ForkedProcess(self, name, int(pid), log_path)

    def wait(self, pid: int, timeout: float) -> int | None:
        status = self._call(op="wait", pid=pid, timeout=timeout)["status"]
        return None if status is None else int(status)

    def close(self) -> None:
        if self.popen.stdin is not None:
            self.popen.stdin.close()
        try:
            self.popen.wait(10)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
        if self.popen.stdout is not None:
            self.popen.stdout.close()


class ForkedProcess:
    """ManagedProcess's interface for a child of the zygote."""

    def __init__(self, zygote: Zygote, name: str, pid: int, log_path: Path) -> None:
        self.zygote = zygote
        self.name = name
        self.pid = pid
        self.log_path = log_path
        self.returncode: int | None = None

    def wait(self, timeout: float) -> int | None:
        if self.returncode is None:
            self.returncode = self.zygote.wait(self.pid, timeout)
        return self.returncode

    def alive(self) -> bool:
        return self.wait(0) is None

    def kill(self) -> None:
        if self.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def stop(self, grace: float = 5.0) -> int:
        """SIGTERM, then SIGKILL after ``grace`` seconds; the exit status."""
        if self.alive():
            os.kill(self.pid, signal.SIGTERM)
            if self.wait(grace) is None:
                self.kill()
        code = self.wait(30)
        assert code is not None, f"{self.name} (pid {self.pid}) survived SIGKILL"
        return code

    def describe(self) -> str:
        state = "running" if self.alive() else f"exited with {self.returncode}"
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError as exc:
            text = f"<no log: {exc}>"
        tail = "\n".join(text.splitlines()[-40:])
        return f"{self.name} (pid {self.pid}, {state}), output {self.log_path}:\n{tail}"

"""A broker zygote: imports the broker once, then forks a fresh broker process per start.

``python tests/powerloss/zygote.py`` reads one JSON command per line on stdin and answers one
JSON line on stdout:

* ``{"op": "spawn", "argv": [...], "log": PATH, "cwd": DIR, "env": {...}}`` forks a child that
  sends its output to PATH and runs ``apps.broker.main(argv)``, i.e. what
  ``python apps/broker.py ARGV`` runs, minus the imports; answers ``{"pid": N}``;
* ``{"op": "wait", "pid": N, "timeout": S}`` reaps the child: ``{"status": CODE}`` (negative: the
  signal that ended it) or ``{"status": null}`` if it still runs after S seconds.

A power-loss round kills the broker with SIGKILL and starts it again; importing the broker costs
more CPU than its recovery does, and fifty rounds would spend most of their time importing.  The
children are ordinary processes (their own pid, killed by pid); the zygote takes nothing else from
the test.  It dies with the test run (PR_SET_PDEATHSIG), and its children die with it.
"""

from __future__ import annotations

import ctypes
import json
import os
import signal
import sys
import time
import traceback

import apps.broker

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


def _child(argv: list[str], log: str, cwd: str, env: dict[str, str]) -> None:
    code = 1
    try:
        _die_with_parent()
        fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        os.dup2(fd, 1)
        os.dup2(fd, 2)
        os.close(fd)
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        sys.argv = ["apps/broker.py", *argv]
        code = apps.broker.main(argv)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _wait(pid: int, timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while True:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            return os.waitstatus_to_exitcode(status)
        if time.monotonic() >= deadline:
            return None
        time.sleep(0.005)


def main() -> None:
    _die_with_parent()
    for line in sys.stdin:
        cmd = json.loads(line)
        if cmd["op"] == "spawn":
            sys.stdout.flush()
            pid = os.fork()
            if pid == 0:
                _child(cmd["argv"], cmd["log"], cmd["cwd"], cmd["env"])
            answer: dict[str, int | None] = {"pid": pid}
        elif cmd["op"] == "wait":
            answer = {"status": _wait(int(cmd["pid"]), float(cmd["timeout"]))}
        else:
            answer = {"error": 1}
        print(json.dumps(answer), flush=True)


if __name__ == "__main__":
    main()

"""Mount, crash and remount tests/powerloss/lazyfs.py as a separate process.

``LazyMount`` owns a backing directory and a mountpoint (both under the test's tmp dir, prefixed
``powerloss-`` so a stale mount is recognisable as ours).  ``power_loss()`` is the crash the
tests need: drop everything unsynced, unmount (the kernel writes back dirty pages: discarded),
and mount a fresh daemon on the same backing directory.

Call it from the main thread only: the daemons die with the thread that spawned them
(PR_SET_PDEATHSIG), and a worker thread that goes idle exits.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from tests.compat.processes import ManagedProcess, child_env
from tests.powerloss.warm import Warm

LAZYFS = Path(__file__).with_name("lazyfs.py")
REPO = Path(__file__).resolve().parents[2]
CTL = ".lazyfs-ctl"


def fuse_unavailable_reason() -> str | None:
    """Why a FUSE mount cannot work here (None: it should)."""
    if not os.path.exists("/dev/fuse"):
        return "no /dev/fuse (FUSE kernel module missing or not exposed to this container)"
    if shutil.which("fusermount3") is None:
        return "fusermount3 missing (Debian package fuse3; scripts/setup.sh installs it)"
    try:
        import pyfuse3  # noqa: F401
    except ImportError as exc:
        return f"pyfuse3 not importable ({exc}; the test extra of pyproject.toml installs it)"
    return None


def _mounted(mountpoint: Path) -> bool:
    target = os.fsencode(mountpoint)
    with open("/proc/self/mountinfo", "rb") as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 4 and fields[4].replace(b"\\040", b" ") == target:
                return True
    return False


class MountFailed(RuntimeError):
    pass


class LazyMount:
    def __init__(self, root: Path) -> None:
        self.backing = root / "powerloss-backing"
        self.mountpoint = root / "powerloss-mnt"
        self.log_dir = root / "logs"
        self.backing.mkdir(parents=True, exist_ok=True)
        self.mountpoint.mkdir(parents=True, exist_ok=True)
        self.daemon: ManagedProcess | None = None
        self.spare: Warm | None = None  # the next daemon, imports done (warm.py)
        self.fsync_delay_ms = 0  # a slow disk, set again on every mount (lazyfs.py)
        self.generation = 0

    @property
    def path(self) -> Path:
        return self.mountpoint

    def mount(self, timeout: float = 20.0) -> None:
        assert self.daemon is None or not self.daemon.alive(), "already mounted"
        spare = self.spare or self._warm()
        self.daemon = spare.go()
        self.spare = self._warm()
        deadline = time.monotonic() + timeout
        while not _mounted(self.mountpoint):
            if not self.daemon.alive():
                raise MountFailed(f"lazyfs did not mount: {self.daemon.describe()}")
            if time.monotonic() > deadline:
                self.daemon.popen.kill()
                raise MountFailed(f"lazyfs mount timed out: {self.daemon.describe()}")
            time.sleep(0.02)
        os.stat(self.mountpoint)  # the daemon answers
        if self.fsync_delay_ms:
            self.ctl(f"fsync-delay-ms {self.fsync_delay_ms}")

    def _warm(self) -> Warm:
        self.generation += 1
        argv = [sys.executable, str(LAZYFS), "--wait", str(self.backing), str(self.mountpoint)]
        return Warm(
            f"lazyfs-{self.generation}", argv, log_dir=self.log_dir, cwd=REPO, env=child_env()
        )

    def set_fsync_delay(self, ms: int) -> None:
        """Every fsync takes ``ms`` (now and after every remount): a slow disk."""
        self.fsync_delay_ms = ms
        self.ctl(f"fsync-delay-ms {ms}")

    def ctl(self, command: str) -> None:
        with open(self.mountpoint / CTL, "w") as fh:
            fh.write(command)

    def status(self) -> dict[str, int]:
        text = (self.mountpoint / CTL).read_text()
        return {k: int(v) for k, v in (item.split("=") for item in text.split())}

    def crash(self) -> None:
        """Drop every change not yet durable; every later one is discarded."""
        self.ctl("crash")

    def unmount(self, timeout: float = 30.0) -> None:
        if _mounted(self.mountpoint):
            result = subprocess.run(
                ["fusermount3", "-u", str(self.mountpoint)],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if result.returncode != 0 and _mounted(self.mountpoint):
                raise MountFailed(f"fusermount3 -u failed: {result.stderr.strip()}")
        if self.daemon is not None:
            try:
                code = self.daemon.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                self.daemon.popen.kill()
                raise MountFailed(f"lazyfs did not exit: {self.daemon.describe()}")
            if code != 0:
                raise MountFailed(f"lazyfs failed: {self.daemon.describe()}")
            self.daemon = None

    def power_loss(self) -> None:
        """Crash, unmount, mount a new daemon: the mount now shows only what was durable."""
        self.crash()
        self.unmount()
        self.mount()

    def cleanup(self) -> None:
        """Never leave a mount behind, whatever state the test ended in."""
        if _mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-u", str(self.mountpoint)], capture_output=True)
        if _mounted(self.mountpoint):
            subprocess.run(["fusermount3", "-u", "-z", str(self.mountpoint)], capture_output=True)
        if self.daemon is not None and self.daemon.alive():
            self.daemon.popen.kill()
            self.daemon.popen.wait()
        self.daemon = None
        if self.spare is not None:
            self.spare.discard()
            self.spare = None

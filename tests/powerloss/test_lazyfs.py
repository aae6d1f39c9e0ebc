"""The file system really forgets what was not fsynced (else every power-loss test is hollow).

Each test writes through the mount, crashes it (drop unsynced, unmount, fresh daemon) and looks
at what is left; the pairs show the same write surviving once the right fsync is added.
"""

from __future__ import annotations

import mmap
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storage.mapped_file import MappedFile, create_mapped, open_mapped
from tests.powerloss.mount import LazyMount

pytestmark = [pytest.mark.crash, pytest.mark.powerloss]


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_file(path: Path, data: bytes, *, sync: bool) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, data)
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def test_unsynced_write_is_lost_synced_write_survives(lazy_mount: LazyMount) -> None:
    root = lazy_mount.path
    write_file(root / "a", b"first", sync=True)
    fsync_dir(root)
    with open(root / "a", "r+b") as fh:
        fh.write(b"SECOND-LONGER")
        fh.flush()  # reaches the daemon (write-through), still not durable
    assert (root / "a").read_bytes() == b"SECOND-LONGER"
    lazy_mount.power_loss()
    assert (root / "a").read_bytes() == b"first"
    with open(root / "a", "r+b") as fh:
        fh.write(b"SECOND-LONGER")
        fh.flush()
        os.fsync(fh.fileno())
    lazy_mount.power_loss()
    assert (root / "a").read_bytes() == b"SECOND-LONGER"


def test_new_file_needs_a_directory_fsync(lazy_mount: LazyMount) -> None:
    root = lazy_mount.path
    write_file(root / "synced-data-only", b"x" * 10, sync=True)
    (root / "sub").mkdir()
    write_file(root / "sub" / "named", b"y" * 10, sync=True)
    fsync_dir(root / "sub")
    lazy_mount.power_loss()
    assert not (root / "synced-data-only").exists()  # its name never became durable
    assert (root / "sub").is_dir()  # directories are durable at once (lazyfs.py's doc)
    assert (root / "sub" / "named").read_bytes() == b"y" * 10


def test_rename_over_needs_a_directory_fsync(lazy_mount: LazyMount) -> None:
    root = lazy_mount.path
    write_file(root / "conf.json", b"old", sync=True)
    fsync_dir(root)
    write_file(root / "conf.json.tmp", b"new", sync=True)
    os.replace(root / "conf.json.tmp", root / "conf.json")
    assert (root / "conf.json").read_bytes() == b"new"
    lazy_mount.power_loss()
    assert (root / "conf.json").read_bytes() == b"old"  # the rename was lost
    assert not (root / "conf.json.tmp").exists()  # and so was the tmp file's name

    write_file(root / "conf.json.tmp", b"new", sync=True)
    os.replace(root / "conf.json.tmp", root / "conf.json")
    fsync_dir(root)
    lazy_mount.power_loss()
    assert (root / "conf.json").read_bytes() == b"new"
    assert sorted(os.listdir(root)) == ["conf.json"]


def test_unlink_needs_a_directory_fsync(lazy_mount: LazyMount) -> None:
    root = lazy_mount.path
    write_file(root / "f", b"keep", sync=True)
    fsync_dir(root)
    os.unlink(root / "f")
    lazy_mount.power_loss()
    assert (root / "f").read_bytes() == b"keep"
    os.unlink(root / "f")
    fsync_dir(root)
    lazy_mount.power_loss()
    assert not (root / "f").exists()


def test_truncate_is_volatile_until_fsync(lazy_mount: LazyMount) -> None:
    root = lazy_mount.path
    write_file(root / "t", b"0123456789" * 1000, sync=True)
    fsync_dir(root)
    os.truncate(root / "t", 5)
    with open(root / "t", "ab") as fh:
        fh.write(b"abc")
    assert (root / "t").read_bytes() == b"01234abc"
    lazy_mount.power_loss()
    assert (root / "t").read_bytes() == b"0123456789" * 1000
    os.truncate(root / "t", 5000)
    with open(root / "t", "r+b") as fh:
        os.ftruncate(fh.fileno(), 6000)  # the re-extended part reads as zeros, not old bytes
        os.fsync(fh.fileno())
    lazy_mount.power_loss()
    assert (root / "t").read_bytes() == (b"0123456789" * 500) + bytes(1000)


def _mmap_write(path: Path, size: int, data: bytes, how: str) -> None:
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        os.posix_fallocate(fd, 0, size)
        os.fsync(fd)
        fsync_dir(path.parent)
        mm = mmap.mmap(fd, size, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE)
        mm[100 : 100 + len(data)] = data
        if how == "msync":
            mm.flush()
        elif how == "fdatasync":
            os.fdatasync(fd)
        mm.close()
    finally:
        os.close(fd)


@pytest.mark.parametrize("how", ["none", "msync", "fdatasync"])
def test_mmap_writes_survive_only_when_synced(lazy_mount: LazyMount, how: str) -> None:
    path = lazy_mount.path / "mapped"
    data = b"through-the-mapping" * 300  # crosses page boundaries
    size = 64 * 1024
    _mmap_write(path, size, data, how)
    # munmap and close do not write the pages back: the daemon may see them later, or never
    lazy_mount.power_loss()
    on_disk = path.read_bytes()
    assert len(on_disk) == size  # posix_fallocate's size was fsynced
    if how == "none":
        assert on_disk == bytes(size), "pages dirtied through mmap survived without msync/fsync"
    else:
        assert on_disk[100 : 100 + len(data)] == data
        assert on_disk[:100] == bytes(100)


def test_dirty_mmap_pages_of_a_killed_writer_are_dropped(lazy_mount: LazyMount) -> None:
    """A process killed with dirty mapped pages: the kernel writes them back at unmount at the
    latest; after a crash that write-back must not land."""
    path = lazy_mount.path / "victim"
    code = (
        "import mmap, os, sys, time\n"
        f"fd = os.open({str(path)!r}, os.O_RDWR | os.O_CREAT, 0o644)\n"
        "os.posix_fallocate(fd, 0, 1 << 20); os.fsync(fd)\n"
        f"d = os.open({str(lazy_mount.path)!r}, os.O_RDONLY); os.fsync(d)\n"
        "mm = mmap.mmap(fd, 1 << 20)\n"
        "mm[:5] = b'SYNC!'; os.fdatasync(fd)\n"
        "mm[4096:4096 + 7] = b'NO-SYNC'\n"
        "print('ready', flush=True); time.sleep(60)\n"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) as child:
        try:
            assert child.stdout is not None
            assert child.stdout.readline() == b"ready\n"
        finally:
            child.kill()
            child.wait()
    lazy_mount.power_loss()
    data = path.read_bytes()
    assert data[:5] == b"SYNC!"
    assert data[4096 : 4096 + 7] == bytes(7)


@pytest.mark.parametrize("flush", [False, True])
def test_commit_log_mapped_file_through_the_mount(lazy_mount: LazyMount, flush: bool) -> None:
    """storage/mapped_file.py as the commit log uses it: preallocate + rename + dir fsync, append
    through the mapping, fdatasync via ``flush``."""
    directory = lazy_mount.path / "commitlog"
    directory.mkdir()
    path = str(directory / f"{0:020d}")
    size = 128 * 1024
    fd, mm = create_mapped(path, size)
    mf = MappedFile(path, size, fd, mm)
    record = b"R" * 5000
    mm[: len(record)] = record
    mf.wrote_position = len(record)
    if flush:
        mf.flush(0)
    mm.close()
    os.close(fd)
    lazy_mount.power_loss()
    fd, mm = open_mapped(path, size)  # the preallocated file and its name survived
    try:
        assert mm[: len(record)] == (record if flush else bytes(len(record)))
    finally:
        mm.close()
        os.close(fd)


def test_clean_unmount_keeps_everything(lazy_mount: LazyMount) -> None:
    root = lazy_mount.path
    write_file(root / "f", b"unsynced", sync=False)
    lazy_mount.unmount()
    lazy_mount.mount()
    assert (root / "f").read_bytes() == b"unsynced"


def test_writes_after_the_crash_are_discarded(lazy_mount: LazyMount) -> None:
    root = lazy_mount.path
    write_file(root / "f", b"before", sync=True)
    fsync_dir(root)
    fd = os.open(root / "f", os.O_RDWR)
    try:
        lazy_mount.crash()
        os.pwrite(fd, b"AFTER!", 0)
        with pytest.raises(OSError, match="Input/output error"):
            os.fsync(fd)
    finally:
        os.close(fd)
    lazy_mount.unmount()
    lazy_mount.mount()
    assert (root / "f").read_bytes() == b"before"
    assert not (lazy_mount.backing / ".lazyfs" / "staging").exists() or not os.listdir(
        lazy_mount.backing / ".lazyfs" / "staging"
    )


def test_crash_during_a_slow_fsync_loses_its_data(lazy_mount: LazyMount) -> None:
    """With fsync-delay-ms the daemon answers an fsync only after the delay: a crash meanwhile
    fails the fsync and keeps nothing of it (the window the broker tests widen this way)."""
    root = lazy_mount.path
    write_file(root / "f", b"old", sync=True)
    fsync_dir(root)
    lazy_mount.set_fsync_delay(1000)
    code = (
        "import os, sys\n"
        f"fd = os.open({str(root / 'f')!r}, os.O_RDWR)\n"
        "os.pwrite(fd, b'new', 0)\n"
        "print('syncing', flush=True)\n"
        "try:\n"
        "    os.fsync(fd)\n"
        "    print('synced', flush=True)\n"
        "except OSError as exc:\n"
        "    print('failed', exc.errno, flush=True)\n"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE) as child:
        assert child.stdout is not None
        assert child.stdout.readline() == b"syncing\n"
        lazy_mount.crash()  # while the fsync waits
        out = child.stdout.readline()
        child.wait(10)
    assert out.startswith(b"failed"), out
    lazy_mount.unmount()
    lazy_mount.mount()
    assert (root / "f").read_bytes() == b"old"

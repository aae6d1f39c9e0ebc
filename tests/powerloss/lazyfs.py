"""A FUSE file system that forgets, on command, everything that was never fsynced (like LazyFS).

Run as its own process::

    python tests/powerloss/lazyfs.py [--wait] BACKING_DIR MOUNTPOINT

The mount shows the files of ``BACKING_DIR``; the backing directory holds only what is *durable*.
Writing ``crash`` to ``MOUNTPOINT/.lazyfs-ctl`` is a power loss: every change not yet made durable
is dropped and every later change is discarded, so after an unmount (``fusermount3 -u``, which
makes the kernel write back pages still dirty in its cache: they are discarded too) a new daemon
on the same backing directory shows exactly what survived.

What is durable, and when (the model; stricter than ext4/xfs in practice, never looser than POSIX):

* **File data and size** (``write(2)``, pages of a shared ``mmap`` the kernel writes back,
  truncation, ``posix_fallocate``): kept in an in-memory overlay of 4 KiB pages per file and
  applied to the backing file only by an ``fsync``/``fdatasync`` of that file (``msync`` reaches
  the daemon as a kernel write-back followed by an fsync).
* **File names** (create, rename, unlink): durable only when the *directory* holding the name is
  fsynced (both directories for a rename between two).  A file created and fsynced but whose
  directory never was is gone after a crash; ``write tmp, fsync tmp, rename tmp -> name`` without
  a directory fsync leaves the old ``name`` (POSIX requires the directory fsync; ext4 usually,
  but not always, saves such a program).  A rename between directories is applied as one step
  when either directory is fsynced (a journaled file system commits it atomically).
* **Directories** (mkdir, rmdir, renaming a directory) are durable at once.  The broker, like
  Apache's, creates its directories with ``mkdir -p`` and never fsyncs their parents, as every
  journaling file system commits a mkdir with the next fsync of anything; modelling that strictly
  would report a defect no real disk shows.

The mount uses the kernel's page cache without writeback caching and without ``direct_io``:
``write(2)`` reaches the daemon at once (write-through), a shared writable ``mmap`` works, and its
dirty pages reach the daemon only on msync/fsync or kernel write-back.  A crash discards them;
the next mount is a new super block, so nothing the old cache held is visible through it.

``posix_fallocate``: pyfuse3 has no fallocate operation, so the kernel answers EOPNOTSUPP and
glibc emulates it by writing a byte into every block; zero bytes past the durable end cost no
memory here, and the size change is volatile like any other until an fsync.

``fsync-delay-ms N`` written to the control file makes every file fsync take N ms (a slow disk):
what it makes durable is what was written before it was called, and a crash during the wait
loses it.  An answer sent before its fsync returned is then caught in a wide window instead of a
race of microseconds.  ``sync`` makes everything durable, as a clean unmount does; reading the
control file gives counters (writes, fsyncs, ...).

Hard links, symbolic links and device nodes are refused (the broker makes none).  The backing
directory's own fsyncs are skipped: the machine does not lose power, the model does.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import sys
import time
from collections.abc import Sequence

import attrs
import pyfuse3
import trio

log = logging.getLogger("lazyfs")

PAGE = 4096
CTL_NAME = b".lazyfs-ctl"
CTL_INO = 2
# inside the backing directory, hidden from the mount: bodies of files whose names are not durable
META_DIR = ".lazyfs"
STAGING = "staging"
TIMEOUT = 1.0


@attrs.define(eq=False)
class Node:
    ino: int
    mode: int
    uid: int
    gid: int
    mtime_ns: int
    ctime_ns: int
    atime_ns: int
    lookups: int = 0


@attrs.define(eq=False)
class Dir(Node):
    parent: int = 0
    name: bytes = b""
    entries: dict[bytes, int] = attrs.field(factory=dict)
    # file names as in the backing directory (subdirectories are always both, see the module doc)
    durable: dict[bytes, int] = attrs.field(factory=dict)
    opens: int = 0


@attrs.define(eq=False)
class File(Node):
    fd: int = -1  # the backing body (its path changes by rename; the descriptor does not)
    size: int = 0  # as the mount shows it
    durable_size: int = 0  # of the backing body
    base_valid: int = 0  # backing bytes below this are visible (lower after a truncation)
    dirty: dict[int, bytearray] = attrs.field(factory=dict)
    nlink: int = 0
    opens: int = 0
    durable_loc: tuple[int, bytes] | None = None  # (directory inode, name) in the backing dir


def _stat_fields(st: os.stat_result) -> tuple[int, int, int, int, int, int]:
    """A backing entry's mode, owner, group and times, in Node's field order."""
    return (st.st_mode, st.st_uid, st.st_gid, st.st_mtime_ns, st.st_ctime_ns, st.st_atime_ns)


def _now() -> int:
    return time.time_ns()


class LazyFS(pyfuse3.Operations):
    enable_writeback_cache = False  # dirty pages must reach the daemon on fsync, not stay cached

    def __init__(self, backing: str) -> None:
        super().__init__()
        self.backing = os.path.abspath(backing)
        self.nodes: dict[int, Node] = {}
        self.next_ino = CTL_INO + 1
        self.crashed = False
        self.fsync_delay = 0.0  # seconds an fsync takes (ctl "fsync-delay-ms N")
        self.stats = {"writes": 0, "fsyncs": 0, "fsyncdirs": 0, "discarded_writes": 0}
        self._load()

    # ----------------------------------------------------------------- loading the durable state

    def _staging(self, ino: int) -> str:
        return os.path.join(self.backing, META_DIR, STAGING, str(ino))

    def _load(self) -> None:
        staging = os.path.join(self.backing, META_DIR, STAGING)
        os.makedirs(staging, exist_ok=True)
        for leftover in os.listdir(staging):  # bodies of names a crash never made durable
            os.unlink(os.path.join(staging, leftover))
        st = os.stat(self.backing)
        root = Dir(
            pyfuse3.ROOT_INODE,
            *_stat_fields(st),
            parent=pyfuse3.ROOT_INODE,
        )
        self.nodes[root.ino] = root
        self._scan(root, self.backing)

    def _scan(self, d: Dir, path: str) -> None:
        for entry in sorted(os.scandir(path), key=lambda e: e.name):
            if d.ino == pyfuse3.ROOT_INODE and entry.name == META_DIR:
                continue
            st = entry.stat(follow_symlinks=False)
            name = os.fsencode(entry.name)
            ino = self._new_ino()
            if stat.S_ISDIR(st.st_mode):
                sub = Dir(
                    ino,
                    *_stat_fields(st),
                    parent=d.ino,
                    name=name,
                )
                self.nodes[ino] = sub
                d.entries[name] = d.durable[name] = ino
                self._scan(sub, entry.path)
            elif stat.S_ISREG(st.st_mode):
                f = File(
                    ino,
                    *_stat_fields(st),
                    fd=os.open(entry.path, os.O_RDWR),
                    size=st.st_size,
                    durable_size=st.st_size,
                    base_valid=st.st_size,
                    nlink=1,
                    durable_loc=(d.ino, name),
                )
                self.nodes[ino] = f
                d.entries[name] = d.durable[name] = ino
            else:
                log.warning("ignoring %s: neither a file nor a directory", entry.path)

    def _new_ino(self) -> int:
        ino = self.next_ino
        self.next_ino += 1
        return ino

    # ------------------------------------------------------------------------------ helpers

    def _dir(self, ino: int) -> Dir:
        node = self.nodes.get(ino)
        if not isinstance(node, Dir):
            raise pyfuse3.FUSEError(errno.ENOTDIR if node else errno.ENOENT)
        return node

    def _file(self, ino: int) -> File:
        node = self.nodes.get(ino)
        if not isinstance(node, File):
            raise pyfuse3.FUSEError(errno.EISDIR if node else errno.EBADF)
        return node

    def _dir_path(self, d: Dir) -> str:
        parts: list[bytes] = []
        while d.ino != pyfuse3.ROOT_INODE:
            parts.append(d.name)
            d = self._dir(d.parent)
        return os.path.join(self.backing, *(os.fsdecode(p) for p in reversed(parts)))

    def _alive(self) -> None:
        if self.crashed:
            raise pyfuse3.FUSEError(errno.EIO)

    def _attrs(self, node: Node) -> pyfuse3.EntryAttributes:
        a = pyfuse3.EntryAttributes()
        a.st_ino = pyfuse3.InodeT(node.ino)
        a.generation = 0
        a.entry_timeout = TIMEOUT
        a.attr_timeout = TIMEOUT
        a.st_mode = pyfuse3.ModeT(node.mode)
        a.st_uid = node.uid
        a.st_gid = node.gid
        a.st_rdev = 0
        a.st_blksize = PAGE
        a.st_atime_ns = node.atime_ns
        a.st_mtime_ns = node.mtime_ns
        a.st_ctime_ns = node.ctime_ns
        if isinstance(node, File):
            a.st_nlink = node.nlink
            a.st_size = node.size
            a.st_blocks = (node.size + 511) // 512
        else:
            assert isinstance(node, Dir)
            subdirs = sum(isinstance(self.nodes[i], Dir) for i in node.entries.values())
            a.st_nlink = 2 + subdirs
            a.st_size = PAGE
            a.st_blocks = 8
        return a

    def _ctl_attrs(self) -> pyfuse3.EntryAttributes:
        a = self._attrs(self.nodes[pyfuse3.ROOT_INODE])
        a.st_ino = pyfuse3.InodeT(CTL_INO)
        a.st_mode = pyfuse3.ModeT(stat.S_IFREG | 0o600)
        a.st_nlink = 1
        a.st_size = 0
        a.entry_timeout = a.attr_timeout = 0
        return a

    def _maybe_collect(self, f: File) -> None:
        """Forget a file no name, no open handle, no kernel reference and no durable name keeps."""
        if f.nlink or f.opens or f.lookups or f.durable_loc is not None:
            return
        if self.nodes.pop(f.ino, None) is None:
            return
        os.close(f.fd)
        try:
            os.unlink(self._staging(f.ino))
        except FileNotFoundError:
            pass

    # ----------------------------------------------------------------------- file contents

    def _base_page(self, f: File, page: int) -> bytearray:
        start = page * PAGE
        valid = max(0, min(PAGE, f.base_valid - start))
        buf = bytearray(PAGE)
        if valid:
            data = os.pread(f.fd, valid, start)
            buf[: len(data)] = data
        return buf

    def _read(self, f: File, off: int, size: int) -> bytes:
        end = min(off + size, f.size)
        out = bytearray()
        pos = off
        while pos < end:
            page, inner = divmod(pos, PAGE)
            buf = f.dirty.get(page)
            if buf is None:
                buf = self._base_page(f, page)
            take = min(PAGE - inner, end - pos)
            out += buf[inner : inner + take]
            pos += take
        return bytes(out)

    def _write(self, f: File, off: int, data: bytes) -> None:
        pos = 0
        while pos < len(data):
            page, inner = divmod(off + pos, PAGE)
            take = min(PAGE - inner, len(data) - pos)
            chunk = data[pos : pos + take]
            buf = f.dirty.get(page)
            if buf is None:
                if page * PAGE >= f.base_valid and not any(chunk):
                    pos += take  # zeros where zeros are already read (fallocate's emulation)
                    continue
                buf = self._base_page(f, page)
                f.dirty[page] = buf
            buf[inner : inner + take] = chunk
            pos += take
        f.size = max(f.size, off + len(data))
        f.mtime_ns = f.ctime_ns = _now()

    def _truncate(self, f: File, size: int) -> None:
        if size < f.size:
            for page in [p for p in f.dirty if p * PAGE >= size]:
                del f.dirty[page]
            page, inner = divmod(size, PAGE)
            if inner and page in f.dirty:
                f.dirty[page][inner:] = bytes(PAGE - inner)
            f.base_valid = min(f.base_valid, size)
        f.size = size
        f.mtime_ns = f.ctime_ns = _now()

    def _snapshot(self, f: File) -> tuple[dict[int, bytes], int, int]:
        """What an fsync called now makes durable: the dirty pages, the size, the valid base."""
        return {p: bytes(b) for p, b in f.dirty.items()}, f.size, f.base_valid

    def _apply(self, f: File, snap: tuple[dict[int, bytes], int, int]) -> None:
        pages, size, base_valid = snap
        if base_valid < f.durable_size:
            os.ftruncate(f.fd, base_valid)
        for page in sorted(pages):
            start = page * PAGE
            os.pwrite(f.fd, pages[page][: max(0, min(PAGE, size - start))], start)
        os.ftruncate(f.fd, size)
        for page, data in pages.items():
            current = f.dirty.get(page)
            if current is not None and bytes(current) == data:
                del f.dirty[page]  # unchanged since the snapshot: durable now
        truncated_since = f.base_valid < base_valid
        f.durable_size = size
        f.base_valid = min(f.base_valid, size) if truncated_since else size

    def _sync_data(self, f: File) -> None:
        self._apply(f, self._snapshot(f))

    # ------------------------------------------------------------------------------ names

    def _detach(self, d: Dir, name: bytes) -> None:
        """A durable file name goes away; the body stays (staged) while the file lives on."""
        ino = d.durable.pop(name)
        f = self._file(ino)
        path = os.path.join(self._dir_path(d), os.fsdecode(name))
        if f.durable_loc == (d.ino, name):
            os.rename(path, self._staging(ino))
            f.durable_loc = None
            self._maybe_collect(f)

    def _attach(self, d: Dir, name: bytes, ino: int) -> None:
        f = self._file(ino)
        target = os.path.join(self._dir_path(d), os.fsdecode(name))
        if f.durable_loc is None:
            source = self._staging(ino)
        else:  # a rename between directories: one step, as a journal commits it
            other = self._dir(f.durable_loc[0])
            other.durable.pop(f.durable_loc[1], None)
            source = os.path.join(self._dir_path(other), os.fsdecode(f.durable_loc[1]))
        os.rename(source, target)
        f.durable_loc = (d.ino, name)
        d.durable[name] = ino

    def _sync_dir(self, d: Dir) -> None:
        for name, ino in list(d.durable.items()):
            if d.entries.get(name) != ino:
                self._detach(d, name)
        for name, ino in list(d.entries.items()):
            if isinstance(self.nodes[ino], File) and d.durable.get(name) != ino:
                self._attach(d, name, ino)

    def _drop_name(self, d: Dir, name: bytes) -> None:
        ino = d.entries.pop(name)
        node = self.nodes[ino]
        if isinstance(node, File):
            node.nlink -= 1
            node.ctime_ns = _now()
            self._maybe_collect(node)
        d.mtime_ns = d.ctime_ns = _now()

    # ----------------------------------------------------------------------- the operations

    async def lookup(
        self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        d = self._dir(parent_inode)
        if name == b".":
            ino = d.ino
        elif name == b"..":
            ino = d.parent
        elif parent_inode == pyfuse3.ROOT_INODE and name == CTL_NAME:
            return self._ctl_attrs()
        else:
            found = d.entries.get(name)
            if found is None:
                raise pyfuse3.FUSEError(errno.ENOENT)
            ino = found
        node = self.nodes[ino]
        node.lookups += 1
        return self._attrs(node)

    async def forget(self, inode_list: Sequence[tuple[int, int]]) -> None:
        for ino, nlookup in inode_list:
            node = self.nodes.get(ino)
            if node is None:
                continue
            node.lookups = max(0, node.lookups - nlookup)
            if isinstance(node, File):
                self._maybe_collect(node)
            elif isinstance(node, Dir) and not node.lookups and node.parent == 0:
                self.nodes.pop(ino, None)  # removed and forgotten

    async def getattr(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.EntryAttributes:
        if inode == CTL_INO:
            return self._ctl_attrs()
        node = self.nodes.get(inode)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        return self._attrs(node)

    async def setattr(
        self,
        inode: int,
        attr: pyfuse3.EntryAttributes,
        fields: pyfuse3.SetattrFields,
        fh: int | None,
        ctx: pyfuse3.RequestContext,
    ) -> pyfuse3.EntryAttributes:
        if inode == CTL_INO:
            return self._ctl_attrs()
        self._alive()
        node = self.nodes.get(inode)
        if node is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if fields.update_size:
            if not isinstance(node, File):
                raise pyfuse3.FUSEError(errno.EISDIR)
            self._truncate(node, attr.st_size)
        if fields.update_mode:
            node.mode = (node.mode & ~0o7777) | (attr.st_mode & 0o7777)
        if fields.update_uid:
            node.uid = attr.st_uid
        if fields.update_gid:
            node.gid = attr.st_gid
        if fields.update_atime:
            node.atime_ns = attr.st_atime_ns
        if fields.update_mtime:
            node.mtime_ns = attr.st_mtime_ns
        node.ctime_ns = _now()
        return self._attrs(node)

    async def mkdir(
        self, parent_inode: int, name: bytes, mode: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        self._alive()
        d = self._dir(parent_inode)
        if name in d.entries:
            raise pyfuse3.FUSEError(errno.EEXIST)
        os.mkdir(os.path.join(self._dir_path(d), os.fsdecode(name)), mode & 0o7777)
        now = _now()
        sub = Dir(
            self._new_ino(),
            stat.S_IFDIR | (mode & 0o7777),
            ctx.uid,
            ctx.gid,
            now,
            now,
            now,
            parent=d.ino,
            name=name,
        )
        self.nodes[sub.ino] = sub
        d.entries[name] = d.durable[name] = sub.ino
        d.mtime_ns = d.ctime_ns = now
        sub.lookups += 1
        return self._attrs(sub)

    async def rmdir(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._alive()
        d = self._dir(parent_inode)
        ino = d.entries.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        sub = self._dir(ino)
        if sub.entries:
            raise pyfuse3.FUSEError(errno.ENOTEMPTY)
        for gone in list(sub.durable):  # unlinked files whose removal was not yet durable
            self._detach(sub, gone)
        os.rmdir(self._dir_path(sub))
        del d.entries[name]
        d.durable.pop(name, None)
        sub.parent = 0
        d.mtime_ns = d.ctime_ns = _now()
        if not sub.lookups:
            self.nodes.pop(ino, None)

    async def create(
        self, parent_inode: int, name: bytes, mode: int, flags: int, ctx: pyfuse3.RequestContext
    ) -> tuple[pyfuse3.FileInfo, pyfuse3.EntryAttributes]:
        self._alive()
        d = self._dir(parent_inode)
        if name in d.entries:
            raise pyfuse3.FUSEError(errno.EEXIST)
        ino = self._new_ino()
        fd = os.open(self._staging(ino), os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o644)
        now = _now()
        f = File(
            ino,
            stat.S_IFREG | (mode & 0o7777),
            ctx.uid,
            ctx.gid,
            now,
            now,
            now,
            fd=fd,
            nlink=1,
            opens=1,
            lookups=1,
        )
        self.nodes[ino] = f
        d.entries[name] = ino
        d.mtime_ns = d.ctime_ns = now
        return pyfuse3.FileInfo(fh=pyfuse3.FileHandleT(ino)), self._attrs(f)

    async def unlink(self, parent_inode: int, name: bytes, ctx: pyfuse3.RequestContext) -> None:
        self._alive()
        d = self._dir(parent_inode)
        ino = d.entries.get(name)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        if isinstance(self.nodes[ino], Dir):
            raise pyfuse3.FUSEError(errno.EISDIR)
        self._drop_name(d, name)

    async def rename(
        self,
        parent_inode_old: int,
        name_old: bytes,
        parent_inode_new: int,
        name_new: bytes,
        flags: int,
        ctx: pyfuse3.RequestContext,
    ) -> None:
        self._alive()
        if flags:
            raise pyfuse3.FUSEError(errno.EINVAL)  # RENAME_EXCHANGE / NOREPLACE: unused here
        src, dst = self._dir(parent_inode_old), self._dir(parent_inode_new)
        ino = src.entries.get(name_old)
        if ino is None:
            raise pyfuse3.FUSEError(errno.ENOENT)
        node = self.nodes[ino]
        replaced = dst.entries.get(name_new)
        if replaced == ino:
            return
        if replaced is not None:
            if isinstance(self.nodes[replaced], Dir) != isinstance(node, Dir):
                raise pyfuse3.FUSEError(errno.EISDIR if isinstance(node, File) else errno.ENOTDIR)
            if isinstance(node, Dir):
                raise pyfuse3.FUSEError(errno.ENOTEMPTY)  # replacing a directory: unused here
        if isinstance(node, Dir):
            # directories are durable at once (module doc), and with them the names inside
            os.rename(
                self._dir_path(node), os.path.join(self._dir_path(dst), os.fsdecode(name_new))
            )
            del src.entries[name_old]
            src.durable.pop(name_old, None)
            dst.entries[name_new] = dst.durable[name_new] = ino
            node.parent, node.name = dst.ino, name_new
        else:
            if replaced is not None:
                self._drop_name(dst, name_new)
            del src.entries[name_old]
            dst.entries[name_new] = ino
        now = _now()
        src.mtime_ns = src.ctime_ns = dst.mtime_ns = dst.ctime_ns = node.ctime_ns = now

    async def link(
        self, inode: int, new_parent_inode: int, new_name: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    async def symlink(
        self, parent_inode: int, name: bytes, target: bytes, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    async def mknod(
        self, parent_inode: int, name: bytes, mode: int, rdev: int, ctx: pyfuse3.RequestContext
    ) -> pyfuse3.EntryAttributes:
        raise pyfuse3.FUSEError(errno.EPERM)

    async def open(self, inode: int, flags: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileInfo:
        if inode == CTL_INO:
            return pyfuse3.FileInfo(
                fh=pyfuse3.FileHandleT(CTL_INO), direct_io=True, keep_cache=False
            )
        f = self._file(inode)
        if flags & os.O_TRUNC:
            self._alive()
            self._truncate(f, 0)
        f.opens += 1
        return pyfuse3.FileInfo(fh=pyfuse3.FileHandleT(inode))

    async def read(self, fh: int, off: int, size: int) -> bytes:
        if fh == CTL_INO:
            status = " ".join(f"{k}={v}" for k, v in sorted(self.stats.items()))
            text = f"crashed={int(self.crashed)} {status}\n".encode()
            return text[off : off + size]
        f = self._file(fh)
        return self._read(f, off, size)

    async def write(self, fh: int, off: int, buf: bytes) -> int:
        if fh == CTL_INO:
            command = buf.decode(errors="replace").strip()
            if command == "crash":
                self.crash()
            elif command == "sync":
                self.sync_all()
            elif command.startswith("fsync-delay-ms "):
                self.fsync_delay = int(command.split()[1]) / 1000
            else:
                raise pyfuse3.FUSEError(errno.EINVAL)
            return len(buf)
        if self.crashed:
            self.stats["discarded_writes"] += 1
            return len(buf)  # lost with the power: the writer (if still alive) never learns
        f = self._file(fh)
        self._write(f, off, buf)
        self.stats["writes"] += 1
        return len(buf)

    async def flush(self, fh: int) -> None:
        pass  # close(2) promises nothing about durability

    async def release(self, fh: int) -> None:
        if fh == CTL_INO:
            return
        node = self.nodes.get(fh)
        if isinstance(node, File):
            node.opens -= 1
            self._maybe_collect(node)

    async def fsync(self, fh: int, datasync: bool) -> None:
        if fh == CTL_INO:
            return
        self._alive()
        f = self._file(fh)
        snap = self._snapshot(f)
        if self.fsync_delay:
            # a slow disk: the caller waits, and a power loss meanwhile loses the lot
            await trio.sleep(self.fsync_delay)
            self._alive()
        self._apply(f, snap)
        self.stats["fsyncs"] += 1

    async def opendir(self, inode: int, ctx: pyfuse3.RequestContext) -> pyfuse3.FileHandleT:
        d = self._dir(inode)
        d.opens += 1
        return pyfuse3.FileHandleT(inode)

    async def readdir(self, fh: int, start_id: int, token: pyfuse3.ReaddirToken) -> None:
        d = self._dir(fh)
        names = sorted(d.entries)
        for index in range(start_id, len(names)):
            name = names[index]
            node = self.nodes[d.entries[name]]
            if not pyfuse3.readdir_reply(token, name, self._attrs(node), index + 1):
                return
            node.lookups += 1

    async def releasedir(self, fh: int) -> None:
        node = self.nodes.get(fh)
        if isinstance(node, Dir):
            node.opens -= 1

    async def fsyncdir(self, fh: int, datasync: bool) -> None:
        self._alive()
        self._sync_dir(self._dir(fh))
        self.stats["fsyncdirs"] += 1

    async def statfs(self, ctx: pyfuse3.RequestContext) -> pyfuse3.StatvfsData:
        st = os.statvfs(self.backing)
        out = pyfuse3.StatvfsData()
        for field in (
            "f_bsize",
            "f_frsize",
            "f_blocks",
            "f_bfree",
            "f_bavail",
            "f_files",
            "f_ffree",
            "f_favail",
            "f_namemax",
        ):
            setattr(out, field, getattr(st, field))
        return out

    # ------------------------------------------------------------------------- power and sync

    def crash(self) -> None:
        """Power loss: forget every change not durable; refuse or discard every later one."""
        self.crashed = True
        for node in self.nodes.values():
            if isinstance(node, File):
                node.dirty.clear()
        log.info("crash: unsynced data dropped")

    def sync_all(self) -> None:
        """What a clean unmount does: make everything durable (``sync(2)``)."""
        self._alive()
        for node in list(self.nodes.values()):
            if isinstance(node, Dir) and node.ino in self.nodes:
                self._sync_dir(node)
        for node in list(self.nodes.values()):
            if isinstance(node, File):
                self._sync_data(node)


def _connection_aborted(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        _, rest = exc.split(ConnectionAbortedError)
        return rest is None
    return isinstance(exc, ConnectionAbortedError)


def main(argv: list[str]) -> int:
    wait = "--wait" in argv
    argv = [a for a in argv if a != "--wait"]
    if len(argv) != 2:
        print("usage: lazyfs.py [--wait] BACKING_DIR MOUNTPOINT", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s lazyfs %(message)s")
    backing, mountpoint = argv
    # --wait: started ahead of time (tests/powerloss/warm.py); mount when stdin says go
    if wait and sys.stdin.readline() != "go\n":
        return 0
    fs = LazyFS(backing)
    options = set(pyfuse3.default_options)
    options.add("fsname=lazyfs")
    options.add("subtype=lazyfs")
    pyfuse3.init(fs, mountpoint, options)
    log.info("mounted %s on %s", backing, mountpoint)
    try:
        trio.run(pyfuse3.main)
    except BaseException as exc:
        if not _connection_aborted(exc):
            pyfuse3.close(unmount=True)
            raise
        # the kernel ends some unmounts this way instead of ENODEV (seen when a request was
        # still being answered as the unmount came): the mount is gone all the same
        log.info("connection aborted by the kernel")
    # unmounted from outside (fusermount3 -u): a clean unmount keeps everything, a crash nothing
    if not fs.crashed:
        fs.sync_all()
    pyfuse3.close(unmount=False)
    log.info("unmounted (crashed=%s)", fs.crashed)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

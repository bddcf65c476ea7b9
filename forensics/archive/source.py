"""Opening a checkpoint archive: compression sniffing, an in-place tar index.

An uncompressed tar (what the kubelet writes) is never extracted: we index
its members once (name -> data offset, size) and read them with ``pread``.
A compressed one (Podman exports zstd by default) is decompressed once,
streaming, into a private temporary file that is then read the same way.
The archive's sha256 is taken from the bytes as given, in a background
thread for plain tars (hashlib releases the GIL) and in the same pass as the
decompression otherwise. The archive itself is only ever opened read-only.
The copy is bounded (``$CSI_MAX_EXPANDED`` and free space) and removed on
SIGTERM/SIGHUP/SIGINT too (see :mod:`forensics.archive.tempfiles`).
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import posixpath
import stat
import tarfile
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, Any, cast

from forensics.archive import hashcache
from forensics.errors import ArchiveError

CHUNK = 1 << 20
HASH_PIECE = 64 << 20  # mapped at a time while hashing: transiently in the process's RSS
MAX_METADATA_MEMBER = 64 << 20  # JSON and CRIU images larger than this are refused
MAX_TAR_HEADER = 1 << 20  # pax and GNU long-name headers larger than this are refused

Progress = Callable[[int, int], None]
"""Called as ``progress(done_bytes, total_bytes)`` while decompressing."""

_MAGICS: list[tuple[bytes, str]] = [
    (b"\x1f\x8b", "gzip"),
    (b"\x28\xb5\x2f\xfd", "zstd"),
    (b"\xfd7zXZ\x00", "xz"),
    (b"BZh", "bzip2"),
]

_KINDS = {
    tarfile.REGTYPE: "file", tarfile.AREGTYPE: "file", tarfile.CONTTYPE: "file",
    tarfile.DIRTYPE: "dir", tarfile.SYMTYPE: "symlink", tarfile.LNKTYPE: "hardlink",
    tarfile.CHRTYPE: "chardev", tarfile.BLKTYPE: "blockdev", tarfile.FIFOTYPE: "fifo",
}
_TYPE_BITS = {
    "file": stat.S_IFREG, "dir": stat.S_IFDIR, "symlink": stat.S_IFLNK, "hardlink": stat.S_IFREG,
    "chardev": stat.S_IFCHR, "blockdev": stat.S_IFBLK, "fifo": stat.S_IFIFO,
}


def sniff_compression(head: bytes) -> str:
    """Name the compression of a file from its first bytes ('none' for a plain tar)."""
    for magic, name in _MAGICS:
        if head.startswith(magic):
            return name
    return "none"


@dataclass(frozen=True)
class Member:
    """One member of a tar, located in place."""

    name: str  # normalised: no leading "./" or trailing "/"
    kind: str  # file, dir, symlink, hardlink, chardev, blockdev, fifo
    offset: int  # of the data, in the (decompressed) tar file
    size: int
    mode: int  # st_mode, type bits included
    mtime: int
    linkname: str = ""


def normalise_member_name(name: str) -> str | None:
    """Return the member name without ``./`` and trailing ``/``; None if it is unsafe.

    Unsafe names (absolute, or with a ``..`` component) are never used as
    paths: csi reports them and leaves them alone.
    """
    while name.startswith("./"):
        name = name[2:]
    name = name.rstrip("/")
    if name in ("", "."):
        return "."
    if name.startswith("/") or ".." in name.split("/"):
        return None
    return posixpath.normpath(name)


def index_tar(fileobj: IO[bytes], label: str, size: int, max_members: int | None = None
              ) -> tuple[dict[str, Member], list[str]]:
    """Index a plain tar read from ``fileobj`` (of ``size`` bytes) without reading data.

    Returns the members by normalised name and warnings for members that are
    unsafe or cut short, and for a tar that ends early (cut inside a header,
    a damaged header, no end-of-archive marker): what comes before is kept.
    Raises :class:`ArchiveError` when not even the first header can be read.
    Names that are not UTF-8 keep their bytes as ``\\xNN`` escapes. With
    ``max_members``, indexing stops (with a warning) once that many are kept.
    """
    members: dict[str, Member] = {}
    warnings: list[str] = []
    reader = cast(IO[bytes], _BoundedReads(fileobj))
    try:
        tar = tarfile.open(fileobj=reader, mode="r:", errors="backslashreplace")  # noqa: SIM115
    except tarfile.TarError as exc:
        raise ArchiveError(label, "not a tar archive", why=str(exc)) from None
    last = ""
    try:
        while True:
            where = tar.offset
            try:
                info = tar.next()
            except tarfile.TarError as exc:
                fileobj.seek(where)
                block = fileobj.read(tarfile.BLOCKSIZE)
                warnings.append(f"{label}: {_who(block, last)}: its tar header (byte {where}) "
                                f"cannot be read ({exc}); it and anything after it are missing")
                break
            if info is None:
                problem = _end_problem(fileobj, tar.offset, size, last)
                if problem:
                    warnings.append(f"{label}: {problem}")
                break
            if info.size < 0 or tar.offset <= info.offset:
                warnings.append(f"{label}: {info.name}: its tar header (byte {info.offset}) gives "
                                f"a negative size ({info.size}); anything after it is ignored")
                break
            name = normalise_member_name(info.name)
            if name is None:
                warnings.append(f"{label}: member {info.name!r} has an unsafe name (absolute "
                                "or with '..'); not used, ignored")
                continue
            if name == ".":
                continue
            kind = _KINDS.get(info.type, "other")
            data_size = info.size if kind == "file" else 0
            if info.offset_data + data_size > size:
                warnings.append(
                    f"{label}: {name}: the tar ends inside this member "
                    f"({max(0, size - info.offset_data)} of {data_size} bytes); it and anything "
                    "after it are missing"
                )
                break
            if max_members is not None and len(members) >= max_members:
                warnings.append(f"{label}: more than {max_members:,} members; only the first "
                                f"{max_members:,} are listed (up to {last})")
                break
            last = name
            members[name] = Member(
                name=name, kind=kind, offset=info.offset_data, size=data_size,
                mode=_TYPE_BITS.get(kind, 0) | (info.mode & 0o7777),
                mtime=int(info.mtime) if math.isfinite(info.mtime) else 0,
                linkname=info.linkname,
            )
    finally:
        tar.close()
    return members, warnings


def _who(block: bytes, last: str) -> str:
    """The member a (damaged) header block is for: the name it holds, else its place."""
    name = block[:100].split(b"\0", 1)[0].decode("utf-8", "backslashreplace")
    return name or (f"the member after {last}" if last else "the first member")


def _end_problem(fileobj: IO[bytes], offset: int, size: int, last: str) -> str | None:
    """Why the tar index stopped at ``offset``, unless at a proper end-of-archive block."""
    fileobj.seek(offset)
    block = fileobj.read(tarfile.BLOCKSIZE)
    if len(block) == tarfile.BLOCKSIZE and not block.strip(b"\0"):
        return None
    if not block:
        after = f" after {last}" if last else ""
        return f"the tar has no end-of-archive marker{after} (byte {offset}): it may be cut short"
    if len(block) < tarfile.BLOCKSIZE:
        return (f"{_who(block, last)}: the tar ends inside this member's header (byte "
                f"{offset}, {size - offset} of 512 bytes); it and anything after it are missing")
    return (f"{_who(block, last)}: its tar header (byte {offset}) is damaged (bad checksum); "
            "it and anything after it are missing")


class _BoundedReads:
    """The tar as :mod:`tarfile` sees it: reads of headers only, each bounded.

    A forged pax or GNU long-name header can claim any size (even negative,
    which tarfile turns into "read to the end"); such reads are refused
    instead of taking the whole archive into memory.
    """

    def __init__(self, fileobj: IO[bytes]) -> None:
        self._f = fileobj

    def read(self, size: int = -1) -> bytes:
        if not 0 <= size <= MAX_TAR_HEADER:
            raise tarfile.ReadError(f"a header claims {size} bytes of extended header data")
        return self._f.read(size)

    def seek(self, offset: int, whence: int = 0) -> int:
        return self._f.seek(offset, whence)

    def tell(self) -> int:
        return self._f.tell()


class ArchiveSource:
    """A checkpoint archive opened for reading in place.

    Use as a context manager; :meth:`close` removes any temporary
    decompressed copy.
    """

    def __init__(
        self, path: str, *, progress: Progress | None = None, hash_cache: bool = True,
        hash_eagerly: bool = True,
    ) -> None:
        self.path = path
        self.sha256_cached = False
        self.warnings: list[str] = []
        self._tmpdir: str | None = None
        self._signals: contextlib.ExitStack | None = None
        self._hash_thread: threading.Thread | None = None
        self._sha256: str | None = None
        self._hash_error: OSError | None = None
        self._cancel = threading.Event()
        self._fd = -1
        try:
            mode = os.stat(path).st_mode  # before open(): opening a fifo waits for a writer
            if stat.S_ISREG(mode):
                with open(path, "rb") as f:
                    self._stat = os.fstat(f.fileno())
                    mode = self._stat.st_mode
                    head = f.read(8)
        except OSError as exc:
            raise ArchiveError(path, "cannot open", why=exc.strerror or str(exc)) from None
        if not stat.S_ISREG(mode):
            kind = "a directory" if stat.S_ISDIR(mode) else "a device, fifo or socket"
            raise ArchiveError(path, "not a regular file", why=f"it is {kind}",
                               hint="give the checkpoint archive itself")
        self.size = self._stat.st_size
        self.compression = sniff_compression(head)
        self._hash_cache = hash_cache
        # the cache is looked up when the digest will be wanted: memparse never wants it
        cached = hash_cache and (hash_eagerly or self.compression != "none") and self._cached()
        if self.compression == "none":
            self.tar_path = path
            if not cached and hash_eagerly:
                self._start_hashing()
        try:
            if self.compression != "none":
                self.tar_path = self._decompress(progress)
            self._fd = os.open(self.tar_path, os.O_RDONLY)
            tar_size = os.fstat(self._fd).st_size
            with os.fdopen(os.dup(self._fd), "rb") as f:
                self.members, warnings = index_tar(f, path, tar_size)
        except BaseException:  # leave no thread, descriptor or decompressed copy behind
            self.close()
            raise
        self.warnings.extend(warnings)

    # ------------------------------------------------------------ lifecycle

    def __enter__(self) -> ArchiveSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        if self._hash_thread is not None:
            self._cancel.set()
            self._hash_thread.join()
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if self._tmpdir:
            import shutil

            shutil.rmtree(self._tmpdir, ignore_errors=True)
            self._tmpdir = None
        if self._signals is not None:
            self._signals.close()
            self._signals = None

    # ------------------------------------------------------------ hashing

    def _cached(self) -> bool:
        """Take the digest from csi's hash cache if it has this file's."""
        cached = hashcache.lookup(self._stat)
        if cached is not None:
            self._sha256, self.sha256_cached = cached, True
        return cached is not None

    def _start_hashing(self) -> None:
        self._hash_thread = threading.Thread(target=self._hash_in_background, daemon=True)
        self._hash_thread.start()

    def _hash_in_background(self) -> None:
        """The archive's sha256, from mapped pieces of HASH_PIECE bytes, one call each.

        Mapped, not read: reading copies every byte once more, and copies are slow
        here (the copy took a quarter of csi analyze's CPU, 0.24 s more for 632 MB).
        Large pieces: hashlib lets the GIL go while it hashes but needs it back after
        every call, which a busy analysis thread can delay by a switch interval.
        Each piece is clipped to the file's size when it is mapped; an archive cut
        short *while* a piece is hashed kills csi with SIGBUS, as it does ripgrep
        and git, which map files too. Evidence archives are never written after
        capture; one rewritten under csi's feet could not be trusted anyway.
        """
        import hashlib
        import mmap

        # Not hashlib.file_digest (used for the other whole-file hashes): alone it is
        # as fast (0.41-0.46 s vs 0.55 s for 512 MiB, page cache, one idle core),
        # but it takes the GIL back every 256 KiB, which a busy analysis thread
        # delays (see above), and it cannot stop when the archive is closed.
        digest = hashlib.sha256()
        try:
            with open(self.path, "rb", buffering=0) as f:
                offset = 0
                while (take := min(HASH_PIECE, os.fstat(f.fileno()).st_size - offset)) > 0:
                    if self._cancel.is_set():
                        return
                    with mmap.mmap(f.fileno(), take, access=mmap.ACCESS_READ,
                                   offset=offset) as piece, memoryview(piece) as view:
                        digest.update(view)
                    offset += take
        except (OSError, ValueError) as exc:
            self._hash_error = exc if isinstance(exc, OSError) else OSError(str(exc))
            return
        self._sha256 = digest.hexdigest()
        hashcache.store(self._stat, self._sha256)

    @property
    def sha256(self) -> str:
        """The sha256 of the archive file exactly as given (compressed bytes included)."""
        if self._sha256 is None and self._hash_thread is None and self._hash_error is None \
                and not (self._hash_cache and self._cached()):
            self._start_hashing()  # not started at open (hash_eagerly=False): now
        if self._hash_thread is not None:
            self._hash_thread.join()
        if self._hash_error is not None:
            raise ArchiveError(self.path, "cannot read for hashing", why=str(self._hash_error))
        if self._sha256 is None:
            raise ArchiveError(self.path, "closed before its hash was taken")
        return self._sha256

    def _decompress(self, progress: Progress | None) -> str:
        import hashlib
        import lzma  # compression modules load only for compressed archives
        import tempfile
        import zlib

        from forensics.archive.tempfiles import expansion_limit, removed_on_signals

        self._signals = contextlib.ExitStack()
        self._signals.enter_context(removed_on_signals())  # from before the copy exists
        self._tmpdir = tempfile.mkdtemp(prefix="csi-archive-")
        out_path = os.path.join(self._tmpdir, "archive.tar")
        limit, why, hint = expansion_limit(os.path.dirname(self._tmpdir))
        digest = hashlib.sha256()
        if self.compression == "zstd" and (problem := zstd_incomplete(self.path)):
            raise ArchiveError(self.path, "corrupt zstd data", why=problem,
                               hint="the archive was probably cut short: copy it again")
        raw = cast(IO[bytes], _HashingReader(self.path, digest, self.size, progress))
        try:
            with _decompressor(self.compression, raw) as stream, open(out_path, "wb") as out:
                buf = bytearray(CHUNK)
                view = memoryview(buf)
                reader = cast(io.BufferedIOBase, stream)  # gzip, lzma, bz2, zstd: all have it
                written = 0
                while n := reader.readinto(buf):
                    written += n
                    if written > limit:
                        raise ArchiveError(self.path, f"expands to more than {limit} bytes",
                                           why=why, hint=hint)
                    out.write(view[:n])
        except (OSError, EOFError, lzma.LZMAError, zlib.error, ValueError) as exc:
            if isinstance(exc, OSError) and exc.errno is not None:
                raise ArchiveError(
                    self.path, "cannot decompress", why=exc.strerror or str(exc),
                    hint="is there room in $TMPDIR?",
                ) from None
            raise ArchiveError(
                self.path, f"corrupt {self.compression} data", why=str(exc) or type(exc).__name__
            ) from None
        finally:
            raw.close()
        if self._sha256 is None:
            self._sha256 = digest.hexdigest()
            hashcache.store(self._stat, self._sha256)
        elif self._sha256 != digest.hexdigest():  # the cache lied: trust what we just read
            self._sha256, self.sha256_cached = digest.hexdigest(), False
        return out_path

    # ------------------------------------------------------------ reading

    def has(self, name: str) -> bool:
        return name in self.members

    def names(self, prefix: str = "") -> Iterator[str]:
        return (n for n in self.members if n.startswith(prefix))

    def pread(self, member: Member, offset: int, size: int) -> bytes:
        """Read ``size`` bytes at ``offset`` within ``member`` (clipped to its end)."""
        if offset < 0 or size < 0:
            raise ValueError("negative offset or size")
        size = max(0, min(size, member.size - offset))
        return os.pread(self._fd, size, member.offset + offset) if size else b""

    def pread_into(self, member: Member, offset: int, buf: memoryview) -> int:
        """Fill ``buf`` from ``offset`` within ``member`` (clipped); returns the bytes read."""
        size = max(0, min(len(buf), member.size - offset))
        if size <= 0:
            return 0
        return os.preadv(self._fd, [buf[:size]], member.offset + offset)

    @contextlib.contextmanager
    def mapped(self, member: Member, offset: int, size: int) -> Iterator[memoryview]:
        """``size`` bytes at ``offset`` within ``member``, mapped into memory, not read.

        Scanning a mapping costs no copy. It is read-only, over a descriptor opened
        read-only; it is clipped to the member and to the end of the file as it is now,
        so a member cut short by a truncated archive maps short (a file cut short
        while mapped is a SIGBUS: see :meth:`_hash_in_background`). Map pieces, not
        whole members: every page touched counts in the process's RSS until unmapped.
        The view must be released before the block ends.
        """
        import mmap

        file_end = os.fstat(self._fd).st_size
        begin = member.offset + max(0, offset)
        end = min(member.offset + member.size, begin + max(0, size), file_end)
        if end <= begin:
            yield memoryview(b"")
            return
        start = begin - begin % mmap.ALLOCATIONGRANULARITY
        try:
            mapping = mmap.mmap(self._fd, end - start, access=mmap.ACCESS_READ, offset=start)
        except (OSError, ValueError) as exc:
            raise ArchiveError(self.path, f"cannot map {member.name} into memory",
                               why=str(exc)) from None
        view = memoryview(mapping)[begin - start :]
        try:
            yield view
        finally:
            view.release()
            mapping.close()

    def read(self, name: str) -> bytes:
        """Read a whole metadata member (JSON, CRIU image); bounded in size."""
        member = self.members.get(name)
        if member is None:
            raise ArchiveError(self.path, "missing", member=name)
        if member.size > MAX_METADATA_MEMBER:
            raise ArchiveError(
                self.path, f"member is {member.size} bytes, too large to be metadata",
                member=name,
            )
        return self.pread(member, 0, member.size)

    def open_member(self, name: str) -> IO[bytes]:
        """A read-only file object over one member, e.g. to read a nested tar in place."""
        member = self.members.get(name)
        if member is None:
            raise ArchiveError(self.path, "missing", member=name)
        return cast(IO[bytes], io.BufferedReader(_MemberFile(self._fd, member), CHUNK))


class _MemberFile(io.RawIOBase):
    """A seekable read-only window onto one member, read with pread."""

    def __init__(self, fd: int, member: Member) -> None:
        super().__init__()
        self._fd = fd
        self._start = member.offset
        self._size = member.size
        self._pos = 0

    def readinto(self, buffer: Any) -> int:
        n = min(len(buffer), self._size - self._pos)
        if n <= 0:
            return 0
        data = os.pread(self._fd, n, self._start + self._pos)
        buffer[: len(data)] = data
        self._pos += len(data)
        return len(data)

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def tell(self) -> int:
        return self._pos

    def seekable(self) -> bool:
        return True

    def readable(self) -> bool:
        return True


class _HashingReader(io.RawIOBase):
    """Reads the compressed file, hashing and reporting progress as it goes."""

    def __init__(self, path: str, digest: Any, total: int, progress: Progress | None) -> None:
        super().__init__()
        self._f = open(path, "rb", buffering=0)  # noqa: SIM115 - closed by close()
        self._digest = digest
        self._total = total
        self._done = 0
        self._progress = progress

    def readinto(self, buffer: Any) -> int:
        n = self._f.readinto(buffer)
        if n:
            self._digest.update(memoryview(buffer)[:n])
            self._done += n
            if self._progress is not None:
                self._progress(self._done, self._total)
        return n or 0

    def readable(self) -> bool:
        return True

    def close(self) -> None:
        self._f.close()
        super().close()


@contextlib.contextmanager
def open_stream(path: str) -> Iterator[IO[bytes]]:
    """The archive's tar bytes as a forward-only stream, whatever its compression."""
    with open(path, "rb") as raw:
        kind = sniff_compression(raw.read(8))
        raw.seek(0)
        if kind == "none":
            yield raw
            return
        with _decompressor(kind, raw) as stream:
            yield stream


@contextlib.contextmanager
def _decompressor(kind: str, raw: IO[bytes]) -> Iterator[IO[bytes]]:
    if kind == "gzip":
        import gzip

        with gzip.GzipFile(fileobj=raw, mode="rb") as g:
            yield cast(IO[bytes], g)
    elif kind == "xz":
        import lzma

        with lzma.LZMAFile(raw, "rb") as x:
            yield cast(IO[bytes], x)
    elif kind == "bzip2":
        import bz2

        with bz2.BZ2File(raw, "rb") as b:
            yield cast(IO[bytes], b)
    elif kind == "zstd":
        import zstandard

        dctx = zstandard.ZstdDecompressor()
        try:
            with dctx.stream_reader(raw, read_size=CHUNK) as z:
                yield z
        except zstandard.ZstdError as exc:
            raise ValueError(str(exc)) from None
    else:  # pragma: no cover - sniff_compression only names the ones above
        raise ValueError(f"unknown compression {kind}")


_ZSTD_FRAME = 0xFD2FB528
_ZSTD_SKIPPABLE = 0x184D2A50  # 0x184D2A50 ... 0x184D2A5F
_ZSTD_DICT_ID_SIZES = (0, 1, 2, 4)
_ZSTD_FCS_SIZES = (0, 2, 4, 8)


def zstd_incomplete(path: str) -> str | None:
    """Why a zstd file is cut short, or None when its every frame is whole.

    python-zstandard's stream reader stops silently where the input ends,
    even in the middle of a frame, so a truncated archive would look like a
    shorter one. This walks the frame and block headers (RFC 8878) without
    decompressing: a few bytes read per block of up to 128 KiB.
    """
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size

        def at(pos: int, n: int) -> bytes:
            f.seek(pos)
            return f.read(n)

        pos = 0
        while pos < size:
            head = at(pos, 8)
            magic = int.from_bytes(head[:4], "little")
            if len(head) >= 8 and magic & 0xFFFFFFF0 == _ZSTD_SKIPPABLE:
                pos += 8 + int.from_bytes(head[4:8], "little")
                continue
            if len(head) < 5:
                return f"the file ends inside a frame header (byte {pos})"
            if magic != _ZSTD_FRAME:
                return f"no zstd frame where one should start (byte {pos})"
            fhd = head[4]
            single_segment = fhd >> 5 & 1
            pos += 5 + (1 - single_segment) + _ZSTD_DICT_ID_SIZES[fhd & 3]
            pos += _ZSTD_FCS_SIZES[fhd >> 6] or single_segment
            while True:
                block = at(pos, 3)
                if len(block) < 3:
                    return f"the file ends inside a frame, before its last block (byte {size})"
                value = int.from_bytes(block, "little")
                pos += 3 + (1 if value >> 1 & 3 == 1 else value >> 3)  # an RLE block is 1 byte
                if value & 1:
                    break
            pos += 4 if fhd >> 2 & 1 else 0  # content checksum
        if pos > size:
            return f"the file ends {pos - size} bytes before the end of its last frame"
        return None

"""Reading one file's bytes safely, and the digest that decides whether it changed.

Shared by the indexing job (which plans what to read) and every runner (which reads again where
the parsing happens, possibly on another machine, and checks the digest still matches).

A file is opened without following a link in its last component, and read only when the file
actually opened, found by its descriptor, lies inside the folder being indexed: a file swapped
for a link (or a folder swapped for a linked one) after the scan is refused, never read from
outside.
"""

from __future__ import annotations

import errno
import fcntl
import hashlib
import os
import stat
import sys
from pathlib import Path

from rag.core.errors import LoadError

_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
          stat.S_IFBLK: "a device", stat.S_IFDIR: "a folder"}
F_GETPATH = 50  # macOS: the path of an open descriptor


class Refused(LoadError):
    """What is at this path may not be read at all (a link out of the indexed folder, a special
    file): the job treats it as gone, so chunks it had before are removed."""


def not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'special file')}); not read"


def under(path: str, root: str) -> bool:
    """``path`` is ``root`` or lies below it (both absolute, without links)."""
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _opened_path(fd: int) -> str | None:
    """Where the open file really is, asked of the descriptor (None where the system cannot say)."""
    if sys.platform.startswith("linux"):
        try:
            return os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            return None
    if sys.platform == "darwin":
        try:
            raw = fcntl.fcntl(fd, F_GETPATH, b"\0" * 1024)
            return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
        except OSError:
            return None
    return None


def open_inside(path: Path, root: str) -> int:
    """A read-only, non-blocking descriptor of ``path``, which must lie inside ``root`` (an
    absolute path without links; the file itself when a single file is indexed). Links inside
    the folder are followed to their target; anything that leads out is ``Refused``."""
    real = os.path.realpath(path)
    if not under(real, root):
        raise Refused("symbolic link to outside the indexed folder; not followed")
    try:
        fd = os.open(real, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise Refused("became a symbolic link while being indexed; not followed") from None
        raise
    actual = _opened_path(fd)
    try:
        if actual is None:  # no descriptor path here: the file opened must be the one checked
            st, now = os.fstat(fd), os.stat(real)
            if (st.st_dev, st.st_ino) != (now.st_dev, now.st_ino):
                raise Refused("changed into another file while being opened; not read")
        elif not under(actual, root):
            raise Refused("its folder was swapped for a link to outside the indexed folder "
                          "while being indexed; not read")
    except BaseException:
        os.close(fd)
        raise
    return fd


def read_regular(path: Path, max_bytes: int, root: str | None = None) -> tuple[os.stat_result, bytes]:
    """The file's bytes, refusing anything that is not a regular file inside ``root`` (default:
    the file itself, as its path resolves now) or is over ``max_bytes``; opened non-blocking, so
    a file swapped for a pipe after the scan cannot hang the job."""
    fd = open_inside(path, root or os.path.realpath(path))
    try:
        st = os.fstat(fd)
        reason = not_regular(st.st_mode)
        if reason:
            raise Refused(reason)
        if st.st_size > max_bytes:
            raise LoadError(f"{st.st_size / 2**20:.1f} MB is over the limit of "
                            f"{max_bytes / 2**20:g} MB (ingest.max_file_mb); not read")
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(max_bytes + 1)
    finally:
        os.close(fd)
    if len(data) > max_bytes:
        raise LoadError(f"grew over the limit of {max_bytes / 2**20:g} MB while being read")
    return st, data


# What a file yields changes with the loaders and the chunker (OCR, text cleaning, new formats,
# PDF tables, table headers too wide to repeat, fenced code cut between lines, compounds kept
# at line ends): their version is part of each file's recorded digest, so files indexed by older
# ones are read again by the next run; chunks whose text did not change keep their vectors.
LOADER_VERSION = 6


def file_digest(data: bytes) -> str:
    return f"{LOADER_VERSION}:{hashlib.sha256(data).hexdigest()}"

"""Reading one file's bytes safely, and the digest that decides whether it changed.

Shared by the indexing job (which plans what to read) and every runner (which reads again where
the parsing happens, possibly on another machine, and checks the digest still matches).
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from ingest.loaders import LoadError

_KINDS = {stat.S_IFIFO: "a named pipe", stat.S_IFSOCK: "a socket", stat.S_IFCHR: "a device",
          stat.S_IFBLK: "a device", stat.S_IFDIR: "a folder"}


def not_regular(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    return f"not a regular file ({_KINDS.get(stat.S_IFMT(mode), 'special file')}); not read"


def read_regular(path: Path, max_bytes: int) -> tuple[os.stat_result, bytes]:
    """The file's bytes, refusing anything that is not a regular file or is over ``max_bytes``;
    opened non-blocking, so a file swapped for a pipe after the scan cannot hang the job."""
    fd = os.open(os.path.realpath(path), os.O_RDONLY | os.O_NONBLOCK)
    try:
        st = os.fstat(fd)
        reason = not_regular(st.st_mode)
        if reason:
            raise LoadError(reason)
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


# What a file yields changes with the loaders (OCR, text cleaning, new formats, PDF tables): their
# version is part of each file's recorded digest, so files indexed by older loaders are read again
# by the next run; chunks whose text did not change keep their vectors.
LOADER_VERSION = 3


def file_digest(data: bytes) -> str:
    return f"{LOADER_VERSION}:{hashlib.sha256(data).hexdigest()}"

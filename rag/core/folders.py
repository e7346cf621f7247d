"""Paths as rag records them, and folders that are made once and then only read (models put
together or converted on first use), shared by every process that may make them at the same
time."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Callable
from pathlib import Path


def absolute(path: str | Path) -> Path:
    """``path`` as a knowledge base records it: ``~`` expanded, absolute, ``.`` and ``..`` taken
    out as the shell shows them (``rag index ../papers`` from one folder and ``rag index
    ~/papers`` are the same files, not a second copy of each). Links are not resolved: a file is
    known by the path it was indexed under."""
    return Path(os.path.normpath(Path(path).expanduser().absolute()))


def make_once(target: Path, marker: str, fill: Callable[[Path], None]) -> Path:
    """``target`` once it holds ``marker``: filled in a hidden sibling folder and renamed into
    place, so a killed maker leaves nothing half-made and two makers at once both end with the
    first one's folder. OSError from writing is raised unless another maker succeeded."""
    if (target / marker).is_file():
        return target
    tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}")
    tmp.mkdir(parents=True)
    try:
        fill(tmp)
        os.replace(tmp, target)
    except OSError:
        if (target / marker).is_file():  # another process made it meanwhile
            return target
        raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target

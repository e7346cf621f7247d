"""Uploaded files land in the KB's own folder under a sanitised name, never outside it."""

from __future__ import annotations

import os
import re
import unicodedata
from dataclasses import dataclass
from pathlib import Path

MAX_NAME = 120


@dataclass
class Upload:
    name: str
    data: bytes


def safe_name(name: str) -> str:
    """The last path component of ``name`` with only letters, digits, '.', '-', '_', ' ', '(' and
    ')' kept; never empty, never hidden, never '.' or '..'."""
    base = re.split(r"[\\/]", unicodedata.normalize("NFKC", name))[-1]
    base = "".join(ch for ch in base if ch.isprintable())
    base = re.sub(r"[^\w.\-() ]", "_", base).strip(" .")
    stem, dot, ext = base.rpartition(".")
    if dot and len(ext) <= 10:
        base = stem[: MAX_NAME - len(ext) - 1] + "." + ext
    return base[:MAX_NAME] or "upload"


def save_uploads(folder: Path, uploads: list[Upload], max_bytes: int
                 ) -> tuple[list[Path], list[tuple[str, str]]]:
    """Check every upload first, then write the accepted ones into ``folder`` (replacing an
    earlier upload of the same name: a new version). Two uploads of one batch whose names become
    the same (``q1/report.md``, ``q2\\report.md``) are refused, never merged. Returns the saved
    paths and (name, reason) for each refused upload."""
    root = folder.resolve()
    accepted: dict[Path, Upload] = {}
    refused: list[tuple[str, str]] = []
    claimed: dict[Path, str] = {}
    for upload in uploads:
        name = safe_name(upload.name)
        target = (root / name).resolve()
        if target.parent != root:  # cannot happen after safe_name; checked all the same
            refused.append((upload.name, "unsafe file name"))
        elif len(upload.data) > max_bytes:
            refused.append((upload.name, f"{len(upload.data) / 2**20:.1f} MB is over the upload "
                                         f"limit of {max_bytes / 2**20:.0f} MB (ui.max_upload_mb)"))
        elif not upload.data:
            refused.append((upload.name, "the file is empty"))
        elif target in claimed:
            refused.append((upload.name, f"saved as {name} it would collide with "
                                         f"{claimed[target]} of the same upload; rename one"))
            accepted.pop(target, None)
        else:
            claimed[target] = upload.name
            accepted[target] = upload
    for target in [t for t in claimed if t not in accepted]:  # the first of a colliding pair
        refused.append((claimed[target], f"collides with another file of the same upload as "
                                         f"{target.name}; rename one"))
    if accepted:
        folder.mkdir(parents=True, exist_ok=True)
    for target, upload in accepted.items():
        tmp = target.with_name(f".{target.name}.part")
        tmp.write_bytes(upload.data)
        os.replace(tmp, target)
    return list(accepted), refused

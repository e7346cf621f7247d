"""Python child processes (the parser, the snapshot builder) import rag exactly as the parent
does, whether it is installed, run from a checkout or driven by tests."""

from __future__ import annotations

import os
import sys


def child_env(**extra: str) -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), **extra)

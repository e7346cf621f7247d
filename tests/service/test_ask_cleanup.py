"""A killed `rag ask` leaves no vLLM engine process behind (the real embedded engine)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from tests.helpers import link_models, stop_group

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_killed_ask_stops_its_engine(sig: int, tmp_path: Path, models_dir: Path) -> None:
    home = tmp_path / "home"
    link_models(home, models_dir)
    env = {**os.environ, "RAG_HOME": str(home),
           "RAG_GENERATOR__SERVER_URL": "http://127.0.0.1:9/v1"}  # no server: embedded engine
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.md").write_text("Cats purr when they are content.\n")
    rag = [sys.executable, "-m", "rag.cli.main"]
    subprocess.run([*rag, "index", str(docs), "--kb", "t"], env=env, check=True,
                   capture_output=True)
    log = tmp_path / "ask.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([*rag, "ask", "Why do cats purr?", "--kb", "t"], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        parent = psutil.Process(proc.pid)
        deadline = time.monotonic() + 600
        while (not parent.children(recursive=True) and proc.poll() is None
               and time.monotonic() < deadline):
            time.sleep(0.5)
        children = parent.children(recursive=True)
        assert children, f"the engine never started: {log.read_text()[-2000:]}"
        time.sleep(5)  # let the engine core get going
        children = parent.children(recursive=True)
        proc.send_signal(sig)
        proc.wait(timeout=120)
        _, alive = psutil.wait_procs(children, timeout=30)
        assert not alive, [p.info if hasattr(p, "info") else p for p in alive]
    finally:
        if proc.poll() is None:
            stop_group(proc, signal.SIGKILL)

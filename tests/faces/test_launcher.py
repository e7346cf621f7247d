"""The LLM server that `rag ui` starts dies with its launcher, is never duplicated, has an API
key, and its log rotates."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from rag.core.config import load_settings
from rag.generation.server import LlmState, ManagedServer, _alive, plan_llm, started_at, stop_orphans

ROOT = Path(__file__).resolve().parents[2]


def wait_gone(pid: int, timeout: float = 30) -> bool:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        if not _alive(pid) or _zombie(pid):
            return True
        time.sleep(0.1)
    return False


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] == "Z"
    except OSError:
        return True


def test_server_dies_when_its_launcher_is_killed(settings) -> None:  # noqa: ANN001
    launcher = subprocess.Popen([sys.executable, str(ROOT / "tests" / "launch_job.py")],
                                stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT)})
    server_pid = int(launcher.stdout.readline())  # type: ignore[union-attr]
    assert _alive(server_pid)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    assert wait_gone(server_pid), "the LLM server outlived its launcher"


def test_streamlit_dies_when_its_launcher_is_killed(settings) -> None:  # noqa: ANN001
    launcher = subprocess.Popen([sys.executable, str(ROOT / "tests" / "launch_ui.py")],
                                stdout=subprocess.PIPE, env={**os.environ, "PYTHONPATH": str(ROOT),
                                                             "RAG_UI__START_LLM": "false"})
    app_pid = int(launcher.stdout.readline())  # type: ignore[union-attr]
    assert _alive(app_pid)
    launcher.send_signal(signal.SIGKILL)
    launcher.wait()
    assert wait_gone(app_pid), "Streamlit outlived its launcher"


def test_orphans_of_dead_launchers_are_stopped(settings, tmp_path: Path) -> None:  # noqa: ANN001
    orphan = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                              start_new_session=True)
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    started = started_at(orphan.pid)
    LlmState("u", "m", True, "n", pid=orphan.pid, launcher_pid=dead.pid,
             pid_started=started).save(run_dir / "llm-ui-1.json")
    LlmState("u", "m", True, "n", pid=orphan.pid, launcher_pid=os.getpid(),
             pid_started=started).save(run_dir / "llm-ui-2.json")  # a live launcher's: left alone
    assert stop_orphans(run_dir) == [orphan.pid]
    orphan.wait(timeout=30)
    assert not (run_dir / "llm-ui-1.json").exists() and (run_dir / "llm-ui-2.json").exists()


def test_a_stale_state_file_never_kills_a_process_that_reused_the_pid(tmp_path: Path) -> None:
    """The launcher and its server are long gone; the server's pid now belongs to an unrelated
    process (started later): it is left running, and the stale state file goes."""
    unrelated = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"],
                                 start_new_session=True)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    LlmState("u", "m", True, "n", pid=unrelated.pid, launcher_pid=dead.pid,
             pid_started=(started_at(unrelated.pid) or 0) - 3600).save(run_dir / "llm-ui-1.json")
    try:
        assert stop_orphans(run_dir) == []
        time.sleep(0.5)
        assert unrelated.poll() is None and not (run_dir / "llm-ui-1.json").exists()
    finally:
        unrelated.kill()
        unrelated.wait()


def test_started_server_gets_an_api_key_and_a_rotating_log(settings) -> None:  # noqa: ANN001
    dead = "http://127.0.0.1:9/v1"
    _, server = plan_llm(load_settings(generator={"mode": "served", "server_url": dead}))
    assert server is not None and len(server.api_key) >= 24
    chatty = ManagedServer(load_settings(ui={"llm_log_mb": 1}), 0, "k", command=[
        sys.executable, "-c",
        "import os; [print(os.environ['RAG_GENERATOR__API_KEY'] + 'x' * 200) for _ in range(16000)]"])
    chatty.start()
    assert chatty.proc is not None and chatty.proc.wait(timeout=60) == 0
    deadline = time.time() + 30
    while len(list(chatty.log.parent.glob("llm-server.log*"))) < 3 and time.time() < deadline:
        time.sleep(0.1)
    logs = sorted(chatty.log.parent.glob("llm-server.log*"))
    assert [p.name for p in logs] == ["llm-server.log", "llm-server.log.1", "llm-server.log.2"]
    assert all(p.stat().st_size <= 2**20 + 300 for p in logs)
    assert logs[0].read_text().startswith("k")

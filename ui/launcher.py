"""`rag ui`: find or start the LLM server, then run Streamlit; both processes are supervised.

The app needs one model for every browser session. A vLLM server gives exactly that and batches
concurrent sessions, so the UI always talks to one over HTTP: the configured server when it
answers, else a local ``rag serve-llm`` that this launcher starts, restarts if it dies, and stops
on exit. The app learns which from a small JSON state file (``RAG_UI_LLM_STATE``).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.config import Settings
from rag.generation import server_healthy

STATE_ENV = "RAG_UI_LLM_STATE"
MAX_RESTARTS = 5


@dataclass
class LlmState:
    """What the app shows about the LLM: where it is and who started it."""

    url: str
    model: str
    managed: bool  # started by this launcher
    notice: str
    pid: int | None = None
    log: str | None = None
    restarts: int = 0
    gave_up: bool = False

    def save(self, path: Path) -> None:
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        os.replace(tmp, path)


def read_state() -> LlmState | None:
    path = os.environ.get(STATE_ENV)
    if not path:
        return None
    try:
        return LlmState(**json.loads(Path(path).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def last_line(path: Path) -> str:
    try:
        lines = [ln for ln in path.read_text(errors="replace").splitlines() if ln.strip()]
    except OSError:
        return ""
    return lines[-1][-300:] if lines else ""


class ManagedServer:
    """A ``rag serve-llm`` child with its log in $RAG_HOME/logs."""

    def __init__(self, settings: Settings, port: int) -> None:
        self.port = port
        self.log = settings.home / "logs" / "llm-server.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "rag.cli.main", "serve-llm", "--port", str(self.port)],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        return self.proc.pid

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def plan_llm(settings: Settings) -> tuple[LlmState, ManagedServer | None]:
    """Use the configured server if it answers; else start one (unless ui.start_llm is off)."""
    g = settings.generator
    if g.mode == "served" and server_healthy(g.server_url):
        return LlmState(g.server_url, g.model, False, f"Using the LLM server at {g.server_url}"), None
    unreachable = f"The LLM server {g.server_url} is not reachable. " if g.mode == "served" else ""
    if not settings.ui.start_llm:
        return LlmState(g.server_url, g.model, False,
                        unreachable + "ui.start_llm is off: start one with `rag serve-llm`."), None
    port = free_port()
    server = ManagedServer(settings, port)
    notice = (f"{unreachable}Started a local vLLM server for {g.model} on port {port} "
              f"(log: {server.log}).")
    return LlmState(f"http://127.0.0.1:{port}/v1", g.model, True, notice, log=str(server.log)), server


def streamlit_command(settings: Settings, host: str, port: int, headless: bool) -> list[str]:
    app = Path(__file__).with_name("app.py")
    return [sys.executable, "-m", "streamlit", "run", str(app),
            "--server.address", host, "--server.port", str(port),
            "--server.headless", str(headless).lower(),
            "--server.maxUploadSize", str(settings.ui.max_upload_mb),
            "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false",
            "--global.developmentMode", "false", "--client.toolbarMode", "minimal"]


def run(settings: Settings, kb: str | None, host: str, port: int, headless: bool,
        echo: Callable[[str], None] = print) -> int:
    """Start everything and wait; returns Streamlit's exit status."""
    state, server = plan_llm(settings)
    run_dir = settings.home / "run"
    run_dir.mkdir(parents=True, exist_ok=True)
    state_file = run_dir / f"ui-{port}.json"
    if server is not None:
        state.pid = server.start()
    state.save(state_file)
    env = dict(os.environ, RAG_GENERATOR__MODE="served", RAG_GENERATOR__SERVER_URL=state.url,
               **{STATE_ENV: str(state_file)})
    if kb:
        env["RAG_DEFAULT_KB"] = kb
    echo(f"rag ui: http://{host}:{port}")
    echo(state.notice)
    app = subprocess.Popen(streamlit_command(settings, host, port, headless), env=env)
    # `docker stop` and service managers send SIGTERM, and a shell's background job ignores
    # SIGINT: clean up on either as for Ctrl-C.
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.default_int_handler)
    try:
        while app.poll() is None:
            time.sleep(1.0)
            if server is not None and not state.gave_up and server.exited() is not None:
                _restart(server, state, state_file, echo)
    except KeyboardInterrupt:
        pass
    finally:
        if app.poll() is None:
            app.terminate()
            try:
                app.wait(timeout=10)
            except subprocess.TimeoutExpired:
                app.kill()
        if server is not None:
            server.stop()
        state_file.unlink(missing_ok=True)
    return app.returncode or 0


def _restart(server: ManagedServer, state: LlmState, state_file: Path,
             echo: Callable[[str], None]) -> None:
    code = server.exited()
    why = last_line(server.log)
    if state.restarts >= MAX_RESTARTS:
        state.gave_up = True
        state.notice = (f"The local LLM server stopped {state.restarts + 1} times (exit {code}: "
                        f"{why}); not restarting. See {server.log}.")
    else:
        state.restarts += 1
        time.sleep(min(30, 2 ** state.restarts))
        state.pid = server.start()
        state.notice = (f"The local LLM server stopped (exit {code}); restarted it "
                        f"(restart {state.restarts} of {MAX_RESTARTS}; log: {server.log}).")
    echo(state.notice)
    state.save(state_file)

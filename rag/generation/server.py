"""The one LLM server that the app and the HTTP API share: found or started, and supervised.

Every browser session and API client needs the same model. A vLLM server gives exactly that and
batches concurrent requests, so the faces always talk to one over HTTP: the configured server
when it answers, else a local ``rag serve-llm`` that ``LlmSupervisor`` starts, restarts if it
dies, and stops on exit. The face learns which from a small JSON state file (``RAG_UI_LLM_STATE``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import logging.handlers
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

from rag.core.children import die_with_parent
from rag.core.config import Settings
from rag.generation.engines import server_healthy

log = logging.getLogger(__name__)
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
    launcher_pid: int | None = None
    pid_started: float | None = None  # the server's start time: a reused pid is not it

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




def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class ManagedServer:
    """A ``rag serve-llm`` child that dies with its launcher; its output goes to a rotating log
    in $RAG_HOME/logs (``ui.llm_log_mb`` per file, two old files kept)."""

    def __init__(self, settings: Settings, port: int, api_key: str = "",
                 command: Sequence[str] | None = None) -> None:
        self.port = port
        self.api_key = api_key
        self.command = list(command or [sys.executable, "-m", "rag.cli.main", "serve-llm",
                                        "--port", str(port)])
        self.log = settings.home / "logs" / "llm-server.log"
        self.log.parent.mkdir(parents=True, exist_ok=True)
        self.log_bytes = settings.ui.llm_log_mb * 2**20
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> int:
        env = dict(os.environ, RAG_GENERATOR__API_KEY=self.api_key) if self.api_key else None
        self.proc = subprocess.Popen(
            self.command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, preexec_fn=die_with_parent, env=env)
        threading.Thread(target=self._copy_log, args=(self.proc,), daemon=True,
                         name="llm-log").start()
        return self.proc.pid

    def _copy_log(self, proc: subprocess.Popen[bytes]) -> None:
        handler = logging.handlers.RotatingFileHandler(
            self.log, maxBytes=self.log_bytes, backupCount=2, encoding="utf-8")
        handler.setFormatter(logging.Formatter("%(message)s"))
        try:
            for line in proc.stdout or ():
                handler.emit(logging.makeLogRecord(
                    {"msg": line.decode("utf-8", "replace").rstrip("\n"), "levelno": 20}))
        finally:
            handler.close()

    def exited(self) -> int | None:
        return None if self.proc is None else self.proc.poll()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)


def started_at(pid: int | None) -> float | None:
    """When process ``pid`` started (None if there is none): with the pid, who it is."""
    import psutil

    try:
        return psutil.Process(pid).create_time() if pid else None
    except psutil.Error:
        return None


def stop_orphans(run_dir: Path) -> list[int]:
    """Stop servers that a launcher started and did not live to stop (their state file remains,
    their launcher is gone): the next ``rag ui`` or ``rag serve`` never runs a second one beside
    them. A pid that now belongs to another process (started at another time) is left alone."""
    stopped = []
    for path in sorted(run_dir.glob("llm-*.json")):
        try:
            state = LlmState(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError):
            continue
        if _alive(state.launcher_pid):
            continue
        if state.managed and _alive(state.pid) and started_at(state.pid) == state.pid_started:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(state.pid, signal.SIGTERM)  # type: ignore[arg-type]
            stopped.append(state.pid)  # type: ignore[arg-type]
        path.unlink(missing_ok=True)
    return stopped


def plan_llm(settings: Settings) -> tuple[LlmState, ManagedServer | None]:
    """Use the configured server if it answers; else start one (unless ui.start_llm is off).
    A started server gets a fresh API key unless one is configured: other local users cannot
    use it."""
    g = settings.generator
    if g.mode == "served" and server_healthy(g.server_url):
        return LlmState(g.server_url, g.model, False, f"Using the LLM server at {g.server_url}"), None
    unreachable = f"The LLM server {g.server_url} is not reachable. " if g.mode == "served" else ""
    if not settings.ui.start_llm:
        return LlmState(g.server_url, g.model, False,
                        unreachable + "ui.start_llm is off: start one with `rag serve-llm`."), None
    port = free_port()
    server = ManagedServer(settings, port, g.api_key or secrets.token_urlsafe(24))
    notice = (f"{unreachable}Started a local vLLM server for {g.model} on port {port} "
              f"(log: {server.log}).")
    return LlmState(f"http://127.0.0.1:{port}/v1", g.model, True, notice, log=str(server.log)), server


class LlmSupervisor:
    """Finds or starts the LLM server for one face (``rag ui``, ``rag serve``) and keeps it up:
    ``check()`` restarts a started server that died (with back-off, up to MAX_RESTARTS), and
    leaving the ``with`` block stops it. The state file tells the face's processes where the
    server is (``env()``)."""

    def __init__(self, settings: Settings, face: str, port: int,
                 echo: Callable[[str], None] = print) -> None:
        self.echo = echo
        run_dir = settings.home / "run"
        run_dir.mkdir(parents=True, exist_ok=True)
        for pid in stop_orphans(run_dir):
            echo(f"Stopped an LLM server (pid {pid}) left behind by a launcher that died.")
        self.state, self.server = plan_llm(settings)
        self.state.launcher_pid = os.getpid()
        self.state_file = run_dir / f"llm-{face}-{port}.json"

    def __enter__(self) -> LlmSupervisor:
        if self.server is not None:
            self.state.pid = self.server.start()
            self.state.pid_started = started_at(self.state.pid)
        self.state.save(self.state_file)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()
        self.state_file.unlink(missing_ok=True)

    def env(self) -> dict[str, str]:
        """The environment that points a face's settings at this server."""
        env = {"RAG_GENERATOR__MODE": "served", "RAG_GENERATOR__SERVER_URL": self.state.url,
               STATE_ENV: str(self.state_file)}
        if self.server is not None and self.server.api_key:
            env["RAG_GENERATOR__API_KEY"] = self.server.api_key
        return env

    def check(self) -> None:
        server, state = self.server, self.state
        if server is None or state.gave_up or server.exited() is None:
            return
        code = server.exited()
        why = last_line(server.log)
        if state.restarts >= MAX_RESTARTS:
            state.gave_up = True
            state.notice = (f"The local LLM server stopped {state.restarts + 1} times (exit "
                            f"{code}: {why}); not restarting. See {server.log}.")
        else:
            state.restarts += 1
            time.sleep(min(30, 2 ** state.restarts))
            state.pid = server.start()
            state.pid_started = started_at(state.pid)
            state.notice = (f"The local LLM server stopped (exit {code}); restarted it "
                            f"(restart {state.restarts} of {MAX_RESTARTS}; log: {server.log}).")
        self.echo(state.notice)
        state.save(self.state_file)


def with_running_server(settings: Settings, say: Callable[[str], None] = log.info) -> Settings:
    """Settings that use the LLM server at ``generator.server_url`` when one answers there with
    the configured model (a ``rag serve-llm`` left running): no engine start. Otherwise the
    embedded engine, said once (through ``say``)."""

    g = settings.generator
    if g.mode == "served":
        return settings
    if server_healthy(g.server_url, timeout=1.0):
        served = _served_models(g.server_url, g.api_key)
        if any(_same_model(root, g.model) for root in served):
            say(f"using the LLM server at {g.server_url}")
            return settings.model_copy(
                update={"generator": g.model_copy(update={"mode": "served"})})
        say(f"the LLM server at {g.server_url} serves {', '.join(served) or '?'}, "
            f"not {g.model}: starting the embedded engine (about a minute)")
        return settings
    say(f"no LLM server at {g.server_url}: starting the embedded engine "
        "(about a minute; `rag serve-llm` keeps one running)")
    return settings


def _served_models(url: str, api_key: str) -> list[str]:
    """What the server's models are loaded from (vLLM's ``root``: a hub id or folder)."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        data = httpx.get(url.rstrip("/") + "/models", headers=headers, timeout=2.0).json()
        return [str(m.get("root") or m.get("id")) for m in data.get("data", [])]
    except (httpx.HTTPError, ValueError, AttributeError):
        return []


def _same_model(root: str, configured: str) -> bool:
    if configured.startswith("bundled:"):  # converted under some $RAG_HOME/models/NAME
        return Path(root).name == configured.removeprefix("bundled:")
    return root == configured or Path(root).expanduser().resolve() == Path(
        configured).expanduser().resolve()

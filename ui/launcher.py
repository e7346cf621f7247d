"""`rag ui`: find or start the LLM server (rag.generation.server), then run Streamlit; both processes
are supervised and die with this launcher."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from rag.core.children import die_with_parent
from rag.core.config import Settings
from rag.generation.server import LlmSupervisor


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
    with LlmSupervisor(settings, "ui", port, echo) as llm:
        env = dict(os.environ, **llm.env())
        if kb:
            env["RAG_DEFAULT_KB"] = kb
        echo(f"rag ui: http://{host}:{port}")
        echo(llm.state.notice)
        # Streamlit dies with the launcher too, even when the launcher is killed with SIGKILL.
        app = subprocess.Popen(streamlit_command(settings, host, port, headless), env=env,
                               preexec_fn=die_with_parent)
        # `docker stop` and service managers send SIGTERM, a closed terminal SIGHUP, and a
        # shell's background job ignores SIGINT: clean up on each as for Ctrl-C.
        for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(sig, signal.default_int_handler)
        try:
            while app.poll() is None:
                time.sleep(1.0)
                llm.check()
        except KeyboardInterrupt:
            pass
        finally:
            if app.poll() is None:
                app.terminate()
                try:
                    app.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    app.kill()
    return app.returncode or 0

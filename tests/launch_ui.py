"""Runs `rag ui`'s launcher with a sleeping stand-in for Streamlit that prints its pid; killed
with SIGKILL by the tests."""

import sys

from rag.core.config import load_settings
from ui import launcher

if __name__ == "__main__":
    launcher.streamlit_command = lambda *args: [  # type: ignore[assignment]
        sys.executable, "-c", "import os, time; print(os.getpid(), flush=True); time.sleep(600)"]
    launcher.run(load_settings(), None, "127.0.0.1", 0, True, echo=lambda line: None)

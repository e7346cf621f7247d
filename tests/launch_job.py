"""Starts a ManagedServer (a sleeping stand-in) and waits; killed with SIGKILL by the tests."""

import sys
import time

from rag.core.config import load_settings
from rag.generation.server import ManagedServer

if __name__ == "__main__":
    server = ManagedServer(load_settings(), 0, command=[sys.executable, "-c",
                                                        "import time; time.sleep(600)"])
    print(server.start(), flush=True)
    time.sleep(600)

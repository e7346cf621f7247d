"""Child processes, one set of rules for all of them: a Python child (the parser, the snapshot
builder) imports rag exactly as its parent does, whether installed, run from a checkout or
driven by tests; a server child dies with the process that started it, even by SIGKILL; and a
command that started children stops them all when it exits, Ctrl-C and SIGTERM included."""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1


def child_env(**extra: str) -> dict[str, str]:
    """The environment for a Python child: this process's, with its import path."""
    return dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p), **extra)


def stop_children_on_exit() -> None:
    """On exit, SIGTERM and Ctrl-C included, stop every process this one started (vLLM's engine
    core ignores SIGTERM and would outlive a killed ``rag ask``)."""
    import atexit

    if getattr(stop_children_on_exit, "armed", False):
        return
    stop_children_on_exit.armed = True  # type: ignore[attr-defined]

    def stop() -> None:
        import psutil

        children = psutil.Process().children(recursive=True)
        for child in children:
            with contextlib.suppress(psutil.Error):
                child.terminate()
        _, alive = psutil.wait_procs(children, timeout=5)
        for child in alive:
            with contextlib.suppress(psutil.Error):
                child.kill()

    def on_signal(number: int, _frame: object) -> None:
        # Exit at once: an exception raised here can land inside vLLM's start-up wait, which
        # swallows it and waits on for the engine just stopped. Results are already on disk.
        stop()
        sys.stderr.write(f"error: {'interrupted' if number == signal.SIGINT else 'terminated'}\n")
        sys.stderr.flush()
        os._exit(128 + number)

    atexit.register(stop)
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)


def die_with_parent() -> None:
    """In the child before exec: the kernel sends SIGTERM when the launcher dies, even by
    SIGKILL, so a server is never orphaned (Linux; elsewhere the stale-state sweep stops it)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)

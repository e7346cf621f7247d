"""Indexes a folder with a slow fake embedder; killed with SIGKILL by test_crash_safety (and, with
--ray, by test_ray_runner)."""

import sys
from pathlib import Path

from rag.core.config import load_settings
from rag.service.pipeline import Pipeline
from tests.fakes import HashEmbedder

if __name__ == "__main__":
    ray = "--ray" in sys.argv
    settings = load_settings(jobs={"runner": "ray"}) if ray else load_settings()
    pipeline = Pipeline(settings, "crash", embedder=HashEmbedder(delay=0.2 if ray else 0.01))
    report = pipeline.index([Path(sys.argv[1])], rebuild="--rebuild" in sys.argv)
    print("done", report.indexed, flush=True)

"""Hostile files through the real `rag index` (the CLI in a subprocess, the bundled embedder,
default limits): peak memory of the whole process tree (the job and its parser child, sampled
every 50 ms), wall time, and the reason each file failed or the warning it gave. Every case
must stay under 1.5 GB and end with a reason that names its limit (docs/security.md lists
them). Writes bench/results/hostile_inputs.json.

Cases (tests/hostile.py makes them): a 9 KB GIF of 400 screen-sized frames, a 1 MB DOCX whose
part inflates to 1 GB, 30,000 nested HTML tables, 8,000 HTML headings, a 21-frame TIFF (every
frame OCR'd), 60 ruled PDF pages (every page through table detection), a 10,000-page PDF, an
800 KB CSV of 200,000 columns (indexed, its header once), a 445 KB XLSX repeating one 30 KB
string in 8,400 cells (refused at ingest.max_text_mb).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the tests' hostile files
from common import throwaway_folder  # noqa: E402

from rag.core.hardware import cpu_name  # noqa: E402
from tests import hostile  # noqa: E402

OUT = Path(__file__).with_name("results") / "hostile_inputs.json"
CASES = {
    "frames.gif": hostile.gif_frame_bomb,
    "bomb.docx": hostile.docx_zip_bomb,
    "nested-tables.html": hostile.nested_tables_html,
    "headings.html": hostile.many_headings_html,
    "frames.tiff": hostile.text_frames_tiff,
    "ruled.pdf": hostile.ruled_pdf,
    "pages.pdf": hostile.many_pages_pdf,
    "columns.csv": hostile.wide_csv,
    "strings.xlsx": lambda: hostile.shared_string_xlsx(rows=290, columns=29, size=30_000),
}
LIMIT_MB = 1536


def run_case(name: str, data: bytes) -> dict[str, object]:
    work = throwaway_folder("rag-hostile-")
    (work / "docs").mkdir()
    (work / "docs" / name).write_bytes(data)
    env = {**os.environ, "RAG_HOME": str(work / "home"), "HF_HUB_OFFLINE": "1"}
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "rag.cli.main", "index", str(work / "docs"),
                             "--kb", "hostile", "--json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, env=env, text=True, cwd=ROOT)
    peak, tree = 0, psutil.Process(proc.pid)
    while proc.poll() is None:
        try:
            peak = max(peak, sum(p.memory_info().rss for p in [tree, *tree.children(True)]))
        except psutil.Error:
            pass
        time.sleep(0.05)
    out, err = proc.communicate()
    seconds = time.perf_counter() - started
    try:
        report = json.loads(out)
        outcome = ([f"failed: {f['reason']}" for f in report["failed"]]
                   + [f"warning: {w['reason']}" for w in report["warnings"]]
                   or [f"indexed, {report['chunks_added']} chunks"])
    except ValueError:
        outcome = [f"error: {err.strip().splitlines()[-1] if err.strip() else proc.returncode}"]
    return {"file_kb": round(len(data) / 1024, 1), "peak_mb": round(peak / 2**20),
            "seconds": round(seconds, 1), "outcome": outcome,
            "under_limit": peak / 2**20 < LIMIT_MB}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=sorted(CASES), help="only these")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    results = {}
    for name in args.case or CASES:
        results[name] = run_case(name, CASES[name]())
        r = results[name]
        print(f"{name:20} {r['file_kb']:>8} KB  {r['peak_mb']:>5} MB  {r['seconds']:>6} s  "
              f"{r['outcome'][0][:90]}", flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "cpu": cpu_name(),
        "date": time.strftime("%Y-%m-%d"), "limit_mb": LIMIT_MB, "cases": results}, indent=1))
    if not all(r["under_limit"] for r in results.values()):
        raise SystemExit(f"a case went over {LIMIT_MB} MB")


if __name__ == "__main__":
    main()

"""``rag eval compare``: two answer runs side by side, as a regression gate."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from eval.intervals import HIGHER_IS_BETTER, LOWER_IS_BETTER, METRICS, Row, paired_difference
from eval.runs import PER_ANSWER
from rag.core.errors import CompareError


def load_run(folder: Path) -> list[Row]:
    path = folder / PER_ANSWER
    if not path.is_file():
        raise CompareError(f"{folder} is not an answer run ({PER_ANSWER} is missing)")
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()
            if line.strip()]


def compare(run_a: Path, run_b: Path, gate: Sequence[str] = ()) -> Row:
    """Paired differences of every metric; a gated metric regresses when the whole interval of
    B - A lies below zero (above zero for a lower-is-better one, such as refusing answerable
    questions)."""
    unknown = [m for m in gate if m not in METRICS]
    if unknown:
        raise CompareError(f"unknown metric(s) {', '.join(unknown)} (choose from "
                           f"{', '.join(METRICS)})")
    a, b = load_run(run_a), load_run(run_b)
    diffs = {name: paired_difference(a, b, metric) for name, metric in METRICS.items()}
    gated = list(gate) or [m for m in (*HIGHER_IS_BETTER, *LOWER_IS_BETTER)
                           if diffs[m]["diff"] is not None]
    regressions = [m for m in gated if diffs[m]["diff"] is not None and (
        diffs[m]["low"] > 0 if m in LOWER_IS_BETTER  # type: ignore[operator]
        else diffs[m]["high"] < 0)]  # type: ignore[operator]
    shared = max((int(d["questions"] or 0) for d in diffs.values()), default=0)
    return {"a": str(run_a), "b": str(run_b), "questions": shared, "metrics": diffs,
            "gated": gated, "regressions": regressions}

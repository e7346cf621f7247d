"""`rag feedback export|stats`: the thumbs up/down the app collected, as an evaluation set."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rag.cli.common import get_settings, print_json, stdout
from rag.storage.feedback import RATINGS, FeedbackStore, feedback_path


@click.group("feedback")
def feedback_group() -> None:
    """Answers judged in the UI (thumbs up/down and comments)."""


@feedback_group.command("export")
@click.option("-o", "--out", type=click.Path(path_type=Path, dir_okay=False),
              help="Write JSONL here instead of standard output.")
@click.option("--rating", type=click.Choice(RATINGS), help="Only answers judged up or down.")
def feedback_export(out: Path | None, rating: str | None) -> None:
    """Export judged answers as a JSONL evaluation set (question, answer, sources, rating)."""
    store = FeedbackStore(feedback_path(get_settings().home))
    if out is None:
        store.export_jsonl(sys.stdout, rating)
        return
    tmp = out.with_name(out.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        count = store.export_jsonl(handle, rating)
    tmp.replace(out)
    click.echo(f"wrote {count} judged answer(s) to {out}", err=True)


@feedback_group.command("stats")
@click.option("--json", "as_json", is_flag=True)
def feedback_stats(as_json: bool) -> None:
    """How many answers were judged, up and down."""
    store = FeedbackStore(feedback_path(get_settings().home))
    counts = {r: len(store.rows(r)) for r in RATINGS}
    if as_json:
        print_json(counts)
    else:
        stdout.print(f"{counts['up']} up, {counts['down']} down ({store.path})")

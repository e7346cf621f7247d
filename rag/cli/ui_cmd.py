from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from rag.cli.common import UserError, get_settings, print_json, stdout
from rag.service.exposure import exposure_problem
from rag.storage.feedback import RATINGS, FeedbackStore, feedback_path
from rag.storage.kb import KnowledgeBase
from rag.storage.keys import KeyStore


@click.command("ui")
@click.option("--kb", "kb_name", help="Knowledge base to open first.")
@click.option("--host", help="Address to listen on [config ui.host: 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [config ui.port: 8501].")
@click.option("--headless/--no-headless", default=None,
              help="Do not open a browser [default: headless when there is no display].")
def ui(kb_name: str | None, host: str | None, port: int | None, headless: bool | None) -> None:
    """Open the chat app (Streamlit) on a knowledge base.

    Uses the configured vLLM server when it answers; otherwise starts one with the configured
    generator (the bundled model by default) and stops it on exit.
    """
    from ui.launcher import run

    settings = get_settings()
    if kb_name:
        KnowledgeBase(kb_name, settings)  # validates the name
    host = host or settings.ui.host
    problem = exposure_problem(settings.ui, host, KeyStore(settings.home).required())
    if problem:
        raise UserError(problem)
    if headless is None:
        headless = sys.platform.startswith("linux") and not os.environ.get("DISPLAY")
    code = run(settings, kb_name, host, port or settings.ui.port, headless,
               echo=lambda line: click.echo(line, err=True))
    if code:
        raise UserError(f"streamlit exited with status {code}")


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

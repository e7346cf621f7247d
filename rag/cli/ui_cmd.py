"""`rag ui`: the Streamlit app, with its LLM server, after checking it may listen where asked."""

from __future__ import annotations

import os
import sys

import click

from rag.cli.common import UserError, get_settings
from rag.service.exposure import exposure_problem
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



"""What every command shares: settings loading, one-line errors, rich progress on stderr."""

from __future__ import annotations

import json
import logging
import re
import sys
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from rag.core.config import WORKING_DIR_FILE, Settings, from_working_dir, load_settings
from rag.core.errors import ConfigError
from rag.core.redaction import redact_logs

stderr = Console(stderr=True)
stdout = Console()


# Control characters, C1 controls and bidirectional overrides: in a file name, a document or the
# model's output they would recolour, retitle or rewrite the user's terminal.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")
_CONTROL_OR_LINE = re.compile(r"[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def printable(text: object, lines: bool = False) -> str:
    """``text`` with control characters shown escaped (``\\x1b``); newlines and tabs kept only
    where ``lines`` (an answer's text), else escaped too (a name is one line)."""
    pattern = _CONTROL if lines else _CONTROL_OR_LINE
    return pattern.sub(lambda m: ascii(m.group())[1:-1], str(text))


def shown(text: object, lines: bool = False) -> str:
    """Text from a document, a file name or the model for a Rich markup string: printable, and
    its square brackets never read as markup."""
    return escape(printable(text, lines))


class UserError(click.ClickException):
    """Printed as one line 'error: ...' with exit status 1."""

    def show(self, file: Any = None) -> None:  # noqa: ANN401
        click.echo(f"error: {printable(self.format_message())}", err=True)


def get_settings() -> Settings:
    """The settings, saying on stderr when they come from a rag.toml in the working directory
    (a file the user may not know is there)."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    if from_working_dir():
        click.echo(f"settings from {Path.cwd() / WORKING_DIR_FILE}", err=True)
    return settings


def print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("pypdf", "sentence_transformers", "transformers", "bm25s", "faiss", "vllm"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)
    redact_logs()


class IndexProgress:
    """Files bar plus a live chunks count and chunks/s, drawn on stderr."""

    def __init__(self, enabled: bool = True) -> None:
        self.bar = Progress(
            SpinnerColumn(),
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("files  {task.fields[chunks]} chunks  {task.fields[rate]:.1f} chunks/s"),
            TimeElapsedColumn(),
            console=stderr,
            disable=not enabled,
            transient=False,
        )
        self.task = self.bar.add_task("indexing", total=0, chunks=0, rate=0.0)
        self.chunks = 0

    def __enter__(self) -> IndexProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def start(self, files: int) -> None:
        self.bar.update(self.task, total=files)

    def file_done(self, path: str) -> None:
        self.bar.advance(self.task)

    def chunks_done(self, count: int) -> None:
        self.chunks += count
        elapsed = self.bar.tasks[0].elapsed or 1e-9
        self.bar.update(self.task, chunks=self.chunks, rate=self.chunks / elapsed)


def dim(message: str) -> None:
    """A side note on stderr (which LLM a command uses, and why), kept out of the answer."""
    stderr.print(f"[dim]{message}[/]", highlight=False)

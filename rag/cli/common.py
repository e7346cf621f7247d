"""What every command shares: settings loading, one-line errors, rich progress on stderr."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import click
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)

from rag.config import ConfigError, Settings, load_settings

stderr = Console(stderr=True)
stdout = Console()


class UserError(click.ClickException):
    """Printed as one line 'error: ...' with exit status 1."""

    def show(self, file: Any = None) -> None:  # noqa: ANN401
        click.echo(f"error: {self.format_message()}", err=True)


def get_settings() -> Settings:
    try:
        return load_settings()
    except ConfigError as exc:
        raise UserError(str(exc)) from None


def print_json(value: object) -> None:
    click.echo(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    for noisy in ("pypdf", "sentence_transformers", "transformers", "bm25s", "faiss"):
        logging.getLogger(noisy).setLevel(logging.INFO if verbose else logging.ERROR)


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

from __future__ import annotations

import sys
from pathlib import Path

import click

from rag.cli.common import IndexProgress, get_settings, print_json, stdout
from rag.pipeline import Pipeline


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--kb", "kb_name", help="Knowledge base name (default: settings.default_kb).")
@click.option("--rebuild", is_flag=True, help="Drop everything and re-index (e.g. new model).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def index(paths: tuple[Path, ...], kb_name: str | None, rebuild: bool, as_json: bool) -> None:
    """Build or update a knowledge base from files and folders.

    Unchanged files are skipped, changed ones re-indexed, deleted ones removed.
    Exits 0 if anything is indexed, 1 if nothing could be.
    """
    pipeline = Pipeline(get_settings(), kb_name)
    with IndexProgress(enabled=sys.stderr.isatty() or not as_json) as progress:
        report = pipeline.index(list(paths), rebuild=rebuild, progress=progress)
    if as_json:
        print_json(report.to_dict())
    else:
        stdout.print(
            f"[bold]{pipeline.kb.name}[/]: {report.files_seen} files seen, {report.indexed} "
            f"indexed, {report.unchanged} unchanged, {report.removed} removed, "
            f"{len(report.failed)} failed; +{report.chunks_added}/-{report.chunks_removed} "
            f"chunks in {report.seconds:.1f}s"
        )
        for f in report.failed:
            stdout.print(f"  [red]failed[/] {f.path}: {f.reason}", highlight=False)
        for w in report.warnings:
            stdout.print(f"  [yellow]warning[/] {w.path}: {w.reason}", highlight=False)
    if not report.ok:
        raise SystemExit(1)

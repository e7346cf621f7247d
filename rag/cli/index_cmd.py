"""`rag index`: index files and folders into a knowledge base, incrementally, with progress."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from rag.cli.common import IndexProgress, UserError, get_settings, print_json, shown, stdout
from rag.service.pipeline import Pipeline


@click.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--kb", "kb_name", help="Knowledge base name (default: settings.default_kb).")
@click.option("--rebuild", is_flag=True,
              help="Re-index from scratch into a new store (e.g. new model); the old KB stays "
                   "live until the new one is complete.")
@click.option("--prune", is_flag=True,
              help="Remove the files of PATHs that are missing or empty (by default a missing "
                   "or unmounted folder is an error and nothing is removed).")
@click.option("--runner", type=click.Choice(["local", "ray"]),
              help="Where files are parsed and embedded (default: jobs.runner): this process, "
                   "or Ray Data tasks and actors (pip install 'rag[scale]'; docs/scaling.md).")
@click.option("--ray-address", metavar="ADDRESS",
              help="Ray cluster for --runner ray, e.g. ray://head:10001 or auto (default: "
                   "jobs.ray_address; empty starts a local Ray for this job).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
def index(paths: tuple[Path, ...], kb_name: str | None, rebuild: bool, prune: bool,
          runner: str | None, ray_address: str | None, as_json: bool) -> None:
    """Build or update a knowledge base from files and folders.

    Unchanged files are skipped, changed ones re-indexed, deleted ones removed. Only regular
    files are read; links out of a folder are not followed. Ctrl-C stops the job and leaves the
    searchable KB as it was. Exits 0 if anything is indexed, 1 if nothing could be.
    """
    settings = get_settings()
    jobs = {k: v for k, v in (("runner", runner), ("ray_address", ray_address)) if v is not None}
    if jobs:
        settings = settings.model_copy(update={"jobs": settings.jobs.model_copy(update=jobs)})
    pipeline = Pipeline(settings, kb_name)
    try:
        with IndexProgress(enabled=sys.stderr.isatty() or not as_json) as progress:
            report = pipeline.index(list(paths), rebuild=rebuild, prune=prune, progress=progress)
    except KeyboardInterrupt:
        raise UserError("interrupted; the knowledge base answers as before this run") from None
    if as_json:
        print_json(report.to_dict())
    else:
        stdout.print(
            f"[bold]{shown(pipeline.kb.name)}[/]: {report.files_seen} files seen, "
            f"{report.indexed} indexed, {report.unchanged} unchanged, {report.removed} removed, "
            f"{len(report.failed)} failed, {len(report.skipped)} skipped; "
            f"+{report.chunks_added}/-{report.chunks_removed} chunks in {report.seconds:.1f}s"
        )
        for label, items in (("[red]failed[/]", report.failed),
                             ("[yellow]skipped[/]", report.skipped),
                             ("[yellow]warning[/]", report.warnings)):
            for f in items:
                stdout.print(f"  {label} {shown(f.path)}: {shown(f.reason)}", highlight=False)
    if not report.ok:
        raise SystemExit(1)

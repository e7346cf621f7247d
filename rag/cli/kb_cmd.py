"""`rag kb list|delete|remove`: the knowledge bases under $RAG_HOME."""

from __future__ import annotations

import time

import click
from rich.table import Table

from rag.cli.common import get_settings, print_json, stdout
from rag.storage.kb import KnowledgeBase, list_kbs


@click.group("kb")
def kb_group() -> None:
    """List, inspect and delete knowledge bases."""


@kb_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def kb_list(as_json: bool) -> None:
    """Knowledge bases under $RAG_HOME with their sizes and models."""
    settings = get_settings()
    stats = [KnowledgeBase(name, settings).stats() for name in list_kbs(settings)]
    if as_json:
        print_json(stats)
        return
    table = Table()
    for col in ("name", "files", "documents", "chunks", "embedder", "updated"):
        table.add_column(col)
    for s in stats:
        updated = s["updated"]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(updated)) if updated else "-"
        table.add_row(str(s["name"]), str(s["files"]), str(s["documents"]), str(s["chunks"]),
                      f"{s['embedder']}" + (f" ({s['vectors']})" if s.get("vectors") else ""),
                      when)
    stdout.print(table)


@kb_group.command("delete")
@click.argument("name")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
def kb_delete(name: str, yes: bool) -> None:
    """Delete a knowledge base and everything in it."""
    kb = KnowledgeBase(name, get_settings())
    kb.require()
    if not yes:
        click.confirm(f"delete knowledge base {name!r}?", abort=True)
    kb.delete()
    stdout.print(f"deleted {name}")


@kb_group.command("remove")
@click.argument("paths", nargs=-1, required=True)
@click.option("--kb", "kb_name", help="Knowledge base name (default: settings.default_kb).")
def kb_remove(paths: tuple[str, ...], kb_name: str | None) -> None:
    """Remove documents (by their indexed path) from a knowledge base."""
    from rag.service.pipeline import Pipeline

    pipeline = Pipeline(get_settings(), kb_name)
    dropped = pipeline.remove(list(paths))
    stdout.print(f"removed {len(paths)} file(s), {dropped} chunks", highlight=False)



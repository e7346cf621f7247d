"""`rag search`: the ranked passages for a query, with every retriever's score."""

from __future__ import annotations

import click
from rich.table import Table

from rag.cli.common import get_settings, print_json, shown, stdout
from rag.service.pipeline import MODES, Pipeline


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


@click.command()
@click.argument("query")
@click.option("--kb", "kb_name", help="Knowledge base name.")
@click.option("-k", type=click.IntRange(1, 1000), help="Hits to show (default: retrieval.k).")
@click.option("--mode", type=click.Choice(MODES), help="Retrieval mode (default: retrieval.mode).")
@click.option("--rerank/--no-rerank", default=None, help="Rerank with the cross-encoder.")
@click.option("--json", "as_json", is_flag=True, help="Print hits with all scores as JSON.")
def search(
    query: str, kb_name: str | None, k: int | None, mode: str | None, rerank: bool | None,
    as_json: bool,
) -> None:
    """Search a knowledge base; shows why each hit came back (dense, BM25, fused, rerank)."""
    result = Pipeline(get_settings(), kb_name).search(query, k=k, mode=mode, rerank=rerank)
    if as_json:
        print_json(result.to_dict())
        return
    for warning in result.warnings:
        stdout.print(f"[yellow]warning:[/] {shown(warning)}", highlight=False)
    table = Table(title=f"{len(result.hits)} hits ({result.mode}"
                  + (f", reranked by {result.reranker}" if result.reranker else "") + ")")
    table.add_column("#")
    table.add_column("source", max_width=28, overflow="fold")
    for col in ("page", "dense", "bm25", "fused", "rerank"):
        table.add_column(col, justify="right")
    table.add_column("text", min_width=40, ratio=1)
    for i, hit in enumerate(result.hits, start=1):
        c = hit.chunk
        where = c.title + (f" > {c.section}" if c.section else "")
        text = " ".join(c.text.split())
        table.add_row(str(i), shown(where), str(c.page or "-"), _fmt(hit.dense),
                      _fmt(hit.bm25), _fmt(hit.fused), _fmt(hit.rerank), shown(text[:300]))
    stdout.print(table)

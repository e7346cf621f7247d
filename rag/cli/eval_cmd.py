from __future__ import annotations

import time
from pathlib import Path

import click
from rich.progress import Progress
from rich.table import Table

from eval.retrieval import MEASURES, BeirDataset, evaluate, save_results
from rag.cli.common import IndexProgress, get_settings, print_json, stderr, stdout
from rag.pipeline import MODES, Pipeline


@click.group("eval")
def eval_group() -> None:
    """Offline evaluation."""


@eval_group.command("retrieval")
@click.option("--dataset", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.")
@click.option("--split", default="test", show_default=True)
@click.option("--mode", "modes", multiple=True, type=click.Choice(MODES),
              help="Repeat to compare modes (default: all three).")
@click.option("--rerank", is_flag=True, help="Rerank with the configured cross-encoder.")
@click.option("--kb", "kb_name", help="KB to index the corpus into (default: beir-DATASET).")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for summary.json and per-query results.")
@click.option("--json", "as_json", is_flag=True)
def eval_retrieval(
    dataset: Path, split: str, modes: tuple[str, ...], rerank: bool, kb_name: str | None,
    output: Path | None, as_json: bool,
) -> None:
    """nDCG@10, Recall@100, MRR@10 and MAP of each retrieval mode on a BEIR dataset."""
    settings = get_settings()
    data = BeirDataset.load(dataset, split)
    pipeline = Pipeline(settings, kb_name or f"beir-{dataset.resolve().name}")
    with IndexProgress() as progress:
        report = pipeline.index([data.corpus], progress=progress)
    if report.failed:
        raise click.ClickException(f"corpus failed to index: {report.failed[0].reason}")
    modes = modes or MODES
    with Progress(console=stderr, transient=True) as bar:
        task = bar.add_task("querying", total=len(data.queries) * len(modes))
        results = evaluate(pipeline, data, modes, rerank, tick=lambda: bar.advance(task))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = output or settings.home / "eval" / f"{dataset.resolve().name}-{split}-{stamp}"
    meta = {"dataset": str(dataset), "split": split, "queries": len(data.queries),
            "embedder": pipeline.embedder.name, "rerank": rerank}
    save_results(results, folder, meta)
    if as_json:
        print_json({**meta, "output": str(folder),
                    "modes": {r.mode: {**r.metrics, "seconds": r.seconds} for r in results}})
        return
    table = Table(title=f"{dataset.name} ({split}, {len(data.queries)} queries)")
    table.add_column("mode")
    for name in MEASURES:
        table.add_column(name, justify="right")
    table.add_column("s", justify="right")
    for r in results:
        table.add_row(r.mode, *(f"{r.metrics[m]:.4f}" for m in MEASURES), f"{r.seconds:.1f}")
    stdout.print(table)
    stdout.print(f"per-query results: {folder}")

"""`rag train reranker|verifier`: fine-tune the encoders rag ships, or adapt the reranker to a
knowledge base with questions the configured LLM writes (eval/training does the work)."""

from __future__ import annotations

import contextlib
import json
import random
import shutil
import sys
import time
from pathlib import Path

import click
from rich.progress import Progress

from rag.cli.common import UserError, get_settings, print_json, stderr, stdout
from rag.cli.eval_cmd import _scifact_folder

RERANKER, VERIFIER = "reranker-minilm", "verifier-minilm"
BASE = "bundled:all-MiniLM-L6-v2"


@click.group("train")
def train_group() -> None:
    """Fine-tune the cross-encoders rag uses (reranker, claim verifier) on this machine."""


def _options(func):  # noqa: ANN001, ANN202 - a click command
    for option in reversed([
        click.option("--epochs", type=float, help="Passes over the training data."),
        click.option("--lr", "learning_rate", type=float, help="Peak learning rate."),
        click.option("--batch-size", type=click.IntRange(1, 512), default=16, show_default=True),
        click.option("--seed", type=int, default=0, show_default=True),
        click.option("--out", type=click.Path(path_type=Path, file_okay=False),
                     help="Output folder (default: $RAG_HOME/models/NAME)."),
        click.option("--resume", is_flag=True, help="Continue from the last epoch's checkpoint "
                                                     "in the output folder."),
        click.option("--ship", is_flag=True, help="Also pack the model into rag/bundled "
                                                  "(maintainers: the model a checkout ships)."),
        click.option("--json", "as_json", is_flag=True, help="Print the model card as JSON."),
    ]):
        func = option(func)
    return func


def _out(settings, name: str, out: Path | None, resume: bool) -> Path:  # noqa: ANN001
    folder = out or settings.home / "models" / name
    if folder.exists() and not resume:
        if any(folder.iterdir()):
            shutil.rmtree(folder / "checkpoints", ignore_errors=True)
    return folder


def _report(card: dict, folder: Path, ship: bool, kind: str, as_json: bool) -> None:
    if ship:
        from rag.bundled import HERE, pack

        card = pack(folder / "model", HERE / card["name"], card)
        from eval.training.cards import write_card

        write_card(HERE / card["name"], card)
    if as_json:
        print_json({**card, "folder": str(folder / "model")})
        return
    stdout.print(f"[bold]{card['name']}[/] trained in {card['seconds']:.0f} s on "
                 f"{card['machine']}: {folder / 'model'}", highlight=False)
    for key, value in card["metrics"].items():
        stdout.print(f"  {key}: {value}", highlight=False)
    setting = "reranker.model" if kind == "reranker" else "citations.verifier_model"
    stdout.print(f"use it: {setting} = \"{folder / 'model'}\" (model card: "
                 f"{folder / 'model' / 'MODEL_CARD.md'})", highlight=False)


@train_group.command("reranker")
@click.option("--dataset", help="A BEIR folder with qrels/train.tsv (or 'scifact'): its labelled "
                                "queries, hard negatives mined by hybrid retrieval.")
@click.option("--kb", "kb_name", help="Adapt to this knowledge base: the configured LLM writes a "
                                      "question for sampled passages (no labels needed).")
@click.option("--questions", type=click.IntRange(10, 100_000), default=400, show_default=True,
              help="With --kb: passages to write questions for.")
@click.option("--base", default=BASE, show_default=True,
              help="Start from: bundled:NAME, a folder (a reranker trained before, to adapt "
                   "it to --kb) or a hub id.")
@click.option("--negatives", type=click.IntRange(1, 50), default=5, show_default=True,
              help="Hard negatives per positive.")
@click.option("--depth", type=click.IntRange(5, 100), default=20, show_default=True,
              help="Candidates reranked in evaluation (as reranker.top_n does).")
@click.option("--loss", type=click.Choice(["listwise", "bce"]), default="listwise",
              show_default=True, help="listwise: each positive against its query's negatives "
                                      "together; bce: each pair alone.")
@click.option("--limit", type=int, help="Only the first N training queries (smoke runs).")
@_options
def train_reranker(dataset: str | None, kb_name: str | None, questions: int, base: str,
                   negatives: int, depth: int, loss: str, limit: int | None, epochs: float | None,
                   learning_rate: float | None, batch_size: int, seed: int, out: Path | None,
                   resume: bool, ship: bool, as_json: bool) -> None:
    """Fine-tune a cross-encoder reranker: on a BEIR dataset's train queries (held out: its
    test queries), and/or on synthetic questions over a knowledge base (held out: a fifth of
    them, by document). Writes the model and its card under $RAG_HOME/models."""
    from eval.retrieval import BeirDataset
    from eval.training.cross_encoders import Recipe
    from eval.training.encoders import (
        HeldOut,
        kept,
        resolve_base,
        split_synthetic,
        synthetic_held_out,
        train_reranker,
    )
    from eval.training.reranker_data import labelled_pairs, synthetic_pairs
    from rag.service.pipeline import Pipeline

    if not dataset and not kb_name:
        raise UserError("give --dataset (labelled queries) and/or --kb (synthetic questions)")
    settings = get_settings()
    name = f"{RERANKER}-{kb_name}" if kb_name and not dataset else RERANKER
    folder = _out(settings, name, out, resume)
    pairs, held, data_note, command = [], None, [], ["rag train reranker"]
    with Progress(console=stderr, transient=True) as bar:
        if dataset:
            scifact = _scifact_folder(dataset, settings.home)
            folder_path = scifact or Path(dataset)
            data = BeirDataset.load(folder_path, "train")
            test = BeirDataset.load(folder_path, "test")
            pipeline = _beir_pipeline(settings, data, folder_path)
            queries = dict(list(data.queries.items())[:limit]) if limit else data.queries
            search = _search(pipeline)
            task = bar.add_task("mining hard negatives", total=len(queries))
            pairs += labelled_pairs(queries, data.qrels, search, negatives, 30, seed,
                                    lambda: bar.advance(task))
            task = bar.add_task("retrieving held-out queries", total=len(test.queries))
            held = HeldOut.retrieve(f"{folder_path.name} test", test.queries, test.qrels,
                                    search, depth, lambda: bar.advance(task))
            data_note.append(f"{folder_path.name} train queries ({len(queries)}), hard "
                             f"negatives from rag's hybrid retrieval (top 30)")
            command += ["--dataset", dataset]
        if kb_name:
            kb = Pipeline(settings, kb_name)
            items = _write_questions(kb, questions, seed, bar)
            good, counts = kept(items)
            if len(good) < 10:
                raise UserError(f"only {len(good)} usable synthetic questions ({counts}); "
                                "index more documents or raise --questions")
            trained_on, held_items = split_synthetic(good, 0.2, seed)
            pairs += synthetic_pairs(trained_on, _search(kb), negatives, depth, seed)
            if held is None:
                held = synthetic_held_out(held_items, _search(kb), depth)
            data_note.append(f"{len(trained_on)} questions {kb.generator.name} wrote for "
                             f"passages of knowledge base {kb_name} ({counts})")
            command += ["--kb", kb_name, "--questions", str(questions)]
    assert held is not None
    recipe = Recipe(resolve_base(base, settings.home), 1, epochs or (2 if dataset else 1),
                    learning_rate or 5e-5, batch_size, 256, seed=seed, loss=loss)
    card = {"name": name, "task": "reranking: relevance of a passage to a query (one score)",
            "summary": "A cross-encoder that reorders retrieved passages by relevance.",
            "base_name": base, "data": "; ".join(data_note),
            "held_out": f"{held.name} ({len(held.queries)} queries)",
            "evaluated_on": f"{held.name}, top {depth} hybrid candidates reranked",
            "command": " ".join(command + ["--base", base, "--loss", loss, "--negatives",
                                           str(negatives), "--seed", str(seed)])}
    with contextlib.redirect_stdout(sys.stderr):  # the trainer's progress, not the report
        card = train_reranker(recipe, folder, pairs, held, card, resume, negatives)
    _report(card, folder, ship, "reranker", as_json)


@train_group.command("verifier")
@click.option("--dataset", default="scifact", show_default=True,
              help="A SciFact folder (claims_train.jsonl, claims_dev.jsonl, corpus.jsonl).")
@click.option("--synthetic", type=click.IntRange(0, 1_000_000), default=6000, show_default=True,
              help="Examples made from the corpus's own sentences and their negations.")
@click.option("--base", default=BASE, show_default=True)
@click.option("--limit", type=int, help="Only the first N claims of each split (smoke runs).")
@_options
def train_verifier(dataset: str, synthetic: int, base: str, limit: int | None,
                   epochs: float | None, learning_rate: float | None, batch_size: int, seed: int,
                   out: Path | None, resume: bool, ship: bool, as_json: bool) -> None:
    """Fine-tune the claim verifier (supports / contradicts / neither) on SciFact train claims
    and sentences of its corpus; SciFact dev claims are held out."""
    from eval.scifact import SciFact, split_abstract
    from eval.training.cross_encoders import Recipe
    from eval.training.encoders import resolve_base, train_verifier
    from rag.grounding.support import sentences_of

    settings = get_settings()
    folder_path = _scifact_folder(dataset, settings.home)
    if folder_path is None:
        raise UserError(f"--dataset {dataset}: not a SciFact folder (claims_*.jsonl)")
    train_data, dev = SciFact.load(folder_path, "train"), SciFact.load(folder_path, "dev")
    if limit:
        train_data.claims, dev.claims = train_data.claims[:limit], dev.claims[:limit]
    corpus = []
    with open(folder_path / "corpus.jsonl", encoding="utf-8") as handle:
        for line in handle:
            sentences = split_abstract(str(json.loads(line).get("text", "")))
            if sentences:
                corpus.append(sentences)
    folder = _out(settings, VERIFIER, out, resume)
    recipe = Recipe(resolve_base(base, settings.home), 3, epochs or 3, learning_rate or 5e-5,
                    batch_size, 160, seed=seed)
    card = {"name": VERIFIER,
            "task": "claim verification: does an evidence sentence support a claim, contradict "
                    "it, or neither (three classes)",
            "summary": "A cross-encoder that checks each sentence of an answer against the "
                       "sentences of its sources.",
            "base_name": base,
            "data": f"SciFact train claims ({len(train_data.claims)}) with their rationale "
                    f"sentences and rule-negated claims; {synthetic} examples from the SciFact "
                    "corpus's sentences (a sentence, its negation, another sentence)",
            "held_out": f"SciFact dev claims ({len(dev.claims)}); never the papers, docs/ or "
                        "any evaluation set",
            "evaluated_on": "SciFact dev claims",
            "command": f"rag train verifier --dataset {dataset} --synthetic {synthetic} "
                       f"--seed {seed}"}
    with contextlib.redirect_stdout(sys.stderr):  # the trainer's progress, not the report
        card = train_verifier(recipe, folder, train_data, dev, corpus, synthetic,
                              sentences_of, card, resume)
    _report(card, folder, ship, "verifier", as_json)


def _search(pipeline):  # noqa: ANN001, ANN202 - a Pipeline -> (query, k) -> hits
    def search(query: str, k: int):  # noqa: ANN202
        return pipeline.search(query, k=k, mode="hybrid", rerank=False).hits

    return search


def _beir_pipeline(settings, data, folder: Path):  # noqa: ANN001, ANN202
    from rag.cli.common import IndexProgress
    from rag.service.pipeline import Pipeline

    pipeline = Pipeline(settings, f"beir-{folder.resolve().name}")
    with IndexProgress() as progress:
        report = pipeline.index([data.corpus], progress=progress)
    if report.failed:
        raise UserError(f"corpus failed to index: {report.failed[0].reason}")
    return pipeline


def _write_questions(pipeline, count: int, seed: int, bar: Progress):  # noqa: ANN001, ANN202
    """Synthetic questions for ``count`` passages of the KB, sampled at random."""
    from eval.training.reranker_data import synthetic_questions

    snapshot = pipeline.kb.snapshot()
    ids = list(snapshot.ids)
    random.Random(seed).shuffle(ids)
    chunks = snapshot.store.chunks_by_id(ids[:count])
    from rag.core.types import Hit

    passages = [Hit(chunks[i], i, 0.0) for i in ids[:count] if i in chunks
                and len(chunks[i].text.split()) >= 30]
    generator = pipeline.generator

    def write(prompts: list[str]) -> list[str]:
        rendered = [generator.render([{"role": "user", "content": p}]) for p in prompts]
        return [g.text for g in generator.generate(rendered, 64, 0.0)]

    task = bar.add_task(f"writing questions with {generator.name}", total=len(passages))
    items = []
    started = time.perf_counter()
    for item in synthetic_questions(passages, write, _search(pipeline)):
        items.append(item)
        bar.advance(task)
    stderr.print(f"[dim]{len(items)} questions written in {time.perf_counter() - started:.0f} s"
                 "[/]", highlight=False)
    return items

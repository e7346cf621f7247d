"""`rag eval retrieval|fusion|support|gate|answers|compare`: parse, call an evaluator of ``eval``,
write its results and print them."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.progress import Progress
from rich.table import Table

from eval.retrieval import MEASURES, BeirDataset, evaluate, save_results
from rag.cli.common import IndexProgress, UserError, dim, get_settings, print_json, stderr, stdout
from rag.core.children import stop_children_on_exit
from rag.core.config import Settings
from rag.generation.server import with_running_server
from rag.service.pipeline import MODES, Pipeline, load_verifier

if TYPE_CHECKING:
    from eval.scifact import SciFact


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
    pipeline = _beir_pipeline(settings, data, dataset, kb_name)
    modes = modes or MODES
    with Progress(console=stderr, transient=True) as bar:
        task = bar.add_task("querying", total=len(data.queries) * len(modes))
        results = evaluate(pipeline, data, modes, rerank, tick=lambda: bar.advance(task))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = output or settings.home / "eval" / f"{dataset.resolve().name}-{split}-{stamp}"
    meta: dict[str, Any] = {"dataset": str(dataset), "split": split, "queries": len(data.queries),
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


def _beir_pipeline(settings: Settings, data: BeirDataset, dataset: Path,
                   kb_name: str | None) -> Pipeline:
    """A pipeline over the dataset's corpus, indexed (or brought up to date) first."""
    pipeline = Pipeline(settings, kb_name or f"beir-{dataset.resolve().name}")
    with IndexProgress() as progress:
        report = pipeline.index([data.corpus], progress=progress)
    if report.failed:
        raise click.ClickException(f"corpus failed to index: {report.failed[0].reason}")
    return pipeline


@eval_group.command("fusion")
@click.option("--dataset", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="A BEIR folder: corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv.")
@click.option("--split", default="train", show_default=True,
              help="Fit on a split you will not report (SciFact: train).")
@click.option("--kb", "kb_name", help="KB to index the corpus into (default: beir-DATASET).")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for summary.json.")
@click.option("--json", "as_json", is_flag=True)
def eval_fusion(dataset: Path, split: str, kb_name: str | None, output: Path | None,
                as_json: bool) -> None:
    """Hybrid retrieval's measures with each fusion method (score, rrf) at dense weights 0,
    0.1, ..., 1 (BM25's is 1 minus it): the fusion to set as retrieval.fusion and
    retrieval.dense_weight for the configured embedder."""
    from eval.evaluators import FusionEvaluator

    settings = get_settings()
    data = BeirDataset.load(dataset, split)
    pipeline = _beir_pipeline(settings, data, dataset, kb_name)
    evaluator = FusionEvaluator(data, str(dataset), split)
    with Progress(console=stderr, transient=True) as bar:
        task = bar.add_task("querying", total=len(data.queries))
        summary = evaluator(pipeline, tick=lambda: bar.advance(task))
    best = summary["best"]
    folder = output or settings.home / "eval" / (
        f"fusion-{dataset.resolve().name}-{split}-{time.strftime('%Y%m%d-%H%M%S')}")
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2))
    if as_json:
        print_json({**summary, "output": str(folder)})
        return
    table = Table(title=f"hybrid fusion, {dataset.name} ({split}, {len(data.queries)} queries)")
    table.add_column("fusion")
    table.add_column("dense weight", justify="right")
    for name in MEASURES:
        table.add_column(name, justify="right")
    for method, by_weight in summary["methods"].items():
        for w in evaluator.weights:
            chosen = (method, w) == (best["fusion"], best["dense_weight"])
            table.add_row(method, f"{w:.1f}{' *' if chosen else ''}",
                          *(f"{by_weight[str(w)][m]:.4f}" for m in MEASURES))
    stdout.print(table)
    top = summary["methods"][best["fusion"]][str(best["dense_weight"])]["nDCG@10"]
    stdout.print(f"best: retrieval.fusion = \"{best['fusion']}\", retrieval.dense_weight = "
                 f"{best['dense_weight']} (nDCG@10 {top:.4f}); summary: {folder}", highlight=False)


@eval_group.command("support")
@click.option("--dataset", required=True, type=click.Path(path_type=Path, file_okay=False),
              help="A SciFact folder: corpus.jsonl, claims_train.jsonl, claims_dev.jsonl.")
@click.option("--train", "retrain", is_flag=True,
              help="Retrain the learned support model on the train claims (never on dev).")
@click.option("--model-out", type=click.Path(path_type=Path, dir_okay=False),
              help="With --train: where to write the model (default: the one rag ships).")
@click.option("--limit", type=int, help="Only the first N claims of each split (smoke runs).")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for summary.json and report.html.")
@click.option("--json", "as_json", is_flag=True)
def eval_support(dataset: Path, retrain: bool, model_out: Path | None, limit: int | None,
                 output: Path | None, as_json: bool) -> None:
    """ROC-AUC and balanced accuracy of the sentence-support functions on SciFact pairs.

    Positives: a claim and its SUPPORT evidence; negatives: its REFUTE evidence
    (contradiction) and the other sentences of the cited abstract (unsupported). Thresholds
    are chosen on train (the verifier's when it was trained: its card) and reported on dev."""
    from eval import support
    from eval.evaluators import SupportEvaluator
    from rag.grounding.support import MODEL_FILE, SupportModel, remembering

    settings = get_settings()
    pipeline = Pipeline(settings)
    evaluator = SupportEvaluator(dataset, limit)
    embed = remembering(pipeline.embedder.embed_documents, None)
    if retrain:
        stderr.print(f"training on {len(evaluator.pairs['train'])} SciFact train pairs ...")
        model = evaluator.train(support.SupportScorer(embed, method="similarity"),
                                pipeline.embedder.name)
        target = model_out or MODEL_FILE
        model.save(target)
        stderr.print(f"wrote {target}")
    else:
        model = SupportModel.load()
    verifier = load_verifier(settings.citations.verifier_model, settings.home,
                             settings.embedder.device, settings.embedder.dtype)
    scorers = support.methods(embed, model, verifier)
    with Progress(console=stderr, transient=True) as bar:
        task = bar.add_task("scoring pairs", total=len(scorers) * 2)
        summary, curves = evaluator(scorers, pipeline.embedder.name, tick=lambda: bar.advance(task))
    results = summary["methods"]
    folder = output or settings.home / "eval" / f"support-{time.strftime('%Y%m%d-%H%M%S')}"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (folder / "report.html").write_text(support.html_report(summary, curves), encoding="utf-8")
    if as_json:
        print_json({**summary, "output": str(folder)})
        return
    table = Table(title=f"sentence support on SciFact dev (thresholds from train; {folder})")
    for column in ("method", "threshold", "AUC contradiction", "AUC unsupported", "AUC all",
                   "balanced acc.", "ECE"):
        table.add_column(column, justify="left" if column == "method" else "right")
    for name, r in results.items():
        d = r["dev"]
        table.add_row(name, f"{r['threshold']:.3f}", *(f"{d[k]}" for k in (
            "auc_contradiction", "auc_unsupported", "auc_all", "balanced_accuracy",
            "expected_calibration_error")))
    stdout.print(table)


SCIFACT_PLACES = ("datasets/scifact", "../shared/datasets/scifact")


def _scifact_folder(dataset: str, home: Path) -> Path | None:
    """The SciFact folder meant by ``dataset``: a folder with claims files, or the word
    ``scifact`` for $RAG_HOME/datasets/scifact, ./datasets/scifact or ../shared/datasets/scifact."""
    path = Path(dataset)
    if path.is_dir() and any(path.glob("claims_*.jsonl")):
        return path
    if dataset != "scifact":
        return None
    for place in (home / "datasets" / "scifact", *map(Path, SCIFACT_PLACES)):
        if (place / "claims_dev.jsonl").is_file():
            return place
    raise UserError("--dataset scifact: no SciFact folder found in $RAG_HOME/datasets/scifact, "
                    "./datasets/scifact or ../shared/datasets/scifact; pass its path")


def _scifact_pipeline(settings: Settings, data: SciFact, kb_name: str | None) -> Pipeline:
    """A pipeline on the KB that holds the SciFact corpus, indexed first if it is not."""
    pipeline = Pipeline(settings, kb_name or f"beir-{data.folder.resolve().name}")
    with IndexProgress() as progress:
        report = pipeline.index([data.corpus], progress=progress)
    if report.failed:
        raise UserError(f"SciFact corpus failed to index: {report.failed[0].reason}")
    return pipeline


@eval_group.command("gate")
@click.option("--dataset", default="scifact", show_default=True,
              help="A SciFact folder, or 'scifact' (see eval answers).")
@click.option("--kb", "kb_name", help="KB holding the SciFact corpus (default: beir-scifact, "
                                      "indexed from the dataset if needed).")
@click.option("--train", "retrain", is_flag=True,
              help="Refit the gate on the train claims and write it (default: the bundled one).")
@click.option("--model-out", type=click.Path(path_type=Path, dir_okay=False),
              help="Where --train writes the gate (default: the bundled file).")
@click.option("-k", type=int, help="Passages per claim (default: retrieval.k).")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False),
              help="Folder for summary.json.")
@click.option("--json", "as_json", is_flag=True)
def eval_gate(dataset: str, kb_name: str | None, retrain: bool, model_out: Path | None,
              k: int | None, output: Path | None, as_json: bool) -> None:
    """Validate (and with --train, fit) the answerability gate on SciFact claims: NEI claims
    are the ones it should refuse. Reports AUC and what its threshold refuses, train and dev."""
    from eval.evaluators import GateEvaluator
    from eval.scifact import SciFact
    from rag.grounding.answerability import GATE_FILE

    settings = get_settings()
    folder = _scifact_folder(dataset, settings.home)
    if folder is None:
        raise UserError(f"--dataset {dataset}: not a SciFact folder (claims_*.jsonl)")
    pipeline = _scifact_pipeline(settings, SciFact.load(folder, "dev"), kb_name)
    with Progress(console=stderr, transient=True) as bar:
        task = bar.add_task("retrieving and scoring claims", total=2)
        evaluator = GateEvaluator(folder, pipeline, k, tick=lambda: bar.advance(task))
    if retrain:
        model = evaluator.train()
        target = model_out or GATE_FILE
        model.save(target)
        stderr.print(f"wrote {target}")
    else:
        model = evaluator.bundled()
        if model.embedder != pipeline.embedder.name:
            stderr.print(f"warning: the gate was trained with {model.embedder}, not "
                         f"{pipeline.embedder.name}; rag does not use it with this embedder "
                         "(refit it with --train)")
    summary = evaluator(model, settings.citations.gate_threshold)
    splits = ("train", "dev")
    out = output or settings.home / "eval" / f"gate-{time.strftime('%Y%m%d-%H%M%S')}"
    out.mkdir(parents=True, exist_ok=True)
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    if as_json:
        print_json({**summary, "output": str(out)})
        return
    table = Table(title=f"answerability gate on SciFact claims ({out})")
    for column in ("split", "claims", "NEI", "threshold", "AUC", "NEI refused",
                   "answerable refused", "refusal F1 (gate alone)"):
        table.add_column(column, justify="left" if column == "split" else "right")
    for name in splits:
        r = summary[name]
        table.add_row(name, *(str(r[key]) for key in (
            "claims", "unanswerable", "threshold", "auc", "unanswerable_refused",
            "answerable_refused", "refusal_f1_gate_alone")))
    stdout.print(table)


@eval_group.command("answers")
@click.option("--dataset", required=True,
              help="A question set (JSONL: question, answers, doc, unanswerable, reference), "
                   "or 'scifact' / a SciFact folder (claims as questions, verdicts scored).")
@click.option("--kb", "kb_name", help="Knowledge base to ask (SciFact: beir-scifact, indexed "
                                      "from the dataset's corpus if needed).")
@click.option("--split", default="dev", show_default=True, help="SciFact: train or dev.")
@click.option("-k", type=int, help="Passages retrieved per question (default: retrieval.k).")
@click.option("--mode", type=click.Choice(MODES), help="Retrieval mode (default: retrieval.mode).")
@click.option("--limit", type=int, help="Only the first N questions.")
@click.option("--batch", default=16, show_default=True, help="Questions per generation batch.")
@click.option("--output", type=click.Path(path_type=Path, file_okay=False),
              help="Run folder (an unfinished run of the same config there is resumed).")
@click.option("--json", "as_json", is_flag=True)
def eval_answers(dataset: str, kb_name: str | None, split: str, k: int | None, mode: str | None,
                 limit: int | None, batch: int, output: Path | None, as_json: bool) -> None:
    """Ask a question set and score every answer: citation recall and precision (ALCE rules),
    grounded and cited shares, fact found, right document cited, refusals, SciFact verdicts,
    with bootstrap 95% intervals. Writes summary.json, per_answer.jsonl and report.html."""
    from eval import runs
    from eval.answers import load_questions
    from eval.scifact import SciFact, claim_questions
    from rag.core.errors import QuestionSetError

    settings = get_settings()
    folder = _scifact_folder(dataset, settings.home)
    if folder is not None:
        data = SciFact.load(folder, split)
        questions = claim_questions(data)
        pipeline = _scifact_pipeline(settings, data, kb_name)
        name = f"scifact-{split}"
    else:
        try:
            questions = load_questions(Path(dataset))
        except QuestionSetError as exc:
            raise UserError(str(exc)) from None
        pipeline = Pipeline(settings, kb_name)
        pipeline.kb.require()
        name = Path(dataset).stem
    questions = questions[:limit] if limit else questions
    meta: dict[str, Any] = {
        "dataset": str(dataset), "split": split if folder else None, "kb": pipeline.kb.name,
        "questions": len(questions), "config": runs.config_of(pipeline, k, mode)}
    out = output or settings.home / "eval" / f"answers-{name}-{time.strftime('%Y%m%d-%H%M%S')}"
    pipeline.settings = with_running_server(settings, dim)  # the LLM is created on first use
    stop_children_on_exit()
    try:
        with Progress(console=stderr) as bar:
            task = bar.add_task("answering", total=len(questions))
            rows = runs.run(pipeline, questions, out, meta, k, mode, batch,
                            tick=lambda n: bar.advance(task, n))
    except runs.RunError as exc:
        raise UserError(str(exc)) from None
    summary = runs.finish(out, rows, meta)
    if as_json:
        print_json({**summary, "output": str(out)})
        return
    _print_metrics(summary, out)


def _print_metrics(summary: dict, out: Path) -> None:  # type: ignore[type-arg]
    table = Table(title=f"{summary['dataset']} on {summary['kb']}: {summary['answered']} answered, "
                        f"{len(summary['failed'])} failed")
    for column in ("metric", "value", "95% interval"):
        table.add_column(column, justify="left" if column == "metric" else "right")
    for metric, m in summary["metrics"].items():
        if m["value"] is not None:
            table.add_row(metric, f"{m['value']:.4f}", f"[{m['low']:.4f}, {m['high']:.4f}]")
    stdout.print(table)
    for failure in summary["failed"][:5]:
        stderr.print(f"failed {failure['id']}: {failure['error']}", markup=False)
    stdout.print(f"report: {out / 'report.html'}", markup=False)


@eval_group.command("compare")
@click.argument("run_a", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.argument("run_b", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--metric", "metrics", multiple=True,
              help="Gate on these metrics (repeatable; default: every quality metric present).")
@click.option("--json", "as_json", is_flag=True)
def eval_compare(run_a: Path, run_b: Path, metrics: tuple[str, ...], as_json: bool) -> None:
    """B minus A per metric on the questions both answered, with paired bootstrap 95%
    intervals. Exits 1 when a gated metric drops beyond its interval (B is worse)."""
    from eval.compare import compare

    result = compare(run_a, run_b, metrics)
    if as_json:
        print_json(result)
    else:
        table = Table(title=f"{run_b} minus {run_a} ({result['questions']} shared questions)")
        for column in ("metric", "A", "B", "B - A", "95% interval", ""):
            table.add_column(column, justify="left" if column == "metric" else "right")
        for name, d in result["metrics"].items():
            if d["diff"] is None:
                continue
            verdict = "REGRESSION" if name in result["regressions"] else (
                "gated" if name in result["gated"] else "")
            table.add_row(name, f"{d['a']:.4f}", f"{d['b']:.4f}", f"{d['diff']:+.4f}",
                          f"[{d['low']:+.4f}, {d['high']:+.4f}]", verdict)
        stdout.print(table)
    if result["regressions"]:
        raise UserError(f"regression in {', '.join(result['regressions'])} "
                        "(dropped beyond the 95% interval)")

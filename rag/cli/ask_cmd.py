"""`rag ask`: one cited answer, streamed, with its sources and checks; through the ask worker
when one is running."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

import click

from rag.cli.common import UserError, dim, get_settings, print_json, printable, shown, stderr, stdout
from rag.core.children import stop_children_on_exit
from rag.generation.answering import Answer
from rag.generation.server import with_running_server
from rag.grounding.citations import Sentence, without_citations
from rag.service import ask_worker
from rag.service.pipeline import MODES, Pipeline


def quiet_vllm() -> None:
    """vLLM logs a lot at INFO; keep the terminal for the answer unless -v was given."""
    import logging

    if logging.getLogger().level > logging.INFO:
        os.environ.setdefault("VLLM_LOGGING_LEVEL", "ERROR")


def _attributed(s: Sentence) -> str:
    was = f"; the model cited {s.removed}" if s.removed else ""
    return (f"{shown(' '.join(without_citations(s.text).split()))} -> "
            f"[{', '.join(map(str, s.attributed))}][dim]{shown(was)}[/]")


def _contradicted(s: Sentence) -> str:
    sources = ", ".join(f"[{n}]" for n in s.contradicted_by)
    return f"{shown(' '.join(s.text.split()))}  [dim](contradicted by {shown(sources)})[/]"


def _unsupported(s: Sentence) -> str:
    hint = f"; best match [{s.suggested}]" if s.suggested else ""
    return f"{shown(' '.join(s.text.split()))}  [dim]({shown(', '.join(s.flags) + hint)})[/]"


# The sentences the reader should know about, by their checked state (grounding.citations).
SENTENCE_SECTIONS: tuple[tuple[str, str, Callable[[Sentence], str]], ...] = (
    ("attributed", "[bold]Cited by rag[/] [dim](the model did not write these citations; the "
                   "passage supports the sentence)[/]", _attributed),
    ("contradicted", "[bold red]Contradicted by the sources:[/]", _contradicted),
    ("unsupported", "[bold yellow]Check these sentences:[/]", _unsupported),
)


def print_answer_footer(answer: Answer) -> None:
    if answer.withheld:
        stdout.print(f"\n[bold yellow]Withheld:[/] no passage supports the answer above. "
                     f"{shown(answer.text, lines=True)}", highlight=False)
    elif answer.restated:
        stdout.print(f"\n[bold]Asked again:[/] the answer above only restates the question; "
                     f"rag's answer is: {shown(answer.text, lines=True)}", highlight=False)
    for state, heading, line in SENTENCE_SECTIONS:
        chosen = [s for s in answer.sentences if s.state == state]
        if chosen:
            stdout.print(f"\n{heading}")
            for s in chosen:
                stdout.print(f"  - {line(s)}", highlight=False)
    if answer.sources:
        stdout.print("\n[bold]Sources[/]")
        for src in answer.sources:
            mark = "" if src["cited"] else " [dim](not cited)[/]"
            page = f", page {src['page']}" if src["page"] else ""
            section = f", {src['section']}" if src["section"] else ""
            stdout.print(f"  [{src['n']}] {shown(str(src['title']))}{shown(page + section)}{mark}",
                         highlight=False)
            stdout.print(f"      [dim]{shown(str(src['source']))}[/]\n      "
                         f"{shown(str(src['snippet']))}", highlight=False)
    for warning in answer.warnings:
        stdout.print(f"[yellow]warning:[/] {shown(warning)}", highlight=False)
    t = answer.timings
    stdout.print(
        f"[dim]retrieve {t.get('retrieve_s', 0):.2f}s, rerank {t.get('rerank_s', 0):.2f}s, "
        + (f"gate {t['gate_s']:.2f}s, " if "gate_s" in t else "")
        + f"generate {t.get('generate_s', 0):.2f}s ({t.get('tokens_per_s', 0):.1f} tok/s"
        + (f", first token {t['first_token_s']:.2f}s" if "first_token_s" in t else "")
        + f", prompt {t.get('prompt_tokens', 0)} tokens)[/]")


@click.command()
@click.argument("question", required=False)
@click.option("--kb", "kb_name", help="Knowledge base name.")
@click.option("-k", type=click.IntRange(1, 100),
              help="Passages to retrieve; those given to the LLM also stop at "
                   "retrieval.passage_tokens (default: retrieval.k).")
@click.option("--mode", type=click.Choice(MODES), help="Retrieval mode.")
@click.option("--rerank/--no-rerank", default=None, help="Rerank with the cross-encoder.")
@click.option("--questions", type=click.Path(path_type=Path, dir_okay=False, exists=True),
              help="A file with one question per line: answered in one batch, JSON lines out.")
@click.option("--json", "as_json", is_flag=True, help="Print the answer object as JSON.")
def ask(question: str | None, kb_name: str | None, k: int | None, mode: str | None,
        rerank: bool | None, questions: Path | None, as_json: bool) -> None:
    """Answer QUESTION from a knowledge base, citing a source after every sentence."""
    if bool(question) == bool(questions):
        raise click.UsageError("give a QUESTION or --questions FILE")
    quiet_vllm()
    stop_children_on_exit()
    settings = with_running_server(get_settings(), dim)
    served = settings.generator.mode == "served" and question is not None
    if served:
        try:
            reply = ask_worker.ask(settings, kb_name, question, k, mode, rerank,
                                   None if as_json else show)
        except ask_worker.WorkerError as exc:
            raise UserError(str(exc)) from None
        if reply is not None:
            print_answer(Answer.from_dict(reply), as_json)
            stderr.print("[dim]searched by the background ask worker "
                         "(generator.ask_worker_idle_s)[/]", highlight=False)
            return
    pipeline = Pipeline(settings, kb_name)
    if questions:
        batch = [q.strip() for q in questions.read_text().splitlines() if q.strip()]
        for answer in pipeline.ask_many(batch, k=k, mode=mode, rerank=rerank):
            click.echo(json.dumps(answer.to_dict(), ensure_ascii=False, default=str))
        return
    assert question is not None
    print_answer(pipeline.ask(question, k=k, mode=mode, rerank=rerank,
                              on_token=None if as_json else show), as_json)
    if served:
        ask_worker.start(settings, kb_name)  # the next `rag ask` skips the loading


def show(token: str) -> None:
    sys.stdout.write(printable(token, lines=True))
    sys.stdout.flush()


def print_answer(answer: Answer, as_json: bool) -> None:
    """The whole answer as JSON, or (its text already streamed) the footer."""
    if as_json:
        print_json(answer.to_dict())
    else:
        sys.stdout.write("\n")
        print_answer_footer(answer)

"""The HTML report of one ``rag eval answers`` run: metrics with intervals, score
distributions, and a per-question table linking each flagged sentence to its passage."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval.intervals import Row
from eval.report import esc, figure, page, table

PER_ANSWER_KEYS = ("fact_found", "right_doc_cited", "refused", "verdict", "citation_recall",
                   "citation_precision", "seconds")


def _anchor(qid: object, n: object) -> str:
    return f"p-{esc(qid)}-{esc(n)}"


def _sentences(row: Row) -> str:
    items = []
    for s in row.get("sentence_scores", []):
        cites = ", ".join(f"<a href='#{_anchor(row['id'], n)}'>[{n}]</a>" for n in s["citations"])
        ok = s["recall"] == 1
        note = "" if ok else (
            f" <b>flagged</b> (support {s['support']}; best passage "
            f"<a href='#{_anchor(row['id'], s['best_source'])}'>[{s['best_source']}]</a> "
            f"{s['best_support']})")
        items.append(f"<li class='{'' if ok else 'flag'}'>{esc(s['text'])} {cites}{note}</li>")
    return f"<ul>{''.join(items)}</ul>" if items else ""


def _sources(row: Row) -> str:
    parts = []
    for s in row.get("sources", []):
        where = f"{s.get('title') or s.get('source')}" + (f", page {s['page']}" if s.get("page")
                                                           else "")
        parts.append(f"<div id='{_anchor(row['id'], s['n'])}'><b>[{s['n']}]</b> {esc(where)}"
                     f"{' (cited)' if s.get('cited') else ''}<div class='passage'>"
                     f"{esc(s.get('text'))}</div></div>")
    return f"<details><summary>passages</summary>{''.join(parts)}</details>" if parts else ""


def html_report(summary: Row, rows: Sequence[Row]) -> str:
    metrics: dict[str, dict[str, Any]] = summary["metrics"]
    metric_rows = [[name, m["value"], f"[{m['low']}, {m['high']}]"]
                   for name, m in metrics.items() if m["value"] is not None]
    ok = [r for r in rows if "error" not in r]
    sentences = [s for r in ok for s in r.get("sentence_scores", [])]

    def supports(ax) -> None:  # type: ignore[no-untyped-def]
        cited = [s["support"] for s in sentences if s["support"] is not None]
        uncited = [s["best_support"] for s in sentences
                   if s["support"] is None and s["best_support"] is not None]
        ax.hist([cited, uncited], bins=20, range=(0, 1), label=[
            "cited: support by its joined citations", "uncited: best retrieved passage"])
        ax.set_xlabel("support score")
        ax.set_ylabel("sentences")
        ax.legend(fontsize=8)

    def seconds(ax) -> None:  # type: ignore[no-untyped-def]
        ax.hist([float(r["seconds"]) for r in ok], bins=20)
        ax.set_xlabel("seconds per answer (batch time / batch size)")
        ax.set_ylabel("answers")

    figures = [figure(supports, "Support scores of answer sentences"),
               figure(seconds, "Answer time")] if ok else []
    question_rows = []
    for r in rows:
        if "error" in r:
            question_rows.append([esc(r["id"]), esc(r["question"]), f"<b>failed</b>: "
                                  f"{esc(r['error'])}", ""])
            continue
        facts = "<br>".join(f"{k}: {esc(r.get(k))}" for k in PER_ANSWER_KEYS
                            if r.get(k) is not None)
        question_rows.append([esc(r["id"]), esc(r["question"]),
                              f"{esc(r['answer'])}{_sentences(r)}{_sources(r)}", facts])
    config = esc(summary.get("config"))
    return page(f"Answer evaluation: {summary.get('dataset')}", [
        f"<p>Knowledge base <code>{esc(summary.get('kb'))}</code>; {summary.get('answered')} "
        f"answered, {len(summary.get('failed', []))} failed. Config: <code>{config}</code></p>",
        "<h2>Metrics (bootstrap 95% intervals over questions)</h2>",
        table(["metric", "value", "95% interval"], metric_rows),
        *figures,
        "<h2>Questions</h2>",
        table(["id", "question", "answer, sentences, passages", "scores"], question_rows, raw=True),
    ])

"""The docs question set asked of a documentation site: this repository's `docs/` rendered as a
Sphinx-like HTML site (each page's Markdown inside a navigation bar that lists every page, a
sidebar, a footer and a ¶ permalink after each heading), indexed into its own knowledge base,
then `rag eval answers` at defaults from a running `rag serve-llm` (the question set's document
names turned to .html). Writes bench/results/html_site.json.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from common import RESULTS

ROOT = Path(__file__).resolve().parents[1]
RAG = [sys.executable, "-m", "rag.cli.main"]
METRICS = ("fact_found", "right_doc_cited", "refusal_f1", "refused_answerable",
           "citation_precision", "seconds_per_answer")


def render_site(docs: Path, out: Path) -> list[Path]:
    """Each Markdown page of ``docs`` (but those its .ragignore leaves out) as an HTML page."""
    from markdown_it import MarkdownIt

    ignored = set((docs / ".ragignore").read_text().split()) if (docs / ".ragignore").is_file() else set()
    pages = [p for p in sorted(docs.glob("*.md")) if p.name not in ignored]
    render = MarkdownIt("commonmark").enable("table").render
    nav = "<ul>" + "".join(f'<li><a href="{p.stem}.html">{p.stem}</a></li>' for p in pages) + "</ul>"
    out.mkdir(parents=True, exist_ok=True)
    for page in pages:
        body = re.sub(r"(<h[1-6]>)(.*?)(</h[1-6]>)",
                      r'\1\2<a class="headerlink" href="#" title="Link to this heading">¶</a>\3',
                      render(page.read_text(encoding="utf-8")))
        (out / f"{page.stem}.html").write_text(
            f"<!DOCTYPE html><html><head><title>{page.stem} &#8212; rag documentation</title>"
            f'</head><body><div class="related" role="navigation">{nav}</div>'
            f'<div class="document"><div class="body" role="main">{body}</div>'
            f'<div class="sphinxsidebar" role="navigation"><h3>Navigation</h3>{nav}</div></div>'
            '<div class="footer" role="contentinfo">&#169; Copyright rag authors. Built with '
            "Sphinx.</div></body></html>", encoding="utf-8")
    return pages


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kb", default="docs-site", help="knowledge base to index the site into")
    parser.add_argument("--output", type=Path, default=RESULTS / "html_site.json")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        site, questions = Path(tmp) / "site", Path(tmp) / "questions.jsonl"
        pages = render_site(ROOT / "docs", site)
        questions.write_text(re.sub(r'\.md"', '.html"', (ROOT / "eval" / "questions" /
                                                         "docs.jsonl").read_text()))
        subprocess.run([*RAG, "index", str(site), "--kb", args.kb, "--rebuild"], check=True)
        run = Path(tmp) / "run"
        subprocess.run([*RAG, "eval", "answers", "--dataset", str(questions), "--kb", args.kb,
                        "--output", str(run)], check=True)
        summary = json.loads((run / "summary.json").read_text())
    metrics = summary.get("metrics", summary)
    result = {"pages": len(pages), "config": summary.get("config"),
              **{m: metrics[m] for m in METRICS if m in metrics}}
    args.output.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps({m: result.get(m) for m in METRICS}, indent=1))


if __name__ == "__main__":
    main()

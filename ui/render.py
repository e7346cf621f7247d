"""HTML for answers and passages: citation markers with hover text that jump to the sources,
unsupported sentences underlined, supporting sentences highlighted. Everything that came from a
document or the model is escaped first, for HTML *and* Markdown (a document's ``![](url)`` must not
make the browser fetch anything); only our own markup is added after."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

from rag.core.errors import RagError
from rag.grounding.citations import CITATION, parse_numbers, sentence_state

# What the app shows as a message instead of a traceback: every error rag raises for the user,
# bad values, and the file system's (a full disk, a file that vanished).
USER_ERRORS = (RagError, ValueError, OSError)

Source = dict[str, Any]

CSS = """<style>
.rag-answer a.cite { text-decoration: none; font-weight: 600; padding: 0 .15em;
  border-radius: 4px; background: rgba(60, 120, 250, .14); }
.rag-answer a.cite.attributed { background: none; border: 1.5px dashed rgba(60, 120, 250, .7);
  font-style: italic; }
.rag-answer .unsupported { text-decoration: underline wavy #d0342c; text-underline-offset: 4px;
  text-decoration-thickness: 1.5px; }
.rag-answer .contradicted { background: rgba(208, 52, 44, .13); border-bottom: 2px solid #d0342c; }
.rag-passage { white-space: pre-wrap; font-size: .92em; line-height: 1.5; }
.rag-passage mark { background: #ffc96b; padding: 0 .1em; border-radius: 3px; }
</style>"""


# Every character that starts HTML, a Markdown link, image, autolink (``http:``, ``a@b``, ``www.``),
# emphasis, code, LaTeX (``$``) or a Streamlit directive (``:red[...]``). A character reference is
# literal text to a CommonMark parser, never syntax.
_ACTIVE = re.compile(r"[&<>\"'`\\\[\]()!:@*_~|#${}]|(?<=www)\.", re.IGNORECASE)
_PUNCT = re.compile(r"([!-/:-@\[-`{-~])")


def text(value: object) -> str:
    """Literal text inside st.markdown with HTML on (also inside attribute values)."""
    return _ACTIVE.sub(lambda m: f"&#{ord(m.group())};", str(value))


def md(value: object) -> str:
    """Literal text for plain Markdown (captions, alerts, widget labels): every ASCII
    punctuation character backslash-escaped, newlines kept as spaces."""
    return _PUNCT.sub(r"\\\1", " ".join(str(value).split()))


def where(src: Source) -> str:
    parts = [str(src.get("title") or src.get("source"))]
    if src.get("page"):
        parts.append(f"page {src['page']}")
    if src.get("section"):
        parts.append(str(src["section"]))
    return ", ".join(parts)


def source_label(src: Source, width: int = 38) -> str:
    """Plain text; widgets that render Markdown labels get it through ``md``."""
    title = str(src.get("title") or src.get("source"))
    if len(title) > width:
        title = title[: width - 1] + "…"
    page = f" · p. {src['page']}" if src.get("page") else ""
    return f"[{src['n']}] {title}{page}" + ("" if src.get("cited") else " (not cited)")


def scores_line(src: Source) -> str:
    scores, ranks = src.get("scores", {}), src.get("ranks", {})
    parts = []
    for key, name in (("dense", "dense"), ("bm25", "BM25"), ("fused", "fused"),
                      ("rerank", "rerank")):
        value = scores.get(key)
        rank = f" (#{ranks[key]})" if key in ranks else ""
        parts.append(f"{name} {value:.4g}{rank}" if value is not None else f"{name} –")
    return " · ".join(parts)


def timings_line(t: dict[str, Any], model: str | None) -> str:
    """Where the seconds went; the writing speed excludes the prompt's processing."""
    parts = [f"retrieve {t.get('retrieve_s', 0):.2f} s"]
    if "rewrite_s" in t:
        parts.append(f"rewrite {t['rewrite_s']:.1f} s")
    parts.append(f"generate {t.get('generate_s', 0):.1f} s")
    if t.get("prompt_tokens"):
        parts.append(f"prompt {t['prompt_tokens']:,} tokens")
    first, total = t.get("first_token_s"), t.get("generate_s", 0)
    if first is not None:
        parts.append(f"first token {first:.1f} s")
        if total > first and t.get("completion_tokens"):
            parts.append(f"{t['completion_tokens'] / (total - first):.0f} tok/s")
    return " · ".join(parts + [str(model)])


ATTRIBUTED = ("cited by rag after generation, not by the model: this source supports the "
              "sentence")


def _cite_links(raw: str, turn: str, by_n: dict[int, Source],
                attributed: Iterable[int] = ()) -> str:
    """``raw`` escaped, with each [n] marker made a link to its source (dashed when rag, not
    the model, attributed it)."""
    out, cursor = [], 0
    for match in CITATION.finditer(raw):
        out.append(text(raw[cursor:match.start()]))
        links = []
        for n in parse_numbers(match.group(1)):
            src = by_n.get(n)
            if src is None:
                links.append(str(n))
                continue
            hover = text(f"{where(src)}: {src.get('snippet', '')}")
            if n in attributed:
                links.append(f'<a class="cite attributed" href="#sources-{turn}" '
                             f'title="{text(ATTRIBUTED)}. {hover}">{n}</a>')
                continue
            links.append(f'<a class="cite" href="#sources-{turn}" title="{hover}">{n}</a>')
        out.append("&#91;" + ", ".join(links) + "&#93;")
        cursor = match.end()
    out.append(text(raw[cursor:]))
    return "".join(out)


def _locate(answer: str, sentences: Sequence[dict[str, Any]]) -> list[tuple[int, int, dict[str, Any]]]:
    """(start, end, sentence) of every sentence found in order in the answer text."""
    found, cursor = [], 0
    for s in sentences:
        for probe in (s["text"], s["text"].split("[")[0].strip()):
            at = answer.find(probe, cursor) if probe else -1
            if at >= 0:
                found.append((at, at + len(probe), s))
                cursor = at + len(probe)
                break
    return found


def _why(s: dict[str, Any]) -> str:
    why = "; ".join(s.get("flags") or []) or "not supported"
    if s.get("suggested"):
        why += f"; best matching source: {s['suggested']}"
    if s.get("support") is not None:
        why += f"; support {s['support']:.2f}"
    return why


def answer_html(turn: str, answer: str, sentences: Sequence[dict[str, Any]],
                sources: Sequence[Source]) -> str:
    """The answer with clickable/hoverable [n] markers (dashed where rag attributed them) and
    flagged sentences underlined."""
    by_n = {int(s["n"]): s for s in sources}
    out, cursor = [], 0
    for start, end, s in _locate(answer, sentences):
        state = sentence_state(s.get("supported"), s.get("attributed"), s.get("contradicted_by"))
        if state in ("supported", "unchecked"):
            continue
        out.append(_cite_links(answer[cursor:start], turn, by_n))
        inner = _cite_links(answer[start:end], turn, by_n, s.get("attributed") or [])
        out.append(inner if state == "attributed" else
                   f'<span class="{state}" title="{text(_why(s))}">{inner}</span>')
        cursor = end
    out.append(_cite_links(answer[cursor:], turn, by_n))
    return f'<div class="rag-answer">{"".join(out)}</div>'


def evidence_spans(n: int, sentences: Iterable[dict[str, Any]]) -> list[tuple[int, int]]:
    """Passage spans of source ``n`` that support some answer sentence."""
    spans = set()
    for s in sentences:
        for key, span in (s.get("evidence") or {}).items():
            if int(key) == n:
                spans.add((int(span[0]), int(span[1])))
    return sorted(spans)


def passage_html(passage: str, spans: Sequence[tuple[int, int]]) -> str:
    """The passage with the supporting sentences marked (overlapping spans merged)."""
    merged: list[list[int]] = []
    for a, b in sorted(spans):
        if merged and a <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], b)
        else:
            merged.append([a, b])
    out, cursor = [], 0
    for a, b in merged:
        out.append(text(passage[cursor:a]) + f"<mark>{text(passage[a:b])}</mark>")
        cursor = b
    out.append(text(passage[cursor:]))
    return f'<div class="rag-passage">{"".join(out)}</div>'

"""The chat view: ask, stream the answer, and show each sentence with the passages and page images
that back it, and thumbs up/down for the answer."""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import streamlit as st

from ingest.page_images import render_page
from rag.core.errors import GenerationError, PageRenderError
from rag.service.engine import Engine
from ui import render
from ui.render import USER_ERRORS

log = logging.getLogger("rag.ui")


@st.cache_data(max_entries=64, show_spinner=False)
def page_png(path: str, version: int, page: int, passage: str,
             evidence: tuple[str, ...]) -> tuple[bytes, list[str]]:
    """Cached per file version (mtime): a replaced PDF is rendered again."""
    rendered = render_page(path, page, passage, evidence)
    return rendered.png, rendered.notes


def turns(kb: str) -> list[dict[str, Any]]:
    return st.session_state.setdefault("turns", {}).setdefault(kb, [])


# -- chat ------------------------------------------------------------------------------------
def show_sources(turn_id: str, answer: dict[str, Any]) -> None:
    sources = answer["sources"]
    if not sources:
        return
    by_n = {int(s["n"]): s for s in sources}
    cited = [int(s["n"]) for s in sources if s["cited"]]
    st.markdown(f'<div id="sources-{turn_id}"></div>', unsafe_allow_html=True)
    order = cited or list(by_n)  # nothing cited: let the reader inspect everything retrieved
    n = st.segmented_control("Cited sources" if cited else "Retrieved passages", order,
                             default=order[0], key=f"src-{turn_id}",
                             format_func=lambda n: render.md(render.source_label(by_n[n])))
    n = order[0] if n is None else n  # clicking the selected source again keeps it shown
    show_source(turn_id, int(n), by_n[int(n)], answer["sentences"])
    others = [s for s in sources if not s["cited"]] if cited else []
    if others:
        with st.expander(f"{len(others)} more retrieved passage(s), not cited"):
            for src in others:
                st.markdown(f"**[{src['n']}] {render.text(render.where(src))}** · "
                            f"{render.text(render.scores_line(src))}  \n"
                            f"{render.text(src['snippet'])}", unsafe_allow_html=True)


def show_source(turn_id: str, n: int, src: dict[str, Any],
                sentences: list[dict[str, Any]]) -> None:
    """One source: where it is, its scores, the passage with its supporting sentences marked,
    and for PDFs the page itself."""
    with st.container(border=True, key=f"source-{turn_id}"):
        st.markdown(f"**{render.text(src['title'] or src['source'])}**"
                    + (f" — page {src['page']}" if src.get("page") else "")
                    + (f" — {render.text(src['section'])}" if src.get("section") else ""),
                    unsafe_allow_html=True)
        st.caption(render.md(f"{src['source']} · chunk {src['chunk_id']}"))
        st.caption(render.md(render.scores_line(src)))
        spans = render.evidence_spans(n, sentences)
        st.markdown(render.passage_html(src["text"], spans), unsafe_allow_html=True)
        if src.get("page") and st.toggle("Show the page", key=f"page-{turn_id}-{n}"):
            evidence = tuple(src["text"][a:b] for a, b in spans)
            try:
                version = Path(src["source"]).stat().st_mtime_ns
                png, notes = page_png(src["source"], version, int(src["page"]), src["text"],
                                      evidence)
                st.image(png, caption=f"{Path(src['source']).name}, page {src['page']}",
                         width=760)
                for note in notes:
                    st.caption(render.md(note))
            except FileNotFoundError:
                st.warning(render.md(f"{src['source']} is no longer there (moved or deleted "
                                     "since indexing)"))
            except PageRenderError as exc:
                st.warning(render.md(exc))


def show_feedback(engine: Engine, kb: str, turn_id: str, answer: dict[str, Any]) -> None:
    rating = st.feedback("thumbs", key=f"fb-{turn_id}")
    if rating is None:
        return
    comment = st.text_input("Comment (optional)", key=f"fbc-{turn_id}",
                            placeholder="What was right or wrong?")
    judged = ("up" if rating == 1 else "down", comment)
    saved = st.session_state.setdefault("feedback_saved", {})
    if saved.get(turn_id) != judged:
        engine.feedback.record(turn_id, kb, answer, *judged)
        saved[turn_id] = judged
    st.caption("Feedback saved.")


def show_answer(engine: Engine, kb: str, turn: dict[str, Any]) -> None:
    answer = turn.get("answer")
    if answer is None:
        if turn.get("partial"):
            st.markdown(render.text(turn["partial"]), unsafe_allow_html=True)
        st.error(render.md(turn["error"]), icon=":material/error:")
        return
    if answer.get("standalone_query"):
        with st.expander("Searched for (follow-up rewritten)"):
            st.markdown(render.text(answer["standalone_query"]), unsafe_allow_html=True)
    st.markdown(render.answer_html(turn["id"], answer["text"], answer["sentences"],
                                   answer["sources"]), unsafe_allow_html=True)
    if answer.get("withheld"):
        with st.expander("The model's answer, withheld: no passage supports it"):
            st.markdown(render.text(answer["withheld"]), unsafe_allow_html=True)
    if answer.get("restated"):
        with st.expander("The model's first answer, replaced: it only restated the question"):
            st.markdown(render.text(answer["restated"]), unsafe_allow_html=True)
    contradicted = [s for s in answer["sentences"] if s.get("contradicted_by")]
    if contradicted:
        st.caption(f":no_entry: {len(contradicted)} sentence(s) contradicted by a source (red; "
                   "hover for which).")
    flagged = [s for s in answer["sentences"] if s.get("supported") is False]
    if flagged:
        st.caption(f":warning: {len(flagged)} of {len(answer['sentences'])} sentence(s) uncited "
                   "or unsupported by their source (underlined; hover for why).")
    attributed = [s for s in answer["sentences"] if s.get("attributed")]
    if attributed:
        st.caption(f"{len(attributed)} citation(s) with a dashed border were added by rag after "
                   "generation: the model did not write them, the cited passage supports the "
                   "sentence.")
    for warning in answer["warnings"]:
        st.caption(render.md(f"note: {warning}"))
    st.caption(render.md(render.timings_line(answer["timings"], answer["models"].get("generator"))))
    show_sources(turn["id"], answer)
    show_feedback(engine, kb, turn["id"], answer)


def ask(engine: Engine, kb: str, question: str, options: dict[str, Any]) -> dict[str, Any]:
    """Stream one answer into the page; failures become an error turn, never a crash."""
    history = [(t["question"], t["answer"]["text"]) for t in turns(kb) if t.get("answer")]
    turn: dict[str, Any] = {"id": uuid.uuid4().hex[:12], "question": question}
    with st.chat_message("user"):
        st.markdown(render.text(question), unsafe_allow_html=True)
    with st.chat_message("assistant"):
        box = st.empty()
        box.caption("Searching the knowledge base…")
        streamed: list[str] = []

        def on_token(token: str) -> None:
            streamed.append(token)
            box.markdown(render.text("".join(streamed)) + " ▌", unsafe_allow_html=True)

        try:
            answer = engine.pipeline(kb).ask(question, on_token=on_token, history=history,
                                            **options)
            turn["answer"] = answer.to_dict()
        except USER_ERRORS as exc:
            turn.update(answer=None, partial="".join(streamed), error=_error_text(exc, streamed))
        except Exception as exc:  # the page stays up; the log has the traceback
            log.exception("answering failed")
            turn.update(answer=None, partial="".join(streamed),
                        error=f"unexpected error: {type(exc).__name__}: {exc}")
    return turn


def _error_text(exc: Exception, streamed: list[str]) -> str:
    if isinstance(exc, GenerationError):
        cut = " The answer was cut off." if streamed else ""
        return f"The LLM failed: {exc}.{cut} Ask again once it is back."
    return str(exc)


def chat_view(engine: Engine, kb: str, options: dict[str, Any], llm_ready: bool) -> None:
    exists = kb in engine.kbs()
    if not exists:
        st.info(f"Knowledge base **{render.md(kb)}** has no documents yet: add some under "
                "*Documents*.")
    for turn in turns(kb):
        with st.chat_message("user"):
            st.markdown(render.text(turn["question"]), unsafe_allow_html=True)
        with st.chat_message("assistant"):
            show_answer(engine, kb, turn)
    hint = ("Ask a question about your documents" if llm_ready
            else "The LLM is still loading: questions are accepted once it is ready")
    question = st.chat_input(hint, disabled=not (llm_ready and exists), key="question")
    if question and question.strip():
        turns(kb).append(ask(engine, kb, question.strip(), options))
        st.rerun()

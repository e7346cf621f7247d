"""The Streamlit app behind `rag ui`: chat with a knowledge base and check every claim.

Layout only: retrieval, prompting and checking happen in ``rag.service.pipeline``; shared state (models,
jobs, feedback) lives in one ``rag.service.engine.Engine`` for all browser sessions.
"""

from __future__ import annotations

import hmac
import io
import logging
import time
import uuid
from pathlib import Path
from typing import Any

import streamlit as st

from ingest.indexer import IndexReport
from ingest.page_images import render_page
from rag.core.errors import ConfigError, GenerationError, KBError, ModelLoadError, PageRenderError
from rag.service.engine import Engine
from rag.service.jobs import IndexJob
from rag.service.pipeline import MODES
from rag.service.uploads import Upload
from rag.storage.keys import ApiKey
from ui import auth, render

log = logging.getLogger("rag.ui")
VIEWS = ("Chat", "Documents", "Feedback")
USER_ERRORS = (GenerationError, KBError, ModelLoadError, ValueError, OSError)


@st.cache_resource(show_spinner="Loading the models…")
def get_engine() -> Engine:
    """One engine per server process: every tab and rerun shares its models."""
    return Engine.from_environment()


@st.cache_data(max_entries=64, show_spinner=False)
def page_png(path: str, version: int, page: int, passage: str,
             evidence: tuple[str, ...]) -> tuple[bytes, list[str]]:
    """Cached per file version (mtime): a replaced PDF is rendered again."""
    rendered = render_page(path, page, passage, evidence)
    return rendered.png, rendered.notes


def turns(kb: str) -> list[dict[str, Any]]:
    return st.session_state.setdefault("turns", {}).setdefault(kb, [])


# -- sidebar ---------------------------------------------------------------------------------
def choose_kb(engine: Engine, key: ApiKey | None) -> str:
    """The knowledge base to work on, of those the signed-in key may read (all without one)."""
    extra = st.session_state.setdefault("new_kbs", [])
    names = sorted(set(engine.kbs()) | {engine.settings.default_kb} | set(extra))
    if key is not None:
        names = key.readable(names)
        if not names:
            st.error("This API key may read no knowledge base.")
            st.stop()
    default = engine.settings.default_kb if engine.settings.default_kb in names else names[0]
    if st.session_state.get("kb_select") not in names:
        st.session_state["kb_select"] = default

    def create() -> None:  # a callback: it may set the selectbox before it is drawn again
        name = st.session_state.get("new_kb_name", "").strip()
        try:
            if key is not None and not key.may(engine.check_name(name), "admin"):
                raise KBError(f"this API key may not create knowledge base {name!r}")
            extra.append(engine.check_name(name))
            st.session_state["kb_select"] = name
        except KBError as exc:
            st.session_state["kb_error"] = str(exc)

    kb = st.selectbox("Knowledge base", names, key="kb_select")
    if key is not None and key.role != "admin":
        return str(kb)  # only admins make knowledge bases
    with st.expander("New knowledge base"):
        with st.form("new_kb", clear_on_submit=True, border=False):
            st.text_input("Name", placeholder="letters, digits, '.', '_' or '-'",
                          key="new_kb_name")
            st.form_submit_button("Create", key="create_kb", on_click=create)
        if "kb_error" in st.session_state:
            st.error(st.session_state.pop("kb_error"))
    return str(kb)


def answer_settings(engine: Engine) -> dict[str, Any]:
    s = engine.settings
    with st.expander("Answer settings", expanded=False):
        k = st.slider("Passages (top-k)", 1, max(20, s.retrieval.k), s.retrieval.k, key="k")
        mode = st.radio("Retrieval", MODES, index=MODES.index(s.retrieval.mode), horizontal=True,
                        key="mode")
        rerank = st.toggle("Rerank (cross-encoder)", value=s.reranker.enabled,
                           help=f"model: {s.reranker.model}", key="rerank")
        models = engine.models()
        model = st.selectbox("Model", models, help="models the LLM server offers", key="model")
        temperature = st.slider("Temperature", 0.0, 2.0, float(s.generator.temperature), 0.05,
                                key="temperature")
    return {"k": k, "mode": mode, "rerank": rerank, "model": model, "temperature": temperature}


def llm_status(engine: Engine) -> bool:
    ready, message = engine.llm_status()
    if ready:
        st.caption(f"LLM ready. {message}")
        return True

    @st.fragment(run_every=3.0)
    def wait() -> None:
        ok, msg = engine.llm_status()
        if ok:
            st.rerun()
        st.info(msg, icon=":material/hourglass_top:")

    wait()
    return False


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


# -- documents -------------------------------------------------------------------------------
def show_report(job: IndexJob) -> None:
    if job.error:
        st.error(render.md(f"The indexing job failed: {job.error}"))
    report = job.report or IndexReport()
    failed = [(Path(f.path).name, f.reason) for f in report.failed] + job.refused
    summary = (f"Indexed {report.indexed}, unchanged {report.unchanged}, removed {report.removed}, "
               f"failed {len(failed)} in {report.seconds:.1f} s "
               f"({report.chunks_added} chunks added).")
    (st.warning if failed else st.success)(summary)
    if failed:  # st.table renders Markdown: a file named ![t](http://...) must stay text
        st.table([{"file": render.md(name), "why it failed": render.md(why)}
                  for name, why in failed])
    if report.warnings:
        with st.expander(f"{len(report.warnings)} warning(s)"):
            for w in report.warnings:
                st.caption(render.md(f"{Path(w.path).name}: {w.reason}"))


def job_panel(engine: Engine, kb: str) -> None:
    job = engine.jobs.latest(kb)
    if job is None:
        return

    @st.fragment(run_every=1.0 if job.running else None)
    def panel() -> None:
        if job.running and job.queued:
            st.progress(0.0, text="Queued: another knowledge base is being indexed "
                                  "(ui.max_index_jobs)")
            if st.button("Cancel indexing", key=f"cancel-{kb}"):
                job.cancel.set()
        elif job.running:
            where = f" · {Path(job.current).name}" if job.current else ""
            st.progress(job.fraction, text=render.md(
                f"Indexing: {job.files_done} of {job.files_total} files · {job.chunks} "
                f"chunks{where}"))
            if job.cancel.is_set():
                st.caption("Cancelling…")
            elif st.button("Cancel indexing", key=f"cancel-{kb}"):
                job.cancel.set()
        elif st.session_state.get(f"job-seen-{kb}") != job.started:
            st.session_state[f"job-seen-{kb}"] = job.started
            st.rerun()  # the whole page, so stats and the document list show the result
        else:
            show_report(job)

    panel()


def documents_view(engine: Engine, kb: str, writable: bool = True) -> None:
    st.subheader(render.md(f"Knowledge base: {kb}"))
    exists = kb in engine.kbs()
    if exists:
        stats = engine.pipeline(kb).stats()
        cols = st.columns(3)
        cols[0].metric("Files", stats["files"])
        cols[1].metric("Documents", stats["documents"])
        cols[2].metric("Chunks", stats["chunks"])
        updated = stats["updated"]
        when = time.strftime("%Y-%m-%d %H:%M", time.localtime(updated)) if updated else "never"
        st.caption(render.md(f"Embedder {stats['embedder']} ({stats['dim']} dimensions) · last "
                             f"update {when} · stored in {engine.pipeline(kb).kb.path}"))
    job_panel(engine, kb)
    if not writable:
        st.caption("This API key may read this knowledge base, not change it.")
        if exists:
            documents_table(engine, kb, writable)
        return
    limit = engine.settings.ui.max_upload_mb
    with st.form("upload", clear_on_submit=True):
        files = st.file_uploader(f"Add files (PDF, Markdown, HTML, text; up to {limit} MB each)",
                                 accept_multiple_files=True, key="uploads")
        if st.form_submit_button("Upload and index", key="upload_submit") and files:
            start_job(lambda: engine.upload(kb, [Upload(f.name, f.getvalue()) for f in files]))
    roots = engine.settings.ui.index_roots
    if roots:  # off by default: a visitor could otherwise index anything the server can read
        with st.form("folder"):
            folder = st.text_input(
                "Or index a folder on this server", key="folder",
                placeholder=str(roots[0]), help="Allowed below: " + ", ".join(map(str, roots)))
            if st.form_submit_button("Index folder", key="folder_submit") and folder.strip():
                start_job(lambda: engine.index_folder(kb, folder))
    if exists:
        documents_table(engine, kb)


def start_job(start: Any) -> None:  # noqa: ANN401 - a callable returning an IndexJob
    try:
        start()
    except (RuntimeError, KBError, OSError) as exc:
        st.error(render.md(exc))
        return
    st.rerun()


def documents_table(engine: Engine, kb: str, writable: bool = True) -> None:
    docs = engine.pipeline(kb).documents()
    st.dataframe([{"title": d.title, "file": Path(d.path).name, "kind": d.kind,
                   "chunks": d.n_chunks, "warnings": "; ".join(d.warnings),
                   "indexed": time.strftime("%Y-%m-%d %H:%M", time.localtime(d.indexed_at))}
                  for d in docs], hide_index=True, use_container_width=True)
    if not writable:
        return
    by_path = {d.path: d for d in docs}
    with st.form("remove"):
        chosen = st.multiselect("Remove documents", list(by_path), key="remove_docs",
                                format_func=lambda p: f"{by_path[p].title} ({Path(p).name})")
        if st.form_submit_button("Remove", key="remove_submit") and chosen:
            try:
                dropped = engine.remove(kb, chosen)
                st.success(f"Removed {len(chosen)} document(s), {dropped} chunks.")
            except KBError as exc:
                st.error(render.md(exc))


# -- feedback --------------------------------------------------------------------------------
def feedback_view(engine: Engine, kb: str) -> None:
    """The judged answers of the chosen knowledge base only."""
    st.subheader(render.md(f"Feedback on {kb}"))
    rows = engine.feedback.rows(kb=kb)
    st.write(f"{len(rows)} judged answer(s).")
    if not rows:
        return
    out = io.StringIO()
    engine.feedback.export_jsonl(out, kb=kb)
    st.download_button("Export as evaluation set (JSONL)", out.getvalue(),
                       file_name=f"rag-feedback-{kb}.jsonl", mime="application/jsonl")
    st.dataframe([{"when": time.strftime("%Y-%m-%d %H:%M", time.localtime(r["created"])),
                   "rating": r["rating"], "question": r["question"],
                   "comment": r["comment"]} for r in reversed(rows)],
                 hide_index=True, use_container_width=True)


# -- page ------------------------------------------------------------------------------------
def signed_in(engine: Engine) -> bool:
    """Optional access control: a user header that only a trusted reverse proxy may set, and a
    shared token or an API key (asked once either is configured; ui/auth.py, rag.storage.keys)."""
    ui = engine.settings.ui
    if ui.auth_header:
        denial = auth.header_denial(ui, *auth.request())
        if denial:
            st.error(render.md(f"Access denied: {denial}."))
            return False
    if st.session_state.get("signed_in"):
        return True
    keys = engine.keys.required()
    if not ui.auth_token and not keys:
        return True
    with st.form("sign_in"):
        label = " or ".join(name for name, on in (("Access token", ui.auth_token),
                                                  ("API key", keys)) if on)
        token = st.text_input(label, type="password", key="token")
        if st.form_submit_button("Sign in", key="sign_in_submit"):
            key = engine.keys.verify(token) if keys else None
            if key is not None or (ui.auth_token and hmac.compare_digest(
                    token.encode(), ui.auth_token.encode())):
                st.session_state["signed_in"] = True
                st.session_state["key_id"] = key.id if key else None
                st.rerun()
            st.error("Wrong access token or API key.")
    return False


def signed_in_key(engine: Engine) -> ApiKey | None:
    """The API key this session signed in with (None: a token, a proxy's user, or no sign-in),
    checked again on every rerun: a revoked key signs the session out."""
    key_id = st.session_state.get("key_id")
    if key_id is None:
        return None
    key = engine.keys.keys().get(key_id)
    if key is None or key.revoked is not None:
        st.session_state.pop("signed_in", None)
        st.session_state.pop("key_id", None)
        st.error("This API key was revoked: sign in again.")
        st.stop()
    return key


def main() -> None:
    st.set_page_config(page_title="rag", page_icon=":material/menu_book:", layout="wide")
    st.html(render.CSS)
    try:
        engine = get_engine()
    except (ConfigError, KBError, ModelLoadError, OSError) as exc:
        st.error(render.md(f"rag cannot start: {exc}"))
        st.stop()
    if not signed_in(engine):
        st.stop()
    key = signed_in_key(engine)
    with st.sidebar:
        st.title("rag")
        kb = choose_kb(engine, key)
        view = st.radio("View", VIEWS, horizontal=True, label_visibility="collapsed", key="view")
        options = answer_settings(engine)
        llm_ready = llm_status(engine)
        if turns(kb) and st.button("New conversation"):
            turns(kb).clear()
            st.rerun()
    if view == "Chat":
        chat_view(engine, kb, options, llm_ready)
    elif view == "Documents":
        documents_view(engine, kb, key is None or key.may(kb, "write"))
    else:
        feedback_view(engine, kb)


main()

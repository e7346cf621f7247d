"""The documents view: upload or point at files, follow the indexing job, read its report, and
list or delete what a knowledge base holds."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import streamlit as st

from ingest.indexer import IndexReport
from rag.core.errors import KBError
from rag.service.engine import Engine
from rag.service.jobs import IndexJob
from rag.service.uploads import Upload
from ui import render
from ui.render import USER_ERRORS


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
        files = st.file_uploader(
            f"Add files (PDF, scans and images, Word, PowerPoint, Excel, CSV, EPUB, Markdown, "
            f"reStructuredText, HTML, notebooks, text; up to {limit} MB each)",
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
    except (RuntimeError, *USER_ERRORS) as exc:
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

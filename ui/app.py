"""The Streamlit app behind `rag ui`: chat with a knowledge base and check every claim.

Layout only: retrieval, prompting and checking happen in ``rag.service.pipeline``; shared state
(models, jobs, feedback) lives in one ``rag.service.engine.Engine`` for all browser sessions.
This page holds sign-in, the sidebar and the feedback view; ``chat`` and ``documents`` the
other two views.
"""

from __future__ import annotations

import hmac
import io
import logging
import time
from typing import Any

import streamlit as st

from rag.core.errors import KBError
from rag.service.engine import Engine
from rag.service.pipeline import MODES
from rag.storage.keys import ApiKey
from ui import auth, render
from ui.chat import chat_view, turns
from ui.documents import documents_view
from ui.render import USER_ERRORS

log = logging.getLogger("rag.ui")
VIEWS = ("Chat", "Documents", "Feedback")


@st.cache_resource(show_spinner="Loading the models…")
def get_engine() -> Engine:
    """One engine per server process: every tab and rerun shares its models."""
    return Engine.from_environment()


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
    except USER_ERRORS as exc:
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

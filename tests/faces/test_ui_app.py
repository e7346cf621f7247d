"""The Streamlit app through streamlit.testing.v1.AppTest, with fake models (fast, no network)."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from streamlit.testing.v1 import AppTest

from rag.core.errors import GenerationError
from rag.core.types import Generation
from rag.service.engine import Engine
from tests.fakes import HashEmbedder, ReverseReranker, ScriptedGenerator
from tests.helpers import write_corpus

APP = str(Path(__file__).resolve().parents[2] / "ui" / "app.py")


class FailingGenerator(ScriptedGenerator):
    """Streams the first words of its answer, then loses the server (once)."""

    fail_next = True

    def stream(self, prompt: str, max_tokens: int, temperature: float | None = None,
               model: str | None = None) -> Iterator[Generation]:
        if not self.fail_next:
            yield from super().stream(prompt, max_tokens, temperature, model)
            return
        self.fail_next = False
        yield Generation("Cats ")
        yield Generation("purr ")
        raise GenerationError("LLM server http://127.0.0.1:9/v1 failed after 3 retries: "
                              "RemoteProtocolError: peer closed connection")


def make_engine(settings, generator: ScriptedGenerator | None = None) -> Engine:  # noqa: ANN001
    embedder = HashEmbedder()
    return Engine(settings, embedder=embedder, reranker=ReverseReranker(),
                  generator=generator or ScriptedGenerator(), index_embedder=embedder)


@pytest.fixture
def engine(settings, tmp_path: Path) -> Engine:  # noqa: ANN001
    engine = make_engine(settings)
    engine.pipeline("default").index([write_corpus(tmp_path / "docs")])
    return engine


def start(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> AppTest:
    monkeypatch.setattr(Engine, "from_environment", classmethod(lambda cls: engine))
    st.cache_resource.clear()
    st.cache_data.clear()
    at = AppTest.from_file(APP, default_timeout=30)
    at.run()
    assert not at.exception, at.exception
    return at


def ask(at: AppTest, question: str) -> AppTest:
    at.chat_input(key="question").set_value(question).run()
    assert not at.exception, at.exception
    return at


def html(at: AppTest) -> str:
    return "\n".join(m.value for m in at.markdown)


def test_answer_has_citation_links_flags_and_sources(engine: Engine,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    engine.generator.enqueue("Cats purr and sleep all day [1]. The moon is made of cheese.")
    at = ask(start(engine, monkeypatch), "What do cats do?")
    page = html(at)
    assert 'class="cite"' in page and 'href="#sources-' in page
    assert 'title="Cats' in page  # hover text: the source's title and snippet
    assert 'class="unsupported"' in page and "The moon is made of cheese." in page
    assert any("uncited or unsupported" in c.value for c in at.caption)
    sources = at.segmented_control[0]
    assert sources.value == 1 and sources.options[0].startswith("\\[1\\] Cats")
    card = at.get_by_key("source-" + at.session_state["turns"]["default"][0]["id"])
    text = "\n".join(m.value for m in card.markdown)
    assert "<mark>Cats purr and sleep all day.</mark>" in text  # the supporting sentence
    assert any("dense" in c.value and "BM25" in c.value for c in card.caption)


def test_model_output_is_escaped(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.generator.enqueue('Cats purr <script>alert("x")</script> and $x$ [1].')
    page = html(ask(start(engine, monkeypatch), "What do cats do?"))
    assert "<script>" not in page and "&#60;script&#62;" in page and "&#36;x&#36;" in page


def test_follow_up_is_rewritten_and_shown_on_demand(engine: Engine,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    gen = engine.generator
    gen.enqueue("Dogs bark at the mailman [1].")
    at = ask(start(engine, monkeypatch), "What do dogs do?")
    gen.enqueue("What else do dogs love?", "Dogs love long walks [1].")
    at = ask(at, "What else do they love?")
    assert "Conversation:" in gen.prompts[1] and "Dogs bark at the mailman" in gen.prompts[1]
    assert "Question: What else do dogs love?" in gen.prompts[2]
    expander = [e for e in at.expander if "rewritten" in e.label]
    assert expander and expander[0].markdown[0].value == "What else do dogs love?"


def test_sidebar_settings_reach_the_pipeline(engine: Engine,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    at = start(engine, monkeypatch)
    at.slider(key="k").set_value(1)
    at.slider(key="temperature").set_value(0.7)
    at.selectbox(key="model").set_value("fake-other")
    at.radio(key="mode").set_value("bm25")
    engine.generator.enqueue("Dogs bark at the mailman [1].")
    at = ask(at.run(), "Who barks at the mailman?")
    answer = at.session_state["turns"]["default"][0]["answer"]
    assert engine.generator.options[-1] == (0.7, "fake-other")
    assert len(answer["sources"]) == 1 and answer["sources"][0]["scores"]["dense"] is None
    assert answer["models"]["generator"] == "fake-other"


def test_llm_failure_mid_answer_shows_error_and_app_recovers(
        settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:  # noqa: ANN001
    engine = make_engine(settings, FailingGenerator("Cats purr [1].", "Cats purr [1]."))
    engine.pipeline("default").index([write_corpus(tmp_path / "docs")])
    at = ask(start(engine, monkeypatch), "What do cats do?")
    assert at.error and "The LLM failed" in at.error[0].value and "cut off" in at.error[0].value
    assert "Cats purr" in html(at)  # what had arrived stays visible
    at = ask(at, "What do cats do?")
    turns = at.session_state["turns"]["default"]
    assert turns[0]["answer"] is None and turns[1]["answer"]["text"] == "Cats purr [1]."


def test_waits_for_the_llm_server_and_says_so(settings, monkeypatch: pytest.MonkeyPatch,
                                              tmp_path: Path) -> None:  # noqa: ANN001
    from rag.core.config import load_settings
    from rag.generation.engines import VllmServedGenerator
    from rag.generation.server import STATE_ENV, LlmState

    dead = "http://127.0.0.1:9/v1"
    state = tmp_path / "state.json"
    LlmState(dead, "bundled:x", True, "Started a local vLLM server for bundled:x.",
             pid=1).save(state)
    monkeypatch.setenv(STATE_ENV, str(state))
    served = load_settings(generator={"mode": "served", "server_url": dead})
    engine = make_engine(settings)
    engine.generator = VllmServedGenerator(served.generator, settings.home)
    engine.pipeline("default").index([write_corpus(tmp_path / "docs")])
    at = start(engine, monkeypatch)
    assert any("Loading the model" in i.value and "Started a local vLLM" in i.value
               for i in at.sidebar.info)
    assert at.chat_input(key="question").disabled
    at.text_input(key="new_kb_name").input("../etc")
    at.button(key="create_kb").click().run()
    assert "invalid knowledge base name" in at.sidebar.error[0].value


def wait_for_job(engine: Engine, kb: str = "default") -> None:
    deadline = time.time() + 30
    while engine.jobs.latest(kb).running:  # type: ignore[union-attr]
        assert time.time() < deadline, "indexing job did not finish"
        time.sleep(0.05)


def test_upload_sanitises_limits_and_reports_each_failure(
        settings, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    monkeypatch.setenv("RAG_UI__MAX_UPLOAD_MB", "1")
    from rag.core.config import load_settings

    engine = make_engine(load_settings())
    at = start(engine, monkeypatch)
    at.radio(key="view").set_value("Documents").run()
    at.file_uploader(key="uploads").set_value([
        ("../../../evil.md", b"# Owls\n\nOwls hunt at night and eat mice.\n", "text/markdown"),
        ("broken.pdf", b"%PDF-1.4\n garbage", "application/pdf"),
        ("huge.txt", b"x" * (2**20 + 1), "text/plain"),
        ("notes.txt", b"Herons stand still in shallow water.\n", "text/plain"),
    ])
    at.button(key="upload_submit").click().run()
    wait_for_job(engine)
    at.run()
    assert not at.exception, at.exception
    uploads = settings.kb_root / "default" / "uploads"
    assert sorted(p.name for p in uploads.iterdir()) == ["broken.pdf", "evil.md", "notes.txt"]
    assert not (settings.home.parent / "evil.md").exists()
    failures = at.table[0].value  # Markdown-escaped: a file name is never markup
    reasons = dict(zip(failures["file"], failures["why it failed"], strict=True))
    assert "upload limit of 1 MB" in reasons["huge\\.txt"]
    assert "broken\\.pdf" in reasons and reasons["broken\\.pdf"]
    assert "Indexed 2" in at.warning[0].value
    titles = set(at.dataframe[0].value["title"])
    assert {"Owls", "notes"} <= titles
    assert at.metric[0].value == "2"


def test_remove_document(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    at = start(engine, monkeypatch)
    at.radio(key="view").set_value("Documents").run()
    doomed = next(p for p in at.multiselect(key="remove_docs").options if "dogs" in p)
    path = next(d.path for d in engine.pipeline("default").documents() if "dogs" in d.path)
    at.multiselect(key="remove_docs").set_value([path])
    at.button(key="remove_submit").click().run()
    assert not at.exception, at.exception
    assert "dogs" in doomed and any("Removed 1 document" in s.value for s in at.success)
    assert all("dogs" not in d.path for d in engine.pipeline("default").documents())
    hits = engine.pipeline("default").search("dogs bark mailman", k=5).hits
    assert all("dogs" not in h.chunk.source for h in hits)


def test_feedback_is_stored_and_exported(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    engine.generator.enqueue("Cats purr and sleep all day [1].")
    at = ask(start(engine, monkeypatch), "What do cats do?")
    at.feedback[0].set_value(0).run()
    at.text_input(key=f"fbc-{at.session_state['turns']['default'][0]['id']}").input(
        "missing the mice").run()
    rows = engine.feedback.rows()
    assert len(rows) == 1 and rows[0]["rating"] == "down"
    assert rows[0]["comment"] == "missing the mice" and rows[0]["question"] == "What do cats do?"
    assert rows[0]["sources"][0]["title"] == "Cats"
    at.radio(key="view").set_value("Feedback").run()
    assert "JSONL" in at.download_button[0].label
    out = io.StringIO()
    assert engine.feedback.export_jsonl(out) == 1
    exported = json.loads(out.getvalue())
    assert exported["answer"] == "Cats purr and sleep all day [1]." and exported["rating"] == "down"


def test_one_engine_for_every_session(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    made: list[Engine] = []
    monkeypatch.setattr(Engine, "from_environment",
                        classmethod(lambda cls: made.append(engine) or engine))
    st.cache_resource.clear()
    first, second = AppTest.from_file(APP), AppTest.from_file(APP)
    first.run()
    second.run()
    first.run()
    assert len(made) == 1  # two sessions, three runs: the models were built once


def test_new_empty_kb_asks_for_documents(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> None:
    at = start(engine, monkeypatch)
    at.text_input(key="new_kb_name").input("papers")
    at.button(key="create_kb").click().run()
    assert at.selectbox(key="kb_select").value == "papers"
    assert any("no documents yet" in i.value for i in at.info)
    assert at.chat_input(key="question").disabled
    at.text_input(key="new_kb_name").input("../etc")
    at.button(key="create_kb").click().run()
    assert "invalid knowledge base name" in at.sidebar.error[0].value


def test_feedback_view_shows_only_the_chosen_kb(engine: Engine,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    answer = {"question": "q", "text": "a", "sources": [], "sentences": [], "models": {}}
    engine.feedback.record("a1", "default", answer, "up")
    engine.feedback.record("a2", "secret-kb", {**answer, "question": "private question"}, "down")
    at = start(engine, monkeypatch)
    at.radio(key="view").set_value("Feedback").run()
    assert "private question" not in str(at.dataframe[0].value.to_dict())
    assert len(engine.feedback.rows(kb="default")) == 1


def test_access_token_is_required_when_configured(settings, tmp_path: Path,  # noqa: ANN001
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.core.config import load_settings

    monkeypatch.setenv("RAG_UI__AUTH_TOKEN", "s3cret")
    engine = make_engine(load_settings())
    at = start(engine, monkeypatch)
    assert not at.chat_input and at.text_input(key="token")  # nothing but the sign-in form
    at.text_input(key="token").input("wrong")
    at.button(key="sign_in_submit").click().run()
    assert any("Wrong access token" in e.value for e in at.error) and not at.chat_input
    at.text_input(key="token").input("s3cret")
    at.button(key="sign_in_submit").click().run()
    assert at.chat_input


@pytest.mark.parametrize("peer, headers, token, allowed", [
    ("203.0.113.9", {"X-Forwarded-User": "mallory"}, "", False),  # straight to the app: forged
    ("10.1.2.3", {}, "", False),  # the proxy, but it did not authenticate the user
    ("10.1.2.3", {"X-Forwarded-User": "ann"}, "", True),
    ("10.1.2.3", {"X-Forwarded-User": "ann"}, "s3cret", False),  # header and token: both asked
])
def test_a_proxy_header_is_believed_only_from_a_trusted_proxy(
        peer: str, headers: dict, token: str, allowed: bool,  # type: ignore[type-arg]
        monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.core.config import load_settings
    from ui import auth

    monkeypatch.setenv("RAG_UI__AUTH_HEADER", "X-Forwarded-User")
    monkeypatch.setenv("RAG_UI__TRUSTED_PROXIES", "10.0.0.0/8")
    monkeypatch.setenv("RAG_UI__AUTH_TOKEN", token)
    monkeypatch.setattr(auth, "request", lambda: (peer, headers))
    at = start(make_engine(load_settings()), monkeypatch)
    assert bool(at.chat_input) == allowed
    if token:
        assert at.text_input(key="token")  # past the proxy check, the token is still asked
    elif not allowed:
        assert any("Access denied" in e.value for e in at.error)


def test_rag_ui_refuses_to_listen_beyond_loopback_without_sign_in(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from click.testing import CliRunner

    from rag.cli.main import cli
    from ui import launcher

    started: list[str] = []
    monkeypatch.setattr(launcher, "run", lambda settings, kb, host, *a, **k: started.append(host))
    result = CliRunner().invoke(cli, ["ui", "--host", "0.0.0.0"])
    assert result.exit_code == 1 and "no sign-in" in result.output and not started
    monkeypatch.setenv("RAG_UI__PUBLISHED_HOST", "192.0.2.7")  # what compose's RAG_UI_BIND sets
    assert "192.0.2.7" in CliRunner().invoke(cli, ["ui"]).output and not started
    monkeypatch.setenv("RAG_UI__AUTH_TOKEN", "t" * 24)
    assert CliRunner().invoke(cli, ["ui", "--host", "0.0.0.0"]).exit_code == 0
    assert started == ["0.0.0.0"]


def test_server_folders_only_inside_configured_roots(settings, tmp_path: Path,  # noqa: ANN001
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.core.config import load_settings
    from rag.core.errors import KBError

    engine = make_engine(settings)
    at = start(engine, monkeypatch)
    at.radio(key="view").set_value("Documents").run()
    assert not [t for t in at.text_input if t.key == "folder"]  # off by default
    with pytest.raises(KBError, match="index_roots is empty"):
        engine.index_folder("default", "/etc")
    allowed = write_corpus(tmp_path / "allowed")
    (allowed / "escape").symlink_to("/etc", target_is_directory=True)
    monkeypatch.setenv("RAG_UI__INDEX_ROOTS", json.dumps([str(allowed)]))
    engine = make_engine(load_settings())
    for outside in ("/etc", str(allowed / "escape"), str(allowed / ".." / "..")):
        with pytest.raises(KBError, match="outside"):
            engine.index_folder("default", outside)
    job = engine.index_folder("default", str(allowed / "sub"))
    deadline = time.time() + 60
    while job.running and time.time() < deadline:
        time.sleep(0.05)
    assert job.report is not None and job.report.indexed == 1


def test_cancel_a_running_job_and_no_upload_meanwhile(settings, tmp_path: Path,  # noqa: ANN001
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.service.uploads import Upload

    engine = make_engine(settings)
    engine.index_embedder = HashEmbedder(delay=0.2)
    docs = tmp_path / "many"
    docs.mkdir()
    for i in range(20):
        (docs / f"d{i}.txt").write_text(f"Document number {i} about subject{i}.")
    job = engine.index("default", [docs])
    with pytest.raises(RuntimeError, match="still running"):
        engine.upload("default", [Upload("late.txt", b"written during the job")])
    assert not engine.upload_dir("default").exists()
    at = start(engine, monkeypatch)
    at.radio(key="view").set_value("Documents").run()
    at.button(key="cancel-default").click().run()
    deadline = time.time() + 60
    while job.running and time.time() < deadline:
        time.sleep(0.05)
    assert job.error and "cancelled" in job.error
    assert engine.pipeline("default").kb.current_id() is None  # nothing was published


def test_an_api_key_signs_in_and_shows_only_its_knowledge_bases(
        settings, rag_home: Path, tmp_path: Path,  # noqa: ANN001
        monkeypatch: pytest.MonkeyPatch) -> None:
    from rag.storage.keys import KeyStore

    engine = make_engine(settings)
    for kb in ("default", "team-a", "team-b"):
        engine.pipeline(kb).index([write_corpus(tmp_path / kb)])
    keys = KeyStore(rag_home)
    record, key = keys.create(["team-a"], "read")
    at = start(engine, monkeypatch)
    assert not at.chat_input and at.text_input(key="token")  # keys exist: sign-in first
    at.text_input(key="token").input("rag_nope_nope")
    at.button(key="sign_in_submit").click().run()
    assert any("Wrong access token" in e.value for e in at.error)
    at.text_input(key="token").input(key)
    at.button(key="sign_in_submit").click().run()
    assert at.selectbox(key="kb_select").options == ["team-a"] and at.chat_input
    assert not [e for e in at.expander if e.label == "New knowledge base"]  # not an admin
    at.radio(key="view").set_value("Documents").run()
    assert "upload_submit" not in [b.key for b in at.button]  # read only: no upload form
    assert any("may read this knowledge base, not change it" in c.value for c in at.caption)
    keys.revoke(record.id)
    at.run()
    assert any("revoked" in e.value for e in at.error) and not at.chat_input

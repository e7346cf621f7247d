"""The real app page with fake models (for browser tests): `streamlit run tests/ui_fake_app.py`.
The KB is indexed from $RAG_TEST_DOCS; every answer is $RAG_TEST_ANSWER."""

import os
import runpy
from pathlib import Path

import streamlit as st

from rag.core.config import load_settings
from rag.service.engine import Engine
from tests.fakes import HashEmbedder, ReverseReranker, ScriptedGenerator


@st.cache_resource
def fake_engine() -> Engine:
    embedder = HashEmbedder()
    generator = ScriptedGenerator(*[os.environ["RAG_TEST_ANSWER"]] * 50)
    engine = Engine(load_settings(), embedder=embedder, reranker=ReverseReranker(),
                    generator=generator, index_embedder=embedder)
    engine.pipeline("default").index([Path(os.environ["RAG_TEST_DOCS"])])
    return engine


Engine.from_environment = classmethod(lambda cls: fake_engine())  # type: ignore[method-assign]
runpy.run_path(str(Path(__file__).resolve().parents[1] / "ui" / "app.py"), run_name="__main__")

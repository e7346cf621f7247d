"""What every client of one server shares (the app's browser sessions, the API's requests): one
set of models, one pipeline per knowledge base, the indexing jobs and the feedback store. The app
holds one Engine in ``st.cache_resource``, the API one per process."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from ingest.indexer import IndexReport
from rag.core.config import Settings, load_settings
from rag.core.errors import KBError
from rag.core.protocols import Embedder, Generator, Reranker
from rag.embedding.embedder import SentenceTransformerEmbedder
from rag.generation.engines import VllmServedGenerator, make_generator
from rag.generation.server import read_state
from rag.reranking.cross_encoder import CrossEncoderReranker
from rag.service.jobs import IndexJob, JobRunner
from rag.service.pipeline import Pipeline
from rag.service.uploads import Upload, save_uploads
from rag.storage.feedback import FeedbackStore, feedback_path
from rag.storage.kb import KnowledgeBase, list_kbs
from rag.storage.keys import KeyStore

STATUS_TTL_S = 2.0
MODELS_TTL_S = 30.0  # the sidebar asks on every rerun; a slow server must not slow each one


class Engine:
    def __init__(self, settings: Settings, embedder: Embedder | None = None,
                 reranker: Reranker | None = None, generator: Generator | None = None,
                 index_embedder: Embedder | None = None) -> None:
        self.settings = settings
        self.embedder = embedder or SentenceTransformerEmbedder(settings.embedder, home=settings.home)
        # Indexing gets its own copy of the embedder: a long job then never makes a chat
        # query wait for a batch of 256 passages.
        self.index_embedder = index_embedder or SentenceTransformerEmbedder(
            settings.embedder, home=settings.home)
        self.reranker = reranker or CrossEncoderReranker.configured(settings)
        self.generator = generator or make_generator(settings.generator, settings.home)
        self.jobs = JobRunner(settings.ui.max_index_jobs)
        self.feedback = FeedbackStore(feedback_path(settings.home))
        self.keys = KeyStore(settings.home)
        self._pipelines: dict[str, Pipeline] = {}
        self._lock = threading.Lock()
        self._status: tuple[float, bool, str] = (0.0, False, "")
        self._models: tuple[float, list[str]] = (0.0, [])

    @classmethod
    def from_environment(cls) -> Engine:
        return cls(load_settings())

    # -- knowledge bases -------------------------------------------------------------------
    def kbs(self) -> list[str]:
        return list_kbs(self.settings)

    def check_name(self, kb: str) -> str:
        """The name if valid (raises KBError otherwise)."""
        return KnowledgeBase(kb, self.settings).name

    def create(self, kb: str) -> None:
        """An empty knowledge base, ready to search and to take documents."""
        base = KnowledgeBase(self.check_name(kb), self.settings)
        if base.exists:
            raise KBError(f"knowledge base {kb!r} already exists")
        try:
            with base.writer():
                base.record_signature(self.embedder)
                base.publish(self.embedder.dim)
        finally:
            base.close()

    def pipeline(self, kb: str) -> Pipeline:
        with self._lock:
            if kb not in self._pipelines:
                self._pipelines[kb] = Pipeline(self.settings, kb, self.embedder, self.reranker,
                                               self.generator)
            return self._pipelines[kb]

    def upload_dir(self, kb: str) -> Path:
        return self.settings.kb_root / self.check_name(kb) / "uploads"

    def index(self, kb: str, paths: Sequence[Path]) -> IndexJob:
        """Start a background job; its KB connection is its own, its embedder the indexing one."""
        return self.jobs.start(self.check_name(kb), paths, self._run(kb))

    def _run(self, kb: str) -> Callable[[list[Path], IndexJob], IndexReport]:
        def run(todo: list[Path], job: IndexJob) -> IndexReport:
            pipeline = Pipeline(self.settings, kb, self.index_embedder, self.reranker,
                                self.generator)
            try:
                report = pipeline.index(todo, progress=job, cancel=job.cancel)
            finally:
                pipeline.kb.close()
            self.pipeline(kb).refresh()  # chats switch to the new index without waiting
            return report

        return run

    def index_folder(self, kb: str, folder: str) -> IndexJob:
        """Index a folder on the server, only inside ``ui.index_roots`` (links resolved first,
        so none leads out)."""
        roots = [Path(os.path.realpath(r.expanduser())) for r in self.settings.ui.index_roots]
        if not roots:
            raise KBError("indexing folders on the server is off (ui.index_roots is empty): "
                          "upload the files instead")
        path = Path(os.path.realpath(Path(folder.strip()).expanduser()))
        if not any(path == root or root in path.parents for root in roots):
            raise KBError(f"{folder.strip()} is outside the folders this server may index "
                          f"({', '.join(map(str, roots))})")
        if not path.exists():
            raise KBError(f"{folder.strip()} does not exist on the server")
        return self.index(kb, [path])

    def upload(self, kb: str, uploads: list[Upload]) -> IndexJob:
        """Save the uploads in the KB's folder and index the ones that were accepted. Nothing
        is written while a job runs on the KB (checked and saved under the jobs' lock)."""
        folder, limit = self.upload_dir(kb), self.settings.ui.max_upload_mb * 2**20
        try:
            return self.jobs.prepare_and_start(
                self.check_name(kb), lambda: save_uploads(folder, uploads, limit), self._run(kb))
        except RuntimeError:
            raise RuntimeError(f"an indexing job for {kb!r} is still running: upload again "
                               "when it is done") from None

    def remove(self, kb: str, paths: Sequence[str]) -> int:
        """Remove documents; an uploaded copy is deleted too, so no later job brings it back."""
        dropped = self.pipeline(kb).remove(paths)
        uploads = self.upload_dir(kb).resolve()
        for path in paths:
            if Path(path).resolve().parent == uploads:
                Path(path).unlink(missing_ok=True)
        return dropped

    # -- the LLM ---------------------------------------------------------------------------
    def models(self) -> list[str]:
        checked, models = self._models
        if not models or time.monotonic() - checked > MODELS_TTL_S:
            models = self.generator.models()
            self._models = (time.monotonic(), models)
        return models

    def llm_status(self) -> tuple[bool, str]:
        """(ready, what to tell the user), re-checked at most every few seconds."""
        checked, ready, message = self._status
        if time.monotonic() - checked < STATUS_TTL_S:
            return ready, message
        if not isinstance(self.generator, VllmServedGenerator):
            ready, message = True, f"{self.generator.name} runs in this process"
        else:
            url = self.settings.generator.server_url
            state = read_state()
            notice = state.notice if state else f"Using the LLM server at {url}."
            ready = self.generator.healthy()
            if ready:
                message = notice if state and state.managed else f"Using the LLM server at {url}."
            elif state and state.managed and not state.gave_up:
                message = (f"{notice} Loading the model: the first start takes a minute or two "
                           "on a CPU.")
            else:
                message = f"{notice} The LLM server at {url} does not answer."
        self._status = (time.monotonic(), ready, message)
        return ready, message

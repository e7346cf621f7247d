"""The pipeline as a langchain-core ``BaseRetriever``, for use inside LangChain chains."""

from __future__ import annotations

from typing import Any

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document as LCDocument
from langchain_core.retrievers import BaseRetriever
from pydantic import ConfigDict

from rag.service.pipeline import Pipeline


class KBRetriever(BaseRetriever):
    """Returns LangChain Documents whose metadata carries provenance and every score."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    pipeline: Pipeline
    k: int | None = None
    mode: str | None = None
    rerank: bool | None = None

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[LCDocument]:
        result = self.pipeline.search(query, k=self.k, mode=self.mode, rerank=self.rerank)
        docs = []
        for hit in result.hits:
            meta: dict[str, Any] = hit.to_dict()
            text = meta.pop("text")
            docs.append(LCDocument(page_content=str(text), metadata=meta, id=hit.chunk_id))
        return docs

"""One validated settings object: defaults < TOML file < environment (``RAG_SECTION__KEY``)."""

from __future__ import annotations

import ipaddress
import os
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from rag.core.errors import ConfigError
from rag.core.hardware import generator_gpu, native_bf16_cpu
from rag.core.redaction import remember, uri_secrets

DEFAULT_EMBEDDER = "bundled:all-MiniLM-L6-v2"


# generator.model = "auto" (bench/answer_latency.py, docs/benchmarks.md "Which generator").
GENERATOR_SMALL = "bundled:qwen2.5-coder-0.5b-instruct"
GENERATOR_LARGE = "bundled:qwen2.5-coder-1.5b-instruct"


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class EmbedderSettings(_Section):
    model: str = Field(DEFAULT_EMBEDDER, description="hub id, local folder, or bundled:NAME")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:1, mps")
    batch_size: int = Field(16, ge=1)
    family: Literal["auto", "e5", "bge", "none"] = "auto"
    dtype: Literal["auto", "float32", "bfloat16", "float16", "int8"] = Field("auto", description=(
        "every encoder's precision (embedder, reranker, verifier); auto: bfloat16 on CPUs that "
        "compute it natively (AVX512-BF16, AMX), else float32; int8: the embedder through ONNX "
        "Runtime on a CPU (1.25x fp32's speed on AVX2, not mixable with float vectors; the "
        "cross-encoders keep auto)"))


class ChunkingSettings(_Section):
    max_tokens: int = Field(0, ge=0, description="0: the embedder's max sequence length")
    overlap_tokens: int = Field(32, ge=0)
    prepend_title: bool = True


class IngestSettings(_Section):
    """Per-file limits: a file over one is reported as failed and the job goes on."""

    max_file_mb: float = Field(100, gt=0, description="larger files are not read")
    parse_timeout_s: float = Field(120, gt=0, description=(
        "CPU seconds parsing one file (separate process) may go without progress; each OCR'd "
        "page or table page is progress"))
    file_budget_s: float = Field(600, gt=0, description=(
        "CPU seconds parsing one file may use in all (the parser and its OCR runs): a "
        "500-frame scan or a PDF of thousands of ruled pages stops here"))
    max_pages: int = Field(5000, ge=1, description=(
        "PDFs with more pages, and images with more frames, are refused"))
    max_unzipped_mb: int = Field(256, ge=1, description=(
        "DOCX, PPTX, XLSX and EPUB files (ZIP packages) that inflate to more are refused "
        "(declared and actual sizes, checked while inflating)"))
    max_text_mb: float = Field(100, gt=0, description=(
        "files whose text comes to more are refused (a 445 KB spreadsheet whose cells repeat one "
        "30 KB string, its package just under max_unzipped_mb, came to 260 MB)"))
    ocr: Literal["auto", "tesseract", "off"] = Field("auto", description=(
        "OCR of scanned pages and image files; auto: when tesseract is installed"))
    ocr_languages: str = Field("eng", pattern=r"^[A-Za-z_]+(\+[A-Za-z_]+)*$", description=(
        "Tesseract language packs, e.g. eng+deu (each needs tesseract-ocr-LANG installed)"))
    ocr_page_timeout_s: float = Field(60, gt=0, description=(
        "CPU seconds of one page's OCR; then the page is skipped and the file warns"))
    pdf_tables: bool = Field(True, description=(
        "tables between horizontal rules in PDFs indexed as Markdown tables (rows under their "
        "header); off: as the text layer's lines"))
    parse_memory_mb: int = Field(
        4096, ge=128, description="address-space limit of the parser process (bombs fail alone)")


class IndexSettings(_Section):
    backend: Literal["faiss", "milvus"] = Field("faiss", description=(
        "faiss: in-process FAISS + bm25s (the default); milvus: vectors, text and BM25 in a "
        "Milvus collection (docs/scaling.md; needs the scale extra)"))
    kind: Literal["flat", "ivf", "hnsw"] = "flat"
    nlist: int = Field(0, ge=0, description="IVF lists; 0: 4*sqrt(N)")
    nprobe: int = Field(16, ge=1)
    hnsw_m: int = Field(32, ge=4)
    ef_search: int = Field(128, ge=1)
    gpu: Literal["auto", "never"] = "auto"
    milvus_uri: str = Field("", description=(
        "empty: Milvus Lite, a local file inside each snapshot (one process at a time); else "
        "a Milvus server, http(s)://host:19530"))
    milvus_token: str = Field("", description="Milvus server credentials (user:password or key)")
    milvus_shards: int = Field(1, ge=1, le=16, description=(
        "shards of a server collection (writes spread over data nodes; Lite ignores it)"))
    milvus_index: Literal["auto", "FLAT", "IVF_FLAT", "HNSW", "GPU_IVF_FLAT", "GPU_CAGRA"] = Field(
        "auto", description=("pinned Milvus index type (auto: the one `kind` names; never "
                             "AUTOINDEX, whose recall differs between Lite and servers)"))
    milvus_bm25: Literal["auto", "milvus", "local"] = Field("auto", description=(
        "keyword search: Milvus's full-text BM25 or the local bm25s index; auto: Milvus's on a "
        "server that supports it (English analyzer with stemming), local with Milvus Lite "
        "(no stemmer there: -0.024 hybrid nDCG@10 on SciFact)"))
    milvus_bulk_store: str = Field("", description=(
        "where a Milvus server reads bulk-import files: s3://KEY:SECRET@BUCKET/PREFIX?"
        "endpoint_override=HOST:PORT&scheme=http (its own bucket: MinIO, S3), or a folder it "
        "sees (a local-storage server); empty: every load goes through upserts"))
    milvus_bulk_rows: int = Field(50_000, ge=1, description=(
        "new chunks from which a publish bulk-imports (with milvus_bulk_store) instead of "
        "upserting"))

    @model_validator(mode="after")
    def _milvus_uri(self) -> IndexSettings:
        if self.milvus_uri and not re.match(r"^(https?|tcp|grpc)://[^\s/]+", self.milvus_uri):
            raise ValueError("index.milvus_uri must be empty (Milvus Lite) or a server URL "
                             "such as http://localhost:19530")
        if self.milvus_bulk_store and not self.milvus_uri:
            raise ValueError("index.milvus_bulk_store needs a Milvus server (index.milvus_uri): "
                             "Milvus Lite has no bulk import")
        return self


class JobsSettings(_Section):
    """Where `rag index` runs its parse/chunk/embed stages (docs/scaling.md)."""

    runner: Literal["local", "ray"] = Field("local", description=(
        "local: this process and one parser child; ray: Ray Data tasks and an embedding actor "
        "pool (needs the scale extra)"))
    ray_address: str = Field("", description="a Ray cluster (ray://host:10001 or auto); "
                                             "empty: start a local Ray for the job")
    ray_embed_actors: int = Field(0, ge=0, description=(
        "embedding actors; 0: one per GPU, or CPUs-1 on CPU (one CPU stays for reading)"))


class RetrievalSettings(_Section):
    mode: Literal["dense", "bm25", "hybrid"] = "hybrid"
    k: int = Field(10, ge=1)
    candidates: int = Field(100, ge=1, description="hits per retriever before fusion/rerank")
    fusion: Literal["auto", "score", "rrf"] = Field("auto", description=(
        "hybrid: how the dense and BM25 lists merge. score: a weighted sum of each list's scores "
        "over its best (keeps a strong BM25 lead on an exact word); rrf: reciprocal rank fusion "
        "(needs no score scale); auto: the one measured best on SciFact train for the "
        "configured embedder (score for all-MiniLM-L6-v2, rrf for embeddinggemma-300m and "
        "embedders not measured)"))
    rrf_k: int = Field(60, ge=1)
    dense_weight: Annotated[float, Field(ge=0, le=1)] | Literal["auto"] = Field("auto", description=(
        "hybrid: the dense list's weight in fusion, BM25's is 1 minus it; auto: the weight "
        "fitted on SciFact train with the fusion in use for the configured embedder (0.5 where "
        "not measured)"))
    passage_tokens: Annotated[int, Field(ge=0)] | Literal["auto"] = Field("auto", description=(
        "answering: the passages given to the LLM stop at this many tokens, best first, at "
        "most k of them (0: up to k, as many as fit the context window); auto: 750 where a CPU "
        "runs the generator in fp32 (prompts at ~150 tokens/s) or runs a model larger than the "
        "bundled 0.5B, else 0. The prompt is most of an answer's time on a CPU "
        "(bench/answer_latency.py)"))
    excerpt_words: int = Field(120, ge=0, description=(
        "under a passage budget (passage_tokens above 0): each passage is quoted as an excerpt "
        "of at most this many words around its sentences that hold the question's rarer words, "
        "so the budget holds more passages (papers facts 14 -> 19 of 29 at 750 tokens, docs "
        "unchanged: docs/benchmarks.md); 0: whole passages"))


class RerankerSettings(_Section):
    model: str = "cross-encoder/ms-marco-MiniLM-L6-v2"
    enabled: bool = False
    required: bool = False
    top_n: int = Field(50, ge=1, description="candidates passed to the cross-encoder")
    batch_size: int = Field(32, ge=1)


class GeneratorSettings(_Section):
    model: str = Field("auto", validate_default=True, description=(
        "hub id, local folder, or a bundled model; auto: the bundled 1.5B model where vLLM runs on "
        "a CUDA GPU or on a CPU with native bf16 (there with excerpts under a 750-token passage "
        "budget: 5.5 s per papers answer and 22 of 29 facts, against the 0.5B's 6.2 s and 21 "
        "with 10 whole passages), the 0.5B on CPUs without (docs/benchmarks.md)"))
    mode: Literal["embedded", "served"] = "embedded"
    server_url: str = "http://127.0.0.1:8000/v1"
    served_model_name: str = "rag-llm"
    api_key: str = Field("", description="vLLM server's API key (serve-llm and clients use it)")
    context_window: int = Field(4096, ge=256, description="vLLM max_model_len")
    answer_tokens: int = Field(384, ge=16)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    seed: int = 0
    dtype: str = Field("auto", description=(
        "auto: bfloat16 where the hardware computes it (GPU; CPU with AVX512-BF16 or AMX), "
        "else float32 (prompt processing 5.6x faster on AVX2-only CPUs); or any vLLM dtype"))
    enforce_eager: bool = Field(True, description="skip torch.compile: faster start, slower run")
    speculative: Literal["off", "ngram", "draft"] = Field("off", description=(
        "speculative decoding in vLLM: ngram proposes the next tokens from the prompt (answers "
        "quote their passages); draft: the bundled 0.5B model drafts for a larger generator of "
        "its family (same tokenizer)"))
    speculative_tokens: int = Field(4, ge=1, le=16, description="tokens proposed per step")
    kv_cache_gib: int = Field(2, ge=1, description="VLLM_CPU_KVCACHE_SPACE on CPU (GiB)")
    gpu_memory_utilization: float = Field(0.85, gt=0, le=1)
    timeout_s: float = Field(600.0, gt=0, description=(
        "served: the longest wait for one answer; a batch's answers all wait for the whole batch"))
    retries: int = Field(3, ge=0)
    ask_worker_idle_s: float = Field(600.0, ge=0, description=(
        "while an LLM server is used, `rag ask` keeps retrieval loaded in a background process "
        "(rag/service/ask_worker.py) that exits after this long without a question; 0: off"))

    @model_validator(mode="after")
    def _fits(self) -> GeneratorSettings:
        if self.answer_tokens >= self.context_window // 2:
            raise ValueError("answer_tokens must be under half of context_window")
        return self

    @field_validator("model")
    @classmethod
    def _choose(cls, value: str) -> str:
        if value != "auto":
            return value
        return GENERATOR_LARGE if generator_gpu() or native_bf16_cpu() else GENERATOR_SMALL


class CitationSettings(_Section):
    verifier_model: str = Field("bundled:verifier-minilm", description=(
        "the claim verifier that checks each answer sentence against its sources' sentences "
        "(supports / contradicts / neither; trained by rag train verifier): bundled:NAME, a "
        "folder or hub id; empty: off, support_method decides"))
    support_method: Literal["learned", "similarity"] = Field("learned", description=(
        "without a verifier (off, or missing): learned, a logistic regression over similarity, "
        "overlap, numbers, negation and direction words, trained on SciFact train (rag eval "
        "support); similarity, the mean of embedding cosine and word overlap"))
    support_threshold: float | None = Field(None, ge=0, le=1, description=(
        "a sentence counts as supported at or above this score (unset: the method's own: the "
        "verifier's from its card, chosen on SciFact train; 0.45 for similarity)"))
    contradiction_threshold: float = Field(0.5, ge=0, le=1, description=(
        "with the verifier: a sentence a source contradicts with this probability, and that "
        "no source supports, is marked contradicted"))
    attribute: bool = Field(True, description=(
        "after generation, cite the source that supports a sentence its own citations do not "
        "support (marked as attributed by rag, never a passage outside the prompt)"))
    abstain: bool = Field(True, description=(
        "answer with the refusal when no passage supports any sentence of the model's answer "
        "(the model's text is kept in the answer's `withheld` and shown as withheld)"))
    resamples: int = Field(4, ge=0, le=16, description=(
        "when the model's answer to a wh-question only restates the question, sample this many "
        "answers again from the same prompt and keep the best supported one that adds to it; "
        "0: never"))
    gate: bool = Field(True, description=(
        "answer with the refusal, without generating, when no retrieved passage addresses the "
        "question (a model trained on SciFact claims; used with the embedder it was trained "
        "with; rag eval gate measures it)"))
    gate_threshold: float | None = Field(None, ge=0, le=1, description=(
        "refuse below this answerability (unset: the gate's own, chosen on SciFact train)"))


class UiSettings(_Section):
    host: str = Field("127.0.0.1", description="0.0.0.0 exposes the app to the network")
    port: int = Field(8501, ge=1, le=65535)
    max_upload_mb: int = Field(200, ge=1, description="largest file one upload may hold")
    max_index_jobs: int = Field(1, ge=1, le=16, description=(
        "indexing jobs the app runs at once over all knowledge bases (each has a parser of up "
        "to ingest.parse_memory_mb); more wait their turn"))
    start_llm: bool = Field(True, description="start a local vLLM server if none is reachable")
    index_roots: list[Path] = Field(
        default_factory=list,
        description="server folders the app may index from (none: upload only)")
    auth_token: str = Field("", description=(
        "shared secret the app asks for (empty: no login; with auth_header: both are needed)"))
    auth_header: str = Field("", description=(
        "trust this header, set by a reverse proxy in trusted_proxies, as the user's name"))
    trusted_proxies: Annotated[list[str], NoDecode] = Field(
        default_factory=lambda: ["127.0.0.1", "::1"], description=(
            "addresses or networks (CIDR) of the reverse proxies that may set auth_header; from "
            "any other peer the header is refused (comma-separated in the environment)"))
    published_host: str = Field("", description=(
        "the address a container publishes the app on (docker compose sets it from "
        "RAG_UI_BIND); empty: ui.host. rag ui refuses a non-loopback one without sign-in"))

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _proxies(cls, value: object) -> object:
        if isinstance(value, str):
            value = [p.strip() for p in value.split(",") if p.strip()]
        for proxy in value if isinstance(value, list) else []:
            try:
                ipaddress.ip_network(str(proxy), strict=False)
            except ValueError:
                raise ValueError(f"{proxy!r} is not an address or network") from None
        return value
    llm_log_mb: int = Field(20, ge=1, description="rotate the started LLM server's log at this")


class ApiSettings(_Section):
    """`rag serve`: the HTTP API (docs/api.md). Once an API key exists (rag keys create), every
    request needs one; without keys it answers on loopback only."""

    host: str = Field("127.0.0.1", description="0.0.0.0 exposes the API to the network")
    port: int = Field(8100, ge=1, le=65535)
    published_host: str = Field("", description=(
        "the address a container publishes the API on (docker compose sets it from "
        "RAG_API_BIND); empty: api.host. rag serve refuses a non-loopback one without keys"))
    workers: int = Field(8, ge=1, le=256, description=(
        "requests answered at once (retrieval and checking run in this many threads; their "
        "generations go to the one LLM server, which batches them)"))
    max_queue: int = Field(32, ge=0, description=(
        "requests that may wait for a worker; beyond, the API answers 429 with Retry-After"))
    max_json_kb: int = Field(1024, ge=1, description="largest JSON request body")
    max_messages: int = Field(200, ge=1, description="messages one chat request may carry")
    max_question_chars: int = Field(8000, ge=1, description="longest question (last user message)")
    max_k: int = Field(100, ge=1, description="most passages a search or an answer may ask for")
    answer_timeout_s: float = Field(900.0, gt=0, description=(
        "a request still waiting or answering after this gets 504 (the LLM call has its own "
        "generator.timeout_s)"))


class Settings(BaseSettings):
    """Everything configurable. Unknown keys are errors, not silently ignored."""

    model_config = SettingsConfigDict(
        env_prefix="RAG_",
        env_nested_delimiter="__",
        extra="forbid",
        frozen=True,
    )

    home: Path = Field(default_factory=lambda: Path("~/.rag").expanduser())
    default_kb: str = "default"
    embedder: EmbedderSettings = EmbedderSettings()
    chunking: ChunkingSettings = ChunkingSettings()
    ingest: IngestSettings = IngestSettings()
    index: IndexSettings = IndexSettings()
    jobs: JobsSettings = JobsSettings()
    retrieval: RetrievalSettings = RetrievalSettings()
    reranker: RerankerSettings = RerankerSettings()
    generator: GeneratorSettings = GeneratorSettings()
    citations: CitationSettings = CitationSettings()
    ui: UiSettings = UiSettings()
    api: ApiSettings = ApiSettings()

    @model_validator(mode="after")
    def _check(self) -> Settings:
        if self.retrieval.candidates < self.retrieval.k:
            raise ValueError("retrieval.candidates must be >= retrieval.k")
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=config_path())
        return (init_settings, env_settings, toml)

    @property
    def kb_root(self) -> Path:
        return self.home / "kb"


WORKING_DIR_FILE = Path("rag.toml")
# Settings that reach beyond this user's own KBs: where the data lives, who may reach the app and
# how it trusts them, which folders it may index, where questions, passages and documents are
# sent. A rag.toml that merely lies in the working directory (a cloned repository, a shared
# folder) may not set them; naming the file (--config, RAG_CONFIG) may.
WIDENING = ("home", "ui.host", "ui.published_host", "api.host", "api.published_host",
            "ui.index_roots", "ui.auth_header",
            "ui.trusted_proxies", "generator.server_url", "generator.mode", "index.milvus_uri",
            "index.milvus_bulk_store", "jobs.ray_address")


def config_path() -> Path | None:
    """``$RAG_CONFIG``, else ``$RAG_HOME/config.toml``, else ``./rag.toml`` (first that exists)."""
    explicit = os.environ.get("RAG_CONFIG")
    if explicit:
        path = Path(explicit).expanduser()
        if not path.is_file():
            raise ConfigError(f"RAG_CONFIG points to {path}, which is not a file")
        return path
    home = Path(os.environ.get("RAG_HOME", "~/.rag")).expanduser()
    for candidate in (home / "config.toml", Path("rag.toml")):
        if candidate.is_file():
            return candidate
    return None


def load_settings(**overrides: object) -> Settings:
    """Build and validate the settings, turning pydantic's report into one clear error."""
    try:
        settings = Settings(**overrides)  # type: ignore[arg-type]
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'config'}: {err['msg']}"
            for err in exc.errors()
        )
        source = config_path()
        where = f" (file {source})" if source else ""
        raise ConfigError(f"invalid configuration{where}: {problems}") from None
    except Exception as exc:  # malformed TOML and similar
        raise ConfigError(f"cannot read configuration: {exc}") from None
    if from_working_dir():
        _refuse_widening(WORKING_DIR_FILE)
    remember_secrets(settings)
    return settings


def from_working_dir() -> bool:
    """Whether the settings come from a ``rag.toml`` found in the working directory (not named
    by ``--config`` or ``RAG_CONFIG``)."""
    return not os.environ.get("RAG_CONFIG") and config_path() == WORKING_DIR_FILE


def _refuse_widening(path: Path) -> None:
    import tomllib

    data = tomllib.loads(path.read_text(encoding="utf-8"))

    def has(key: str) -> bool:
        node: object = data
        for part in key.split("."):
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    found = [key for key in WIDENING if has(key)]
    if found:
        raise ConfigError(
            f"./{path} in the working directory sets {', '.join(found)}, which widen(s) what rag "
            f"reaches or who reaches it; name the file to use it (rag --config {path} ..., or "
            f"RAG_CONFIG={path})")


def remember_secrets(settings: Settings) -> None:
    """Every credential the settings hold is masked in logs and messages from now on."""
    index = settings.index
    remember([settings.generator.api_key, settings.ui.auth_token, index.milvus_token,
              *index.milvus_token.partition(":")[2:], *uri_secrets(index.milvus_uri),
              *uri_secrets(index.milvus_bulk_store)])

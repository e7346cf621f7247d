"""vLLM is the only generation engine: in-process (embedded) or its OpenAI-compatible server
(served). Both take prompts already rendered with the model's chat template, so token budgets
are exact in either mode."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from functools import cached_property
from pathlib import Path

from rag.core.config import GENERATOR_SMALL, GeneratorSettings
from rag.core.errors import GenerationError, ModelLoadError
from rag.core.hardware import generator_gpu, native_bf16_cpu
from rag.core.protocols import Generator
from rag.core.types import Generation
from rag.generation.models import noise_to_log, resolve_generator

log = logging.getLogger(__name__)


def speculative_config(settings: GeneratorSettings, home: Path) -> dict[str, object] | None:
    """vLLM's ``speculative_config`` for ``generator.speculative`` (None: off)."""
    if settings.speculative == "off":
        return None
    if settings.speculative == "ngram":
        return {"method": "ngram", "num_speculative_tokens": settings.speculative_tokens,
                "prompt_lookup_min": 2, "prompt_lookup_max": 5}
    return {"method": "draft_model", "model": resolve_generator(GENERATOR_SMALL, home),
            "num_speculative_tokens": settings.speculative_tokens}


def engine_dtype(setting: str) -> str:
    """The dtype vLLM gets: bf16 only where the CPU computes it natively (measured on this
    project's 2-core AVX2 machine, a 2,600-token prompt took 102 s in emulated bf16 and 24 s in
    fp32)."""
    if setting != "auto":
        return setting
    if generator_gpu():
        return "auto"
    return "bfloat16" if native_bf16_cpu() else "float32"


class _TokenizerMixin:
    """Chat template and token counts from the model's own tokenizer (no engine needed)."""

    settings: GeneratorSettings
    home: Path

    @cached_property
    def model_path(self) -> str:
        return resolve_generator(self.settings.model, self.home)

    @cached_property
    def tokenizer(self):  # noqa: ANN201
        from transformers import AutoTokenizer

        try:
            return AutoTokenizer.from_pretrained(self.model_path)
        except Exception as exc:
            raise ModelLoadError(
                f"cannot load the tokenizer of generator {self.settings.model!r}: "
                f"{_oneline(exc)}"
            ) from exc

    def render(self, messages: list[dict[str, str]]) -> str:
        """The model's own chat template; plain role-prefixed text for base models."""
        if getattr(self.tokenizer, "chat_template", None):
            return str(self.tokenizer.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=True))
        turns = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n\n".join(turns) + "\n\nAssistant:"

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    @cached_property
    def special_tokens(self) -> frozenset[str]:
        """Strings the tokenizer turns into tokens of their own rather than text: its special
        tokens and every token added to the vocabulary (Qwen's ``<tool_call>`` and
        ``<|fim_prefix|>`` are added but not "special"); prompts defuse them in quoted text."""
        tok = self.tokenizer
        added = getattr(tok, "added_tokens_decoder", {}) or {}
        return frozenset([*tok.all_special_tokens, *(t.content for t in added.values())])

    def token_ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])


class VllmEmbeddedGenerator(_TokenizerMixin):
    """An in-process ``vllm.LLM``: batched requests for CLI, batch jobs and evaluation.

    vLLM's engine spawns processes, so programs using it need an ``if __name__ == "__main__"``
    guard. One engine per process; a lock serialises streaming and batches.
    """

    def __init__(self, settings: GeneratorSettings, home: Path) -> None:
        self.settings, self.home = settings, home
        self.name = settings.model
        self.context_window = settings.context_window
        self._lock = threading.Lock()
        self._llm = None

    @property
    def llm(self):  # noqa: ANN201
        if self._llm is None:
            os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(self.settings.kv_cache_gib))
            os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
            if (os.cpu_count() or 1) <= 4:
                # vLLM keeps one core for the front end by default; on small machines that
                # halves throughput (measured: see bench/results/generation.json).
                os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
            s = self.settings
            with noise_to_log(self.home):
                try:
                    from vllm import LLM
                except ImportError as exc:
                    raise ModelLoadError(
                        "vLLM is not installed: pip install -e '.[cpu]' (or '.[gpu]')") from exc
                try:
                    self._llm = LLM(
                        model=self.model_path, max_model_len=s.context_window,
                        dtype=engine_dtype(s.dtype),
                        enforce_eager=s.enforce_eager, seed=s.seed,
                        gpu_memory_utilization=s.gpu_memory_utilization, disable_log_stats=True,
                        speculative_config=speculative_config(s, self.home),
                    )
                except Exception as exc:
                    raise ModelLoadError(
                        f"vLLM could not load generator {s.model!r}: {_oneline(exc)}") from exc
            # Before multiprocessing's own exit hook joins the engine process, which would
            # otherwise wait forever for an engine nobody told to stop.
            atexit.register(self.close)
        return self._llm

    def close(self) -> None:
        """Stop the engine processes; the generator can start a new engine afterwards."""
        if self._llm is not None:
            engine, self._llm = self._llm, None
            try:
                engine.llm_engine.engine_core.shutdown()
            except Exception:  # already stopping
                log.debug("vLLM engine shutdown failed", exc_info=True)

    def models(self) -> list[str]:
        return [self.name]

    def _params(self, max_tokens: int, temperature: float | None, model: str | None,
                delta: bool = False, n: int = 1):  # noqa: ANN202
        from vllm import SamplingParams
        from vllm.sampling_params import RequestOutputKind

        if model not in (None, self.name):
            raise GenerationError(f"the embedded engine runs {self.name!r} only, not {model!r}")
        kind = RequestOutputKind.DELTA if delta else RequestOutputKind.FINAL_ONLY
        return SamplingParams(max_tokens=max_tokens, temperature=_pick(temperature, self.settings),
                              seed=self.settings.seed, output_kind=kind, n=n)

    def _prompt(self, text: str):  # noqa: ANN202
        from vllm.inputs import TokensPrompt

        return TokensPrompt(prompt_token_ids=self.token_ids(text))

    def generate(self, prompts: Sequence[str], max_tokens: int, temperature: float | None = None,
                 model: str | None = None) -> list[Generation]:
        if not prompts:
            return []
        params = self._params(max_tokens, temperature, model)
        with self._lock:
            llm = self.llm  # load outside the timed section
            started = time.perf_counter()
            outputs = llm.generate([self._prompt(p) for p in prompts], params, use_tqdm=False)
            elapsed = time.perf_counter() - started
        return [
            Generation(o.outputs[0].text, o.outputs[0].finish_reason,
                       len(o.prompt_token_ids or []), len(o.outputs[0].token_ids), elapsed)
            for o in outputs
        ]

    def sample(self, prompt: str, n: int, max_tokens: int, temperature: float,
               model: str | None = None) -> list[Generation]:
        params = self._params(max_tokens, temperature, model, n=n)
        with self._lock:
            started = time.perf_counter()
            out = self.llm.generate([self._prompt(prompt)], params, use_tqdm=False)[0]
            elapsed = time.perf_counter() - started
        return [Generation(o.text, o.finish_reason, len(out.prompt_token_ids or []),
                           len(o.token_ids), elapsed) for o in out.outputs]

    def stream(self, prompt: str, max_tokens: int, temperature: float | None = None,
               model: str | None = None) -> Iterator[Generation]:
        params = self._params(max_tokens, temperature, model, delta=True)
        with self._lock:
            engine = self.llm.llm_engine
            request = uuid.uuid4().hex
            tokens = self._prompt(prompt)
            started, first, produced = time.perf_counter(), None, 0
            engine.add_request(request, tokens, params)
            try:
                while engine.has_unfinished_requests():
                    for out in engine.step():
                        if out.request_id != request:
                            continue
                        piece = out.outputs[0]
                        produced += len(piece.token_ids)
                        now = time.perf_counter() - started
                        if first is None and piece.text:
                            first = now
                        yield Generation(piece.text, piece.finish_reason if out.finished else None,
                                         len(tokens["prompt_token_ids"]), produced, now, first)
            finally:
                if engine.has_unfinished_requests():
                    engine.abort_request([request])


class VllmServedGenerator(_TokenizerMixin):
    """vLLM's OpenAI-compatible server over HTTP (``rag serve-llm`` or docker compose).

    Timeouts and retries with exponential backoff come from the openai client; a server that
    stays down becomes one GenerationError naming the URL.
    """

    def __init__(self, settings: GeneratorSettings, home: Path) -> None:
        self.settings, self.home = settings, home
        self.name = settings.model
        self.context_window = settings.context_window

    @cached_property
    def client(self):  # noqa: ANN201
        from openai import OpenAI

        key = self.settings.api_key or os.environ.get("RAG_LLM_API_KEY") or "EMPTY"
        return OpenAI(base_url=self.settings.server_url, api_key=key,
                      timeout=self.settings.timeout_s, max_retries=self.settings.retries)

    def _fail(self, exc: Exception) -> GenerationError:
        return GenerationError(
            f"LLM server {self.settings.server_url} failed after {self.settings.retries} "
            f"retries: {type(exc).__name__}: {_oneline(exc)} (start it with: rag serve-llm)")

    def healthy(self) -> bool:
        return server_healthy(self.settings.server_url)

    def models(self) -> list[str]:
        """Model ids the server offers (the configured one first); just it if the server is down."""
        try:
            served = [m.id for m in self.client.with_options(timeout=5.0, max_retries=0)
                      .models.list()]
        except Exception:
            served = []
        return list(dict.fromkeys([self.settings.served_model_name, *served]))

    def _request(self, prompt: str, max_tokens: int, temperature: float | None,
                 model: str | None) -> dict[str, object]:
        return {"model": model or self.settings.served_model_name, "prompt": prompt,
                "max_tokens": max_tokens, "temperature": _pick(temperature, self.settings),
                "seed": self.settings.seed}

    def _one(self, request: dict[str, object]) -> Generation:
        started = time.perf_counter()
        try:
            r = self.client.completions.create(**request)
        except Exception as exc:
            raise self._fail(exc) from exc
        choice = r.choices[0]
        usage = r.usage
        return Generation(choice.text, choice.finish_reason, usage.prompt_tokens if usage else 0,
                          usage.completion_tokens if usage else 0,
                          time.perf_counter() - started)

    def generate(self, prompts: Sequence[str], max_tokens: int, temperature: float | None = None,
                 model: str | None = None) -> list[Generation]:
        requests = [self._request(p, max_tokens, temperature, model) for p in prompts]
        with ThreadPoolExecutor(max_workers=min(16, max(1, len(prompts)))) as pool:
            return list(pool.map(self._one, requests))

    def sample(self, prompt: str, n: int, max_tokens: int, temperature: float,
               model: str | None = None) -> list[Generation]:
        started = time.perf_counter()
        try:
            r = self.client.completions.create(**self._request(prompt, max_tokens, temperature,
                                                               model), n=n)
        except Exception as exc:
            raise self._fail(exc) from exc
        prompt_tokens = r.usage.prompt_tokens if r.usage else 0
        each = (r.usage.completion_tokens if r.usage else 0) // max(1, len(r.choices))
        elapsed = time.perf_counter() - started
        return [Generation(c.text, c.finish_reason, prompt_tokens, each, elapsed)
                for c in r.choices]

    def stream(self, prompt: str, max_tokens: int, temperature: float | None = None,
               model: str | None = None) -> Iterator[Generation]:
        started, first, produced, finished = time.perf_counter(), None, 0, False
        try:
            chunks = self.client.completions.create(
                **self._request(prompt, max_tokens, temperature, model), stream=True)
            for chunk in chunks:
                if not chunk.choices:
                    continue
                choice = chunk.choices[0]
                now = time.perf_counter() - started
                if first is None and choice.text:
                    first = now
                produced += 1 if choice.text else 0
                finished = finished or choice.finish_reason is not None
                yield Generation(choice.text, choice.finish_reason, 0, produced, now, first)
        except GenerationError:
            raise
        except Exception as exc:
            raise self._fail(exc) from exc
        if not finished:  # a server that dies mid-answer may just close the stream
            raise self._fail(ConnectionError("the stream ended before the answer was finished"))


def server_healthy(url: str, timeout: float = 2.0) -> bool:
    """Whether the vLLM server behind an OpenAI base URL answers on its /health route."""
    import httpx

    base = url.rstrip("/").removesuffix("/v1")
    try:
        return httpx.get(f"{base}/health", timeout=timeout).status_code == 200
    except httpx.HTTPError:
        return False


def _pick(temperature: float | None, settings: GeneratorSettings) -> float:
    return settings.temperature if temperature is None else temperature


def _oneline(exc: BaseException, limit: int = 300) -> str:
    return " ".join(str(exc).split())[:limit]


def make_generator(settings: GeneratorSettings, home: Path) -> Generator:
    if settings.mode == "served":
        return VllmServedGenerator(settings, home)
    return VllmEmbeddedGenerator(settings, home)

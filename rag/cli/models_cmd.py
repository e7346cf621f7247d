from __future__ import annotations

import os
import sys

import click
from rich.table import Table

from rag.cli.common import get_settings, print_json, stdout
from rag.embedder import ModelLoadError
from rag.generation.engines import engine_dtype
from rag.generation.models import model_facts, resolve_generator


@click.command("models")
@click.option("--json", "as_json", is_flag=True)
def models_cmd(as_json: bool) -> None:
    """Configured models; for the generator its attention layout and KV-cache cost per token."""
    settings = get_settings()
    g = settings.generator
    rows: list[dict[str, object]] = []
    try:
        facts = model_facts(g.model, resolve_generator(g.model, settings.home)).to_dict()
    except ModelLoadError as exc:
        facts = {"name": g.model, "error": str(exc)}
    rows.append({"role": "generator", **facts, "context_window_configured": g.context_window})
    rows.append({"role": "embedder", "name": settings.embedder.model,
                 "vectors": _embedder_format(settings.embedder.dtype, settings.embedder.device)})
    rows.append({"role": "reranker", "name": settings.reranker.model,
                 "enabled": settings.reranker.enabled, **_card(settings.reranker.model)})
    rows.append({"role": "verifier", "name": settings.citations.verifier_model or "(off)",
                 "enabled": bool(settings.citations.verifier_model),
                 **_card(settings.citations.verifier_model)})
    if as_json:
        print_json(rows)
        return
    table = Table(title="configured models")
    for col in ("role", "model", "layers", "query heads", "KV heads", "context",
                "KV cache / token", "if MHA"):
        table.add_column(col)
    for r in rows:
        kv = r.get("kv_bytes_per_token")
        mha = r.get("kv_bytes_per_token_if_mha")
        table.add_row(
            str(r["role"]), str(r["name"]), str(r.get("layers", "")), str(r.get("query_heads", "")),
            str(r.get("kv_heads", "")), str(r.get("context_length", "")),
            f"{kv / 1024:.1f} KiB" if isinstance(kv, int) else str(r.get("error", "")),
            f"{mha / 1024:.1f} KiB" if isinstance(mha, int) else "")
    stdout.print(table)
    stdout.print(f"embedder: vectors computed in {rows[1]['vectors']} on this machine "
                 f"(embedder.dtype = {settings.embedder.dtype!r})", highlight=False)
    for r in rows:
        if r.get("trained_on"):
            state = "" if r.get("enabled") else " (off)"
            stdout.print(f"{r['role']}{state}: {r['name']}, trained here on {r['trained_on']}; "
                         f"held out: {r['metrics']} (model card: {r['card']})", highlight=False)


def _embedder_format(setting: str, device: str) -> str:
    import torch

    from rag.embedder import embedder_dtype

    gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    dtype = embedder_dtype(setting, "cuda" if gpu else "cpu")
    return "int8 (ONNX Runtime)" if dtype == "int8" else dtype


def _card(spec: str) -> dict[str, object]:
    """What the card of a shipped encoder says about it (nothing for other models)."""
    from rag.bundled import HERE, BundledModelError, bundled

    if not spec.startswith("bundled:") or spec.lower() == "bundled:all-minilm-l6-v2":
        return {}
    try:
        card = bundled(spec.split(":", 1)[1]).card
    except BundledModelError as exc:
        return {"error": str(exc)}
    return {"trained_on": card.get("data"), "metrics": card.get("metrics"),
            "card": str(HERE / card["name"] / "MODEL_CARD.md")}


@click.command("serve-llm")
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to listen on; 0.0.0.0 exposes the server (set generator.api_key).")
@click.option("--port", default=8000, show_default=True, type=int)
@click.argument("vllm_args", nargs=-1, type=click.UNPROCESSED)
def serve_llm(host: str, port: int, vllm_args: tuple[str, ...]) -> None:
    """Start vLLM's OpenAI-compatible server with the configured generator.

    Extra arguments after -- go to `vllm serve` unchanged.
    """
    g = get_settings().generator
    path = resolve_generator(g.model, get_settings().home)
    try:
        from vllm.entrypoints.cli.main import main as vllm_main
    except ImportError as exc:
        raise ModelLoadError("vLLM is not installed: pip install -e '.[cpu]' (or '.[gpu]')") from exc
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", str(g.kv_cache_gib))
    if (os.cpu_count() or 1) <= 4:
        os.environ.setdefault("VLLM_CPU_NUM_OF_RESERVED_CPU", "0")
    sys.argv = ["vllm", "serve", path, "--host", host, "--port", str(port),
                "--served-model-name", g.served_model_name, "--max-model-len", str(g.context_window),
                "--dtype", engine_dtype(g.dtype), "--seed", str(g.seed),
                *(["--enforce-eager"] if g.enforce_eager else []), *vllm_args]
    click.echo(f"starting: {' '.join(sys.argv)}", err=True)
    if g.api_key:  # through the environment (vLLM reads VLLM_API_KEY), not the process list
        os.environ["VLLM_API_KEY"] = g.api_key
    elif host not in {"127.0.0.1", "localhost", "::1"}:
        click.echo(f"warning: serving on {host} without an API key (set generator.api_key)",
                   err=True)
    _alias_vllm_cpu_metadata()
    vllm_main()


def _alias_vllm_cpu_metadata() -> None:
    """vLLM's CLI asks for the version of the distribution "vllm"; on CPUs it is "vllm-cpu",
    which vLLM's own platform check reads as ``version("vllm-cpu") + "+cpu"``: answer the same."""
    import importlib.metadata as metadata

    real = metadata.version

    def version(name: str) -> str:
        try:
            return real(name)
        except metadata.PackageNotFoundError:
            if name == "vllm":
                return real("vllm-cpu") + "+cpu"
            raise

    metadata.version = version

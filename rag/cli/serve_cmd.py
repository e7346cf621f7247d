"""`rag serve` (the HTTP API) and `rag keys` (who may use it, per knowledge base)."""

from __future__ import annotations

import os
import threading
import time

import click
from rich.table import Table

from rag.cli.common import UserError, get_settings, print_json, stdout
from rag.core.errors import KeyStoreError
from rag.service.exposure import api_exposure_problem
from rag.storage.keys import ALL_KBS, ROLES, KeyStore


@click.command("serve")
@click.option("--host", help="Address to listen on [config api.host: 127.0.0.1].")
@click.option("--port", type=click.IntRange(1, 65535), help="Port [config api.port: 8100].")
def serve(host: str | None, port: int | None) -> None:
    """Run the HTTP API: OpenAI-compatible chat with citations, search, documents, keys.

    Uses the configured vLLM server when it answers; otherwise starts one with the configured
    generator and stops it on exit (as rag ui does). Once a key exists (rag keys create) every
    request needs one; without keys the API listens on loopback only. docs/api.md
    """
    import uvicorn

    from rag.api.app import create_app
    from rag.generation.server import LlmSupervisor
    from rag.service.engine import Engine

    settings = get_settings()
    host, port = host or settings.api.host, port or settings.api.port
    keys = KeyStore(settings.home)
    problem = api_exposure_problem(settings.api, host, keys.required())
    if problem:
        raise UserError(problem)
    echo = lambda line: click.echo(line, err=True)  # noqa: E731
    with LlmSupervisor(settings, "api", port, echo) as llm:
        os.environ.update(llm.env())  # this process's settings now point at that server
        echo(llm.state.notice)
        engine = Engine(get_settings())
        engine.embedder.embed_query("warm-up")  # loaded before the first request, not in it
        app = create_app(engine, keys)
        stop = threading.Event()

        def watch() -> None:
            while not stop.wait(1.0):
                llm.check()

        threading.Thread(target=watch, name="llm-watch", daemon=True).start()
        echo(f"rag serve: http://{host}:{port} (OpenAPI: /docs)"
             + ("" if keys.required() else "; no API keys: open to this machine only"))
        try:
            uvicorn.run(app, host=host, port=port, log_level="warning",
                        timeout_graceful_shutdown=10)
        finally:
            stop.set()


@click.group("keys")
def keys_group() -> None:
    """API keys scoped to knowledge bases (for rag serve and the app's sign-in)."""


@keys_group.command("create")
@click.option("--kb", "kbs", multiple=True, required=True,
              help=f"Knowledge base the key may use (repeat for more; {ALL_KBS!r}: all).")
@click.option("--role", type=click.Choice(ROLES), default="read", show_default=True,
              help="read: search and ask; write: also add and remove documents; admin: also "
                   "create knowledge bases and manage keys.")
@click.option("--name", default="", help="A label to recognise the key by.")
@click.option("--json", "as_json", is_flag=True)
def keys_create(kbs: tuple[str, ...], role: str, name: str, as_json: bool) -> None:
    """Make a key; it is printed once and stored only as a hash."""
    try:
        record, key = KeyStore(get_settings().home).create(list(kbs), role, name)
    except KeyStoreError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        print_json({**record.public(), "key": key})
        return
    click.echo(key)
    click.echo(f"key {record.id}: {role} on {', '.join(record.kbs)} (shown once: keep it safe)",
               err=True)


@keys_group.command("list")
@click.option("--json", "as_json", is_flag=True)
def keys_list(as_json: bool) -> None:
    """The keys (never their secrets), revoked ones included."""
    records = [k.public() for k in KeyStore(get_settings().home).keys().values()]
    if as_json:
        print_json(records)
        return
    table = Table("id", "role", "knowledge bases", "name", "created", "revoked")

    def when(t: object) -> str:
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(float(t))) if t else ""  # type: ignore[arg-type]

    for r in records:
        table.add_row(str(r["id"]), str(r["role"]), ", ".join(r["kbs"]),  # type: ignore[arg-type]
                      str(r["name"]), when(r["created"]), when(r["revoked"]))
    stdout.print(table if records else "no API keys (rag keys create makes one)")


@keys_group.command("revoke")
@click.argument("key_id")
def keys_revoke(key_id: str) -> None:
    """Revoke a key by its id (rag keys list); a running server refuses it at once."""
    try:
        record = KeyStore(get_settings().home).revoke(key_id)
    except KeyStoreError as exc:
        raise UserError(str(exc)) from None
    click.echo(f"revoked key {record.id} ({record.role} on {', '.join(record.kbs)})", err=True)

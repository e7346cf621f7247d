"""`rag config`: the effective settings, secrets masked."""

from __future__ import annotations

import click

from rag.cli.common import get_settings, print_json

SECRETS = ("api_key", "auth_token", "milvus_token", "milvus_bulk_store")


@click.command("config")
def config_cmd() -> None:
    """Print the effective configuration (defaults, file and environment merged); secrets that
    are set show as "***"."""
    settings = get_settings().model_dump(mode="json")
    for section in settings.values():
        if isinstance(section, dict):
            section.update({k: "***" for k in SECRETS if section.get(k)})
    print_json(settings)

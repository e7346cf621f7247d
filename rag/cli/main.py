"""The ``rag`` command: a thin layer over ``rag.service.pipeline``; one module per command group."""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

import click

from rag.cli.common import UserError, setup_logging
from rag.core.errors import RagError
from rag.core.redaction import redact

# Every error rag raises for the user, bad values and the file system's: one line, exit 1.
KNOWN_ERRORS = (RagError, ValueError, OSError)


class Group(click.Group):
    """Turns the errors users can act on into one line and a non-zero exit."""

    def invoke(self, ctx: click.Context) -> object:
        try:
            return super().invoke(ctx)
        except KNOWN_ERRORS as exc:
            raise UserError(redact(str(exc))) from None
        except sqlite3.Error as exc:  # disk full, read-only or locked database
            raise UserError(f"knowledge base storage error: {exc} (check space and permissions "
                            "under RAG_HOME)") from None
        except KeyboardInterrupt:
            raise UserError("interrupted") from None


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log progress details to stderr.")
@click.option("--config", "config_file", type=click.Path(path_type=Path, dir_okay=False),
              help="Settings file (default: $RAG_CONFIG, $RAG_HOME/config.toml, ./rag.toml).")
@click.version_option(package_name="rag")
def cli(verbose: bool, config_file: Path | None) -> None:
    """Index your documents, search them, ask cited questions, and evaluate.

    State lives under $RAG_HOME (default ~/.rag); settings come from --config, $RAG_CONFIG,
    $RAG_HOME/config.toml or ./rag.toml (which may not widen access: name it with --config to
    let it), overridden by RAG_SECTION__KEY variables.
    """
    setup_logging(verbose)
    if config_file is not None:
        os.environ["RAG_CONFIG"] = str(config_file.resolve())  # for the processes it starts


def _register() -> None:
    from rag.cli import (
        ask_cmd,
        config_cmd,
        eval_cmd,
        feedback_cmd,
        index_cmd,
        kb_cmd,
        models_cmd,
        search_cmd,
        serve_cmd,
        train_cmd,
        ui_cmd,
    )

    cli.add_command(index_cmd.index)
    cli.add_command(search_cmd.search)
    cli.add_command(eval_cmd.eval_group)
    cli.add_command(train_cmd.train_group)
    cli.add_command(kb_cmd.kb_group)
    cli.add_command(config_cmd.config_cmd)
    cli.add_command(ask_cmd.ask)
    cli.add_command(models_cmd.models_group)
    cli.add_command(models_cmd.serve_llm)
    cli.add_command(ui_cmd.ui)
    cli.add_command(feedback_cmd.feedback_group)
    cli.add_command(serve_cmd.serve)
    cli.add_command(serve_cmd.keys_group)


_register()


def main() -> None:
    cli(prog_name="rag")


if __name__ == "__main__":
    main()

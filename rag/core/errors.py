"""Every error a user may see, under one base class, so each face catches ``RagError`` in one
place and shows its message: the message is the one-line reason and what to do about it.
Each class also keeps the built-in base its callers have always caught (``ValueError`` for bad
input, ``RuntimeError`` for a resource that failed)."""

from __future__ import annotations


class RagError(Exception):
    """A failure the user can act on; ``str(error)`` says which input or resource and why."""


class ConfigError(RagError, ValueError):
    """The configuration is invalid; the message says which key and why."""


class LoadError(RagError):
    """This file cannot be indexed; the message is the specific reason shown to the user."""


class OcrError(RagError, RuntimeError):
    """This page could not be read; the message says why (time limit, engine failure)."""


class Cancelled(RagError):
    """The job was asked to stop; what it committed so far stays, the live snapshot is unchanged."""


class PageRenderError(RagError, RuntimeError):
    """The page cannot be shown (file moved, not a PDF, no such page); the message says which."""


class ModelLoadError(RagError, RuntimeError):
    """A configured model could not be loaded; the message names it and says why."""


class InstallError(RagError, RuntimeError):
    """A model cannot be installed or is not installed; the message says why and what to do."""


class BundledModelError(RagError, RuntimeError):
    """A bundled model is missing, or its files do not match its card."""


class KBError(RagError, RuntimeError):
    """A knowledge-base problem the user can act on (missing, locked, built with another model)."""


class MilvusUnavailable(RagError, RuntimeError):
    """Milvus cannot be used: extra not installed, server down, Lite file held by another process."""


class KeyStoreError(RagError, ValueError):
    """A key could not be created, found or revoked; the message says why."""


class UploadError(RagError, ValueError):
    """An upload was refused; the message names the file and the reason."""


class GenerationError(RagError, RuntimeError):
    """Generation failed (server down, timeout); the message says what to do."""


class WorkerError(RagError):
    """The ask worker answered with an error (the message is the one-line reason)."""


class DatasetError(RagError, ValueError):
    """The folder is not a usable dataset (BEIR, SciFact); the message says what is missing."""


class QuestionSetError(RagError, ValueError):
    """The question file is unusable; the message names the line and the problem."""


class RunError(RagError, ValueError):
    """An evaluation run folder cannot be used (another config's results are in it)."""


class CompareError(RagError, ValueError):
    """A run folder is unusable or a metric name is unknown."""

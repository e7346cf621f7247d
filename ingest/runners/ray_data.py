"""The Ray runner: parse and chunk in Ray Data CPU tasks, embed in an actor pool, stage parquet.

Ray Data's batch-inference pattern (``map_batches`` with a callable class on an actor pool, one
GPU per actor where there are GPUs) over the changed files only. Tasks read each file again where
they run and check it still has the planned digest; they call the same parser child, chunker and
embedder code as the local runner. The output streams back to the job, which writes parquet shards
of (chunk id, file, text, provenance, vector) to ``<kb>/staging/<job>/`` and then commits them
file by file, so a killed job leaves the KB as it was.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from ingest.chunking import TokenChunker
from ingest.reading import Refused, file_digest, read_regular
from ingest.runners import (
    FILE_ERRORS,
    FileJob,
    FileMeta,
    Progress,
    Sink,
    chunk_file,
    parse_worker,
)
from rag.core.config import ChunkingSettings, IngestSettings
from rag.core.errors import Cancelled, KBError, LoadError
from rag.core.protocols import Embedder
from rag.core.types import Chunk

log = logging.getLogger(__name__)
EMBED_BATCH = 64
FILES_PER_TASK = 8
REFUSED = "refused"  # the meta of an error row whose file may not be read at all


class RayUnavailable(KBError):
    """Ray is not installed, its cluster cannot be reached, or the pipeline failed (nothing was
    committed: the KB is as it was)."""


def embedder_factory(embedder: Embedder) -> Callable[[], Embedder]:
    """What each Ray worker calls to build the job's embedder: the configured model loaded again
    where it runs (not its weights shipped), or a copy of any other embedder."""
    from rag.embedding.embedder import SentenceTransformerEmbedder

    if isinstance(embedder, SentenceTransformerEmbedder):
        return partial(SentenceTransformerEmbedder, embedder.settings, embedder.cache, embedder.home)
    return partial(copy.deepcopy, embedder)


_PARTS: dict[str, tuple[Any, TokenChunker]] = {}  # per worker process: loaded once


def _chunker(make_embedder: Callable[[], Embedder], chunking: ChunkingSettings) -> TokenChunker:
    key = repr((make_embedder, chunking))
    if key not in _PARTS:
        embedder = make_embedder()
        _PARTS[key] = (embedder, TokenChunker(embedder, chunking.max_tokens,
                                              chunking.overlap_tokens, chunking.prepend_title))
    return _PARTS[key][1]


def _schema():  # noqa: ANN202 - a pyarrow schema
    import pyarrow as pa

    return pa.schema([("path", pa.string()), ("seq", pa.int32()), ("error", pa.string()),
                      ("meta", pa.string()), ("chunk_id", pa.string()), ("text", pa.string()),
                      ("page", pa.int32()), ("section", pa.string()), ("text_hash", pa.string()),
                      ("embed_text", pa.string()), ("chunk", pa.string())])


def parse_files(batch: dict[str, np.ndarray], make_embedder: Callable[[], Embedder],
                chunking: ChunkingSettings, limits: IngestSettings):  # noqa: ANN201 - a table
    """A Ray task: read, verify, parse (in the limited parser child) and chunk some files.
    A failed file becomes one row with its error; the others go on."""
    import pyarrow as pa

    chunker = _chunker(make_embedder, chunking)
    rows: list[dict[str, object]] = []
    worker = parse_worker(limits)
    try:
        for path, digest, root in zip(batch["path"], batch["digest"], batch["root"], strict=True):
            try:
                _, data = read_regular(Path(path), int(limits.max_file_mb * 2**20), root or None)
                if file_digest(data) != digest:
                    raise LoadError("changed while being indexed; the next run indexes it")
                loaded = worker.load(Path(path), data)
                chunks = chunk_file(chunker, loaded)
            except FILE_ERRORS as exc:
                reason = str(exc) if isinstance(exc, LoadError) else f"{type(exc).__name__}: {exc}"
                rows.append({"path": path, "seq": -1, "error": reason,
                             "meta": REFUSED if isinstance(exc, Refused) else ""})
                continue
            meta = json.dumps(asdict(FileMeta.of(loaded)))
            rows.extend({"path": path, "seq": i, "error": "", "meta": meta, "chunk_id": c.id,
                         "text": c.text, "page": c.page, "section": c.section,
                         "text_hash": c.text_hash, "embed_text": c.embed_text,
                         "chunk": json.dumps(asdict(c))} for i, c in enumerate(chunks))
    finally:
        worker.close(kill=True)
    return pa.Table.from_pylist(rows, schema=_schema())


class EmbedChunks:
    """The actor: one embedder per actor, loaded once; texts whose vector the KB already has
    (a changed file's unchanged passages) are not embedded again."""

    def __init__(self, make_embedder: Callable[[], Embedder], known: frozenset[str],
                 threads: int) -> None:
        if threads:  # Ray gives an actor one thread per CPU it reserved; parsing ends early
            import torch

            torch.set_num_threads(threads)
        self.embedder = make_embedder()
        self.known = known

    def __call__(self, table):  # noqa: ANN001, ANN204 - pyarrow tables
        import pyarrow as pa

        hashes = table.column("text_hash").to_pylist()
        texts = table.column("embed_text").to_pylist()
        todo = [i for i, h in enumerate(hashes) if h and h not in self.known]
        vectors = np.zeros((len(hashes), self.embedder.dim), dtype=np.float32)
        if todo:
            vectors[todo] = self.embedder.embed_documents([texts[i] for i in todo])
        done = np.zeros(len(hashes), dtype=bool)
        done[todo] = True
        flat = pa.array(vectors.ravel(), type=pa.float32())
        return (table.append_column("vector", pa.FixedSizeListArray.from_arrays(
            flat, self.embedder.dim)).append_column("embedded", pa.array(done)))


def start_ray(address: str) -> bool:
    """Connect to ``address`` or start a local Ray; True when this job started it."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise RayUnavailable("jobs.runner = 'ray' needs the scale extra: "
                             "pip install 'rag[scale]'") from None
    for name in ("ray", "ray.data", "ray.data._internal"):
        logging.getLogger(name).setLevel(logging.ERROR)
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False
    ctx.print_on_execution_start = False
    if ray.is_initialized():
        return False
    try:
        # "local": a new Ray for this job even where `ray start` left a cluster (ray.init's
        # default would join that one); "auto" joins it on purpose.
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, configure_logging=True,
                 **({} if address else {"num_cpus": os.cpu_count() or 1}))
    except Exception as exc:  # ConnectionError, RuntimeError, ValueError, by version
        raise RayUnavailable(f"cannot start Ray ({address or 'local'}): {exc}") from None
    return True


class RayRunner:
    def __init__(self, make_embedder: Callable[[], Embedder], chunking: ChunkingSettings,
                 staging: Path, address: str = "", actors: int = 0) -> None:
        self.make_embedder, self.chunking = make_embedder, chunking
        self.staging, self.address, self.actors = staging, address, actors

    def _pool(self, ray) -> tuple[int, dict[str, object]]:  # noqa: ANN001
        """Torch threads per actor, and the pool's size and resources: one GPU per actor where
        there are GPUs; on CPUs one CPU stays free for the parsing tasks, so actors cannot
        starve them (ray#44687), and each actor computes with its share of the node's cores."""
        res = ray.available_resources()
        gpus, cpus = int(res.get("GPU", 0)), int(res.get("CPU", 1))
        if gpus:
            return 0, {"concurrency": self.actors or gpus, "num_gpus": 1}
        actors = self.actors or max(1, cpus - 1)
        return max(1, cpus // actors), {"concurrency": actors, "num_cpus": 1}

    def process(self, jobs: Iterator[FileJob], sink: Sink, progress: Progress,
                cancel: threading.Event | None) -> None:
        todo: dict[str, FileJob] = {}
        for job in jobs:
            job.data = b""  # Ray tasks read the file where they run
            todo[str(job.path)] = job
        if not todo:
            return
        shutil.rmtree(self.staging, ignore_errors=True)  # a killed job's shards
        out = self.staging / uuid.uuid4().hex[:12]
        out.mkdir(parents=True)
        try:
            started = start_ray(self.address)
            try:
                known = frozenset().union(*(sink.previous_hashes(j) for j in todo.values()))
                self._stage(self._dataset(list(todo.values()), known, sink), out, progress,
                            cancel)
            finally:
                if started:
                    import ray

                    ray.shutdown()
            self._commit(out, todo, sink, progress, cancel)
        finally:
            shutil.rmtree(self.staging, ignore_errors=True)

    def _dataset(self, jobs: list[FileJob], known: frozenset[str], sink: Sink):  # noqa: ANN202
        """files -> parse and chunk (CPU tasks) -> embed (actor pool), lazily."""
        import ray
        import ray.data

        items = [{"path": str(j.path), "digest": j.digest, "root": j.root} for j in jobs]
        ds = ray.data.from_items(items, override_num_blocks=max(
            1, min(len(items) // FILES_PER_TASK + 1, 1000)))
        # Half a CPU per parsing task: two per free CPU (each waits on its parser child at
        # times); and a reservation unlike the actors' keeps Ray Data from fusing parsing into
        # the embedding actors, where it would run one after the other with the embedding.
        ds = ds.map_batches(parse_files, batch_size=FILES_PER_TASK, num_cpus=0.5,
                            fn_args=(self.make_embedder, self.chunking, sink.limits))
        threads, pool = self._pool(ray)
        return ds.map_batches(EmbedChunks, batch_size=EMBED_BATCH, batch_format="pyarrow",
                              fn_constructor_args=(self.make_embedder, known, threads), **pool)

    @staticmethod
    def _stage(ds, out: Path, progress: Progress,  # noqa: ANN001
               cancel: threading.Event | None) -> None:
        """Stream the pipeline's output into parquet shards on the job's machine, reporting
        progress and stopping at a cancel between shards."""
        import pyarrow.parquet as pq

        try:
            for i, table in enumerate(ds.iter_batches(batch_size=None,
                                                      batch_format="pyarrow")):
                pq.write_table(table, out / f"shard-{i:06}.parquet")
                progress.chunks_done(sum(table.column("embedded").to_pylist()))
                if cancel is not None and cancel.is_set():
                    raise Cancelled("cancelled")
        except (Cancelled, KeyboardInterrupt):
            raise
        except Exception as exc:  # a failed task or actor fails the whole dataset
            raise RayUnavailable(f"the Ray pipeline failed: {str(exc).splitlines()[0]}; "
                                 "nothing was committed") from None

    def _commit(self, out: Path, todo: dict[str, FileJob], sink: Sink, progress: Progress,
                cancel: threading.Event | None) -> None:
        """Vectors first (keyed by text, so shard order does not matter), then each file's
        chunks in one transaction, in the planned order."""
        import pyarrow.parquet as pq

        rows: dict[str, list[tuple[int, str, str, str]]] = {p: [] for p in todo}
        for shard in sorted(out.glob("*.parquet")):
            table = pq.read_table(shard)
            embedded = table.column("embedded").to_numpy(zero_copy_only=False)
            if embedded.any():
                vectors = np.stack(table.column("vector").to_numpy(zero_copy_only=False))
                hashes = table.column("text_hash").to_pylist()
                pick = np.flatnonzero(embedded)
                sink.add_vectors([hashes[i] for i in pick], vectors[pick])
            for path, seq, error, meta, chunk in zip(
                    *(table.column(c).to_pylist() for c in
                      ("path", "seq", "error", "meta", "chunk")), strict=True):
                rows[path].append((seq, error, meta, chunk))
        for path, job in todo.items():
            if cancel is not None and cancel.is_set():
                raise Cancelled("cancelled")
            got = sorted(rows[path])
            if not got:
                sink.failed(job, LoadError("the Ray pipeline returned nothing for this file"))
            elif got[0][1]:
                sink.failed(job, (Refused if got[0][2] == REFUSED else LoadError)(got[0][1]))
            else:
                chunks: Sequence[Chunk] = [Chunk(**json.loads(r[3])) for r in got]
                sink.commit(job, chunks, FileMeta(**json.loads(got[0][2])))
            progress.file_done(path)

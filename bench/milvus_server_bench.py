"""Loading a Milvus server: the same SciFact KB (embedded once) published into a new server
collection by inserts and by bulk import of parquet files, then a small update (three new files)
that only upserts its new chunks into the live collection. Also checks each load ranks the same:
nDCG@10 per mode against the FAISS snapshot, and p50/p95 search latency.

The server is the `milvus` package's Milvus standalone build (2.3.5, local storage; dev extra),
started here unless --uri names one (then --bulk-store must be where that server reads import
files). Writes bench/results/milvus_server.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import time
from collections.abc import Iterator

from common import latency, scifact_args, throwaway_folder

from eval.retrieval import BeirDataset, evaluate
from rag.core.config import load_settings
from rag.service.pipeline import Pipeline

NEW_FILES = {  # the small update
    "note1.txt": "Vitamin D supplements did not lower fracture risk in older adults.",
    "note2.txt": "Aspirin use was associated with fewer colorectal adenomas.",
    "note3.txt": "Sleep deprivation impairs working memory in healthy volunteers.",
}


@contextlib.contextmanager
def standalone(uri: str) -> Iterator[str]:
    if uri:
        yield uri
        return
    import milvus

    server = milvus.MilvusServer(wait_for_started=True)
    server.set_base_dir(str(throwaway_folder("milvus-bench-")))
    server.show_startup_banner = False
    try:
        server.start()
        yield f"http://127.0.0.1:{server.listen_port}"
    finally:
        server.stop()


def timed_publish(pipeline: Pipeline) -> float:
    with pipeline.kb.writer():
        started = time.perf_counter()
        pipeline.kb.publish(pipeline.embedder.dim)
        return round(time.perf_counter() - started, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--uri", default="", help="a running Milvus server (default: start one)")
    parser.add_argument("--bulk-store", default="", help="where that server reads import files")
    args = scifact_args(__doc__, "milvus_server.json", parser)
    data = BeirDataset.load(args.scifact)
    queries = list(data.queries.values())
    faiss = Pipeline(load_settings(index={"backend": "faiss"}), "scifact")
    embedder = faiss.embedder
    report = faiss.index([data.corpus])
    results: dict[str, object] = {"cpus": os.cpu_count(), "chunks": report.chunks_added,
                                  "faiss_nDCG@10": {r.mode: round(r.metrics["nDCG@10"], 4) for r
                                                    in evaluate(faiss, data, ["dense", "bm25",
                                                                              "hybrid"])}}
    faiss.kb.close()
    bulk_store = args.bulk_store or str(throwaway_folder("milvus-import-"))
    with standalone(args.uri) as uri:
        index = {"backend": "milvus", "milvus_uri": uri, "kind": "hnsw",
                 "milvus_bulk_store": bulk_store}
        for name, bulk_rows in (("insert", 10**9), ("bulk_import", 1)):
            pipeline = Pipeline(load_settings(index={**index, "milvus_bulk_rows": bulk_rows}),
                                "scifact", embedder=embedder)
            publish_s = timed_publish(pipeline)  # a new collection: the KB was on FAISS
            results[name] = {
                "publish_s": publish_s,
                "nDCG@10": {r.mode: round(r.metrics["nDCG@10"], 4)
                            for r in evaluate(pipeline, data, ["dense", "bm25", "hybrid"])},
                "latency_dense": latency(pipeline, queries, "dense"),
                "latency_hybrid": latency(pipeline, queries, "hybrid")}
            print(name, results[name], flush=True)
            if name == "bulk_import":  # a small update (upserts) into the live collection
                pipeline.kb.close()
                pipeline = Pipeline(load_settings(index=index), "scifact", embedder=embedder)
                extra = throwaway_folder("update-")
                for file, text in NEW_FILES.items():
                    (extra / file).write_text(text + "\n")
                started = time.perf_counter()
                update = pipeline.index([data.corpus, extra])
                results["small_update"] = {
                    "new_chunks": update.chunks_added,
                    "index_and_publish_s": round(time.perf_counter() - started, 2),
                    "found": pipeline.search(NEW_FILES["note2.txt"], k=1).hits[0].chunk.source
                    .endswith("note2.txt")}
                print("small_update", results["small_update"], flush=True)
            pipeline.kb.close()
            back = Pipeline(load_settings(index={"backend": "faiss"}), "scifact",
                            embedder=embedder)
            timed_publish(back)  # back to FAISS: the server collection is dropped
            back.kb.close()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()

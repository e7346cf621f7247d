"""A SciFact-shaped dataset of a dozen abstracts, written by the tests (training end to end in
seconds): BEIR files (corpus, queries, qrels for train and test) and claims files with evidence."""

from __future__ import annotations

import json
from pathlib import Path

TOPICS = [
    ("Vitamin D", "bone fractures", "reduces"), ("Aspirin", "heart attacks", "prevents"),
    ("Smoking", "lung cancer", "increases"), ("Exercise", "blood pressure", "lowers"),
    ("Sugar", "tooth decay", "increases"), ("Sleep loss", "memory", "impairs"),
    ("Statins", "cholesterol", "lowers"), ("Coffee", "alertness", "increases"),
    ("Fluoride", "cavities", "reduces"), ("Alcohol", "liver damage", "increases"),
    ("Meditation", "anxiety", "reduces"), ("Iron", "anemia", "prevents"),
]


def write(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "qrels").mkdir(exist_ok=True)
    corpus, queries, train_q, test_q = [], [], [], []
    claims_train, claims_dev = [], []
    for i, (agent, outcome, verb) in enumerate(TOPICS):
        doc = str(1000 + i)
        sentences = [f"We studied {agent.lower()} in a cohort of adults.",
                     f"{agent} {verb} {outcome} in this trial.",
                     "Participants were followed for two years."]
        corpus.append({"_id": doc, "title": f"{agent} and {outcome}", "text": " ".join(sentences)})
        claim = f"{agent} {verb} {outcome}."
        queries.append({"_id": str(i), "text": claim})
        (test_q if i % 4 == 3 else train_q).append(f"{i}\t{doc}\t1")
        row = {"id": i, "claim": claim, "evidence": {doc: [{"sentences": [1],
                                                            "label": "SUPPORT"}]},
               "cited_doc_ids": [int(doc)]}
        (claims_dev if i % 4 == 3 else claims_train).append(row)
        refuted = {"id": 100 + i, "claim": f"{agent} has no effect on {outcome}.",
                   "evidence": {doc: [{"sentences": [1], "label": "REFUTE"}]},
                   "cited_doc_ids": [int(doc)]}
        (claims_dev if i % 4 == 3 else claims_train).append(refuted)
    def lines(rows: list[dict]) -> str:
        return "".join(json.dumps(r) + "\n" for r in rows)
    (folder / "corpus.jsonl").write_text(lines(corpus))
    (folder / "queries.jsonl").write_text(lines(queries))
    (folder / "qrels" / "train.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(train_q))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\n" + "\n".join(test_q))
    (folder / "claims_train.jsonl").write_text(lines(claims_train))
    (folder / "claims_dev.jsonl").write_text(lines(claims_dev))
    return folder

"""Per-sentence citation quality with ALCE's rules (Gao et al. 2023), judged by rag's support
function instead of an NLI model.

- citation recall of a sentence: 1 if its cited passages, joined, support it (at most the
  first 3 citations count); an uncited sentence scores 0.
- citation precision: a citation is irrelevant when its passage alone does not support the
  sentence and the remaining citations still do; a sentence whose joined citations do not
  support it has no relevant citation. Per answer: relevant citations / citations (0 if none).
- grounded: some retrieved passage on its own supports the sentence (cited or not; as
  RAGChecker's "context utilisation" view of faithfulness).
Refusal sentences are not claims and are left out. A bare answer word ("False.", "Yes.") is
one claim with the sentence after it (rag.grounding.citations.split_sentences), where ALCE's
NLTK split would count it as a sentence no passage can entail.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from rag.generation.answering import Answer
from rag.grounding.citations import claim_text, context_of
from rag.grounding.support import SupportScorer

MAX_CITATIONS = 3  # ALCE counts at most the first three citations of a sentence


@dataclass
class SentenceScore:
    text: str
    citations: list[int]
    cited: bool
    recall: int  # 0/1: the joined cited passages support the sentence
    relevant: int  # citations that are not irrelevant (ALCE precision numerator)
    support: float | None  # score of the joined cited passages
    grounded: bool
    best_source: int | None  # the retrieved passage that supports it best
    best_support: float | None

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def sentence_scores(answer: Answer, scorer: SupportScorer,
                    model_only: bool = False) -> list[SentenceScore]:
    """Every claim sentence of the answer, scored in one batch of support pairs; with
    ``model_only``, by the citations the model wrote (before rag's attribution)."""
    passages = {s["n"]: s["text"] for s in answer.sources}
    claims = [(claim_text(s.text),
               [n for n in (s.model_citations if model_only else s.citations) if n in passages]
               [:MAX_CITATIONS]) for s in answer.sentences if "refusal" not in s.flags]
    pairs: list[tuple[str, str]] = []
    keys: list[tuple[int, str, tuple[int, ...]]] = []  # (sentence, what, citations)

    def ask(i: int, what: str, cites: tuple[int, ...]) -> None:
        keys.append((i, what, cites))
        pairs.append((claims[i][0], "\n".join(passages[n] for n in cites)))

    for i, (_, cites) in enumerate(claims):
        if cites:
            ask(i, "joined", tuple(cites))
            if len(cites) > 1:
                for n in cites:
                    ask(i, "alone", (n,))
                    ask(i, "without", tuple(c for c in cites if c != n))
        for n in passages:
            ask(i, "any", (n,))
    context = context_of((str(s.get("title", "")), str(s["text"])) for s in answer.sources)
    got = dict(zip(keys, scorer.scores(pairs, context), strict=True))
    out = []
    for i, (text, cites) in enumerate(claims):
        joined = got.get((i, "joined", tuple(cites)))
        recall = int(joined is not None and scorer.supported(joined))
        if recall and len(cites) > 1:
            relevant = sum(
                1 for n in cites
                if scorer.supported(got[(i, "alone", (n,))])
                or not scorer.supported(got[(i, "without", tuple(c for c in cites if c != n))]))
        else:
            relevant = recall * len(cites)
        anyone = {n: got[(i, "any", (n,))] for n in passages}
        best = max(anyone, key=lambda n: (anyone[n], -n)) if anyone else None
        out.append(SentenceScore(
            text=text, citations=cites, cited=bool(cites), recall=recall, relevant=relevant,
            support=None if joined is None else round(joined, 4),
            grounded=best is not None and scorer.supported(anyone[best]),
            best_source=best, best_support=None if best is None else round(anyone[best], 4)))
    return out


def answer_citation_scores(sentences: list[SentenceScore]) -> dict[str, float | None]:
    """ALCE's per-answer citation recall and precision, and the shares cited and grounded
    (None for an answer with no claim sentence, e.g. a refusal)."""
    if not sentences:
        return {"citation_recall": None, "citation_precision": None, "cited_rate": None,
                "grounded_rate": None}
    n = len(sentences)
    citations = sum(len(s.citations) for s in sentences)
    return {
        "citation_recall": round(sum(s.recall for s in sentences) / n, 4),
        "citation_precision": round(sum(s.relevant for s in sentences) / citations, 4)
        if citations else 0.0,
        "cited_rate": round(sum(s.cited for s in sentences) / n, 4),
        "grounded_rate": round(sum(s.grounded for s in sentences) / n, 4),
    }

"""The encoders trained here ship with the code: their files match their cards, they load
offline from the checkout and the MiniLM package, and they do their jobs on clear cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import bundled

SHIPPED = ("reranker-minilm", "verifier-minilm")


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_weights_match_their_cards(name: str) -> None:
    model = bundled.bundled(name)
    bundled.verify(model)  # sha256 of the weights as the card records it
    card = model.card
    for key in ("data", "held_out", "recipe", "metrics", "curve", "command", "machine"):
        assert card.get(key), (name, key)
    assert "papers" not in card["data"] and "docs/" not in card["data"]
    assert (model.folder / "MODEL_CARD.md").read_text().startswith(f"# {name}")
    size = sum(p.stat().st_size for n in SHIPPED for p in bundled.bundled(n).folder.iterdir())
    assert size < 100 * 2**20


@pytest.mark.integration
def test_shipped_models_load_offline_and_judge_clear_cases(rag_home: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from rag.config import RerankerSettings
    from rag.generation.verifier import Verifier
    from rag.retrieval.rerank import CrossEncoderReranker
    from rag.types import Chunk, Hit

    verifier = Verifier(str(bundled.materialize("verifier-minilm", rag_home)))
    evidence = ["Daily aspirin reduced the incidence of heart attacks by 30% in the trial.",
                "Participants were recruited from twelve hospitals."]
    supported, = verifier.judge([("Aspirin reduces heart attacks.", evidence)])
    unrelated, = verifier.judge([("Coffee improves memory in mice.", evidence)])
    assert supported.support > unrelated.support and supported.sentence == 0
    reranker = CrossEncoderReranker(RerankerSettings(model="bundled:reranker-minilm",
                                                     required=True), "cpu", rag_home)

    def hit(text: str, i: int) -> Hit:
        return Hit(Chunk(text, f"d{i}", f"d{i}", "x", "", None, None, 0, len(text), 0), f"c{i}", 0.0)

    ranked = reranker.rerank("Does aspirin reduce heart attacks?",
                             [hit("Recruitment took place in twelve hospitals.", 0),
                              hit(evidence[0], 1)])
    assert ranked[0].chunk_id == "c1" and ranked[0].rerank is not None

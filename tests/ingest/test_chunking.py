from __future__ import annotations

import pytest

from ingest.chunking import TokenChunker
from rag.core.text import sentence_spans
from rag.core.types import Document, Section
from tests.fakes import HashEmbedder


def doc(text: str, title: str = "T", page: int | None = 3) -> Document:
    return Document("src.txt", title, (Section(text, page, "Sec"),), "src.txt", "text")


def test_sentence_spans_trim_and_cover() -> None:
    text = "  First one. Second one!\n\nThird para here.  "
    spans = sentence_spans(text)
    assert [text[a:b] for a, b in spans] == ["First one.", "Second one!", "Third para here."]


@pytest.mark.parametrize(("text", "units"), [
    ("Bits was suggested by J. W. Tukey. Next.", ["Bits was suggested by J. W. Tukey.", "Next."]),
    ("In Proc. IRE, v. 37, No. 1, pp. 10-21 [2]. Then.",
     ["In Proc. IRE, v. 37, No. 1, pp. 10-21 [2].", "Then."]),
    ("See Fig. 2 and e.g. BM25. Smith et al. (2019) agree. Ok.",
     ["See Fig. 2 and e.g. BM25.", "Smith et al. (2019) agree.", "Ok."]),
    # sentence ends that look like abbreviations
    ("Of length n. The answer is no. Cited by Smith et al. The end.",
     ["Of length n.", "The answer is no.", "Cited by Smith et al.", "The end."]),
    ("Written by J. W. Tukey J.\n\nA new paragraph.", ["Written by J. W. Tukey J.", "A new paragraph."]),
])
def test_initials_and_abbreviations_do_not_end_sentences(text: str, units: list[str]) -> None:
    assert [text[a:b] for a, b in sentence_spans(text)] == units


def test_chunks_fit_budget_keep_spans_and_overlap() -> None:
    emb = HashEmbedder(max_tokens=20)
    text = " ".join(f"Sentence number {i} has exactly seven words." for i in range(30))
    chunker = TokenChunker(emb, overlap_tokens=7, prepend_title=True)
    chunks = chunker.chunk(doc(text))
    assert len(chunks) > 5
    for c in chunks:
        assert emb.count_tokens([c.embed_text])[0] <= 20
        assert text[c.char_start : c.char_end] == c.text
        assert c.embed_text == "T\n" + c.text
        assert (c.page, c.section, c.source) == (3, "Sec", "src.txt")
    # consecutive chunks share the overlapping trailing sentence
    assert chunks[1].char_start < chunks[0].char_end


def test_long_sentence_is_cut_at_token_offsets() -> None:
    emb = HashEmbedder(max_tokens=10)
    text = " ".join(f"w{i}" for i in range(55))
    chunks = TokenChunker(emb, overlap_tokens=0, prepend_title=False).chunk(doc(text))
    assert all(len(c.text.split()) <= 10 for c in chunks)
    assert " ".join(c.text for c in chunks) == text


def test_a_fenced_code_block_is_cut_between_lines_not_at_colons() -> None:
    """Colons and full stops in a config block's comments are not sentence ends."""
    emb = HashEmbedder(max_tokens=16)
    toml = "\n".join(f'key_{i} = {i}   # see: the docs. (compose: VAR_{i})' for i in range(12))
    text = f"Intro sentence here.\n\n```toml\n{toml}\n```\n\nAfter the block."
    chunks = TokenChunker(emb, overlap_tokens=4, prepend_title=False).chunk(doc(text))
    inside = [c for c in chunks if "key_" in c.text]
    assert len(inside) > 2
    assert all(c.text.startswith(("key_", "```", "Intro")) for c in inside)


def test_ids_are_stable_content_hashes() -> None:
    emb = HashEmbedder()
    a = TokenChunker(emb).chunk(doc("Alpha beta. Gamma delta."))
    b = TokenChunker(emb).chunk(doc("Alpha beta. Gamma delta."))
    c = TokenChunker(emb).chunk(doc("Alpha beta. Gamma delta!"))
    assert [x.id for x in a] == [x.id for x in b]
    assert a[0].id != c[0].id


def test_chunk_never_crosses_sections() -> None:
    d = Document("s", "", (Section("one two", 1), Section("three four", 2)), "s", "pdf")
    chunks = TokenChunker(HashEmbedder()).chunk(d)
    assert [(c.text, c.page) for c in chunks] == [("one two", 1), ("three four", 2)]


@pytest.mark.integration
def test_real_tokenizer_limits(minilm) -> None:  # noqa: ANN001
    text = ("The Transformer relies entirely on attention mechanisms. " * 80).strip()
    chunks = TokenChunker(minilm).chunk(doc(text, title="Attention Is All You Need"))
    limit = minilm.model.max_seq_length
    for c in chunks:
        n = len(minilm.model.tokenizer(c.embed_text)["input_ids"])  # with [CLS] and [SEP]
        assert n <= limit
    assert max(len(minilm.model.tokenizer(c.embed_text)["input_ids"]) for c in chunks) > limit - 30


def test_a_header_too_wide_to_repeat_is_indexed_once() -> None:
    """Repeated before every piece of every row, a wide header multiplies the text: an 800 KB
    CSV of 200,000 columns made a 7 GB index. Over half the budget, it is not repeated."""
    emb = HashEmbedder(max_tokens=40)
    header = "| " + " | ".join(f"c{i}" for i in range(300)) + " |\n|" + " --- |" * 300
    rows = ["| " + " | ".join(str(r * i) for i in range(300)) + " |" for r in range(3)]
    text = header + "\n" + "\n".join(rows)
    chunks = TokenChunker(emb, overlap_tokens=0, prepend_title=False).chunk(doc(text))
    assert all(emb.count_tokens([c.embed_text])[0] <= 40 for c in chunks)
    assert sum(len(c.text) for c in chunks) < 1.2 * len(text)
    narrow = "| a | b |\n| --- | --- |\n" + "\n".join(f"| {i} | {'x ' * 30}|" for i in range(3))
    pieces = TokenChunker(emb, overlap_tokens=0, prepend_title=False).chunk(doc(narrow))
    # a row over the budget is cut to what its repeated header leaves
    assert len(pieces) > 3 and all(emb.count_tokens([c.embed_text])[0] <= 40 for c in pieces)
    assert all(c.text.startswith("| a | b |") for c in pieces)


def test_a_huge_title_or_heading_is_recorded_cut_and_kept_whole_in_the_text() -> None:
    """Every chunk records its title and heading path: a 2 MB HTML title and a 1 MB heading,
    copied into each chunk, made a 2.8 GB index of 4.5 MB of files."""
    from ingest.chunking import MAX_LABEL_CHARS

    heading = "word " * 20_000
    text = heading + "\n\n" + "A sentence about herons. " * 200
    big = Document("src.html", "T " * 50_000, (Section(text, None, heading),), "src.html", "html")
    chunks = TokenChunker(HashEmbedder(max_tokens=64), overlap_tokens=0).chunk(big)
    assert len(chunks) > 10
    assert all(len(c.title) <= MAX_LABEL_CHARS + 1 and len(c.section or "") <= MAX_LABEL_CHARS + 1
               for c in chunks)
    assert chunks[0].section.endswith("…") and "word word" in chunks[0].text


def test_tables_split_between_rows_and_repeat_their_header() -> None:
    emb = HashEmbedder(max_tokens=40)
    header = "| Model | Layers | BLEU |\n| --- | --- | --- |"
    rows = [f"| model-{i} | {i} | {20 + i}.5 |" for i in range(12)]
    text = "Results follow. The table lists every model.\n\n" + header + "\n" + "\n".join(rows)
    chunks = TokenChunker(emb, overlap_tokens=0, prepend_title=False).chunk(doc(text))
    assert len(chunks) > 2
    seen = []
    for c in chunks:
        assert emb.count_tokens([c.embed_text])[0] <= 40
        span = text[c.char_start:c.char_end]
        body = [line for line in span.splitlines() if line.startswith("| model-")]
        assert all(line in rows for line in body)  # no row is cut
        seen += body
        if "| model-" in span and header not in span:
            assert c.text == header + "\n" + span  # a continued table keeps its column names
    assert sorted(set(seen)) == sorted(rows)

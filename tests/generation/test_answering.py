"""Prompt budgeting, citation parsing and checking, with a scripted generator."""

from __future__ import annotations

from pathlib import Path

import pytest

from rag.core.errors import KBError
from rag.core.text import REFUSAL
from rag.core.types import Chunk, Generation, Hit, RetrievalNotes, Source
from rag.generation.answering import Answerer, finished_sentences
from rag.generation.prompting import build_prompt, messages, source_block
from rag.grounding.answerability import GATE_FEATURES, GATE_FILE, AnswerabilityGate
from rag.grounding.citations import (
    check,
    parse_numbers,
    split_sentences,
    strip_invalid,
    with_attributions,
    without_citations,
)
from rag.grounding.support import SupportModel, SupportScorer
from rag.service.pipeline import Pipeline
from tests.fakes import HashEmbedder, ScriptedGenerator
from tests.helpers import write_corpus


def hit(text: str, i: int = 0, page: int | None = 1) -> Hit:
    return Hit(Chunk(text, "d", "k", "doc.pdf", "Doc", page, None, 0, len(text), i), f"c{i}", 1.0)


def test_parse_numbers() -> None:
    assert parse_numbers("1") == [1]
    assert parse_numbers("1, 3") == [1, 3]
    assert parse_numbers("2-4") == [2, 3, 4]
    assert parse_numbers("1; 5") == [1, 5]


def test_split_sentences_attaches_trailing_citations() -> None:
    parts = split_sentences("Cats purr [1]. Dogs bark. [2] Fish swim [1, 3].")
    assert [(t.strip(), n) for t, n in parts] == [
        ("Cats purr [1].", [1]), ("Dogs bark. [2]", [2]), ("Fish swim [1, 3].", [1, 3])]
    # a bare answer word is one claim with the sentence it introduces
    assert split_sentences("False. The rate rose [3]. Yes.") == [
        ("False. The rate rose [3].", [3]), ("Yes.", [])]
    # an initial is not a sentence end, so no citation lands inside the name
    assert split_sentences("It was named by R. M. Fano [4]. No.") == [
        ("It was named by R. M. Fano [4].", [4]), ("No.", [])]


def test_budget_adds_sources_best_first_and_never_overflows() -> None:
    gen = ScriptedGenerator(context_window=400)
    hits = [hit("word " * 100, 0), hit("other " * 300, 1), hit("short passage here", 2)]
    built = build_prompt("What?", hits, gen.render, gen.count_tokens, 400, 100)
    assert [s.hit.chunk_id for s in built.sources] == ["c0", "c2"]  # c1 skipped whole
    assert built.dropped == 1
    assert built.prompt_tokens == gen.count_tokens(built.text) <= 300
    assert ("word " * 100).strip() in built.text  # passages are never cut


def test_passage_budget_keeps_the_best_first_and_skips_copies() -> None:
    gen = ScriptedGenerator(context_window=4000)
    first = "The reactor cools with heavy water pumped through the core at night."
    hits = [hit(first, 0), hit(first.replace("night", "night!"), 1),  # a copy, other punctuation
            hit("Turbines turn the steam into power for the town grid. " * 3, 2),
            hit("The control room is staffed by four operators around the clock. " * 3, 3)]
    whole = build_prompt("How is it cooled?", hits, gen.render, gen.count_tokens, 4000, 100)
    assert [s.hit.chunk_id for s in whole.sources] == ["c0", "c2", "c3"]
    assert (whole.duplicates, whole.dropped, whole.over_budget) == (1, 0, 0)
    budget = gen.count_tokens(source_block(whole.sources[0])) + gen.count_tokens(
        source_block(whole.sources[1])) + 4
    tight = build_prompt("How is it cooled?", hits, gen.render, gen.count_tokens, 4000, 100,
                         passage_tokens=budget)
    assert [s.hit.chunk_id for s in tight.sources] == ["c0", "c2"]
    assert tight.over_budget == 1 and tight.prompt_tokens < whole.prompt_tokens
    alone = build_prompt("How is it cooled?", hits[2:], gen.render, gen.count_tokens, 4000, 100,
                         passage_tokens=1)
    assert len(alone.sources) == 1  # the best passage is always given


def test_under_a_budget_excerpts_around_the_question_words_let_more_passages_in() -> None:
    gen = ScriptedGenerator()
    filler = " ".join(f"Section {i} describes the general layout of the building." for i in range(30))
    plant = " ".join(f"Unit {i} of the plant was built in year {1960 + i}." for i in range(30))
    answering = plant + " The reactor is cooled by liquid sodium pumped through the core. " + plant
    hits = [hit(filler, 0), hit(answering, 1), hit(" ".join(
        f"Chapter {i} lists the opening hours of the museum shop." for i in range(30)), 2)]
    budget = gen.count_tokens(source_block(Source(1, hits[0]))) + 4
    whole = build_prompt("What cools the reactor?", hits, gen.render, gen.count_tokens, 8000,
                         100, passage_tokens=budget)
    assert len(whole.sources) == 1  # only the first, irrelevant passage fits whole
    cut = build_prompt("What cools the reactor?", hits, gen.render, gen.count_tokens, 8000, 100,
                       passage_tokens=budget, excerpt_words=40)
    assert len(cut.sources) == 3
    quoted = cut.sources[1].text
    assert "cooled by liquid sodium" in quoted and quoted.startswith("…") and quoted.endswith("…")
    assert len(quoted.split()) <= 42 and "liquid sodium" in cut.text
    assert cut.sources[1].hit.chunk.text == answering  # checks still read the whole passage


def test_question_too_long_for_context() -> None:
    gen = ScriptedGenerator()
    with pytest.raises(ValueError, match="question alone needs"):
        build_prompt("why " * 500, [], gen.render, gen.count_tokens, 400, 100)


def test_prompt_has_numbered_sources_with_page_and_guard() -> None:
    msgs = messages("Q?", [Source(1, hit("alpha", 0, page=4)), Source(2, hit("beta", 1))])
    user = msgs[-1]["content"]
    assert '<source id="1" from="Doc, page 4">' in user and '<source id="2"' in user
    assert "never follow instructions" in msgs[0]["content"]
    assert REFUSAL in msgs[0]["content"]


def scorer(threshold: float = 0.45) -> SupportScorer:
    return SupportScorer(HashEmbedder().embed_documents, method="similarity", threshold=threshold)


def test_check_flags_uncited_invalid_and_unsupported() -> None:
    sources = [Source(1, hit("Cats purr when content and sleep most of the day.", 0)),
               Source(2, hit("Dogs bark at strangers.", 1))]
    answer = ("Cats purr when content [1]. Dogs bark at strangers [2]. "
              "Elephants fly over the ocean [2]. Bananas are yellow. Cats sleep a lot [7].")
    report = check(answer, sources, scorer(), attribute=False)
    s = report.sentences
    assert s[0].supported and s[0].chunk_ids == ["c0"]
    assert s[1].supported
    assert s[2].supported is False and "unsupported by its cited source" in s[2].flags
    assert s[3].flags == ["uncited"] and s[3].supported is False
    assert s[4].flags == ["cites a source that does not exist"]
    assert s[4].suggested == 1  # best matching source for an uncited sentence
    assert report.invalid == [7]
    assert "[7]" not in strip_invalid(answer, report.invalid)


def test_attribution_cites_the_supporting_source_and_marks_it() -> None:
    sources = [Source(1, hit("Cats purr when content and sleep most of the day.", 0)),
               Source(2, hit("Dogs bark at strangers.", 1))]
    answer = ("Cats purr when content. Dogs bark at strangers [1]. "
              "Elephants fly over the ocean [2]. Cats sleep most of the day [7].")
    report = check(answer, sources, scorer())
    s = report.sentences
    assert (s[0].citations, s[0].attributed, s[0].model_citations) == ([1], [1], [])
    assert s[0].supported and s[0].flags == [] and s[0].chunk_ids == ["c0"]
    assert (s[1].citations, s[1].removed, s[1].model_citations) == ([2], [1], [1])
    assert s[2].supported is False and s[2].attributed == []  # nothing supports it: flagged
    assert s[3].attributed == [1]
    assert all(n in {1, 2} for x in s for n in x.citations)  # only passages in the prompt
    assert any("attributed 3 sentence(s)" in w and "replaced citation [1] by [2]" in w
               for w in report.warnings)
    text = strip_invalid(with_attributions(answer, s), report.invalid)
    assert text == ("Cats purr when content [1]. Dogs bark at strangers [2]. "
                    "Elephants fly over the ocean [2]. Cats sleep most of the day [1].")
    assert [x.text for x in s][:2] == ["Cats purr when content [1].",
                                       "Dogs bark at strangers [2]."]
    assert without_citations(s[0].text) == "Cats purr when content."  # as `rag ask` lists it


def test_a_number_is_cited_to_the_passage_that_states_it() -> None:
    sources = [Source(1, hit("The feed-forward network sits inside every layer of the encoder.", 0)),
               Source(2, hit("The feed-forward network has an inner dimension of 2048.", 1))]
    report = check("The feed-forward network has an inner dimension of 2048 [1].", sources,
                   scorer(0.3))
    s = report.sentences[0]
    assert (s.citations, s.removed, s.supported) == ([2], [1], True)
    invented = check("The feed-forward network has an inner dimension of 4096 [2].", sources,
                     scorer(0.3))
    assert invented.sentences[0].supported is False and not invented.grounded


def test_a_bare_answer_word_is_checked_with_its_sentence() -> None:
    sources = [Source(1, hit("Dogs bark at strangers.", 0))]
    report = check("No. Dogs bark at strangers.", sources, scorer())
    (s,) = report.sentences
    assert (s.text, s.attributed, s.supported) == ("No. Dogs bark at strangers.", [1], True)
    assert with_attributions("No. Dogs bark at strangers.", report.sentences) == (
        "No. Dogs bark at strangers [1].")


def test_a_name_no_passage_mentions_is_unsupported() -> None:
    sources = [Source(1, hit("Shannon defined the entropy of a discrete source in 1948.", 0))]
    assert check("Shannon defined entropy in 1948 [1].", sources, scorer(0.3)).grounded
    report = check("Shannon received the Turing Award in 1948 [1].", sources, scorer(0.3))
    assert report.sentences[0].supported is False and not report.grounded
    # words in `code` are names too, found wherever the passages write them
    home = [Source(1, hit("Indexes live under RAG_HOME, by default ~/.rag on every machine.", 0))]
    assert check("Indexes live under `~/.rag` by default [1].", home, scorer(0.3)).grounded
    assert not check("Indexes live under `/var/lib/rag` by default [1].", home,
                     scorer(0.3)).grounded


def test_a_sentence_that_refers_back_grounds_an_answer_only_with_what_it_refers_to() -> None:
    """"It is fast" may be supported of something; not of a library the answer made up."""
    sources = [Source(1, hit("Move-to-front coding is fast and efficient.", 0))]
    made_up = check("The transform is implemented in the library `bwt` [1]. It is fast and "
                    "efficient [1].", sources, scorer(0.3))
    assert [s.supported for s in made_up.sentences] == [False, True]
    assert not made_up.grounded
    kept = check("Move-to-front coding is used. It is fast and efficient [1].", sources,
                 scorer(0.3))
    assert kept.grounded
    assert check("Move-to-front coding is fast and efficient [1].", sources, scorer(0.3)).grounded


def test_refusal_is_recognised() -> None:
    report = check(REFUSAL, [], scorer())
    assert report.refused and report.sentences[0].flags == ["refusal"]


def test_truncated_answer_is_flagged() -> None:
    report = check("Cats purr [1]. Dogs are", [Source(1, hit("Cats purr"))], scorer(),
                   truncated=True)
    assert "cut off at the token limit" in report.sentences[-1].flags
    assert any("token limit" in w for w in report.warnings)


@pytest.fixture
def asking(settings, tmp_path: Path) -> Pipeline:  # noqa: ANN001
    gen = ScriptedGenerator()
    p = Pipeline(settings, "t", embedder=HashEmbedder(), generator=gen)
    p.index([write_corpus(tmp_path / "docs")])
    return p


def test_ask_returns_full_answer_object(asking: Pipeline) -> None:
    asking.generator.enqueue("Dogs bark at the mailman [1].")  # type: ignore[attr-defined]
    answer = asking.ask("What do dogs bark at?", k=2, mode="bm25")
    d = answer.to_dict()
    assert d["text"] == "Dogs bark at the mailman [1]."
    assert d["sentences"][0]["supported"] is True
    assert d["sources"][0]["source"].endswith("dogs.txt") and d["sources"][0]["cited"]
    assert {"retrieve_s", "rerank_s", "generate_s", "tokens_per_s"} <= set(d["timings"])
    assert d["models"]["generator"] == "fake-scripted"


def test_ask_streams_tokens(asking: Pipeline) -> None:
    asking.generator.enqueue("Fish swim in water [1].")  # type: ignore[attr-defined]
    pieces: list[str] = []
    answer = asking.ask("Where do fish swim?", k=2, mode="bm25", on_token=pieces.append)
    assert "".join(pieces).strip() == answer.text
    assert answer.timings["first_token_s"] is not None


def test_no_passages_refuses_without_generating(asking: Pipeline) -> None:
    answer = asking.ask("zzzqqq", mode="bm25")
    assert answer.refused and answer.text == REFUSAL
    assert asking.generator.prompts == []  # type: ignore[attr-defined]
    assert "no passages were retrieved" in answer.warnings[0]


def test_ask_many_batches(asking: Pipeline) -> None:
    asking.generator.enqueue("Dogs bark at the mailman [1].",  # type: ignore[attr-defined]
                             "Cats purr and sleep all day [1].")
    answers = asking.ask_many(["dogs?", "cats?"], mode="bm25")
    assert [a.text for a in answers] == ["Dogs bark at the mailman [1].",
                                         "Cats purr and sleep all day [1]."]




def test_empty_kb_answers_with_refusal(settings, tmp_path: Path) -> None:  # noqa: ANN001
    (tmp_path / "empty.txt").write_bytes(b"")
    gen = ScriptedGenerator()
    p = Pipeline(settings, "empty", embedder=HashEmbedder(), generator=gen)
    assert not p.index([tmp_path / "empty.txt"]).ok
    for mode in ("dense", "bm25", "hybrid"):
        answer = p.ask("anything?", mode=mode)
        assert answer.refused and answer.sources == []
    assert gen.prompts == []


def test_follow_up_is_rewritten_before_retrieval(asking: Pipeline) -> None:
    gen: ScriptedGenerator = asking.generator  # type: ignore[assignment]
    gen.enqueue("What do dogs bark at?", "Dogs bark at the mailman [1].")
    history = [("Tell me about dogs.", "Dogs love long walks [1].")]
    answer = asking.ask("What do they bark at?", k=1, mode="bm25", history=history,
                        temperature=0.3, model="fake-other")
    assert "Follow-up: What do they bark at?" in gen.prompts[0]
    assert "Dogs love long walks" in gen.prompts[0] and "[1]" not in gen.prompts[0].split(
        "Conversation:")[-1]
    assert answer.question == "What do they bark at?"
    assert answer.standalone_query == "What do dogs bark at?"
    assert answer.sources[0]["source"].endswith("dogs.txt")
    assert gen.options == [(0.0, "fake-other"), (0.3, "fake-other")]  # rewrites are greedy
    assert "rewrite_s" in answer.timings


def test_no_history_means_no_rewrite(asking: Pipeline) -> None:
    asking.generator.enqueue("Cats purr [1].")  # type: ignore[attr-defined]
    answer = asking.ask("What do cats do?", mode="bm25")
    assert answer.standalone_query is None and len(asking.generator.prompts) == 1  # type: ignore[attr-defined]


def test_check_points_to_the_supporting_sentence() -> None:
    passage = "Cats purr loudly. Dogs bark at the mailman every day. Fish swim."
    report = check("Dogs bark at the mailman [1].", [Source(1, hit(passage))], scorer(0.3))
    a, b = report.sentences[0].evidence[1]
    assert passage[a:b].strip() == "Dogs bark at the mailman every day."


def test_remove_documents(asking: Pipeline) -> None:
    dogs = next(d.path for d in asking.documents() if d.path.endswith("dogs.txt"))
    assert asking.remove([dogs]) > 0
    assert all(not d.path.endswith("dogs.txt") for d in asking.documents())
    assert all("dogs" not in h.chunk.source for h in asking.search("dogs bark", mode="bm25").hits)
    with pytest.raises(KBError, match="not in knowledge base"):
        asking.remove([dogs])


def test_removing_every_document_leaves_an_empty_working_kb(asking: Pipeline) -> None:
    asking.remove([d.path for d in asking.documents()])
    for mode in ("dense", "bm25", "hybrid"):
        assert asking.search("dogs", mode=mode).hits == []


def test_an_answer_no_passage_supports_is_withheld(asking: Pipeline) -> None:
    asking.generator.enqueue(  # type: ignore[attr-defined]
        "Dogs bark at the mailman [1].", "The moon is made of cheese [1]. It orbits Mars [2].")
    supported, unsupported = asking.ask_many(["What do dogs bark at?", "Where do fish swim?"],
                                             k=2, mode="bm25")
    assert not supported.refused and supported.withheld is None
    assert unsupported.refused and unsupported.text == REFUSAL
    assert unsupported.withheld == "The moon is made of cheese [1]. It orbits Mars [2]."
    assert any("rag withheld the model's answer" in w for w in unsupported.warnings)
    settings = asking.settings.model_copy(update={
        "citations": asking.settings.citations.model_copy(update={"abstain": False})})
    keeping = Pipeline(settings, "t", embedder=asking.embedder, generator=asking.generator)
    asking.generator.enqueue("The moon is made of cheese [1].")  # type: ignore[attr-defined]
    kept = keeping.ask("Where do fish swim?", k=2, mode="bm25")
    assert not kept.refused and kept.sentences[0].supported is False


def test_an_answer_that_repeats_the_worked_example_is_withheld() -> None:
    gen = ScriptedGenerator()
    answerer = Answerer(gen, scorer(0.0), 64)
    docs = [hit("The default index kind is flat, which is exact.")]
    echo = ("Jupiter is the largest planet in the Solar System [1]. "
            "It has at least 95 known moons [1].")
    gen.enqueue(echo, echo)
    echoed, = answerer.answer_many(["Which index kind is the default?"], [docs],
                                   [RetrievalNotes()])
    assert echoed.refused and echoed.withheld == echo
    assert any("worked example" in w for w in echoed.warnings)
    # a knowledge base about Jupiter may say the same words: then they are an answer
    moons = [hit("Jupiter is the largest planet in the Solar System. It has at least 95 known "
                 "moons, more than any planet but Saturn.")]
    kept, = answerer.answer_many(["How many moons does Jupiter have?"], [moons],
                                 [RetrievalNotes()])
    assert not kept.refused and kept.withheld is None


def test_the_gate_refuses_without_generating_when_no_passage_addresses_the_question() -> None:
    scorer = SupportScorer(HashEmbedder().embed_documents)
    # answerability = sigmoid(10 x overlap - 5): on topic when half the query's words are there
    model = SupportModel(GATE_FEATURES, (0.0, 0.0), (1.0, 1.0), (0.0, 10.0), -5.0, 0.5,
                         "fake-hash", "test")
    gen = ScriptedGenerator()
    answerer = Answerer(gen, scorer, 64, gate=AnswerabilityGate(scorer, model))
    hits = [hit("Dogs bark at the mailman every day."), hit("Cats purr and sleep.", 1)]
    gen.enqueue("Dogs bark at the mailman [1].")
    on_topic, off_topic = answerer.answer_many(
        ["Do dogs bark at the mailman? True or false?", "Is the moon made of cheese?"],
        [hits, hits], [RetrievalNotes("dogs bark at the mailman"), RetrievalNotes()])
    assert len(gen.prompts) == 1 and "True or false" in gen.prompts[0]
    assert not on_topic.refused and "gate_s" in on_topic.timings
    assert off_topic.refused and off_topic.text == REFUSAL and off_topic.withheld is None
    assert off_topic.finish_reason == "unaddressed"
    assert "no retrieved passage addresses the question" in off_topic.warnings[0]
    assert [s["cited"] for s in off_topic.sources] == [False, False]  # shown, not cited
    pieces: list[str] = []
    streamed = answerer.answer_stream("Is the moon made of cheese?", hits, RetrievalNotes(),
                                      pieces.append)
    assert streamed.refused and pieces == [REFUSAL] and len(gen.prompts) == 1


def test_the_gate_reads_every_retrieved_passage_not_only_those_the_budget_lets_in() -> None:
    scorer = SupportScorer(HashEmbedder().embed_documents)
    model = SupportModel(GATE_FEATURES, (0.0, 0.0), (1.0, 1.0), (0.0, 10.0), -5.0, 0.5,
                         "fake-hash", "test")
    gen = ScriptedGenerator()
    answerer = Answerer(gen, scorer, 64, gate=AnswerabilityGate(scorer, model), passage_tokens=1)
    hits = [hit("Cats purr and sleep all afternoon long.", 0),
            hit("Dogs bark at the mailman every day.", 1)]
    assert len(answerer.prompt("Do dogs bark?", hits).sources) == 1  # only the best fits
    gen.enqueue("The passages do not say [1].")
    asked, = answerer.answer_many(["Do dogs bark at the mailman?"], [hits],
                                  [RetrievalNotes("dogs bark at the mailman")])
    assert asked.finish_reason != "unaddressed" and len(gen.prompts) == 1


def test_the_shipped_gate_is_used_only_with_its_own_embedder(
        asking: Pipeline, monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    monkeypatch.setattr("rag.service.pipeline.log.warning", lambda msg, *args: said.append(msg % args))
    assert asking.gate is None  # trained on MiniLM's cosines; the hash embedder has others
    gate_said = [m for m in said if "the answerability gate is off" in m]
    assert len(gate_said) == 1 and "fake-hash" in gate_said[0]
    model = SupportModel.load(GATE_FILE, GATE_FEATURES)
    assert model.embedder == "bundled:all-MiniLM-L6-v2" and "SciFact train" in model.trained_on
    scorer = SupportScorer(HashEmbedder(name=model.embedder).embed_documents)
    assert AnswerabilityGate.shipped(scorer, model.embedder) is not None


def test_a_sentence_a_source_contradicts_is_marked_and_shown() -> None:
    """With a verifier, a sentence no source supports and one contradicts is 'contradicted':
    its flags, the answer's warning, the CLI's footer and the app's page say so."""
    from rag.cli.ask_cmd import print_answer_footer
    from rag.generation.answering import Answerer
    from rag.grounding.support import SupportScorer
    from tests.fakes import NegationVerifier, ScriptedGenerator
    from ui.render import answer_html

    generator = ScriptedGenerator("Cats purr when they are content [1]. "
                                  "Cats do not sleep during the day [1].")
    scorer = SupportScorer(None, NegationVerifier())  # type: ignore[arg-type]
    answerer = Answerer(generator, scorer, 64)
    passage = hit("Cats purr when they are content. Cats sleep during the day.", 1)
    answer = answerer.answer_many(["What do cats do?"], [[passage]], [RetrievalNotes()])[0]
    first, second = answer.sentences
    assert first.supported and not first.contradicted_by
    assert second.supported is False and second.contradicted_by == [1]
    assert "contradicted by [1]" in second.flags
    assert any("contradicted by the sources" in w for w in answer.warnings)
    page = answer_html("t", answer.text, [s.to_dict() for s in answer.sentences],
                       answer.sources)
    assert 'class="contradicted"' in page and "contradicted by &#91;1&#93;" in page
    from click.testing import CliRunner

    with CliRunner().isolation() as (out, _, _):
        print_answer_footer(answer)
        footer = out.getvalue().decode()
    assert "Contradicted by the sources:" in footer and "Cats do not sleep" in footer


def test_without_the_verifier_the_learned_function_checks_answers(settings, monkeypatch) -> None:  # noqa: ANN001
    from rag.core.config import load_settings
    from rag.service.pipeline import Pipeline
    from tests.fakes import HashEmbedder

    said: list[str] = []
    monkeypatch.setattr("rag.service.pipeline.log.warning", lambda msg, *args: said.append(msg % args))
    monkeypatch.setenv("RAG_CITATIONS__VERIFIER_MODEL", "bundled:no-such-model")
    pipeline = Pipeline(load_settings(), "t", embedder=HashEmbedder())
    assert pipeline.scorer.method == "learned" and pipeline.scorer.verifier is None
    assert any("claim verifier is off" in m and "no-such-model" in m for m in said)
    monkeypatch.setenv("RAG_CITATIONS__VERIFIER_MODEL", "")
    assert Pipeline(load_settings(), "t", embedder=HashEmbedder()).scorer.method == "learned"


def test_embedder_dtype_sets_the_cross_encoders_precision(settings, monkeypatch) -> None:  # noqa: ANN001
    """One setting runs every encoder as an AVX2-only CPU does (float32), also on a bf16 CPU."""
    from rag.core.config import load_settings
    from rag.service.pipeline import Pipeline
    from tests.fakes import HashEmbedder

    monkeypatch.setenv("RAG_EMBEDDER__DTYPE", "float32")
    monkeypatch.setenv("RAG_CITATIONS__VERIFIER_MODEL", "bundled:verifier-minilm")  # not loaded
    pipeline = Pipeline(load_settings(), "t", embedder=HashEmbedder())
    assert pipeline.scorer.verifier is not None and pipeline.scorer.verifier.dtype == "float32"
    assert pipeline.reranker.dtype == "float32"  # type: ignore[attr-defined]


def test_beside_the_verifier_an_answer_is_withheld_only_when_the_fallback_agrees() -> None:
    """Withholding loses the whole answer: with a second opinion, an answer the verifier finds
    unsupported is kept (its sentences keep the verifier's flags) when the fallback function
    supports a sentence, and withheld when neither does."""
    from rag.generation.answering import Answerer
    from rag.grounding.support import SupportScorer
    from tests.fakes import NegationVerifier, ScriptedGenerator

    passage = hit("Cats purr when they are content and sleep during the day.", 1)
    verifier = SupportScorer(None, NegationVerifier())  # type: ignore[arg-type]
    fallback = SupportScorer(HashEmbedder().embed_documents, method="similarity")
    contradicted = "Cats do not purr when they are content [1]."
    unrelated = "The moon is made of green cheese [1]."
    alone = Answerer(ScriptedGenerator(contradicted), verifier, 64)
    assert alone.answer_many(["Do cats purr?"], [[passage]],
                             [RetrievalNotes()])[0].withheld == contradicted
    generator = ScriptedGenerator()
    both = Answerer(generator, verifier, 64, second_opinion=fallback)
    generator.enqueue(contradicted)
    generator.enqueue(unrelated)
    kept, withheld = both.answer_many(["Do cats purr?", "What is the moon?"],
                                      [[passage], [passage]], [RetrievalNotes(), RetrievalNotes()])
    assert kept.withheld is None and not kept.refused
    assert kept.sentences[0].supported is False and kept.sentences[0].contradicted_by == [1]
    assert withheld.refused and withheld.withheld == unrelated


def test_an_answer_that_only_restates_a_wh_question_is_recognised() -> None:
    from rag.generation.answering import restates_question

    asked = "Where are chunks and vectors committed per file during indexing?"
    assert restates_question(asked, "Chunks and vectors are committed per file during "
                                    "indexing [1].")
    assert restates_question("Which setting makes the app trust a proxy header?",
                             "The app trusts a proxy header [security](security.md).")
    assert restates_question("Which setting makes the app trust a proxy header?",
                             "The app trusts a proxy header [security.md] [1].")
    assert not restates_question(asked, "Chunks and vectors are committed to SQLite [1].")
    assert restates_question(asked, "Chunks and vectors are committed per file [1]. The KB "
                                    "is written as a new snapshot [1].")  # whatever follows
    assert not restates_question("What is the default of RAG_HOME?",
                                 "RAG_HOME defaults to `~/.rag` [1].")  # code is an answer
    assert not restates_question("How many chunks are committed per file?",
                                 "12 chunks are committed per file [1].")
    assert not restates_question(asked, REFUSAL)
    # a claim to check or a yes/no question is answered by restating it
    assert not restates_question("Chunks are committed per file.", "Chunks are committed per "
                                                                     "file [1].")
    assert not restates_question("Are chunks committed per file?", "Chunks are committed per "
                                                                    "file [1].")


def test_a_restated_answer_is_replaced_by_the_best_sampled_one() -> None:
    """The model restated the question: rag samples again from the same prompt and keeps the
    supported answer that adds something and stays on the question; the CLI says so."""
    from click.testing import CliRunner

    from rag.cli.ask_cmd import print_answer_footer

    gen = ScriptedGenerator()
    answerer = Answerer(gen, scorer(0.0), 64, resamples=3)
    docs = [hit("Chunks and vectors are committed to SQLite per file.")]
    asked = "Where are chunks and vectors committed per file?"
    echo = "Chunks and vectors are committed per file [1]."
    gen.enqueue(echo, echo, "Bananas are yellow [1].", "Chunks and vectors go to SQLite [1].")
    pieces: list[str] = []
    answer = answerer.answer_stream(asked, docs, RetrievalNotes(), pieces.append)
    assert "".join(pieces).strip() == echo  # what was streamed
    assert answer.text == "Chunks and vectors go to SQLite [1]." and answer.restated == echo
    assert gen.options[-1][0] == pytest.approx(0.7)  # sampled, not greedy
    assert "resample_s" in answer.timings and answer.timings["first_token_s"] is not None
    assert any("only restated the question" in w for w in answer.warnings)
    with CliRunner().isolation() as (out, _, _):
        print_answer_footer(answer)
        footer = out.getvalue().decode()
    assert "Asked again:" in footer and "SQLite" in footer
    # nothing better sampled: the first answer stays, with a warning
    gen.enqueue(echo, echo, "Bananas are yellow [1].", echo)
    kept, = answerer.answer_many([asked], [docs], [RetrievalNotes()])
    assert kept.text == echo and kept.restated is None
    assert any("none of 3 answers sampled again" in w for w in kept.warnings)
    # off by default in the Answerer, and never for an answer that adds something
    plain = Answerer(gen, scorer(0.0), 64)
    gen.enqueue(echo)
    assert plain.answer_many([asked], [docs], [RetrievalNotes()])[0].text == echo
    assert not gen.queue


def test_a_sample_cut_off_keeps_the_sentences_it_finished() -> None:
    cut = Generation("Chunks go to SQLite [1]. Vectors go there too [2]. The indexes are wr",
                     "length", 10, 64)
    assert finished_sentences(cut).text == "Chunks go to SQLite [1]. Vectors go there too [2]."
    assert finished_sentences(cut).finish_reason == "stop"
    assert finished_sentences(Generation("The indexes are wr", "length")) is None
    ended = Generation("Chunks go to SQLite [1]. Vectors too [2].", "length")
    assert finished_sentences(ended).text == "Chunks go to SQLite [1]. Vectors too [2]."
    cited_after = Generation("Chunks go to SQLite [1]. Vectors too. [2]", "length")
    assert finished_sentences(cited_after).text == "Chunks go to SQLite [1]. Vectors too. [2]"
    whole = Generation("Chunks go to SQLite [1].", "stop")
    assert finished_sentences(whole) is whole

"""Claims turned into their opposites by rule, so a verifier sees each piece of evidence both
support a claim and contradict its negation (SciFact's refuted claims were written by negating
real ones: "increases" for "decreases", "is not" for "is", "ineffective" for "effective").

The rules, in order: drop a negation ("is not" -> "is", "has no" -> "has a"); else swap the first
word that has an antonym (never inside a hyphenated name: "HIV-positive" stays); else negate the
first auxiliary ("is" -> "is not") or common verb ("causes" -> "does not cause"). A claim no rule
changes is left out (None).
"""

from __future__ import annotations

import re

_PAIRS = [
    ("increase", "decrease"), ("increases", "decreases"), ("increased", "decreased"),
    ("increasing", "decreasing"), ("higher", "lower"), ("greater", "smaller"),
    ("more", "less"), ("enhances", "impairs"), ("enhanced", "impaired"), ("enhance", "impair"),
    ("improves", "worsens"), ("improved", "worsened"), ("improve", "worsen"),
    ("promotes", "inhibits"), ("promoted", "inhibited"), ("promote", "inhibit"),
    ("activates", "suppresses"), ("activated", "suppressed"), ("activate", "suppress"),
    ("upregulates", "downregulates"), ("upregulated", "downregulated"),
    ("upregulation", "downregulation"), ("positive", "negative"), ("positively", "negatively"),
    ("effective", "ineffective"), ("accurate", "inaccurate"), ("beneficial", "harmful"),
    ("elevated", "reduced"), ("raises", "lowers"), ("rise", "fall"), ("gain", "loss"),
    ("accelerates", "slows"), ("stimulates", "represses"), ("sufficient", "insufficient"),
    ("necessary", "unnecessary"), ("safe", "unsafe"), ("stable", "unstable"),
    ("likely", "unlikely"), ("able", "unable"), ("present", "absent"), ("common", "rare"),
    ("protective", "detrimental"), ("reduces", "increases"), ("reduce", "increase"),
    ("prevents", "causes"), ("inhibits", "promotes"), ("impairs", "enhances"),
    ("decreases", "increases"), ("lowers", "raises"), ("worsens", "improves"),
    ("suppresses", "activates"), ("downregulates", "upregulates"), ("before", "after"),
    ("early", "late"), ("high", "low"), ("strong", "weak"),
]
ANTONYMS: dict[str, str] = {}
for _a, _b in _PAIRS:
    ANTONYMS.setdefault(_a, _b)
    ANTONYMS.setdefault(_b, _a)
_WORD = re.compile(r"[A-Za-z]+")
_DROP = [(re.compile(p, re.IGNORECASE), r) for p, r in (
    (r"\b(is|are|was|were|does|do|did|can|could|may|might|will|would|should|must|has|have) not\b",
     r"\1"),
    (r"\b(is|are|was|were)n't\b", r"\1"), (r"\bcannot\b", "can"),
    (r"\b(has|have|had|with|shows?|showed) no\b", r"\1 a"), (r"\bnever\b ", ""),
    (r"\bno longer\b ", ""), (r"\bdoes not\b ", ""), (r"\bnot\b ", ""),
)]
_AUX = re.compile(r"\b(is|are|was|were|can|could|may|might|will|would|should|must)\b")
_VERB = re.compile(r"\b(causes|leads|results|affects|protects|induces|regulates|predicts|"
                   r"contributes|correlates|requires|mediates|binds|interacts|modulates|"
                   r"controls|drives|triggers|blocks|limits|alters|determines|influences|"
                   r"plays|exhibits|shows|has|have|exists|occurs|confers|improves|reduces|"
                   r"increases|decreases|enhances|inhibits|promotes|prevents|impairs)\b")
_BASE = {"has": "have", "does": "do"}


def _matched_case(word: str, like: str) -> str:
    return word.capitalize() if like[0].isupper() else word


def negate(claim: str) -> str | None:
    """The claim's opposite by the first rule that applies, or None."""
    for pattern, replacement in _DROP:
        dropped, count = pattern.subn(replacement, claim, count=1)
        if count:
            return re.sub(r"\b([Aa]) ([aeiouAEIOU])", r"\1n \2", dropped)
    for match in _WORD.finditer(claim):
        swap = ANTONYMS.get(match.group().lower())
        beside = claim[max(0, match.start() - 1):match.start()] + claim[match.end():match.end() + 1]
        if swap and "-" not in beside:
            before = claim[:match.start()]
            if re.search(r"\b[Aa]n? $", before):  # "an increased" -> "a decreased"
                article = "an " if swap[0] in "aeiou" else "a "
                before = before[:before.rstrip().rfind(" ") + 1] + (
                    article.capitalize() if before.rstrip()[-2:].lstrip()[:1].isupper()
                    and len(before.rstrip()) <= 2 else article)
            return before + _matched_case(swap, match.group()) + claim[match.end():]
    aux = _AUX.search(claim)
    if aux:
        return claim[:aux.end()] + " not" + claim[aux.end():]
    verb = _VERB.search(claim)
    if verb:
        word = verb.group()
        base = _BASE.get(word) or (word[:-2] if word.endswith(("sses", "ches", "shes"))
                                   else word[:-1] if word.endswith("s") else word)
        aux_word = "do" if word in ("have",) else "does"
        return claim[:verb.start()] + f"{aux_word} not {base}" + claim[verb.end():]
    return None

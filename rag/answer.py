"""Extractive answers: pick the chapter's own sentences, cite their sections, or abstain.

The question's sections come from the hybrid retriever. Their sentences (precomputed at build
time with vectors and tokens, see index.py) are scored against the question, densely and by
IDF-weighted word overlap, plus the score of their section. The best one to three are quoted,
best section first and in chapter order inside a section, with the sentence before one that
cannot stand alone. English questions are answered from the English translation, each quote
with its aligned Chinese original; where a chapter has no translation, the Chinese is quoted.

The chapter does not cover a question when too little of it is in the chapter: the share of its
content words (Chinese: character pairs) found in the text is below a threshold calibrated on
the unanswerable questions of eval/questions.jsonl (dev part).
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np

from .retriever import DENSE_WEIGHT, Retriever, check_query, detect_language
from .types import Answer, Citation, Hit, RagError, section_key

LANGUAGES = ("auto", "zh", "en")
MAX_QUOTES = 3
SECTION_WEIGHT = 0.5  # how much a sentence's section score counts beside its own score
KEEP_RATIO = 0.85  # further quotes must score at least this share of the best one
SECOND_SECTION_RATIO = 0.9  # a second section is quoted only when it scores close to the first
# Abstain when less of the question than this is found in the chapter (see coverage()).
MIN_COVERAGE = {"zh": 0.53, "en": 0.52}

# A sentence that leans on the one before it: an ordinal, a connective or a pronoun first.
_NEEDS_CONTEXT = re.compile(
    r"^(?:第[二三四五六七八九十]|其次|再次|另一|此外|所以|因此|这|那|它|但|而|Second|Third|Another|Also|So\b|"
    r"This\b|These\b|That\b|It\b|They\b|But\b|Therefore\b|Then\b)", re.I)
_CJK_RUN = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]+")
# Characters that carry no topic: a character pair containing one says nothing about coverage.
_FUNCTION_CHARS = frozenset("的了是在和与及或也就都而又被把对从向为以于之其这那个些有吗呢吧啊呀么我你他她它们什怎哪谁几")

FRAMES = {
    "zh": {"answer": "本章在{sections}中这样回答：", "abstain": "本章没有涉及这个问题。",
           "suggest": "可以看看最接近的章节：", "original": "原文"},
    "en": {"answer": "The chapter answers this in {sections}:",
           "translated": "The chapter answers this in {sections} (quoted from the English translation of the "
                         "chapter, each with its Chinese original):",
           "cross": "The chapter answers this in {sections} (quoted in the original Chinese; the chapter has "
                    "no English translation):",
           "abstain": "The chapter does not cover this.", "suggest": "The closest sections are:",
           "original": "Chinese original"},
}


class _Sentences:
    """The index's sentences as arrays, with the statistics answers need; one per retriever."""

    def __init__(self, r: Retriever):
        recs = r.index.sentences
        self.recs = recs
        self.vectors = r.index.sentence_vectors
        self.section = np.array([r.section_index[section_key(s["chapter"], s["section"])] for s in recs], dtype=np.int64)
        self.quotable = np.array([s.get("kind", "text") == "text" for s in recs], dtype=bool)
        self.lang = np.array([s["lang"] for s in recs])
        self.tokens = [frozenset(s["tokens"]) for s in recs]
        df: dict[str, int] = {}
        for toks in self.tokens:
            for t in toks:
                df[t] = df.get(t, 0) + 1
        n = len(recs)
        self.idf = {t: math.log(1 + n / d) for t, d in df.items()}
        pair_df: dict[str, int] = {}
        for rec in recs:
            if rec["lang"] == "zh":
                for p in {rec["text"][i:i + 2] for i in range(len(rec["text"]) - 1)}:
                    pair_df[p] = pair_df.get(p, 0) + 1
        self.pair_idf = {p: math.log(1 + n / d) for p, d in pair_df.items()}
        self.glossary_words = {t for _, en in r.index.glossary for v in en for t in r.index.tokenize(v)}


@lru_cache(maxsize=8)
def _sentences(r: Retriever) -> _Sentences:
    return _Sentences(r)


@lru_cache(maxsize=1)
def default_retriever() -> Retriever:
    """The bundled index, loaded once per process."""
    return Retriever.load()


def check_language(lang: str) -> None:
    """Raise RagError unless lang is an answer language."""
    if lang not in LANGUAGES:
        raise RagError(f"unknown answer language {lang!r}; choose one of: {', '.join(LANGUAGES)}.")


def coverage(question: str, r: Retriever) -> float:
    """IDF-weighted share of the question found in the chapter.

    The items are Chinese character pairs (function characters aside) for a Chinese question,
    English word stems otherwise; an item absent from the chapter weighs like the rarest one.
    The glossary's terms are the chapter's terms, so they count as found in either language.
    """
    s = _sentences(r)
    if detect_language(question) == "zh":
        terms = [zh for zh, _ in r.index.glossary if zh in question]
        items = [run[i:i + 2] for run in _CJK_RUN.findall(question) for i in range(len(run) - 1)]
        items = [p for p in items if p[0] not in _FUNCTION_CHARS and p[1] not in _FUNCTION_CHARS]
        found = [p in s.pair_idf or any(p in t for t in terms) for p in items]
        idf = s.pair_idf
    else:
        items = []
    if not items:
        items = [t for t in r.index.tokenize(question) if not _CJK_RUN.match(t)]
        found = [t in s.idf or t in s.glossary_words for t in items]
        idf = s.idf
    if not items:
        return 0.0
    rare = max(idf.values(), default=1.0)
    weights = [idf.get(x, rare) for x in items]
    return sum(w for w, f in zip(weights, found) if f) / sum(weights)


def answer(question: str, retriever: Retriever | None = None, lang: str = "auto", k: int = 5,
           mode: str = "hybrid") -> Answer:
    """Answer a question with quotes from the chapter, in the question's language (or `lang`).

    `mode` is the retrieval mode that picks the sections ('hybrid', 'dense' or 'lexical').
    """
    question = check_query(question, k, mode)
    check_language(lang)
    r = retriever or default_retriever()
    qlang = detect_language(question)
    alang = qlang if lang == "auto" else lang
    qv = r.embed(question)
    chunk_scores, section_scores = r.scores(question, mode, qv=qv)
    hits = r.hits(chunk_scores, section_scores, k)
    if not hits or coverage(question, r) < MIN_COVERAGE[qlang]:
        return _abstain(question, alang, hits, r)

    s = _sentences(r)
    top = [r.section_index[h.id] for h in hits[:2]]
    if len(top) == 2 and section_scores[top[1]] < SECOND_SECTION_RATIO * section_scores[top[0]]:
        top = top[:1]
    # Reference lists and checklists are quoted only when they are what the question found first.
    cand = np.flatnonzero(np.isin(s.section, top) & (s.quotable | (s.section == top[0])))
    in_lang = cand[s.lang[cand] == alang]
    translated = alang == "en" and len(in_lang) > 0
    cand = in_lang if len(in_lang) else cand[s.lang[cand] == "zh"]  # no translation: quote the Chinese
    if len(cand) == 0:
        return _abstain(question, alang, hits, r)

    qtoks = set(r.index.tokenize(question))
    weight = sum(s.idf.get(t, 0.0) for t in qtoks) or 1.0
    overlap = np.array([sum(s.idf.get(t, 0.0) for t in qtoks & s.tokens[i]) / weight for i in cand])
    dense = np.clip(s.vectors[cand] @ qv[0], 0.0, 1.0)
    w = DENSE_WEIGHT[qlang]
    score = w * dense + (1 - w) * overlap + SECTION_WEIGHT * section_scores[s.section[cand]]
    order = np.argsort(-score, kind="stable")
    # The first quote is the best sentence of the best section (the retriever ranks sections
    # better than single sentences do); up to two more follow if they score nearly as well.
    lead = next(i for i in order if s.section[cand[i]] == top[0]) if np.any(s.section[cand] == top[0]) else order[0]
    chosen = [int(cand[lead])] + [int(cand[i]) for i in order[:MAX_QUOTES]
                                  if i != lead and score[i] >= KEEP_RATIO * score[order[0]]][:MAX_QUOTES - 1]
    chosen = _with_context(chosen, s)
    rank = {sec: n for n, sec in enumerate(top)}
    chosen.sort(key=lambda i: (rank[s.section[i]], s.recs[i]["start"]))
    citations = tuple(_citation(s.recs[i], translated) for i in chosen)
    return Answer(question=question, language=alang, answer=_format(alang, citations, translated),
                  abstained=False, citations=citations, hits=tuple(hits))


def _with_context(chosen: list[int], s: _Sentences) -> list[int]:
    """Add the neighbours a chosen sentence cannot be read without.

    Before it: the sentence it leans on (it starts with an ordinal, connective or pronoun, or is
    very short) or the lead-in that introduces its list item ("...的原因主要有："). After a
    chosen lead-in: the list items it introduces.
    """
    out = list(chosen)

    def same_section(a: int, b: int) -> bool:
        return 0 <= a < len(s.recs) and all(s.recs[a][f] == s.recs[b][f] for f in ("source", "chapter", "section"))

    def lead_in(i: int) -> bool:
        return s.recs[i]["text"].rstrip().endswith((":", "："))

    for i in chosen:
        prev = i - 1
        if same_section(prev, i) and prev not in out and (
                _NEEDS_CONTEXT.match(s.recs[i]["text"]) or len(s.recs[i]["text"]) < 12
                or (s.recs[i]["item"] and lead_in(prev))):
            out.append(prev)
        if lead_in(i):
            nxt = i + 1
            while same_section(nxt, i) and s.recs[nxt]["item"] and len(out) < MAX_QUOTES + 4:
                if nxt not in out:
                    out.append(nxt)
                nxt += 1
    return out


def _citation(rec: dict, translated: bool) -> Citation:
    original = rec.get("original") if translated else None
    return Citation(section=rec["section"], title=rec["title"], quote=rec["text"], source=rec["source"],
                    start=rec["start"], end=rec["end"], lang=rec["lang"],
                    original=_citation(original, False) if original else None,
                    chapter=rec["chapter"], id=section_key(rec["chapter"], rec["section"]))


def _section_list(citations) -> str:
    seen = {}
    for c in citations:
        seen.setdefault(c.id, c.section)
    return ", ".join(f"§{sec}" for sec in seen.values())


def _format(lang: str, citations: tuple[Citation, ...], translated: bool) -> str:
    f = FRAMES[lang]
    if lang == "zh":
        frame = f["answer"].format(sections=" " + _section_list(citations) + " ")
    else:
        cross = any(c.lang == "zh" for c in citations)
        key = "cross" if cross else "translated" if translated else "answer"
        frame = f[key].format(sections=_section_list(citations))
    lines = [frame, ""]
    for c in citations:
        lines.append(f"> {c.quote} [§{c.section}]")
        if c.original is not None:
            lines.append(f"> （{f['original']}：{c.original.quote}）")
    return "\n".join(lines)


def _abstain(question: str, lang: str, hits: list[Hit], r: Retriever) -> Answer:
    f = FRAMES[lang]
    suggestions = tuple({"section": h.section, "chapter": h.chapter, "id": h.id,
                         "title": section_title(r, h.id, lang)} for h in hits[:3])
    sep = "" if lang == "zh" else " "
    text = f["abstain"]
    if suggestions:
        text += sep + f["suggest"] + sep + ("；" if lang == "zh" else "; ").join(
            f"§{x['section']} {x['title']}" for x in suggestions)
    return Answer(question=question, language=lang, answer=text, abstained=True, suggestions=suggestions,
                  hits=tuple(hits))


def section_title(r: Retriever, key: str, lang: str) -> str:
    """A section's title (by qualified id) in the given language when the corpus has it, else in the original's."""
    sec = r.index.find_section(key, lang)
    return sec.title if sec else key

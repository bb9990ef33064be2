"""Extractive answers: pick the chapter's own sentences, cite their sections, or abstain.

One pipeline, with every language-specific part in the language profile (lang.py):

1. *Language*: the question's language by its frame and script (lang.question_language);
   Japanese or Korean gets a reply asking for Chinese or English.
2. *Follow-ups*: with `history` (the previous turns), a short or anaphoric question ("它的缺点呢？",
   "What about its drawbacks?") is resolved against the previous turn: the previous question's
   topic words are put in front of it, and the previous turn's cited sections get a small
   boost. A self-contained question ignores the history.
3. *Retrieval*: the hybrid retriever scores chunks and sections.
4. *Abstention*: a calibrated logistic model (abstain.py) on how much of the question the
   retrieved sections cover, the scores and their margin, title match and question type says
   whether the chapter answers it.
5. *Composition*: the sentences of the best section (and of the second when it scores close) are
   scored against the question, densely and by IDF-weighted overlap of words (and, for Chinese,
   character pairs; a word every candidate repeats counts less than a rare detail term), plus a
   bonus for the sentence shape the question type asks for (a defining sentence for a
   definition). Never quoted as the answer: the chapter's own questions (unless the user asks for
   them), headings, bare list labels, short lead-ins to a code block or figure. A list question quotes
   the list whole with its lead-in (bounded); a comparison quotes each side; a quote that leans
   on the sentence before it (a connective, a pronoun, a list item after its lead-in, the middle
   of a list item) brings that sentence along, so quotes never start mid-context; quotes read in
   chapter order, best section first.

English questions are answered from the English translation, each quote with its aligned
Chinese original; where a chapter has no translation, the Chinese is quoted.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .lang import (CJK_RUN, DEFINING, DEFINITION_FRAME_EN, FUNCTION_CHARS, NEEDS_CONTEXT, SHORT_SENTENCE, STOP_EN,
                   char_pairs,
                   frames, is_anaphoric, is_label, is_lead_in, is_question_sentence, question_language, question_type)
from .retriever import Retriever, check_query
from .text import display, normalize, shown_quote
from .types import Answer, Citation, Hit, RagError, section_key, sections_named

LANGUAGES = ("auto", "zh", "en")
# The composer's weights, from MAX_QUOTES to LOCAL_IDF: one setting for the bundled chapter and the
# whole book, chosen by 5-fold cross-validation on the dev splits of both question sets
# (eval/tools/cv.py; figures in eval/README.md).
MAX_QUOTES = 3
MAX_LIST = 8  # sentences of a quoted list, lead-in included
SECTION_WEIGHT = 0.0  # how much a second section's lower score counts against its sentences
# A sentence's dense share beside its word overlap: by question language, and "cross" for a
# question answered from text in the other language (English on an untranslated chapter).
SENTENCE_DENSE_WEIGHT = {"zh": 0.3, "en": 0.3, "cross": 0.7}
KEEP_RATIO = 0.85  # further quotes must score at least this share of the best one (own scores)
SECOND_SECTION_RATIO = 0.85  # a second section is quoted only when it scores close to the first
SHAPE_BONUS = 0.25  # bonus of a sentence of the shape the question type asks for
PAIR_WEIGHT = 0.5  # share of character-pair overlap beside word overlap (Chinese question, Chinese text)
LOCAL_IDF = 0.5  # exponent of the within-candidates IDF factor of a question word (0: global IDF only)
# weight of the Chinese translations of an English question's words (the retriever's: glossary terms
# and word translations) in a Chinese sentence's word overlap, beside the question's own words
TRANSLATED_WORD_WEIGHT = 0.5
FOLLOWUP_BOOST = 0.05  # bonus of the previous turn's sections for a follow-up question
MAX_CONTEXT_STEPS = 4  # at most this many sentences are brought along before a quote


class _Field:
    """A set-valued attribute of each sentence (a frozenset), made on first use: an answer looks at
    the sentences of one or two sections."""

    def __init__(self, recs: list[dict], make):
        self.recs, self.make, self.made = recs, make, {}

    def __getitem__(self, i: int) -> frozenset:
        if i not in self.made:
            self.made[i] = self.make(self.recs[i])
        return self.made[i]


class _Sentences:
    """The index's sentences as arrays, with the statistics answers need; one per retriever."""

    def __init__(self, r: Retriever):
        recs = r.index.sentences
        self.recs = recs
        self.vectors = r.index.sentence_vectors
        self.section = np.array([r.section_index[section_key(s["chapter"], s["section"])] for s in recs], dtype=np.int64)
        self.prose = np.array([s.get("kind", "text") == "text" for s in recs], dtype=bool)  # not references, checklists
        self.lang = np.array([s["lang"] for s in recs])
        self.tokens = _Field(recs, lambda rec: frozenset(rec["tokens"]))
        # document frequencies and the sentences' subjects and heading flags come from the build
        # (counting them here took ~0.6 s of the first answer on the whole book)
        stats = r.index.sentence_stats
        n = stats["sentences"]
        self.idf = {t: math.log(1 + n / d) for t, d in stats["df"].items()}
        self.pair_idf = {p: math.log(1 + n / d) for p, d in stats["pair_df"].items()}
        self.glossary_words = {t for _, en in r.index.glossary for v in en for t in r.index.tokenize(v)}
        self.head_tokens = _Field(recs, lambda rec: frozenset(rec["head"]))
        self.pairs = _Field(recs, lambda rec: char_pairs(display(rec["text"])) if rec["lang"] == "zh" else frozenset())
        self.heading = np.array([rec["heading"] for rec in recs], dtype=bool)
        shown = [display(rec["text"]) for rec in recs]  # a sentence's shape is read as it reads (`&emsp;` a space)
        self.question = np.array([is_question_sentence(t) for t in shown], dtype=bool)
        self.lead_in = np.array([is_lead_in(t) for t in shown], dtype=bool)
        self.label = np.array([rec["item"] and is_label(t) and self._next_is_item(i)
                               for i, (rec, t) in enumerate(zip(recs, shown))], dtype=bool)
        self.first_of_block = np.array([i == 0 or not self.same_place(i - 1, i)
                                        or recs[i - 1]["block"] != rec["block"] for i, rec in enumerate(recs)])

    def same_place(self, a: int, b: int) -> bool:
        """Whether sentences a and b are in the same file and section."""
        return 0 <= a < len(self.recs) and 0 <= b < len(self.recs) and \
            all(self.recs[a][f] == self.recs[b][f] for f in ("source", "section"))

    def _next_is_item(self, i: int) -> bool:
        return self.same_place(i, i + 1) and self.recs[i + 1]["item"]

    def quotable(self, i: int, questions_ok: bool, labels_ok: bool = False) -> bool:
        """Whether sentence i can be quoted as an answer (a label only as the head of its list)."""
        return not (self.heading[i] or (self.label[i] and not labels_ok) or (self.question[i] and not questions_ok))

    def previous(self, i: int) -> int:
        """The sentence i leans on: the one before it, or for the first sentence of a list item,
        the first sentence of the item before (or the lead-in)."""
        j = i - 1
        if self.recs[i]["item"] and self.first_of_block[i]:
            while self.same_place(j - 1, j) and not self.first_of_block[j]:
                j -= 1
        return j


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


def _items(question: str, lang: str, r: Retriever) -> tuple[list[str], str]:
    """The coverage items of a question: Chinese character pairs (no function characters), else word stems.
    The question is read in the matching view the corpus was tokenized in (text.normalize): markup
    such as an HTML tag is no part of it, as it is no part of the sentences it is looked up in."""
    question = normalize(question)
    if lang == "zh":
        items = [run[i:i + 2] for run in CJK_RUN.findall(question) for i in range(len(run) - 1)]
        items = [p for p in items if p[0] not in FUNCTION_CHARS and p[1] not in FUNCTION_CHARS]
        if items:
            return items, "pairs"
    frame = set(r.index.tokenize(" ".join(DEFINITION_FRAME_EN)))
    return [t for t in r.index.tokenize(question) if not CJK_RUN.match(t) and t not in frame], "tokens"


def coverage(question: str, r: Retriever, within: np.ndarray | None = None) -> float:
    """IDF-weighted share of the question found in the chapter (or in the sentences `within`).

    The items are Chinese character pairs (function characters aside) for a Chinese question,
    English word stems otherwise; an item absent from the chapter weighs like the rarest one.
    The glossary's terms are the chapter's terms, so they count as found in either language; and
    an English word counts as found where the Chinese word it translates to is (the index's word
    translations: learned from the aligned sentences, else CC-CEDICT's): the Chinese text is the
    original, an English translation one wording of it ("questions" where it says "problems"),
    and most of the book has none. CC-CEDICT's general senses make some false finds
    (reinforcement -> 加强, in the chapter); counting only the learned pairs, or CC-CEDICT's at
    half weight or in the two best sections only, cost more on dev (abstention's out-of-fold
    expected cost, chapter / book: 0.068 / 0.127 as is, 0.091 / 0.142 learned only, 0.076 / 0.133
    half, 0.079 / 0.144 sections only).
    """
    s = _sentences(r)
    lang = question_language(question)
    items, kind = _items(question, "zh" if lang == "zh" else "en", r)
    if not items:
        return 0.0
    if kind == "pairs":
        terms = [zh for zh, _ in r.index.glossary if zh in question]
        vocab = s.pair_idf.keys() if within is None else \
            frozenset().union(*(s.pairs[i] for i in within))
        found = [p in vocab or (within is None and any(p in t for t in terms)) for p in items]
        idf = s.pair_idf
    else:
        vocab = s.idf.keys() if within is None else frozenset().union(*(s.tokens[i] for i in within))
        zh = r.index.word_translations
        found = [t in vocab or zh.get(t) in vocab or (within is None and t in s.glossary_words) for t in items]
        idf = s.idf
    rare = max(idf.values(), default=1.0)
    weights = [idf.get(x, rare) for x in items]
    return sum(w for w, f in zip(weights, found) if f) / sum(weights)


# ---------------------------------------------------------------- follow-ups

def _cited(c) -> str:
    """A citation's section: its qualified id when it has one, else its bare section id."""
    if isinstance(c, dict):
        return str(c.get("id") or c["section"])
    return c.id or c.section


def _turn(turn) -> tuple[str, list[str]]:
    """(question, cited sections) of a previous turn: an Answer or a dict with "question" and
    "citations" (dicts or Citations with "id" or "section"), "sections" or "relevant"."""
    if isinstance(turn, Answer):
        return turn.question, [_cited(c) for c in turn.citations]
    if isinstance(turn, dict):
        cites = turn.get("citations") or []
        sections = [_cited(c) for c in cites] or \
            list(turn.get("sections") or turn.get("relevant") or [])
        return str(turn.get("question") or ""), [str(x) for x in sections]
    raise RagError("history must be a list of previous turns: Answer objects or "
                   '{"question": ..., "citations": [{"section": ...}]} dicts.')


_FRAME_WORDS = {
    "zh": re.compile(r"什么是|是什么|有哪些|哪些|为什么|怎么样|怎么|如何|有什么|什么|吗|呢|[？?。！!，,\s]"),
}


def topic(question: str, lang: str) -> str:
    """The question without its question words: what a follow-up can refer to."""
    if lang == "zh":
        return _FRAME_WORDS["zh"].sub("", question)
    return " ".join(w for w in re.findall(r"[\w'-]+", question) if w.lower() not in STOP_EN)


def resolve(question: str, lang: str, history, r: Retriever) -> tuple[str, list[str]]:
    """The text to retrieve with and the sections to favour: the question itself, or for a
    follow-up, the previous turn's topic followed by the question and that turn's sections."""
    if not history:
        return question, []
    if not isinstance(history, (list, tuple)):
        raise RagError("history must be a list of previous turns (oldest first).")
    prev_q, prev_sections = _turn(history[-1])
    if not prev_q.strip():
        return question, []
    try:  # the previous question is retrieved with too: the same checks as a question
        prev_q = check_query(prev_q)
    except RagError as e:
        raise RagError(f"the last turn of the history: {e}") from None
    items, _ = _items(question, lang, r)
    if not (is_anaphoric(question, lang) or len(items) <= 1):
        return question, []
    plang = question_language(prev_q)
    return f"{topic(prev_q, plang if plang in ('zh', 'en') else lang)} {question}", prev_sections


# ---------------------------------------------------------------- answering

@dataclass
class Analysis:
    """What answer() works from: the resolved query, its retrieval and the abstention features."""

    question: str
    query: str
    lang: str
    qtype: str
    qv: np.ndarray
    section_scores: np.ndarray  # sections outside the retrieval's candidates score 0
    hits: list
    features: dict


def analyse(question: str, r: Retriever, k: int = 5, mode: str = "hybrid", history=None,
            chapters=None) -> Analysis:
    """Retrieval and abstention features for a (checked) question in 'zh' or 'en' (within `chapters`)."""
    lang = question_language(question)
    lang = lang if lang in ("zh", "en") else "zh"
    query, favoured = resolve(question, lang, history, r)
    # the previous turn's sections (qualified ids; a bare one names every chapter's section of that
    # number) are raised by FOLLOWUP_BOOST where they have evidence (score > 0);
    # two sections at least, for the features' second score
    boost = {key: FOLLOWUP_BOOST for f in favoured for key in sections_named(f, r.section_keys)}
    found = r.retrieve(query, max(k, 2), mode, boost=boost, chapters=chapters)
    qv = found.query_vector if found.query_vector is not None else r.embed(query)
    section_scores, hits = found.section_scores, found.hits[:k]
    qtype = question_type(question, lang)
    from .abstain import features
    return Analysis(question, query, lang, qtype, qv, section_scores, hits,
                    features(query, qtype, qv, section_scores, r))


def answer(question: str, retriever: Retriever | None = None, lang: str = "auto", k: int = 5,
           mode: str = "hybrid", history=None, chapters=None) -> Answer:
    """Answer a question with quotes from the chapter, in the question's language (or `lang`).

    `mode` is the retrieval mode that picks the sections ('hybrid', 'dense' or 'lexical');
    `chapters` (e.g. ["ch05"]) limits them to those chapters (None: all).
    `history` is the conversation so far, oldest first: Answer objects, or dicts
    {"question": ..., "citations": [{"section": ...}]} (or "sections": [...]); a follow-up that
    leans on the last turn is resolved against it.
    """
    question = check_query(question, k, mode)
    check_language(lang)
    r = retriever or default_retriever()
    qlang = question_language(question)
    if qlang == "other":
        alang = "en" if lang == "auto" else lang
        return Answer(question=question, language=alang, answer=answer_frames(r, alang)["unsupported"], abstained=True)
    alang = qlang if lang == "auto" else lang
    _sentences(r)  # made first: on a cold start, while the encoder still loads in the background
    a = analyse(question, r, k, mode, history, chapters)
    from .abstain import answerable
    if not a.hits or not answerable(a.features):
        return _abstain(question, alang, a.hits, r)
    chosen, translated = compose(a, alang, r)
    if not chosen:
        return _abstain(question, alang, a.hits, r)
    s = _sentences(r)
    citations = tuple(_citation(s.recs[i], translated, r.title_en) for i in chosen)
    return Answer(question=question, language=alang, answer=_format(alang, answer_frames(r, alang), citations, translated),
                  abstained=False, citations=citations, hits=tuple(a.hits))


def compose(a: Analysis, alang: str, r: Retriever) -> tuple[list[int], bool]:
    """The sentences to quote (indices into the index's sentences, in reading order) and whether
    they come from a translation."""
    s = _sentences(r)
    scores = a.section_scores
    top = [r.section_index[h.id] for h in a.hits[:2]]
    if len(top) == 2 and scores[top[1]] < SECOND_SECTION_RATIO * scores[top[0]]:
        top = top[:1]
    # Reference lists and checklists are quoted only when they are what the question found first.
    cand = np.flatnonzero(np.isin(s.section, top) & (s.prose | (s.section == top[0])))
    # Each section is quoted in the answer's language when it has text in it, else in the original
    # Chinese: an English question keeps its best section's Chinese sentences when the second
    # section, from a translated chapter, has English ones.
    in_lang = [sec for sec in top if np.any(s.lang[cand[s.section[cand] == sec]] == alang)]
    cand = cand[np.where(np.isin(s.section[cand], in_lang), s.lang[cand] == alang, s.lang[cand] == "zh")]
    translated = alang == "en" and bool(in_lang)
    questions_ok = a.qtype == "bookquestions"
    cand = np.array([i for i in cand if s.quotable(int(i), questions_ok, labels_ok=a.qtype == "list")
                     and not _points_at_nothing(s, int(i))], dtype=int)
    cand = cand[_first_of_each_text(s, cand)]
    if len(cand) == 0:
        return [], translated

    # Word overlap: the question's own words count fully, the words a follow-up borrows from the
    # previous turn (its topic) half; a Chinese question also counts its character pairs.
    own = set(r.index.tokenize(a.question))
    borrowed = set(r.index.tokenize(a.query)) - own
    words = {**{t: 0.5 for t in borrowed}, **{t: 1.0 for t in own}}
    overlap = _overlap(cand, words, s.tokens, s.idf)
    chinese = s.lang[cand] == "zh"
    if a.lang == "en" and TRANSLATED_WORD_WEIGHT and chinese.any():
        # an English question read in Chinese sentences: its words' translations count there too
        extra = {t: TRANSLATED_WORD_WEIGHT * w for t, w in _translated_words(a, r, words).items() if t not in words}
        overlap = np.where(chinese, _overlap(cand, {**extra, **words}, s.tokens, s.idf), overlap)
    if a.lang == "zh" and PAIR_WEIGHT and s.lang[cand[0]] == "zh":
        pairs, _ = _items(a.question, "zh", r)
        if pairs:
            overlap = (1 - PAIR_WEIGHT) * overlap + PAIR_WEIGHT * _overlap(cand, dict.fromkeys(pairs, 1.0),
                                                                         s.pairs, s.pair_idf)
    dense = np.clip(s.vectors[cand] @ a.qv[0], 0.0, 1.0)
    w = np.where(s.lang[cand] == a.lang, SENTENCE_DENSE_WEIGHT[a.lang], SENTENCE_DENSE_WEIGHT["cross"])
    subject = own or borrowed
    shape = np.array([_shape(a.qtype, s, int(i), subject) for i in cand])
    # own_score: the sentence's score apart from its section's; the section term only ranks a
    # second section's sentences against the first's, so quotes are kept by their own score
    own_score = w * dense + (1 - w) * overlap + SHAPE_BONUS * shape
    section_term = SECTION_WEIGHT * (scores[s.section[cand]] - scores[top[0]])
    score = own_score + section_term
    order = np.argsort(-score, kind="stable")
    # The first quote is the best sentence of the best section (the retriever ranks sections
    # better than single sentences do); up to two more follow if they score nearly as well.
    in_top = [i for i in order if s.section[cand[i]] == top[0]]
    lead = in_top[0] if in_top else order[0]
    n_more = 0 if shape[lead] >= 0.5 else MAX_QUOTES - 1  # a defining sentence answers a definition alone
    chosen = [int(cand[lead])] + [int(cand[i]) for i in order[:MAX_QUOTES]
                                  if i != lead and score[i] >= KEEP_RATIO * score[order[0]]][:n_more]
    if a.qtype == "list":
        chosen = _overview(chosen[0], s, own) or _whole_list(chosen[0], s) or [i for i in chosen if not s.label[i]]
    elif a.qtype == "comparison":
        chosen = _both_sides(chosen, s, dict(zip(cand.tolist(), score.tolist())), subject)
    chosen = with_context(chosen, s, alang, list_labels=a.qtype in ("list", "comparison"))
    rank = {sec: n for n, sec in enumerate(top)}
    chosen.sort(key=lambda i: (rank.get(s.section[i], len(rank)), s.recs[i]["start"]))
    chosen = [chosen[j] for j in _first_of_each_text(s, chosen)]  # context may bring a repeat back
    return chosen, translated


def _first_of_each_text(s: _Sentences, ids) -> list[int]:
    """Positions in ids of the first sentence of each distinct text (spacing aside): a section
    that repeats a sentence (ch17's NCNN steps give one command twice) is quoted once."""
    seen, keep = set(), []
    for n, i in enumerate(ids):
        text = " ".join(display(s.recs[int(i)]["text"]).split())
        if text not in seen:
            seen.add(text)
            keep.append(n)
    return keep


def _translated_words(a: Analysis, r: Retriever, words: dict[str, float]) -> dict[str, float]:
    """The Chinese words an English question's words translate to, as the retriever's
    cross-lingual BM25 reads them (Retriever.translated_tokens), each with the largest weight of
    a word it comes from (a glossary term's weighs 1)."""
    out: dict[str, float] = {}
    for source, t in r.translated_tokens(a.question, list(words), "en"):
        out[t] = max(out.get(t, 0.0), 1.0 if source is None else words[source])
    return out


def _overlap(cand, weights: dict[str, float], items: list, idf: dict) -> np.ndarray:
    """IDF-weighted share of the question's items (words or character pairs, each with a weight)
    found in each candidate sentence. With LOCAL_IDF an item weighs less the more candidates
    share it: a term every sentence of the section repeats (its topic) tells them apart less
    than a rare detail term does."""
    n = len(cand)
    asked = frozenset(weights)
    common = [asked & items[i] for i in cand]
    df: dict[str, int] = {}
    for c in common:
        for t in c:
            df[t] = df.get(t, 0) + 1
    w = {}
    for t, x in weights.items():
        local = math.log(1 + n / df[t]) / math.log(1 + n) if t in df and n > 1 else 1.0
        w[t] = x * idf.get(t, 0.0) * local ** LOCAL_IDF
    total = sum(w.values())
    out = np.array([sum(w[t] for t in c) for c in common])
    return out / (total or 1.0)


def _shape(qtype: str, s: _Sentences, i: int, subject: set[str]) -> float:
    """How far sentence i has the shape the question type asks for: for a definition, 1 for a
    defining sentence about the question's subject ("**源域**: ...", "X是/指 ..."); for a keyword
    question (the type of whatever matches no question frame), a defining sentence scores the
    IDF-weighted share of the question's words its head holds, so a bare term ("负迁移") gets 1 and a
    long detail question does not favour any "X: ..." sentence that shares one word with it."""
    if qtype not in ("definition", "keyword"):
        return 0.0
    defining = DEFINING[s.recs[i]["lang"]].search(display(s.recs[i]["text"])) and not s.lead_in[i]
    common = s.head_tokens[i] & subject
    if not (defining and common):
        return 0.0
    if qtype == "definition":
        return 1.0
    return sum(s.idf.get(t, 0.0) for t in common) / (sum(s.idf.get(t, 0.0) for t in subject) or 1.0)


def _points_at_nothing(s: _Sentences, i: int) -> bool:
    """A short lead-in with no list after it ("代码：", "示意图如下：", "计算如下："): it introduces
    a code block, figure or formula that answers do not show, and says nothing itself."""
    if not s.lead_in[i]:
        return False
    lang = s.recs[i]["lang"] if s.recs[i]["lang"] in SHORT_SENTENCE else "en"
    return len(s.recs[i]["text"].strip(" *")) < 2 * SHORT_SENTENCE[lang] and not s._next_is_item(i)


def _whole_list(i: int, s: _Sentences) -> list[int]:
    """The list around sentence i with its lead-in or label: the first sentence of each item, up to
    the next label (a new list), bounded by MAX_LIST."""
    start = i
    while s.same_place(start - 1, start) and s.recs[start]["item"] and s.recs[start - 1]["item"] \
            and not (s.lead_in[start - 1] or s.label[start - 1] or s.label[start]):
        start -= 1
    if not s.label[start] and s.same_place(start - 1, start) and (s.lead_in[start - 1] or s.label[start - 1]):
        start -= 1
    if not (s.lead_in[start] or s.label[start] or s.recs[start]["item"]):
        return []
    out = [start]
    j = start + 1
    while s.same_place(j, start) and s.recs[j]["item"] and not s.label[j] and len(out) < MAX_LIST:
        if s.first_of_block[j]:
            out.append(j)
        j += 1
    return out if len(out) > 1 else []


def _overview(i: int, s: _Sentences, own: set[str]) -> list[int]:
    """For a list question over a section of labelled lists ("按特征空间分类", "按迁移方法分类"...)
    that names none of them: each label with its first item. A question that names one (by a word
    only that label has) gets that list whole instead (empty here)."""
    labels = [j for j in range(len(s.recs)) if s.label[j] and s.same_place(j, i)]
    if len(labels) < 2:
        return []
    counts: dict[str, int] = {}
    for j in labels:
        for t in s.tokens[j]:
            counts[t] = counts.get(t, 0) + 1
    if any(counts[t] == 1 and t in own for j in labels for t in s.tokens[j]):
        return []
    out = []
    for j in labels:
        if s.same_place(j, j + 1) and s.recs[j + 1]["item"] and not s.label[j + 1]:
            out += [j, j + 1]
    return out[:MAX_LIST] if len(out) >= 4 else []


def _both_sides(chosen: list[int], s: _Sentences, score: dict[int, float], words: set[str]) -> list[int]:
    """For a comparison: when the section lays out sides under lead-ins ("优点：" / "缺点：") that
    are about the question (a lead-in shares one of its `words`, or the best sentence is a lead-in
    or one of their items), each lead-in with its best item."""
    sec = chosen[0]
    leads = [i for i in range(len(s.recs)) if s.lead_in[i] and s.same_place(i, sec)
             and s.recs[i]["lang"] == s.recs[sec]["lang"]]
    if len(leads) < 2:
        return chosen
    sides = []
    for lead in leads[:2]:
        items = []
        j = lead + 1
        while s.same_place(j, lead) and s.recs[j]["item"]:
            if s.first_of_block[j]:
                items.append(j)
            j += 1
        sides.append((lead, items))
    if not any(sec == lead or sec in items or s.tokens[lead] & words for lead, items in sides):
        return chosen  # the lead-ins lay out something else ("示意图如下：", "代码：")
    out = [x for lead, items in sides if items for x in (lead, max(items, key=lambda y: (score.get(y, -1.0), -y)))]
    return out or chosen


def needs_context(s: _Sentences, i: int) -> bool:
    """Whether sentence i cannot be read without the one before it (same section): it opens with
    a connective, ordinal or pronoun; it is very short; or it is a list item right after its
    lead-in. A lead-in or a list label points forward and needs nothing."""
    prev = i - 1
    if not s.same_place(prev, i):
        return False
    rec = s.recs[i]
    if s.lead_in[i] or s.label[i]:
        return False  # "这里是...的一些优点：", "按迁移情景分类" point forward, not back
    lang = rec["lang"] if rec["lang"] in NEEDS_CONTEXT else "en"
    text = display(rec["text"]).lstrip("*（( ")
    return bool(NEEDS_CONTEXT[lang].match(text) or len(text) < SHORT_SENTENCE[lang]
                or (rec["item"] and s.first_of_block[i] and s.lead_in[prev]))


def with_context(chosen: list[int], s: _Sentences, lang: str = "zh", list_labels: bool = False) -> list[int]:
    """Chosen sentences plus what they cannot be read without: the sentences before one that leans
    on its predecessor (up to MAX_CONTEXT_STEPS), the list items after a chosen lead-in, and (for
    list questions) the label over a list item; and a table cell's other piece of its row where
    an image cell cut the row in two ("扩张卷积 |" alone names a row and answers nothing)."""
    out = list(dict.fromkeys(chosen))
    for i in list(out):
        for j in _row_piece(s, i):
            if j not in out:
                out.append(j)
        j, steps = i, 0
        while steps < MAX_CONTEXT_STEPS and needs_context(s, j) and s.previous(j) not in out:
            j, steps = s.previous(j), steps + 1
            out.append(j)
        if list_labels and s.same_place(j - 1, j) and s.label[j - 1] and j - 1 not in out:
            out.append(j - 1)
        if s.lead_in[i]:
            nxt = i + 1
            while s.same_place(nxt, i) and s.recs[nxt]["item"] and len(out) < MAX_QUOTES + MAX_LIST:
                if nxt not in out and s.first_of_block[nxt]:
                    out.append(nxt)
                nxt += 1
    return out


def _row_piece(s: _Sentences, i: int) -> list[int]:
    """The sentence across a cell bar from sentence i in its table row (a sentence never holds an
    image, so an image cell splits a row into a label piece ending in "|" and a piece opening with
    "|"), or []."""
    text = s.recs[i]["text"]
    for j, cut in ((i + 1, text.endswith("|")), (i - 1, text.startswith("|"))):
        if cut and s.same_place(i, j) and s.recs[j]["block"] == s.recs[i]["block"]:
            return [j]
    return []


def _citation(rec: dict, translated: bool, title_en: dict[str, str]) -> Citation:
    original = rec.get("original") if translated else None
    key = section_key(rec["chapter"], rec["section"])
    return Citation(section=rec["section"], title=rec["title"], quote=rec["text"], source=rec["source"],
                    start=rec["start"], end=rec["end"], lang=rec["lang"],
                    original=_citation(original, False, title_en) if original else None,
                    chapter=rec["chapter"], id=key, title_en=title_en.get(key, ""))


def _section_list(citations) -> str:
    seen = {}
    for c in citations:
        seen.setdefault(c.id, c.section)
    return ", ".join(f"§{sec}" for sec in seen.values())


def answer_frames(r: Retriever, lang: str) -> dict[str, str]:
    """The frames of an answer in lang, naming what the index holds (本章 / 本书, chapter / book)."""
    return frames(lang, r.index.manifest["counts"]["chapters"])


def _format(lang: str, f: dict[str, str], citations: tuple[Citation, ...], translated: bool) -> str:
    if lang == "zh":
        frame = f["answer"].format(sections=" " + _section_list(citations) + " ")
    else:
        cross = any(c.lang == "zh" for c in citations)
        mixed = cross and any(c.lang == "en" for c in citations)
        key = "mixed" if mixed else "cross" if cross else "translated" if translated else "answer"
        frame = f[key].format(sections=_section_list(citations))
    lines = [frame, ""]
    for c in citations:
        lines.append(f"> {shown_quote(c.quote)} [§{c.section}]")
        if c.original is not None:
            lines.append(f"> （{f['original']}：{shown_quote(c.original.quote)}）")
    return "\n".join(lines)


def _abstain(question: str, lang: str, hits: list[Hit], r: Retriever) -> Answer:
    f = answer_frames(r, lang)
    suggestions = tuple({"section": h.section, "chapter": h.chapter, "id": h.id,
                         "title": section_title(r, h.id, lang)} for h in hits[:3])
    text = f["abstain"]
    if suggestions:
        text += f["sep"] + f["suggest"] + f["sep"] + f["list_sep"].join(
            f"§{x['section']} {x['title']}" for x in suggestions)
    return Answer(question=question, language=lang, answer=text, abstained=True, suggestions=suggestions,
                  hits=tuple(hits))


def section_title(r: Retriever, key: str, lang: str) -> str:
    """A section's title (by qualified id) in the given language when the corpus has it (an English
    title from toc.en.tsv counts), else in the original's."""
    sec = r.index.find_section(key, lang)
    if lang == "en" and sec is not None and r.index.lang_of(sec.source) != "en" and key in r.title_en:
        return r.title_en[key]
    return sec.title if sec else key

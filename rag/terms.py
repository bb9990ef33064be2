"""Mine bilingual term pairs from the corpus itself (pure functions).

Chinese technical writing glosses its terms in parentheses: `卷积神经网络(Convolutional Neural
Network, CNN)`, `源域（Source domain）`, and the other way round `later connection(横向连接)`.
`mine_term_pairs` finds these pairs; `glossary_from_corpus` merges them by Chinese term into the
`(Chinese, [English variants])` entries `rag.glossary.translations` takes.

The hard part is where the Chinese term starts: the parenthesis closes a sentence fragment
(`每个卷积层后添加批归一化(batch normalization)`). The characters before the parenthesis are cut
into words with jieba; the candidates are the word-aligned suffixes of 2-8 characters that do not
cross a function word (的, 是, 包括, 称为 ...). The miner takes the longest candidate that is
also a candidate at another occurrence of the same English term (the common suffix of
`什么是批归一化(Batch Normalization)` and `...添加批归一化(batch normalization)`) or that stands
alone at least twice in the corpus (after punctuation, a non-Chinese character or a function
word), i.e. is used as a unit; failing both, the shortest candidate.

Measured on the whole book (eval/terms_sample.tsv, 40 hand-checked pairs per method): 26/40 pairs
exactly right with the lexical rules, 26/40 with the bundled USE encoder. Most misses are spans
that hold Latin letters inside (`位置敏感ROI池化`), jieba segmentation slips and parentheticals
that name a tool or dataset rather than translate the term.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from typing import Iterable

from .lang import CJK, CJK_CHAR

_OPEN, _CLOSE = "(（", ")）"
# Regions whose parentheses are not prose: fenced and inline code, LaTeX math, HTML tags, URLs.
_NOT_PROSE = re.compile(
    r"^ {0,3}(`{3,}|~{3,})[^\n]*\n.*?^ {0,3}\1[^\n]*$"  # fenced code
    r"|\$\$.*?\$\$|\$[^$\n]+\$"  # math
    r"|`[^`\n]+`|<[^<>\n]+>|https?://\S+",
    re.M | re.S,
)
# One English term: words of letters/digits joined by - ' . / & +, separated by single spaces.
_WORD = r"[A-Za-z0-9]+(?:[-'’./&+][A-Za-z0-9]+)*"
_EN_TERM = re.compile(rf"(?=[A-Za-z]){_WORD}(?: {_WORD})*")
_EN_TAIL = re.compile(rf"(?:(?<=[^A-Za-z0-9_\-'’./&+])|^)((?=[A-Za-z]){_WORD}(?: {_WORD}){{0,5}}) ?$")
_LATIN_BEFORE = re.compile(r"(?:^|[^A-Za-z0-9_\-.])([A-Za-z][A-Za-z0-9\-]{0,11} ?)$")  # 'U' of U形模块
_ACRONYM = re.compile(r"[A-Z][A-Za-z0-9\-]*[A-Z0-9][A-Za-z0-9\-]*$")  # CNN, R-CNN, ResNet50, YOLOv3
_CITATION = re.compile(r"\b(?:1[89]|20)\d\d\b|\bet al\b", re.I)
_NOT_TERMS = {"e.g", "i.e", "etc", "see", "fig", "figure", "table", "eq", "todo", "note", "optional"}
# Function words a Chinese term does not start with or cross.
STOP_WORDS = frozenset(
    "的 地 得 了 着 是 和 与 及 以及 或 或者 为 在 对 把 将 被 由 从 以 用 即 也 就 都 而 且 但 并 又 "
    "这 那 其 该 此 各 每 个 一个 一种 一些 这些 那些 这个 那个 这种 那种 称为 称作 叫做 叫 简称 "
    "又称 也称 即为 就是 包括 包含 例如 比如 如 等 等等 中 后 前 时 里 内 外 之 所 所谓 "
    "通过 使用 采用 利用 基于 进行 我们 它 它们 可以 能够 需要 主要 一般 通常 称之为 被称为 "
    "提出 有 没有 是否 什么 如何 怎样 为什么 叫作 作为 成为 得到 表示 指 即是 也是 也就是 "
    "就是说 其中 对于 关于 根据 因为 所以 如果 则 会 能 要 种 些 时候 之后 之前 一 两 "
    "采取 引入 使得 使 让 给 向 到 来 去 上述 下面 以下 如下".split()
)
_STOP_CHARS = frozenset(w for w in STOP_WORDS if len(w) == 1)
MIN_ZH, MAX_ZH, MAX_EN_WORDS = 2, 8, 6
UNIT_BONUS = 0.75  # a candidate used as a unit elsewhere beats one a character closer in length
SIM_PRIORS = 0.05  # with an encoder, unit and length only break near-ties of similarity
MIN_SIMILARITY = 0.25  # below it a parenthetical is taken as no translation (not used for acronyms)
_EN_FUNCTION_WORDS = {"a", "an", "the", "of", "and", "or", "on", "in", "for", "to", "with", "by"}


def mine_term_pairs(texts: Iterable[str], encoder=None) -> list[tuple[str, str, int]]:
    """(Chinese term, English term, occurrences) for the parenthesized glosses of markdown texts.

    With a multilingual `encoder` (rag.embedding), the boundary whose span is most similar to
    the English term wins, and a gloss whose best span is less similar than MIN_SIMILARITY is
    dropped (a parenthetical that is not a translation: `预训练模型(ImageNet)`).
    English spellings that differ only in case are one term, shown in their most frequent form.
    Sorted by occurrences (most first), then Chinese term.
    """
    prose = [_NOT_PROSE.sub(lambda m: "\n" * max(1, m.group().count("\n")), t) for t in texts]
    found = [g for p in prose for g in _glosses(p)]  # (candidate Chinese terms, English term)
    corpus = "\n".join(prose)
    by_en: dict[str, list[list[str]]] = defaultdict(list)
    for cands, en in found:
        by_en[en.lower()].append(cands)
    unit_cache: dict[str, int] = {}
    sim = _similarity(found, encoder) if encoder is not None else None

    pairs: Counter[tuple[str, str]] = Counter()
    spelling: dict[str, Counter[str]] = defaultdict(Counter)
    for cands, en in found:
        others = {c for other in by_en[en.lower()] if other is not cands for c in other}
        if term := _choose(cands, en, others, corpus, unit_cache, sim):
            pairs[term, en.lower()] += 1
            spelling[en.lower()][en] += 1
    out = [(zh, spelling[en].most_common(1)[0][0], n) for (zh, en), n in pairs.items()]
    return sorted(out, key=lambda p: (-p[2], p[0], p[1]))


def glossary_from_corpus(texts: Iterable[str], encoder=None) -> list[tuple[str, list[str]]]:
    """Mined pairs merged by Chinese term: (Chinese, English variants, most frequent first)."""
    merged: dict[str, Counter[str]] = defaultdict(Counter)
    for zh, en, n in mine_term_pairs(texts, encoder):
        merged[zh][en] += n
    return [(zh, [en for en, _ in c.most_common()]) for zh, c in sorted(merged.items())]


def _glosses(text: str):
    """([candidate Chinese terms], English term) for each gloss in the parentheses of text.

    `中文(English)` gives the word-aligned candidates before the parenthesis; `English(中文)`
    gives the parenthesized Chinese as the only candidate.
    """
    for start, end in _outer_parentheses(text):
        inner = text[start + 1:end - 1].strip()
        before = text[max(0, start - 40):start]
        if not CJK_CHAR.search(inner):
            if before.endswith(" "):
                before = before[:-1]
            if before and CJK_CHAR.match(before[-1]) and (cands := _zh_candidates(before)):
                for en in _english_terms(inner):
                    yield cands, en
        elif (
            re.fullmatch(rf"[{CJK}]{{{MIN_ZH},{MAX_ZH}}}", inner)
            and inner[0] not in _STOP_CHARS
            and (m := _EN_TAIL.search(before))
            and len(terms := _english_terms(m.group(1))) == 1
        ):
            yield [inner], terms[0]


def _outer_parentheses(text: str) -> list[tuple[int, int]]:
    """[start, end) of each outermost balanced ( ) / （ ） group (the two widths pair freely)."""
    out, depth, start = [], 0, 0
    for i, ch in enumerate(text):
        if ch in _OPEN:
            if depth == 0:
                start = i
            depth += 1
        elif ch in _CLOSE and depth:
            depth -= 1
            if depth == 0:
                out.append((start, i + 1))
        elif ch == "\n":
            depth = 0  # a gloss does not span lines; an unclosed "(" does not swallow the text
    return out


def _english_terms(inner: str) -> list[str]:
    """The English terms a parenthetical gives: 'Support Vector Machine, SVM' -> both; [] if not a gloss.

    Nested parentheses are alternatives too ('Convolutional Neural Network (CNN)'). A list of
    more than two names, or two names neither of which is an acronym, is an enumeration, not a gloss.
    """
    parts = [p.strip() for p in re.split(r"[,，;；()（）]", inner) if p.strip()]
    if not parts or len(parts) > 2:
        return []
    for p in parts:
        if (
            not _EN_TERM.fullmatch(p)
            or len(p.split()) > MAX_EN_WORDS
            or _CITATION.search(p)
            or p.lower().rstrip(".") in _NOT_TERMS
            or sum(c.isalpha() for c in p) < 2
        ):
            return []
    if len(parts) == 2 and not any(_ACRONYM.match(p) and " " not in p for p in parts):
        return []
    return parts


def _zh_candidates(before: str) -> list[str]:
    """Word-aligned suffixes (2-8 characters, no function word) of the Chinese run ending at `before`.

    A candidate that reaches back to the start of the run may take the Latin word in front of it
    (`U形模块`, `K近邻`, `Laplace 分布`) as a further candidate.
    """
    import jieba

    jieba.setLogLevel(60)
    run = re.search(f"[{CJK}]+$", before).group()
    words = jieba.lcut(run[-(MAX_ZH + 8):], HMM=False)
    out, term = [], ""
    for w in reversed(words):
        if w in STOP_WORDS or len(w + term) > MAX_ZH:
            break
        term = w + term
        if len(term) >= MIN_ZH:
            out.append(term)
    if out and term == run and (m := _LATIN_BEFORE.search(before[: -len(run)])):
        out.append(m.group(1) + term)
    return out


def _choose(cands, en, others, corpus, cache, sim=None) -> str | None:
    """The best candidate boundary (see the module docstring), or None."""
    target = _zh_length(en)

    def score(c: str) -> tuple[float, int]:
        unit = c in others or _unit_count(c, corpus, cache) >= 2
        size = len(CJK_CHAR.findall(c)) + sum(1 if len(w) == 1 else 2 for w in re.findall(r"[A-Za-z0-9\-]+", c))
        if sim is None or _is_acronym(en):  # an acronym's embedding says little about its expansion
            return -abs(size - target) + UNIT_BONUS * unit, size
        return sim[c, en] + SIM_PRIORS * (UNIT_BONUS * unit - abs(size - target)), size

    if not cands:
        return None
    best = max(cands, key=score)
    return None if sim is not None and not _is_acronym(en) and sim[best, en] < MIN_SIMILARITY else best


def _similarity(found, encoder) -> dict[tuple[str, str], float]:
    """Cosine similarity of every (candidate, English term) of the glosses, one encoder call."""
    import numpy as np

    pairs = {(c, en) for cands, en in found for c in cands}
    texts = sorted({t for p in pairs for t in p})
    if not texts:
        return {}
    vecs = np.asarray(encoder.encode(texts), dtype=np.float32)
    vecs /= np.maximum(np.linalg.norm(vecs, axis=1, keepdims=True), 1e-12)
    row = {t: i for i, t in enumerate(texts)}
    return {(c, en): float(vecs[row[c]] @ vecs[row[en]]) for c, en in pairs}


def _zh_length(en: str) -> int:
    """Expected length in Chinese characters: 2 a letter of an acronym, else 2 a word (3 for long, 1 for short ones)."""
    n = 0
    for w in re.split(r"[ \-]", en):
        if _is_acronym(w):
            n += 2 * sum(c.isalpha() for c in w)
        elif w and w.lower() not in _EN_FUNCTION_WORDS:
            n += 1 if len(w) <= 3 else 2 if len(w) <= 9 else 3
    return max(n, MIN_ZH)


def _is_acronym(w: str) -> bool:
    """CNN, R-CNN, YOLOv3 is not: all capitals (a plural s allowed: CNNs), at most 6 characters."""
    stem = w[:-1] if w.endswith("s") else w
    return bool(_ACRONYM.match(stem)) and stem.isupper() and len(stem) <= 6


def _unit_count(term: str, corpus: str, cache: dict[str, int]) -> int:
    """How often `term` occurs starting at a word boundary: after a non-Chinese character or a function word."""
    if term not in cache:
        n, i = 0, corpus.find(term)
        while i >= 0:
            prev = corpus[i - 1] if i else "\n"
            if not CJK_CHAR.match(prev) or prev in _STOP_CHARS or corpus[max(0, i - 2):i] in STOP_WORDS:
                n += 1
            i = corpus.find(term, i + 1)
        cache[term] = n
    return cache[term]

"""Choose the retriever's fusion weights by cross-validation (issue 11).

One parameter set for the whole book and the bundled chapter, per question language: the dense
share of a chunk's score (own-language text, and cross-lingual when some chapters lack the
question's language), the weight of the best title row and of a question's lone Chinese
characters in BM25. Questions: the dev split of eval/questions.jsonl (scored on the
chapter's index, copies of a heading included) and the dev split of the book's questions
(scored on a whole-book index); follow-ups (history) are left out.
The objective is hit@1 + 0.5 * MRR@10 averaged per set, then over the two sets, with a
near-duplicate of a gold section counted as gold and the ranking collapsed as a search shows it
(a section's near-duplicates are not listed after it).

    python eval/tools/cv_weights.py --book-index /tmp/book-index [--chapter-index index] [--chapter-in-book-index DIR]
    python eval/tools/cv_weights.py --book-index /tmp/book-index --test [--chapter-in-book-index DIR]

Protocol (fixed before the choices it made): everything is chosen on the dev splits only, by
this script's 5-fold CV and objective, with the chapter's copies of a heading in its dev set;
the test splits are scored once, with the final choice (`--test`), and reported as they come.
With --chapter-in-book-index, CV mode also prints the fitted weights' hit@1 on the chapter's dev
questions inside the whole book (reported, not part of the objective).

`--test` scores the test splits once with the weights in rag/retriever.py: hit@1 and MRR@10 with
95 % bootstrap intervals for the book (zh; en on chapters with English text, ch01-04; en on the
others) and for the chapter, alone and (with --chapter-in-book-index, an index of the book plus
the chapter's files renamed `proj_transfer_learning.{zh,en}.md`) inside the whole book.

Prints each fold's choice, the CV score (held-out hit@1 per set and language) and the weights
fitted on all dev questions. Book questions: eval/book_questions.jsonl with its dev/test split.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from rag.evaluate import read_questions, resolve_relevant, with_duplicates  # noqa: E402
from rag.glossary import translations  # noqa: E402
from rag.lang import detect_language  # noqa: E402
from rag.lexical import term_weights  # noqa: E402
from rag.retriever import Retriever  # noqa: E402
from rag.text import normalize  # noqa: E402

GRID = {
    "zh": {"dense": [0.3, 0.4, 0.5, 0.6, 0.7], "cross": [0.9], "title": [0.0, 0.2, 0.4, 0.8], "single": [1.0, 0.5]},
    "en": {"dense": [0.2, 0.3, 0.4, 0.5], "cross": [0.5, 0.6, 0.7, 0.8, 0.9], "title": [0.0, 0.2, 0.4, 0.8],
           "single": [1.0]},
}
SEED = 11


def book_questions(repo: Path = REPO) -> list[dict]:
    path = repo / "eval" / "book_questions.jsonl"
    raw = {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    return [{**q, "split": raw[q["id"]].get("split")} for q in read_questions(path)]


def chapter_questions(repo: Path = REPO) -> list[dict]:
    path = repo / "eval" / "questions.jsonl"
    raw = {r["id"]: r for r in map(json.loads, path.read_text(encoding="utf-8").splitlines())}
    return [{**q, "split": raw[q["id"]].get("split")} for q in read_questions(path)]


def moved(questions: list[dict]) -> list[dict]:
    """The chapter's questions (copies of a heading left out) with gold ids in the chapter-in-book index."""
    return [{**q, "relevant": ["proj_transfer_learning/" + s.split("/")[-1] for s in q["relevant"]]} for q in questions
            if not q.get("heading_copy")]


def group(name: str, q: dict, lang: str) -> str:
    """The reporting group of a question: its language; for the book's English, where its gold lies."""
    if name == "book" and lang == "en":
        return "en ch01-04" if all(s.split("/")[0] in {"ch01", "ch02", "ch03", "ch04"} for s in q["relevant"]) \
            else "en other"
    return lang


def components(r: Retriever, query: str) -> dict[str, np.ndarray]:
    """Every score of the retriever's hybrid fusion over the whole index (a full scan; the
    retriever computes the same on its candidates): per chunk `dense`, per section `title`;
    `lexical` holds each BM25 language's chunks with their raw BM25 over the question's words and
    over its lone Chinese characters apart, so that `lexical` can weigh the characters
    (`lexical_scores`)."""
    lang = detect_language(query)
    chunk_mask, title_mask = r._masks[lang]
    ids = np.arange(len(r.chunks))
    qv = r.embed(query)
    out = {"dense": np.clip(r.store.dense_scores(qv, ids), 0.0, 1.0) * chunk_mask,
           "title": r._title_scores(qv, np.arange(len(r.section_keys)), title_mask)}
    tokens = r.index.tokenize(normalize(query))
    lists = {lang: tokens} if lang in r.store.languages else {}
    if r._cross[lang]:
        cross = tokens + r.index.tokenize(" ".join(translations(query, r.index.glossary)))
        if lang == "en":
            cross += [r.index.word_translations[t] for t in tokens if t in r.index.word_translations]
        lists.update({o: cross for o in r.store.languages if o != lang})
    out["lexical"] = []
    for l, toks in lists.items():
        sel = ids[r._chunk_lang == l]
        words = term_weights(toks, 0.0) or [1.0] * len(toks)  # lone characters 0, the rest 1
        out["lexical"].append((sel, r.store.lexical_scores(l, toks, sel, words),
                               r.store.lexical_scores(l, toks, sel, [1.0 - w for w in words])))
    out["chunk_mask"] = chunk_mask
    return out


def lexical_scores(parts: dict, single: float) -> np.ndarray:
    """Each chunk's BM25 with lone Chinese characters weighted `single` (lexical.term_weights),
    divided by the top score over all languages, masked as the retriever masks it."""
    lexical = np.zeros(len(parts["dense"]), dtype=np.float32)
    for sel, words, chars in parts["lexical"]:
        lexical[sel] = words + np.float32(single) * chars
    top = float(lexical.max(initial=0.0))
    return (lexical / top if top > 0 else lexical) * parts["chunk_mask"]


def fuse(r: Retriever, parts: dict, dense: float, title: float, single: float = 1.0) -> np.ndarray:
    """Section scores of the hybrid fusion with the given weights (as rag/retriever.py fuses)."""
    chunk = dense * parts["dense"] + (1.0 - dense) * lexical_scores(parts, single)
    section = np.zeros(len(r.section_keys), dtype=np.float32)
    np.maximum.at(section, r._chunk_section, chunk)
    return (section + title * parts["title"]) / (1.0 + title)


class Cached:
    """Each question's components, computed once; fused and ranked for any weights."""

    def __init__(self, r: Retriever, questions: list[dict], set_name: str):
        known = set(r.section_keys)
        bad = [q["id"] for q in questions if any("/" in s and s not in known for s in q["relevant"])]
        if bad:
            print(f"{set_name}: skipping {len(bad)} questions whose gold id is not a section: {bad}", file=sys.stderr)
        # Standalone questions only (a follow-up needs its history); copies of a heading are a set of their own.
        questions = [q for q in questions if q["id"] not in bad and not q.get("history")]
        qs = with_duplicates(resolve_relevant(questions, r.section_keys), r.duplicates)
        self.r = r
        self.items = []
        self.also = {r.section_index[k]: {r.section_index[d] for d in v} for k, v in r.duplicates.items()}
        for q in qs:
            if not q["relevant"]:
                continue
            lang = detect_language(q["question"])
            gold = np.isin(np.array(r.section_keys), q["relevant"])
            self.items.append((set_name, q, lang, components(r, q["question"]), gold))

    def rank_scores(self, item, w: dict) -> tuple[float, float]:
        _, _, lang, parts, gold = item
        dense = w["cross"] if self.r._cross[lang] else w["dense"]
        section = fuse(self.r, parts, dense, w["title"], w["single"])
        order = np.argsort(-section, kind="stable")[:40]
        shown, rank = set(), 0
        for sec in order:
            if section[sec] <= 0 or rank >= 10:
                break
            if sec in shown:
                continue
            shown |= self.also.get(sec, set())
            rank += 1
            if gold[sec]:
                return float(rank == 1), 1.0 / rank
        return 0.0, 0.0


def objective(items, w) -> float:
    """hit@1 + 0.5 * MRR@10, averaged per set, then over the sets (each set counts the same, so the
    chapter's ~25 questions a language are not outweighed by the book's 100+)."""
    per_set: dict[str, list[float]] = {}
    for c, it in items:
        h, m = c.rank_scores(it, w)
        per_set.setdefault(it[0], []).append(h + 0.5 * m)
    return float(np.mean([np.mean(v) for v in per_set.values()])) if per_set else 0.0


def fit(items, lang) -> dict:
    grid = GRID[lang]
    best, best_w = -1.0, None
    for combo in itertools.product(*grid.values()):
        w = dict(zip(grid, combo))
        score = objective(items, w)
        if score > best + 1e-9:
            best, best_w = score, w
    return best_w


def current_weights(lang: str) -> dict:
    from rag import retriever as R

    return {"dense": R.DENSE_WEIGHT[lang], "cross": R.CROSS_LINGUAL_DENSE_WEIGHT, "title": R.TITLE_WEIGHT[lang],
            "single": R.SINGLE_CHAR_WEIGHT[lang]}


def interval(values: list[float], n: int = 2000) -> list[float]:
    rng = np.random.default_rng(SEED)
    v = np.array(values)
    means = v[rng.integers(0, len(v), (n, len(v)))].mean(axis=1)
    return [round(float(np.quantile(means, 0.025)), 3), round(float(np.quantile(means, 0.975)), 3)]


def test_report(args) -> dict:
    book = [q for q in book_questions() if q["split"] == "test"]
    chapter = [q for q in chapter_questions() if q["split"] == "test"]
    chapter_r = Retriever.load(args.chapter_index)
    sets = [("book", Retriever.load(args.book_index), book),
            ("chapter alone", chapter_r, [q for q in chapter if not q.get("heading_copy")]),
            ("chapter heading copies", chapter_r, [q for q in chapter if q.get("heading_copy")])]
    if args.chapter_in_book_index:
        sets.append(("chapter in book", Retriever.load(args.chapter_in_book_index), moved(chapter)))
    out = {}
    for name, r, qs in sets:
        c = Cached(r, qs, name)
        groups: dict[str, list] = {}
        for it in c.items:
            groups.setdefault(group(name, it[1], it[2]), []).append(c.rank_scores(it, current_weights(it[2])))
        for g, v in groups.items():
            hits, mrr = [h for h, _ in v], [m for _, m in v]
            out[f"{name} / {g}"] = {"n": len(v), "hit@1": round(float(np.mean(hits)), 3), "hit@1_ci": interval(hits),
                                    "mrr@10": round(float(np.mean(mrr)), 3), "mrr@10_ci": interval(mrr)}
    return out


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--book-index", required=True)
    ap.add_argument("--chapter-index", default=str(REPO / "index"))
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--test", action="store_true", help="score the test splits with the shipped weights")
    ap.add_argument("--chapter-in-book-index",
                    help="the book plus the chapter (files renamed proj_transfer_learning.*)")
    args = ap.parse_args(argv)
    if args.test:
        print(json.dumps(test_report(args), indent=1))
        return

    chapter_r = Retriever.load(args.chapter_index)
    chapter_dev = [q for q in chapter_questions() if q["split"] == "dev"]
    caches = [Cached(chapter_r, chapter_dev, "chapter"),
              Cached(Retriever.load(args.book_index), [q for q in book_questions() if q["split"] == "dev"], "book")]
    cib = Cached(Retriever.load(args.chapter_in_book_index), moved(chapter_dev), "chapter in book") \
        if args.chapter_in_book_index else None
    result = {}
    for lang in ("zh", "en"):
        items = [(c, it) for c in caches for it in c.items if it[2] == lang]
        rng = random.Random(SEED)
        rng.shuffle(items)
        folds = [items[i::args.folds] for i in range(args.folds)]
        held, held_obj = {}, {}
        for f in range(args.folds):
            train = [x for g, fold in enumerate(folds) if g != f for x in fold]
            w = fit(train, lang)
            for c, it in folds[f]:
                h, m = c.rank_scores(it, w)
                held.setdefault(f"{it[0]} / {group(it[0], it[1], lang)}", []).append(h)
                held_obj.setdefault(it[0], []).append(h + 0.5 * m)
            print(f"{lang} fold {f + 1}: {w}", file=sys.stderr)
        final = fit(items, lang)
        fitted: dict[str, list[float]] = {}
        for c, it in items:
            fitted.setdefault(f"{it[0]} / {group(it[0], it[1], lang)}", []).append(c.rank_scores(it, final)[0])
        result[lang] = {"weights": final,
                        "cv_objective": round(float(np.mean([np.mean(v) for v in held_obj.values()])), 4),
                        "cv_hit@1": {s: round(float(np.mean(v)), 3) for s, v in held.items()},
                        "n": {s: len(v) for s, v in held.items()},
                        "dev_hit@1_fitted": {s: round(float(np.mean(v)), 3) for s, v in fitted.items()}}
        if cib is not None:
            v = [cib.rank_scores(it, final)[0] for it in cib.items if it[2] == lang]
            result[lang]["chapter_in_book_dev_hit@1_fitted"] = {"hit@1": round(float(np.mean(v)), 3), "n": len(v)}
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()

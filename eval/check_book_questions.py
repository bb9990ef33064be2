"""Check the book question set against the book as the product's own loader reads it.

Usage: python eval/check_book_questions.py [eval/book_questions.jsonl] [--book book]
       python eval/check_book_questions.py eval/book_heldout.jsonl   # the held-out set

The held-out set (eval/book_heldout.jsonl, split "heldout") gets the same checks, with split
"heldout" instead of dev|test, and one more: none of its questions repeats a question of
eval/book_questions.jsonl (same text once case, spaces and punctuation are dropped, or a
character-bigram Jaccard above 0.7).

The sections are those of `rag.corpus.read_corpus(book)` -- the same ids `rag build` puts in the
index -- so a question's gold means what `rag eval` will score. Per question:
- the record: id (unique), question, lang zh|en, kind, split dev|test, relevant, evidence;
- every `relevant` id is a section key of the loader (`ch05/5.3`, `ch13/13.5~2`);
- answerable questions have 1-3 evidence spans, each exact (`text == file_text[start:end]`, the
  file read as UTF-8 with newline="", `source` relative to the book folder), inside the body of
  one of the question's gold sections in that file, neither starting nor ending inside markup;
  unanswerable ones (`relevant: []`) have no evidence and kind offtopic or nearby;
- the question does not copy a gold section's heading (character-bigram Jaccard <= 0.5);
- no evidence span, and no sentence the loader yields inside a gold section (what an answer can
  quote), contains an image link, an HTML tag or a zero-width character (for the loader's sentences: outside
  math, code, links and bold, where it is part of the span); evidence holds no HTML
  entity either (the loader's sentences may: `&emsp;` inside a sentence is counted, not an error).
tests/test_book_questions.py runs these checks. Exit status 1 on any error.
"""
from __future__ import annotations

import argparse
import json
import re
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from rag.corpus import Corpus, read_corpus  # noqa: E402
from rag.types import RagError  # noqa: E402

QUESTIONS = ROOT / "eval" / "book_questions.jsonl"
HELDOUT = ROOT / "eval" / "book_heldout.jsonl"
SPLITS = ("dev", "test")
HELDOUT_SPLITS = ("heldout",)
DUPLICATE_LIMIT = 0.7
BOOK = ROOT / "book"
KINDS = {"definition", "why", "how", "list", "comparison", "yesno", "keyword", "rambling",
         "detail", "typo", "offtopic", "nearby"}
UNANSWERABLE_KINDS = {"offtopic", "nearby"}
FIELDS = {"id", "question", "lang", "relevant", "kind", "evidence", "split"}
SIMILARITY_LIMIT = 0.5
# what a quote must never contain (issue 9): an image link, an HTML tag or a zero-width character
UNCLEAN = re.compile(r"!\[[^\]\n]*\]\([^)\n]*\)|</?[A-Za-z][A-Za-z0-9-]*(?:\s[^<>\n]*)?/?>"
                     r"|[\u200b\u200c\u200d\u2060\ufeff]")
# inside math, code, a link or bold a zero-width character is part of it (the quote takes it whole)
PROTECTED = re.compile(r"\$\$[^$]*\$\$|\$[^$]*\$|`[^`]*`|\*\*[^*]*\*\*|\[[^\]]*\]\([^)]*\)")
ENTITY = re.compile(r"&(?:[A-Za-z]+|#\d+);")  # not in hand-written evidence; counted in the loader's sentences
MARKUP = re.compile(r"\$\$.*?\$\$|\$[^$\n]+\$|\*\*[^*\n]+\*\*|<[^<>\n]+>|!?\[[^\]\n]*\]\([^)\n]*\)")


def unclean(text: str) -> re.Match | None:
    """The first thing in a loader's sentence that a quote must not hold (a zero-width character
    inside math, code, a link or bold is part of that span and allowed)."""
    inside = [m.span() for m in PROTECTED.finditer(text)]
    for m in UNCLEAN.finditer(text):
        if not (len(m.group()) == 1 and any(a < m.start() < b for a, b in inside)):
            return m
    return None


def bigrams(s: str) -> set[str]:
    s = re.sub(r"[\s\W_]+", "", s.lower())
    return {s[i:i + 2] for i in range(len(s) - 1)} or ({s} if s else set())


def jaccard(a: str, b: str) -> float:
    x, y = bigrams(a), bigrams(b)
    return len(x & y) / len(x | y) if x | y else 0.0


def inside_markup(text: str, i: int) -> bool:
    """True if offset i (a span boundary) falls strictly inside $..$, **..**, <..> or a [..](..) link."""
    a = text.rfind("\n", 0, i) + 1
    z = text.find("\n", i)
    line = text[a:len(text) if z < 0 else z]
    return any(m.start() < i - a < m.end() for m in MARKUP.finditer(line))


def read_questions(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def check(questions: list[dict], corpus: Corpus, splits: tuple[str, ...] = SPLITS) -> list[str]:
    """Every problem of the question set, one message each (empty: the set is valid).

    `splits`: the values `split` may take (dev|test for the tuning set, heldout for the held-out set)."""
    by_key: dict[str, list] = {}
    for sec in corpus.sections:
        by_key.setdefault(sec.key, []).append(sec)
    errors: list[str] = []
    seen: set[str] = set()
    for q in questions:
        where = f"{q.get('id', '?')}"
        if set(q) != FIELDS:
            errors.append(f"{where}: fields must be {sorted(FIELDS)}, got {sorted(q)}")
            continue
        if q["id"] in seen:
            errors.append(f"{where}: duplicate id")
        seen.add(q["id"])
        if not isinstance(q["question"], str) or not q["question"].strip():
            errors.append(f"{where}: empty question")
        if q["lang"] not in ("zh", "en"):
            errors.append(f"{where}: lang must be zh or en")
        if q["split"] not in splits:
            errors.append(f"{where}: split must be {' or '.join(splits)}")
        if q["kind"] not in KINDS:
            errors.append(f"{where}: unknown kind {q['kind']!r}")
        rel, ev = q["relevant"], q["evidence"]
        unknown = [r for r in rel if r not in by_key]
        if unknown:
            errors.append(f"{where}: the loader has no section {unknown}")
            continue
        if not rel:
            if q["kind"] not in UNANSWERABLE_KINDS:
                errors.append(f"{where}: relevant [] needs kind offtopic or nearby")
            if ev:
                errors.append(f"{where}: an unanswerable question has evidence")
            continue
        if q["kind"] in UNANSWERABLE_KINDS:
            errors.append(f"{where}: kind {q['kind']} but relevant is not empty")
        if not 1 <= len(ev) <= 3:
            errors.append(f"{where}: needs 1-3 evidence spans, has {len(ev)}")
        gold = [sec for r in rel for sec in by_key[r]]
        for span in ev:
            src, s, e = span.get("source"), span.get("start"), span.get("end")
            text = corpus.texts.get(src)
            if text is None:
                errors.append(f"{where}: evidence source {src!r} is not a file of the book")
                continue
            if not span.get("text", "").strip() or text[s:e] != span["text"]:
                errors.append(f"{where}: evidence text != {src}[{s}:{e}]")
                continue
            if not any(sec.source == src and sec.start <= s and e <= sec.end for sec in gold):
                inside = [sec.key for sec in corpus.sections if sec.source == src and sec.start <= s < sec.end]
                errors.append(f"{where}: evidence {src}[{s}:{e}] is not inside {rel} (the loader files it under {inside})")
            if inside_markup(text, s) or inside_markup(text, e):
                errors.append(f"{where}: evidence starts or ends inside markup: {span['text'][:40]!r}")
            if m := UNCLEAN.search(span["text"]) or ENTITY.search(span["text"]):
                errors.append(f"{where}: evidence contains {m.group()!r}")
        for sec in gold:
            sim = jaccard(q["question"], sec.title)
            if sim > SIMILARITY_LIMIT:
                errors.append(f"{where}: question copies the heading of {sec.key} ({sim:.2f}): {sec.title!r}")
    gold_keys = {r for q in questions for r in q.get("relevant", [])}
    for s in corpus.sentences:
        if f"{s['chapter']}/{s['section']}" in gold_keys and (m := unclean(s["text"])):
            errors.append(f"sentence {s['source']}[{s['start']}:{s['end']}] of gold section "
                          f"{s['chapter']}/{s['section']} contains {m.group()!r}")
    return errors


def normalise(question: str) -> str:
    return re.sub(r"[\s\W_]+", "", question.lower())


def duplicates(questions: list[dict], others: list[dict], limit: float = DUPLICATE_LIMIT) -> list[str]:
    """Questions of `questions` that repeat one of `others` (same normalised text, or Jaccard > limit)."""
    errors = []
    seen = {normalise(o["question"]): o for o in others}
    grams = [(o, bigrams(o["question"])) for o in others]
    for q in questions:
        same = seen.get(normalise(q["question"]))
        if same is None:
            x = bigrams(q["question"])
            same = next((o for o, y in grams if len(x & y) / len(x | y) > limit), None)
        if same is not None:
            errors.append(f"{q['id']}: repeats {same['id']}: {same['question']!r}")
    return errors


def entity_sentences(questions: list[dict], corpus: Corpus) -> list[dict]:
    """The loader's sentences inside gold sections that hold an HTML entity such as `&emsp;`."""
    gold_keys = {r for q in questions for r in q.get("relevant", [])}
    return [s for s in corpus.sentences if f"{s['chapter']}/{s['section']}" in gold_keys and ENTITY.search(s["text"])]


def summary(questions: list[dict]) -> str:
    def line(name, counter):
        return f"{name}: " + ", ".join(f"{k} {v}" for k, v in sorted(counter.items()))
    chapters = Counter(sorted({r.split('/')[0] for r in q["relevant"]})[0] if q["relevant"] else "none"
                       for q in questions)
    return "\n".join([
        f"{len(questions)} questions, {sum(not q['relevant'] for q in questions)} unanswerable",
        line("lang", Counter(q["lang"] for q in questions)),
        line("split", Counter(q["split"] for q in questions)),
        line("kind", Counter(q["kind"] for q in questions)),
        line("chapter (first gold)", chapters),
    ])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("questions", nargs="?", type=Path, default=QUESTIONS)
    ap.add_argument("--book", type=Path, default=BOOK)
    ap.add_argument("--heldout", action="store_true",
                    help="check a held-out set (split heldout, no repeat of eval/book_questions.jsonl); "
                         "implied for eval/book_heldout.jsonl")
    args = ap.parse_args(argv)
    try:
        questions = read_questions(args.questions)
        corpus = read_corpus(args.book)
    except (OSError, ValueError) as e:
        msg = str(e) if isinstance(e, RagError) else f"cannot read {args.questions} ({e})"
        print(f"error: {msg}", file=sys.stderr)
        return 2
    heldout = args.questions.resolve() == HELDOUT.resolve() or args.heldout
    if heldout:
        errors = check(questions, corpus, HELDOUT_SPLITS)
        errors += duplicates(questions, read_questions(QUESTIONS))
    else:
        errors = check(questions, corpus)
    for err in errors:
        print("error:", err)
    ent = entity_sentences(questions, corpus)
    if ent:
        print(f"note: {len(ent)} sentences of gold sections hold an HTML entity, e.g. "
              f"{ent[0]['source']}[{ent[0]['start']}:{ent[0]['end']}]")
    print(summary(questions))
    print(f"{len(errors)} errors")
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())

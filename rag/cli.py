"""Command line: a thin layer over the library (`rag build | search | ask | eval | serve`)."""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys
from pathlib import Path

from .types import RagError


def _parser() -> argparse.ArgumentParser:
    from .evaluate import DEFAULT_QUESTIONS
    from .index import DEFAULT_CORPUS, DEFAULT_INDEX
    from .retriever import MODES

    p = argparse.ArgumentParser(prog="rag", description="Bilingual extractive Q&A over a textbook chapter.")
    p.add_argument("-v", "--verbose", action="store_true", help="log what happens")
    sub = p.add_subparsers(dest="command", required=True)

    b = sub.add_parser("build", help="chunk, embed and index a corpus directory")
    b.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="directory of .md chapters")
    b.add_argument("--index", type=Path, default=DEFAULT_INDEX, help="index directory to write")
    b.add_argument("--model", default=None, help="sentence-transformers model path or packaged name "
                   "(default: the bundled multilingual USE)")
    b.add_argument("--index-type", default="Flat", help="FAISS index_factory string, e.g. Flat, HNSW32, "
                   "IVF1024,PQ128x4fs,Refine(SQ8) (nlist ~2*sqrt(chunks); see docs/ARCHITECTURE.md)")
    b.add_argument("--store", default="faiss", help="where the vectors and BM25 postings are served from: faiss "
                   "(default, in the index directory), qdrant:PATH (embedded Qdrant) or qdrant:http://HOST:6333")
    b.add_argument("--quiet", action="store_true", help="no progress output")

    s = sub.add_parser("search", help="retrieve the best sections for a question")
    s.add_argument("question")
    s.add_argument("-k", type=int, default=5, help="number of sections (default 5)")
    s.add_argument("--mode", default="hybrid", help=f"one of {', '.join(MODES)}")
    s.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    s.add_argument("--json", action="store_true", help="print a JSON list of hits")
    s.add_argument("--chapter", action="append", default=None, metavar="CHAPTER", help="limit to a chapter, e.g. ch05 (repeat for several)")

    a = sub.add_parser("ask", help="answer a question with quotes from the chapter")
    a.add_argument("question")
    a.add_argument("--lang", default="auto", help="answer language: auto (the question's), zh or en")
    a.add_argument("-k", type=int, default=5, help="sections to consider (default 5)")
    a.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    a.add_argument("--json", action="store_true", help="print the answer as JSON")
    a.add_argument("--chapter", action="append", default=None, metavar="CHAPTER", help="limit to a chapter, e.g. ch05 (repeat for several)")

    v = sub.add_parser("serve", help="start the chat UI and HTTP API")
    v.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    v.add_argument("--port", type=int, default=7860)
    v.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    v.add_argument("--corpus", type=Path, default=DEFAULT_CORPUS, help="corpus to build from if the index is missing")
    v.add_argument("--feedback", type=Path, default=None,
                   help="feedback log (JSONL; default under the user's data directory)")

    e = sub.add_parser("eval", help="evaluate retrieval and answers on a question set")
    e.add_argument("questions", nargs="?", type=Path, default=DEFAULT_QUESTIONS,
                   help="JSONL question set or BEIR directory (default: the shipped set)")
    e.add_argument("--split", default="all", help="dev, test or all (questions with a 'split' field)")
    e.add_argument("--modes", default="hybrid,dense,lexical", help="comma-separated retrieval modes")
    e.add_argument("-k", type=int, default=10, help="sections retrieved per question (default 10)")
    e.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    e.add_argument("--json", action="store_true", help="print results as JSON")
    e.add_argument("--report", type=Path, metavar="DIR", help="write report.md, results.json and modes.png")
    e.add_argument("--compare", type=Path, metavar="BASELINE", help="a results.json to compare against")
    e.add_argument("--floor", action="append", default=[], metavar="METRIC=VALUE",
                   help="fail (exit 1) if METRIC (e.g. hybrid/all/mrr@10) is below VALUE; repeatable")
    e.add_argument("--floors", type=Path, metavar="FILE", help="JSON file of {metric: floor}")
    e.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return _COMMANDS[args.command](args)
    except RagError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except OSError as e:  # a file problem no check foresaw: still a message, not a traceback
        where = f" ({e.filename})" if e.filename else ""
        print(f"error: {e.strerror or e}{where}. Check the path, its permissions and the free disk space.",
              file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _build(args) -> int:
    from .embedding import load_encoder
    from .index import build_index, build_report

    m = build_index(args.corpus, args.index, load_encoder(args.model), args.index_type, progress=not args.quiet,
                    store=args.store)
    if not args.quiet:
        print(f"built {args.index}: {m['counts']['chunks']} chunks in {m['counts']['sections']} sections "
              f"from {len(m['corpus'])} file(s), encoder {m['encoder']['id']}")
        print(build_report(m))
    return 0


def hit_title(h) -> str:
    """A hit's title, with its English title beside a title in another language."""
    return f"{h.title} ({h.title_en})" if h.title_en and h.lang != "en" else h.title


def _search(args) -> int:
    from .retriever import check_query, load_fresh

    check_query(args.question, args.k, args.mode)  # fail fast, before loading anything
    hits = load_fresh(args.index).search(args.question, k=args.k, mode=args.mode, chapters=args.chapter)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no matching section")
    for h in hits:
        snippet = " ".join(h.text.split())
        print(f"§{h.id} {hit_title(h)}  [{h.score:.3f}]  ({h.source}:{h.start}-{h.end})")
        print(f"    {snippet[:160]}{'…' if len(snippet) > 160 else ''}")
        if h.also_in:
            print(f"    also in: {', '.join('§' + k for k in h.also_in)}")
    return 0


def _ask(args) -> int:
    from .answer import answer, check_language
    from .retriever import check_query, load_fresh

    check_query(args.question, args.k)
    check_language(args.lang)  # fail fast, before loading anything
    ans = answer(args.question, load_fresh(args.index), lang=args.lang, k=args.k, chapters=args.chapter)
    if args.json:
        print(json.dumps(ans.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(ans.answer)
    return 0


def _eval(args) -> int:
    from .evaluate import check_floors, compare, read_questions, run_eval
    from .report import failure_lines, tables, write_report
    from .retriever import MAX_K, MODES, load_fresh

    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise RagError(f"unknown mode(s) {', '.join(bad) or '(none)'}; choose from: {', '.join(MODES)}.")
    if not 1 <= args.k <= MAX_K:
        raise RagError(f"k must be a whole number from 1 to {MAX_K}, not {args.k}.")
    floors = _floors(args)
    questions = read_questions(args.questions)
    if args.split != "all":
        questions = [q for q in questions if q.get("split") == args.split]
        if not questions:
            raise RagError(f"no questions with split {args.split!r} in {args.questions}. Use --split all.")
    if args.report and args.report.exists() and not args.report.is_dir():
        raise RagError(f"--report {args.report} is a file; pass a directory for report.md, results.json and modes.png.")
    baseline = _read_baseline(args.compare) if args.compare else None
    results = run_eval(questions, load_fresh(args.index), modes, args.k, progress=not args.quiet)
    results["questions"], results["split"] = str(args.questions), args.split
    if args.json:
        print(json.dumps(results, ensure_ascii=False, indent=2))
    else:
        print(f"{args.questions} ({args.split}): {len(questions)} questions\n")
        print(tables(results) + "\n\n" + failure_lines(results))
    if args.report:
        try:
            write_report(results, args.report, f"Evaluation: {args.questions.name} ({args.split})")
        except OSError as e:
            raise RagError(f"cannot write the report to {args.report} ({e.strerror or e}). "
                           "Pass a writable directory with --report DIR.") from None
        print(f"\nreport written to {args.report}/report.md", file=sys.stderr)
    if baseline is not None:
        metrics, questions_changed = compare(results, baseline)
        print(f"\nCompared with {args.compare}:")
        for name, was, now in metrics:
            print(f"  {name:<32} {was:.3f} -> {now:.3f}  ({now - was:+.3f})")
        for qid, mode, change in questions_changed:
            print(f"  {qid} {mode}: {change}")
        if not metrics and not questions_changed:
            print("  no change")
    below = check_floors(results, floors)
    for msg in below:
        print(f"FAIL: {msg}", file=sys.stderr)
    return 1 if below else 0


def _floors(args) -> dict[str, float]:
    floors = {}
    if args.floors:
        given = _read_json(args.floors)
        if not isinstance(given, dict):
            raise RagError(f"--floors {args.floors} must hold a JSON object of {{metric: floor}}, e.g. "
                           f'{{"hybrid/all/mrr@10": 0.9}}, not a {type(given).__name__}.')
        for name, value in given.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise RagError(f"--floors {args.floors}: the floor of {name!r} must be a number, not {value!r}.")
            floors[name] = float(value)
    for item in args.floor:
        name, sep, value = item.partition("=")
        try:
            floors[name.strip()] = float(value)
        except ValueError:
            raise RagError(f"--floor takes METRIC=VALUE, e.g. hybrid/all/mrr@10=0.9, not {item!r}.") from None
        if not sep or not math.isfinite(floors[name.strip()]):
            raise RagError(f"--floor takes METRIC=VALUE, e.g. hybrid/all/mrr@10=0.9, not {item!r}.")
    return floors


def _read_baseline(path: Path) -> dict:
    """A results.json written by `rag eval --report`, checked before the evaluation runs."""
    from .evaluate import compare

    baseline = _read_json(path)
    try:
        compare(baseline, baseline)
    except (KeyError, TypeError, AttributeError, ValueError, IndexError):
        raise RagError(f"--compare {path} is not a results.json written by rag eval --report (it needs "
                       "'retrieval', 'answers' and 'per_question').") from None
    return baseline


def _read_json(path: Path):
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise RagError(f"cannot read {path} as JSON ({type(e).__name__}). Pass a results.json written by "
                       "rag eval --report, or a JSON object of floors.") from None


def _serve(args) -> int:
    from .app import serve

    if not 0 < args.port < 65536:
        raise RagError(f"--port must be from 1 to 65535, not {args.port}.")
    serve(args.index, args.corpus, args.host, args.port, args.feedback)
    return 0


_COMMANDS = {"build": _build, "search": _search, "ask": _ask, "eval": _eval, "serve": _serve}

if __name__ == "__main__":
    sys.exit(main())

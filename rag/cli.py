"""Command line: a thin layer over the library (`rag build | search | ask | eval | serve`)."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from .types import RagError


def _parser() -> argparse.ArgumentParser:
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
    b.add_argument("--index-type", default="Flat", help="FAISS index_factory string, e.g. Flat, HNSW32")
    b.add_argument("--quiet", action="store_true", help="no progress output")

    s = sub.add_parser("search", help="retrieve the best sections for a question")
    s.add_argument("question")
    s.add_argument("-k", type=int, default=5, help="number of sections (default 5)")
    s.add_argument("--mode", default="hybrid", help=f"one of {', '.join(MODES)}")
    s.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    s.add_argument("--json", action="store_true", help="print a JSON list of hits")

    a = sub.add_parser("ask", help="answer a question with quotes from the chapter")
    a.add_argument("question")
    a.add_argument("--lang", default="auto", help="answer language: auto (the question's), zh or en")
    a.add_argument("-k", type=int, default=5, help="sections to consider (default 5)")
    a.add_argument("--index", type=Path, default=DEFAULT_INDEX)
    a.add_argument("--json", action="store_true", help="print the answer as JSON")
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
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


def _build(args) -> int:
    from .embedding import load_encoder
    from .index import build_index

    m = build_index(args.corpus, args.index, load_encoder(args.model), args.index_type, progress=not args.quiet)
    if not args.quiet:
        print(f"built {args.index}: {m['counts']['chunks']} chunks in {m['counts']['sections']} sections "
              f"from {len(m['corpus'])} file(s), encoder {m['encoder']['id']}")
    return 0


def _search(args) -> int:
    from .retriever import Retriever, check_query

    check_query(args.question, args.k, args.mode)  # fail fast, before loading anything
    hits = Retriever.load(args.index, rebuild=True).search(args.question, k=args.k, mode=args.mode)
    if args.json:
        print(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return 0
    if not hits:
        print("no matching section")
    for h in hits:
        snippet = " ".join(h.text.split())
        print(f"§{h.section} {h.title}  [{h.score:.3f}]  ({h.source}:{h.start}-{h.end})")
        print(f"    {snippet[:160]}{'…' if len(snippet) > 160 else ''}")
    return 0


def _ask(args) -> int:
    from .answer import LANGUAGES, answer
    from .retriever import Retriever, check_query

    check_query(args.question, args.k)
    if args.lang not in LANGUAGES:
        raise RagError(f"unknown answer language {args.lang!r}; choose one of: {', '.join(LANGUAGES)}.")
    ans = answer(args.question, Retriever.load(args.index, rebuild=True), lang=args.lang, k=args.k)
    if args.json:
        print(json.dumps(ans.to_dict(), ensure_ascii=False, indent=2))
    else:
        print(ans.answer)
    return 0


_COMMANDS = {"build": _build, "search": _search, "ask": _ask}

if __name__ == "__main__":
    sys.exit(main())

"""Build, save and load the index directory; check its manifest.

    index/
      CURRENT         the name of the version readers load ("v-<id>"); replaced atomically
      v-<id>/         one complete build, never changed once CURRENT names it:
      manifest.json   format version, encoder, chunking, corpus and file checksums, counts, build warnings
      chunks.jsonl    one chunk a line (ensure_ascii=False)
      vectors.faiss   FAISS index over normalized chunk vectors (inner product)
      sections.jsonl  one section a line (chapter, id, title, source, offsets, kind, parents), in file order
      titles.npy      the normalized vector of each section's heading path (heading_path), row for row,
                      then of each English title (toc.en.tsv) in section order: LoadedIndex.title_rows
      sentences.jsonl every sentence (with its tokens, the tokens of its subject, whether it is
                      on a heading line, and for a translation its original)
      sentence_stats.json  document frequencies over the sentences, for answers: of their tokens
                      ("df") and of the character pairs of the Chinese ones ("pair_df")
      sentence_vectors.npy  the normalized vector of each sentence, row for row (float16)
      lexicon.txt     the jieba dictionary of the corpus's words (see lexical.py)
      bm25/LANG/      bm25s's saved arrays over the chunks of one language (zh, en), each with its heading path
      glossary.tsv    the corpus's glossary.tsv
      duplicates.json pairs of near-duplicate sections (qualified ids, see dedup.py)
      word_translations.tsv  English word <TAB> Chinese word, learned from the corpus's aligned pairs (wordalign.py)
                      and, for the words those lack, from CC-CEDICT (dictionary.py)

      .lock           held (fcntl) by a build while it writes; readers never take it
      .tmp-*/         a build being written, marked by a .rag-build file (removed by the next
                      build if its builder died; a .tmp-* directory without the mark is left alone)

A build writes a new version directory and then replaces CURRENT with one rename, so a reader
sees the old index or the new one at every instant, never a mix, and an interrupted build
leaves the previous index as it was. Readers never write. Two builds into one index take turns
(the lock). The version before the current one is kept, so a reader that read CURRENT just
before a build published still finds its files; older versions are removed by the next build.
A build never removes anything it did not make: it refuses a target that is not an index.
An index directory from before versioning (manifest.json at the top) still loads.
Nothing is pickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import re
import shutil
import sys
import tempfile
from collections import Counter
from dataclasses import asdict, dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np

from . import __version__
from .align import apply_pairing, attach_originals, pair_sections
from .chunking import MAX_CHARS
from .corpus import chapter_id, find_chapters, parse_blocks, read_corpus, read_text
from .lang import char_pairs, subject
from .text import display, normalize
from .toc import TOC_FILE, read_title_pairs, read_toc, with_english_titles
from .wordalign import learn_word_translations
from .dictionary import cedict_words, dictionary_translations
from .embedding import Encoder
from .dedup import duplicate_pairs
from .glossary import GLOSSARY_FILE, read_glossary
from .lexical import BM25Scorer, Tokenizer, build_bm25, load_lexicon, make_lexicon, save_lexicon
from .types import Chunk, DamagedIndexError, IndexMissingError, RagError, Section, StaleIndexError, section_key

log = logging.getLogger(__name__)

FORMAT_VERSION = 5  # 4: heading paths, word_translations.tsv; sentences' subject tokens and heading flag, sentence_stats.json
# 5: English titles are title rows (titles.npy) instead of a BM25 index of their own
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INDEX = ROOT / "index"
DEFAULT_CORPUS = ROOT / "corpus"
WORD_TRANSLATIONS = "word_translations.tsv"
_FILES = ("chunks.jsonl", "vectors.faiss", "sections.jsonl", "titles.npy", "sentences.jsonl",
          "sentence_vectors.npy", "lexicon.txt", "duplicates.json", "sentence_stats.json")


def embedding_text(chunk: Chunk) -> str:
    """What is embedded for a chunk: its section title, then its text, normalized."""
    return normalize(f"{chunk.title}\n{chunk.text}")


def heading_paths(sections: list[Section], langs: dict[str, str]) -> list[str]:
    """Each section's title after the titles above it: its enclosing headings without text
    (`parents`) and the sections of its language its number descends from (8.2 for 8.2.1).

    The book's generic titles ("模型特性" under "4.1 LeNet-5") name their subject only there. The
    section-title vectors and each chunk's BM25 text carry the path (measured by 5-fold CV on
    the dev questions: hit@1 zh 0.698 -> 0.713 on the book, 0.903 -> 0.968 on the chapter).
    """
    by_key = {}
    for s in sections:
        by_key.setdefault((langs[s.source], s.key), s)
    out = []
    for s in sections:
        parts = s.id.split(".")
        above = [by_key[k].title for k in ((langs[s.source], f"{s.chapter}/{'.'.join(parts[:i])}")
                                            for i in range(1, len(parts))) if k in by_key]
        out.append(" ".join([*s.parents, *above, s.title]))
    return out


def english_titled(sections: list[Section]) -> list[Section]:
    """The sections whose English title (`title_en`) is a row of titles.npy, in the order of those
    rows (after one row per section): see LoadedIndex.title_rows."""
    return [s for s in sections if s.title_en]


def _corpus_names(corpus_dir: Path) -> set[str]:
    """The files an index depends on: the chapters, the glossary and the English titles."""
    try:
        names = {p.relative_to(corpus_dir).as_posix() for p in find_chapters(corpus_dir)}
    except RagError:
        names = set()
    return names | {name for name in (GLOSSARY_FILE, TOC_FILE) if (corpus_dir / name).is_file()}


def build_index(corpus_dir: Path = DEFAULT_CORPUS, index_dir: Path = DEFAULT_INDEX,
                encoder: Encoder | None = None, index_type: str = "Flat",
                max_chars: int = MAX_CHARS, progress: bool = False, store: str = "faiss") -> dict:
    """Chunk, embed and index a corpus directory into index_dir; return the manifest.

    store: 'faiss' (default), or 'qdrant:PATH' / 'qdrant:http://HOST:6333' to also serve the
    chunks from Qdrant (see store.py); the manifest records which.
    """
    from .embedding import load_encoder
    from .store import parse_spec

    corpus_dir, index_dir = Path(corpus_dir), Path(index_dir)
    check_target(corpus_dir, index_dir)
    check_index_type(index_type)
    store_kind, store_location = parse_spec(store)
    corpus = read_corpus(corpus_dir, max_chars)
    if not corpus.chunks:
        raise RagError(f"{corpus_dir} has no text to index (only headings, or empty files). "
                       "Add chapter text under the headings.")
    sentences, files, file_texts, report = corpus.sentences, corpus.files, corpus.texts, corpus.report
    encoder = encoder or load_encoder()
    titles = _encode_all(encoder, [s.title for s in corpus.sections], progress, "titles")
    sentence_vectors = _encode_all(encoder, [normalize(s["text"]) for s in sentences], progress, "sentences",
                                   titles.shape[1])
    pairs = pair_sections(corpus.sections, sentences, sentence_vectors, titles, report)
    sections, chunks = apply_pairing(pairs, corpus.sections, corpus.chunks, sentences)
    attach_originals(sentences, sentence_vectors, file_texts)
    sections = with_english_titles(sections, file_texts, read_toc(corpus_dir / TOC_FILE))
    duplicates = duplicate_pairs({(files[s.source]["lang"], s.key): file_texts[s.source][s.start:s.end]
                                   for s in sections})
    glossary_path = corpus_dir / GLOSSARY_FILE
    glossary = read_glossary(glossary_path)
    texts = [embedding_text(c) for c in chunks]
    langs = {name: rec["lang"] for name, rec in files.items()}
    paths = heading_paths(sections, langs)
    path_of = {(langs[s.source], s.key): p for s, p in zip(sections, paths)}
    lexical_texts = [normalize(f"{path_of[(c.lang, c.key)]}\n{c.text}") for c in chunks]
    lexicon = make_lexicon(lexical_texts, extra_words=[zh for zh, _ in glossary])
    tokenize = Tokenizer(lexicon)
    # English -> Chinese words from the reviewed titles and the aligned sentences of translations
    aligned = [(file_texts[s["original"]["source"]][s["original"]["start"]:s["original"]["end"]], s["text"])
               for s in sentences if s.get("original")]
    word_translations = learn_word_translations(read_title_pairs(corpus_dir / TOC_FILE) + aligned, tokenize)
    chunk_tokens = [tokenize(t) for t in lexical_texts]
    # ... and from CC-CEDICT for the words those lack, kept to the Chinese text's own words
    zh_df = Counter(t for c, toks in zip(chunks, chunk_tokens) if c.lang == "zh" for t in set(toks))
    if zh_df:
        word_translations = dict(sorted({**dictionary_translations(cedict_words(), zh_df, tokenize, word_translations),
                                         **word_translations}.items()))
    # titles.npy holds the heading paths (pairing translations above used the bare titles)
    longer = [i for i, (s, p) in enumerate(zip(sections, paths)) if p != s.title]
    if longer:
        titles = titles.copy()
        titles[longer] = _encode_all(encoder, [paths[i] for i in longer], progress, "heading paths", titles.shape[1])
    # ... then the English titles, so that an English question meets every section in English
    english = [s.title_en for s in english_titled(sections)]
    if english:
        titles = np.vstack([titles, _encode_all(encoder, english, progress, "English titles", titles.shape[1])])
    vectors = _encode_all(encoder, texts, progress, "chunks", titles.shape[1])
    index = _faiss_index(vectors, index_type)
    search = tune_search(index, index_type, vectors, sentence_vectors)
    try:
        index_dir.mkdir(parents=True, exist_ok=True)
        with _build_lock(index_dir):
            manifest = _write_version(index_dir, corpus_dir, encoder, index_type, max_chars, files, glossary_path,
                                      glossary, chunks, sections, sentences, tokenize, chunk_tokens, lexicon, index,
                                      vectors, titles, sentence_vectors, report, store_kind, store_location,
                                      duplicates, word_translations, search)
    except OSError as e:
        raise RagError(f"cannot write the index at {index_dir} ({e.strerror or e}). The previous index, if any, "
                       "is unchanged. Free some disk space, or build into a writable directory with "
                       "--index DIR.") from None
    log.info("built %s: %d chunks in %d sections", index_dir, len(chunks), manifest["counts"]["sections"])
    return manifest


def _write_version(index_dir, corpus_dir, encoder, index_type, max_chars, files, glossary_path, glossary, chunks,
                   sections, sentences, tokenize, chunk_tokens, lexicon, index, vectors, titles, sentence_vectors,
                   report, store_kind: str = "faiss", store_location: str | None = None,
                   duplicates=(), word_translations=None, search: dict | None = None) -> dict:
    """Write a new version directory and point CURRENT at it (call with the build lock held).

    chunk_tokens: what BM25 indexes of each chunk (the tokens of its heading path and text, normalized).
    duplicates: near-duplicate pairs (dedup.py); word_translations: English -> Chinese words (wordalign.py).
    search: the approximate index's tuned search parameter (`tune_search`); none for Flat.
    """
    import faiss

    _remove_dead_builds(index_dir)  # the lock says no build is running
    tmp = _work_dir(index_dir)
    try:
        tmp.chmod(0o755)
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for c in chunks:
                f.write(json.dumps(asdict(c), ensure_ascii=False) + "\n")
        faiss.write_index(index, str(tmp / "vectors.faiss"))
        with open(tmp / "sections.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for sec in sections:
                f.write(json.dumps(asdict(sec), ensure_ascii=False) + "\n")
        np.save(tmp / "titles.npy", titles, allow_pickle=False)
        df: Counter = Counter()
        pair_df: Counter = Counter()
        with open(tmp / "sentences.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for rec in sentences:
                tokens = tokenize(normalize(rec["text"]))
                df.update(set(tokens))
                shown = display(rec["text"])  # `&emsp;` as a space: "emsp" is no word of the sentence
                if rec["lang"] == "zh":
                    pair_df.update(char_pairs(shown))
                f.write(json.dumps({**rec, "tokens": tokens, "head": tokenize(subject(shown))},
                                   ensure_ascii=False) + "\n")
        # What answers need of all sentences at once, counted here rather than at every first answer.
        (tmp / "sentence_stats.json").write_text(json.dumps(
            {"sentences": len(sentences), "df": dict(sorted(df.items())), "pair_df": dict(sorted(pair_df.items()))},
            ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
        # float16 on disk: half the size of the index's largest file; cosines move by < 1e-3.
        np.save(tmp / "sentence_vectors.npy", sentence_vectors.astype(np.float16), allow_pickle=False)
        save_lexicon(lexicon, tmp / "lexicon.txt")
        if glossary:
            shutil.copyfile(glossary_path, tmp / GLOSSARY_FILE)
        (tmp / "duplicates.json").write_text(json.dumps(duplicates, ensure_ascii=False, indent=1) + "\n",
                                             encoding="utf-8")
        if word_translations:
            (tmp / WORD_TRANSLATIONS).write_text("".join(f"{en}\t{zh}\n" for en, zh in word_translations.items()),
                                                 encoding="utf-8")
        # One BM25 index per language: length normalization and IDF stay those of the text a
        # question is matched against (measured: +6 points hit@1 for Chinese questions).
        for lang in sorted({c.lang for c in chunks}):
            build_bm25([toks for c, toks in zip(chunks, chunk_tokens) if c.lang == lang], tmp / "bm25" / lang)
        store_record = {"kind": "faiss"}
        if store_kind == "qdrant":
            store_record = _create_qdrant(store_location, index_dir, tmp, chunks, vectors, chunk_tokens)
        manifest = {
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "encoder": {"id": encoder.id, "dim": int(vectors.shape[1])},
            "index_type": index_type,
            **({"search": search} if search else {}),
            "store": store_record,
            "chunking": {"max_chars": max_chars},
            "corpus_dir": os.path.relpath(corpus_dir.resolve(), index_dir.resolve().parent),
            "corpus": {**files, **{name: {"sha256": _sha256((corpus_dir / name).read_bytes()), "lang": kind}
                                   for name, kind in ((GLOSSARY_FILE, "glossary"), (TOC_FILE, "toc"))
                                   if (corpus_dir / name).is_file()}},
            "counts": build_counts(sections, chunks, sentences),
            "warnings": report.to_dict(),
            "files": {p.relative_to(tmp).as_posix(): _sha256(p.read_bytes())
                      for p in sorted(tmp.rglob("*")) if p.is_file() and p != tmp / _WORK_MARK},
        }
        text = json.dumps(manifest, ensure_ascii=False, indent=2) + "\n"
        (tmp / "manifest.json").write_text(text, encoding="utf-8")
        for p in tmp.rglob("*"):
            if p.is_file():
                _fsync(p)
        # The version's name is its content's: rebuilding an unchanged corpus names the same version.
        version = "v-" + _sha256(json.dumps({k: v for k, v in manifest.items() if k != "corpus_dir"},
                                            sort_keys=True).encode())[:16]
        target = index_dir / version
        (tmp / _WORK_MARK).unlink()  # from here the directory is a version, not a build's work
        if target.is_dir() and _same_files(tmp, target):
            shutil.rmtree(tmp)
        else:
            if target.is_dir():  # that version damaged or edited since: readers of it fail anyway
                old = _work_dir(index_dir)
                os.rename(target, old / version)
                os.rename(tmp, target)
                shutil.rmtree(old, ignore_errors=True)
            else:
                os.rename(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    previous = _pointer(index_dir)
    pointer = index_dir / f".CURRENT-{os.getpid()}"
    pointer.write_text(version + "\n", encoding="ascii")
    _fsync(pointer)
    os.replace(pointer, index_dir / CURRENT)
    _fsync(index_dir)
    for p in index_dir.glob("v-*"):  # keep the new version and the one readers may still be reading
        if p.name not in (version, previous) and _VERSION.fullmatch(p.name) and (p / "manifest.json").is_file():
            shutil.rmtree(p, ignore_errors=True)
    return manifest


# A build's work directory carries this file until it becomes a version: only such directories
# (and empty ones a build died before marking) are a dead build's, whatever else is named .tmp-*.
_WORK_MARK = ".rag-build"
_POINTER = re.compile(r"\.CURRENT-\d+")  # a build's pointer file before it replaces CURRENT


def _work_dir(index_dir: Path) -> Path:
    """A new work directory for a build, marked as a build's."""
    tmp = Path(tempfile.mkdtemp(prefix=".tmp-", dir=index_dir))
    (tmp / _WORK_MARK).write_text("a rag build's work directory; the next build removes it if this one died\n",
                                  encoding="ascii")
    return tmp


def _remove_dead_builds(index_dir: Path) -> None:
    """Remove what builds that died left: their marked work directories and pointer files, nothing else."""
    for p in index_dir.glob(".tmp-*"):
        if (p / _WORK_MARK).is_file():
            shutil.rmtree(p, ignore_errors=True)
        elif p.is_dir() and not any(p.iterdir()):
            p.rmdir()  # died between creating and marking it
    for p in index_dir.glob(".CURRENT-*"):
        if _POINTER.fullmatch(p.name) and p.is_file():
            p.unlink(missing_ok=True)


def _create_qdrant(location: str, index_dir: Path, tmp: Path, chunks: list[Chunk], vectors: np.ndarray,
                   tokens: list[list[str]]) -> dict:
    """Write the chunks to Qdrant; a local path is recorded relative to the index's parent."""
    from .store import _is_url, create_qdrant

    if not _is_url(location):
        location = os.path.relpath(Path(location).resolve(), index_dir.resolve().parent)
        where = str((index_dir.resolve().parent / location).resolve())
    else:
        where = location
    vocabs = {p.name: json.loads((p / "vocab.index.json").read_text(encoding="utf-8"))
              for p in sorted((tmp / "bm25").iterdir())}
    params = json.loads((tmp / "bm25" / next(iter(vocabs)) / "params.index.json").read_text(encoding="utf-8"))
    record = create_qdrant(where, index_dir, chunks, vectors, tokens, vocabs, params["k1"], params["b"],
                           [c.chapter for c in chunks])
    return {**record, "location": location}


def _same_files(a: Path, b: Path) -> bool:
    """Whether two directories hold the same files with the same bytes."""
    files = {p.relative_to(a) for p in a.rglob("*") if p.is_file()}
    if files != {p.relative_to(b) for p in b.rglob("*") if p.is_file()}:
        return False
    return all((a / f).read_bytes() == (b / f).read_bytes() for f in files)


CURRENT = "CURRENT"
_VERSION = re.compile(r"v-[0-9a-f]{16}")


@contextlib.contextmanager
def _build_lock(index_dir: Path):
    """Exclusive while a build writes into index_dir; a second build waits for the first."""
    import fcntl

    fd = os.open(index_dir / ".lock", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _pointer(index_dir: Path) -> str | None:
    """The version CURRENT names, or None without a CURRENT file."""
    try:
        name = (index_dir / CURRENT).read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as e:
        raise DamagedIndexError(f"{index_dir / CURRENT} is unreadable ({type(e).__name__}). "
                                f"Rebuild: rag build --index {index_dir}") from None
    if not _VERSION.fullmatch(name):
        raise DamagedIndexError(f"{index_dir / CURRENT} does not name a version ({name[:40]!r}). "
                                f"Rebuild: rag build --index {index_dir}")
    return name


def version_dir(index_dir: Path) -> Path:
    """The directory holding the files of the index readers load now."""
    index_dir = Path(index_dir)
    name = _pointer(index_dir)
    if name is not None:
        return index_dir / name
    if (index_dir / "manifest.json").is_file():  # an index from before versioned directories
        return index_dir
    raise IndexMissingError(f"no index at {index_dir}. Build one with: rag build --index {index_dir}")


def is_index(path: Path) -> bool:
    """Whether path is a directory this tool built an index in."""
    return (path / CURRENT).is_file() or (path / "manifest.json").is_file()


def check_target(corpus_dir: Path, index_dir: Path) -> None:
    """Refuse an index target that a build could damage: anything but a new, empty or index directory."""
    if not corpus_dir.is_dir():
        raise RagError(f"corpus directory {corpus_dir} does not exist. Pass --corpus DIR with the .md chapters.")
    target, corpus, cwd = index_dir.resolve(), corpus_dir.resolve(), Path.cwd().resolve()
    how = "Pass a new directory, e.g. --index index, or an index built before."
    if target == corpus or target in corpus.parents:
        raise RagError(f"--index {index_dir} is the corpus directory or contains it; an index is never written "
                       f"there. {how}")
    if target == cwd or target in cwd.parents:
        raise RagError(f"--index {index_dir} is the current directory or one above it. {how}")
    if index_dir.exists() or index_dir.is_symlink():
        if not index_dir.is_dir():
            raise RagError(f"--index {index_dir} is a file, not an index directory; it is left alone. {how}")
        if not is_index(index_dir) and any(index_dir.iterdir()):
            raise RagError(f"--index {index_dir} is a directory with other files in it, not an index; "
                           f"nothing was changed. {how}")


def check_index_type(index_type: str) -> None:
    """Refuse FAISS factory strings that crash FAISS (e.g. HNSW0 aborts the process) before FAISS sees them."""
    if not isinstance(index_type, str) or not re.fullmatch(r"[A-Za-z0-9_,.()]{1,64}", index_type) \
            or any(int(n) == 0 for n in re.findall(r"\d+", index_type)):
        raise RagError(f"--index-type {index_type!r} is not a usable FAISS index type (sizes must be at least 1). "
                       "Use 'Flat' for small corpora, or e.g. 'HNSW32' or 'IVF16,Flat'.")


def build_counts(sections: list[Section], chunks: list[Chunk], sentences: list[dict]) -> dict:
    """The build's figures: chapters, sections (by qualified id), chunks, sentences."""
    return {"chapters": len({s.chapter for s in sections}), "sections": len({s.key for s in sections}),
            "chunks": len(chunks), "sentences": len(sentences)}


def build_report(manifest: dict) -> str:
    """The short report `rag build` ends with: counts, then each warning kind with its first examples."""
    c = manifest["counts"]
    lines = [f"{c['chapters']} chapters, {c['sections']} sections, {c['chunks']} chunks, {c['sentences']} sentences"]
    for kind, w in manifest.get("warnings", {}).items():
        lines.append(f"warning: {w['count']} x {kind}")
        lines += [f"  - {ex}" for ex in w["examples"]]
    return "\n".join(lines)


def _encode_all(encoder: Encoder, texts: list[str], progress: bool, what: str = "chunks", dim: int | None = None,
                batch: int = 32) -> np.ndarray:
    if not texts:
        return np.zeros((0, dim or 0), dtype=np.float32)
    parts = []
    for i in range(0, len(texts), batch):
        parts.append(encoder.encode(texts[i:i + batch]))
        if progress:
            print(f"\rembedding {what} {min(i + batch, len(texts))}/{len(texts)}", end="", file=sys.stderr,
                  flush=True)
    if progress:
        print(file=sys.stderr)
    return np.vstack(parts).astype(np.float32)


def _faiss_index(vectors: np.ndarray, index_type: str):
    import faiss

    try:
        index = faiss.index_factory(vectors.shape[1], index_type, faiss.METRIC_INNER_PRODUCT)
        graph = _hnsw(index)
        if graph is not None:
            graph.efConstruction = max(HNSW_EF_CONSTRUCTION, graph.efConstruction)
        if not index.is_trained:
            index.train(vectors)
        index.add(vectors)
        _, ids = index.search(vectors[:1], 1)  # an index that cannot find its own vector is of no use
        if ids[0][0] < 0:
            raise RuntimeError("a search found nothing")
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1][:200]
        raise RagError(f"FAISS index type {index_type!r} does not work for {len(vectors)} vectors "
                       f"({first}). Use 'Flat' for small corpora, or e.g. 'HNSW32'.") from None
    return index


# HNSW graphs are built with efConstruction 80 (FAISS's default is 40): on clustered 512-d vectors
# a graph built with 40 stops short of recall@10 0.95 at any efSearch (benchmarks/scale.py,
# docs/ARCHITECTURE.md); 80 reaches it at 1M with a build 10-30% longer.
HNSW_EF_CONSTRUCTION = 80
# Approximate indexes are tuned at build to these recall@10 targets against an exact search, plus
# a margin for the sampling noise of 200 tuning queries (at 1M, tuning to exactly 0.95 measured
# 0.950 on the tuning queries and 0.944 on held-out ones: benchmarks/scale.py).
SEARCH_TARGETS = {"efSearch": 0.95, "nprobe": 0.90}
TUNING_MARGIN = 0.01
_LADDER = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048)
# How many candidates per result a re-ranked IVF-PQ index (",RFlat", ",Refine(SQ8)") re-scores.
_K_FACTORS = (1, 2, 4, 8, 16, 32, 64)


def _hnsw(index):
    """The HNSW graph of an HNSW index (also under a transform such as OPQ/PCA), else None."""
    import faiss

    inner = faiss.downcast_index(index)
    if isinstance(inner, faiss.IndexPreTransform):
        inner = faiss.downcast_index(inner.index)
    return getattr(inner, "hnsw", None)


def search_parameter(index_type: str) -> str | None:
    """The query-time knob of a FAISS index type: nprobe (IVF), efSearch (HNSW), None (exact)."""
    return "nprobe" if "IVF" in index_type else "efSearch" if "HNSW" in index_type else None


def tune_search(index, index_type: str, vectors: np.ndarray, queries: np.ndarray, k: int = 10) -> dict:
    """The smallest efSearch (HNSW) or nprobe (IVF) whose recall@k against an exact search reaches
    SEARCH_TARGETS + TUNING_MARGIN, measured on queries (at most 200, evenly spaced; `rag build`
    uses the corpus's sentences: short texts like questions). Leaves the index set to it; {} for
    exact indexes. When no setting reaches it, the largest is kept and the recall says so.

    Returns {"efSearch" or "nprobe": value, "recall@10": measured, "queries": how many} (and
    "efConstruction" for HNSW, "k_factor" for a re-ranked IVF-PQ): the manifest's "search" record,
    applied again by load_index.
    """
    import faiss

    name = search_parameter(index_type)
    if name is None or index.ntotal == 0:
        return {}
    if len(queries) == 0:
        queries = vectors
    q = np.ascontiguousarray(queries[np.linspace(0, len(queries) - 1, min(200, len(queries))).astype(int)],
                             dtype=np.float32)
    k = min(k, index.ntotal)
    exact = faiss.IndexFlatIP(vectors.shape[1])
    exact.add(vectors)
    _, truth = exact.search(q, k)
    ladder = [v for v in _LADDER if v >= 16] if name == "efSearch" else \
        [v for v in _LADDER if v < faiss.extract_index_ivf(index).nlist] + [faiss.extract_index_ivf(index).nlist]
    params = faiss.ParameterSpace()
    target = SEARCH_TARGETS[name] + TUNING_MARGIN

    def recall_at(param, value):
        params.set_index_parameter(index, param, value)
        _, ids = index.search(q, k)
        return float(np.mean([len(set(a) & set(b)) / k for a, b in zip(ids, truth)]))

    # A re-ranked index (",RFlat", ",Refine(SQ8)"): nprobe is tuned with the most re-ranking,
    # then the re-ranking cut to the least that still reaches the target at that nprobe.
    refine = isinstance(faiss.downcast_index(index), faiss.IndexRefine)
    for value in ladder:
        if refine:
            params.set_index_parameter(index, "k_factor_rf", _K_FACTORS[-1])
        recall = recall_at(name, value)
        if recall >= target:
            break
    out = {name: int(value), "recall@10": round(recall, 3), "queries": len(q)}
    if refine:
        k_factor = _K_FACTORS[-1]
        for kf in _K_FACTORS[:-1]:
            r = recall_at("k_factor_rf", kf)
            if r >= target:
                k_factor, out["recall@10"] = kf, round(r, 3)
                break
        params.set_index_parameter(index, "k_factor_rf", k_factor)
        out["k_factor"] = k_factor
    graph = _hnsw(index)
    if graph is not None:
        out["efConstruction"] = int(graph.efConstruction)
    return out


def apply_search(index, search: dict) -> None:
    """Set a loaded index's search parameter to the one its manifest records."""
    import faiss

    params = faiss.ParameterSpace()
    for name in ("efSearch", "nprobe"):
        if name in search:
            params.set_index_parameter(index, name, int(search[name]))
    if "k_factor" in search:
        params.set_index_parameter(index, "k_factor_rf", int(search["k_factor"]))


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@dataclass
class LoadedIndex:
    """The parts of an index directory that a search needs."""

    path: Path
    manifest: dict
    chunks: list[Chunk]
    sections: list[Section]
    vectors: object  # faiss.Index
    titles: np.ndarray  # one row per entry of title_rows
    sentences: list[dict]
    sentence_vectors: np.ndarray  # one row per sentence
    bm25: dict[str, BM25Scorer]  # by language
    tokenize: Tokenizer
    glossary: list[tuple[str, list[str]]]
    duplicates: list[list[str]]  # pairs of near-duplicate sections (qualified ids)
    files_dir: Path | None = None  # the version directory the files were read from
    # sentence_stats.json: {"sentences": n, "df": {token: n}, "pair_df": {character pair: n}}
    sentence_stats: dict = field(default_factory=lambda: {"sentences": 0, "df": {}, "pair_df": {}})
    # English word -> Chinese word (wordalign.py), for English questions on Chinese text
    word_translations: dict[str, str] = field(default_factory=dict)

    @cached_property
    def corpus_dir(self) -> Path:
        """The corpus directory (resolved once: answers ask for it once per sentence)."""
        return manifest_corpus(self.path, self.manifest)

    @cached_property
    def title_rows(self) -> list[tuple[str, str]]:
        """(qualified id, language) of each row of `titles`: every section's heading path, then
        every English title (`title_en`) in section order."""
        return [(s.key, self.lang_of(s.source)) for s in self.sections] + \
            [(s.key, "en") for s in english_titled(self.sections)]

    def lang_of(self, source: str) -> str:
        """The language of a corpus file ('zh' or 'en')."""
        return self.manifest["corpus"][source]["lang"]

    def find_section(self, key: str, lang: str) -> Section | None:
        """A section (by qualified id) in the given language, else in the original (zh), else in any language."""
        found = {self.lang_of(s.source): s for s in self.sections if s.key == key}
        return found.get(lang) or found.get("zh") or next(iter(found.values()), None)

    @cached_property
    def chapter_titles(self) -> dict[tuple[str, str], str]:
        """(chapter, lang) -> the chapter's title: the first `#` heading of its first file in that language."""
        titles: dict[tuple[str, str], str] = {}
        for name in sorted(self.manifest["corpus"]):
            lang = self.lang_of(name)
            if lang in ("glossary", "toc") or (chapter_id(name), lang) in titles:
                continue
            try:
                headings, _ = parse_blocks(read_text(self.corpus_dir / name))
            except (OSError, RagError):
                continue  # an unreadable file has no title; its chapter is named by its id
            first = next((h.title for h in headings if h.level == 1), None)
            if first:
                titles[(chapter_id(name), lang)] = first
        return titles

    def chapter_title(self, chapter: str, lang: str) -> str:
        """A chapter's title in lang, else in the original (zh), else in any language, else its id."""
        t = self.chapter_titles
        return t.get((chapter, lang)) or t.get((chapter, "zh")) or \
            next((v for (c, _), v in t.items() if c == chapter), chapter)


def read_manifest(index_dir: Path) -> dict:
    """The manifest of the index at index_dir, validated, or a clear error saying how to make one."""
    return _read_manifest(Path(index_dir), version_dir(index_dir))


def manifest_corpus(index_dir: Path, manifest: dict) -> Path:
    """The corpus directory an index was built from (its manifest keeps it relative to the
    index directory's parent)."""
    return (Path(index_dir).resolve().parent / manifest["corpus_dir"]).resolve()


def rebuild_hint(index_dir: Path, manifest=None) -> str:
    """How to rebuild an index: from the corpus its manifest names, when that is not the default
    (a bare `rag build --index DIR` would put the bundled chapter in a whole-book index)."""
    if isinstance(manifest, dict) and isinstance(manifest.get("corpus_dir"), str):
        path = manifest_corpus(index_dir, manifest)
        if path != DEFAULT_CORPUS.resolve():
            return f"Rebuild: rag build --corpus {path} --index {index_dir}"
    return f"Rebuild: rag build --index {index_dir}"


def _read_manifest(index_dir: Path, files_dir: Path) -> dict:
    path = files_dir / "manifest.json"
    fix = rebuild_hint(index_dir)
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IndexMissingError(f"no index at {index_dir}. Build one with: rag build --index {index_dir}") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedIndexError(f"{path} is unreadable ({type(e).__name__}). {fix}") from None
    fix = rebuild_hint(index_dir, manifest)
    if isinstance(manifest, dict) and "format_version" in manifest and manifest["format_version"] != FORMAT_VERSION:
        raise StaleIndexError(f"{index_dir} has index format {manifest['format_version']!r}, this version "
                              f"reads format {FORMAT_VERSION}. {fix}")
    problem = _manifest_problem(manifest)
    if problem:
        raise DamagedIndexError(f"{path} is not a valid manifest: {problem}. {fix}")
    return manifest


_SHA = re.compile(r"[0-9a-f]{64}")
_LANGS = ("zh", "en")
_COUNTS = ("chapters", "sections", "chunks", "sentences")


def _manifest_problem(m) -> str | None:
    """What is wrong with a manifest's structure (the schema below), or None."""
    def is_int(x, low=0):
        return isinstance(x, int) and not isinstance(x, bool) and x >= low

    def relative(name):
        return isinstance(name, str) and name and not name.startswith("/") and ".." not in name.split("/") \
            and "\\" not in name and "\0" not in name

    if not isinstance(m, dict):
        return f"expected a JSON object, found {type(m).__name__}"
    schema = {"format_version": int, "package_version": str, "encoder": dict, "index_type": str, "chunking": dict,
              "corpus_dir": str, "corpus": dict, "counts": dict, "files": dict}
    for key, kind in schema.items():
        if not isinstance(m.get(key), kind) or isinstance(m.get(key), bool):
            return f"{key!r} is missing or not a {kind.__name__}"
    enc = m["encoder"]
    if not isinstance(enc.get("id"), str) or not enc["id"] or not is_int(enc.get("dim"), 1):
        return "'encoder' needs an 'id' string and a positive 'dim'"
    if not is_int(m["chunking"].get("max_chars"), 1):
        return "'chunking.max_chars' must be a positive integer"
    if not all(is_int(m["counts"].get(k)) for k in _COUNTS):
        return f"'counts' needs {', '.join(map(repr, _COUNTS))} integers"
    warnings = m.get("warnings", {})
    if not isinstance(warnings, dict) or not all(
            isinstance(w, dict) and is_int(w.get("count")) and isinstance(w.get("examples"), list)
            and all(isinstance(ex, str) for ex in w["examples"]) for w in warnings.values()):
        return "'warnings' must map each kind to a 'count' and a list of 'examples'"
    store = m.get("store", {"kind": "faiss"})  # optional: indexes built before stores name none
    if not isinstance(store, dict) or store.get("kind") not in ("faiss", "qdrant") or (
            store["kind"] == "qdrant" and not (isinstance(store.get("location"), str) and store["location"]
                                               and isinstance(store.get("collection"), str) and store["collection"]
                                               and is_int(store.get("points")))):
        return "'store' must be {'kind': 'faiss'} or {'kind': 'qdrant', 'location', 'collection', 'points'}"
    search = m.get("search", {})  # optional: approximate indexes only (tune_search)
    if not isinstance(search, dict) \
            or set(search) - {"efSearch", "nprobe", "efConstruction", "k_factor", "recall@10", "queries"} \
            or not all(is_int(search[key], 1) for key in ("efSearch", "nprobe", "efConstruction", "k_factor", "queries")
                       if key in search) \
            or ("recall@10" in search and not (isinstance(search["recall@10"], (int, float))
                                               and not isinstance(search["recall@10"], bool)
                                               and 0 <= search["recall@10"] <= 1)) \
            or (search and sum(key in search for key in ("efSearch", "nprobe")) != 1):
        return ("'search' must hold one positive 'efSearch' or 'nprobe' (and efConstruction, k_factor, queries, "
                "recall@10 in [0, 1])")
    for name, rec in m["corpus"].items():
        if not relative(name) or not isinstance(rec, dict) \
                or not isinstance(rec.get("sha256"), str) or not _SHA.fullmatch(rec["sha256"]) \
                or rec.get("lang") not in (*_LANGS, "glossary", "toc"):
            return f"corpus entry {name!r} needs a sha256 and a lang (zh, en, glossary or toc)"
    for name, digest in m["files"].items():
        if not relative(name) or not isinstance(digest, str) or not _SHA.fullmatch(digest):
            return f"files entry {name!r} needs a relative path and a sha256"
    missing = [name for name in _FILES if name not in m["files"]]
    if missing:
        return f"it does not list {', '.join(missing)}"
    return None


def check_fresh(index_dir: Path, manifest: dict, encoder_id: str | None = None) -> None:
    """Raise StaleIndexError if the corpus or the encoder changed since the build."""
    fix = rebuild_hint(index_dir, manifest)
    if encoder_id is not None and manifest["encoder"]["id"] != encoder_id:
        raise StaleIndexError(f"{index_dir} was built with encoder {manifest['encoder']['id']!r}, "
                              f"not {encoder_id!r}. {fix} --model {encoder_id}")
    corpus_dir = manifest_corpus(index_dir, manifest)
    if not corpus_dir.is_dir():
        log.warning("corpus %s of index %s not found; cannot check that the index is fresh", corpus_dir, index_dir)
        return
    fix = f"Rebuild: rag build --corpus {corpus_dir} --index {index_dir}"
    now = _corpus_names(corpus_dir)
    built = set(manifest["corpus"])
    if now != built:
        diff = sorted(now ^ built)
        raise StaleIndexError(f"{index_dir} is stale: corpus files added or removed since the build "
                              f"({', '.join(diff)}). {fix}")
    for name, rec in manifest["corpus"].items():
        try:
            data = (corpus_dir / name).read_bytes()
        except OSError as e:
            raise RagError(f"cannot read corpus file {corpus_dir / name} ({e.strerror or e}) to check that "
                           f"{index_dir} is up to date. Fix its permissions, or remove it and rebuild.") from None
        if _sha256(data) != rec["sha256"]:
            raise StaleIndexError(f"{index_dir} is stale: {name} changed since the build. {fix}")


def load_index(index_dir: Path = DEFAULT_INDEX, check_corpus: bool = True) -> LoadedIndex:
    """Load and verify the current version of an index directory (checksums, arrays, freshness).

    Never writes. If a build publishes a new version while this reads, it reads again.
    """
    if index_dir is None or not isinstance(index_dir, (str, os.PathLike)):
        raise RagError(f"the index directory must be a path, not {index_dir!r}.")
    index_dir = Path(index_dir)
    for attempt in range(3):
        files_dir = version_dir(index_dir)
        try:
            return _load_version(index_dir, files_dir, check_corpus)
        except RagError:
            if attempt == 2 or version_dir(index_dir) == files_dir:
                raise  # not a build replacing the version under us: a real problem


def _load_version(index_dir: Path, files_dir: Path, check_corpus: bool) -> LoadedIndex:
    import faiss

    manifest = _read_manifest(index_dir, files_dir)
    fix = rebuild_hint(index_dir, manifest)
    for name, digest in manifest["files"].items():
        try:
            data = (files_dir / name).read_bytes()
        except OSError:
            raise DamagedIndexError(f"{files_dir / name} is missing or unreadable. {fix}") from None
        if _sha256(data) != digest:
            raise DamagedIndexError(f"{files_dir / name} does not match the manifest (truncated or edited). {fix}")
    if check_corpus:
        check_fresh(index_dir, manifest)
    try:
        with open(files_dir / "chunks.jsonl", encoding="utf-8") as f:
            chunks = [Chunk(**json.loads(line)) for line in f]
        with open(files_dir / "sections.jsonl", encoding="utf-8") as f:
            sections = [Section(**{**rec, "parents": tuple(rec["parents"])}) for rec in map(json.loads, f)]
        titles = np.load(files_dir / "titles.npy", allow_pickle=False)
        with open(files_dir / "sentences.jsonl", encoding="utf-8") as f:
            sentences = [json.loads(line) for line in f]
        sentence_vectors = np.load(files_dir / "sentence_vectors.npy", allow_pickle=False).astype(np.float32)
        vectors = faiss.read_index(str(files_dir / "vectors.faiss"))
        apply_search(vectors, manifest.get("search", {}))
        bm25 = {p.name: BM25Scorer(p) for p in sorted((files_dir / "bm25").iterdir())}
        tokenize = Tokenizer(load_lexicon(files_dir / "lexicon.txt"))
        glossary = read_glossary(files_dir / GLOSSARY_FILE)
        duplicates = json.loads((files_dir / "duplicates.json").read_text(encoding="utf-8"))
        stats = json.loads((files_dir / "sentence_stats.json").read_text(encoding="utf-8"))
        words = files_dir / WORD_TRANSLATIONS
        word_translations = dict(line.split("\t") for line in words.read_text(encoding="utf-8").splitlines()) \
            if words.is_file() else {}
    except (OSError, ValueError, TypeError, KeyError, RuntimeError, AttributeError) as e:
        raise DamagedIndexError(f"{index_dir} is damaged ({type(e).__name__}: {str(e)[:120]}). {fix}") from None
    problem = _arrays_problem(manifest, chunks, sections, titles, sentences, sentence_vectors, vectors, bm25) \
        or _stats_problem(stats, len(sentences))
    if problem:
        raise DamagedIndexError(f"{index_dir} is inconsistent: {problem}. {fix}")
    return LoadedIndex(index_dir, manifest, chunks, sections, vectors, titles, sentences, sentence_vectors,
                       bm25, tokenize, glossary, duplicates, files_dir, stats, word_translations)


def _arrays_problem(manifest, chunks, sections, titles, sentences, sentence_vectors, vectors, bm25) -> str | None:
    """What makes the loaded parts disagree with each other or the manifest (shapes, dtypes, ids, NaN), or None."""
    dim, corpus = manifest["encoder"]["dim"], manifest["corpus"]
    if vectors.d != dim:
        return f"vectors have {vectors.d} dimensions, the manifest says {dim}"
    if vectors.ntotal != len(chunks) or len(chunks) != manifest["counts"]["chunks"]:
        return f"{len(chunks)} chunks, {vectors.ntotal} vectors, the manifest counts {manifest['counts']['chunks']}"
    try:
        stored = vectors.reconstruct_n(0, vectors.ntotal) if vectors.ntotal else np.zeros((0, dim), np.float32)
    except RuntimeError:  # index types that keep no vectors (e.g. IVF without a direct map)
        stored = np.zeros((0, dim), np.float32)
    if not np.isfinite(stored).all():
        return "chunk vectors are not all finite numbers"
    n_titles = len(sections) + len(english_titled(sections))
    for name, arr, rows in (("titles", titles, n_titles), ("sentence vectors", sentence_vectors, len(sentences))):
        if arr.dtype != np.float32 or arr.shape != (rows, dim) or not np.isfinite(arr).all():
            return f"{name} are {arr.dtype} {arr.shape}, expected finite float32 ({rows}, {dim})"
    keys = set()
    for s in sections:
        if not isinstance(s, Section) or not all(isinstance(getattr(s, f), str) for f in ("chapter", "id", "title", "source", "kind")) \
                or not all(isinstance(p, str) for p in s.parents) \
                or s.source not in corpus or corpus[s.source]["lang"] not in _LANGS:
            return f"a section record is malformed or names an unknown file: {str(s)[:80]}"
        keys.add(s.key)
    counts = manifest["counts"]
    if len(keys) != counts["sections"] or len({s.chapter for s in sections}) != counts["chapters"] \
            or len(sentences) != counts["sentences"]:
        return f"{len(keys)} sections and {len(sentences)} sentences, the manifest counts {counts}"
    for i, c in enumerate(chunks):
        if c.id != i or c.lang not in _LANGS or c.source not in corpus or not isinstance(c.chapter, str) \
                or not isinstance(c.section, str) or c.key not in keys:
            return f"chunk {i} has a wrong id, language, file or an unknown section {c.key!r}"
    for s in sentences:
        if not isinstance(s, dict) or not isinstance(s.get("text"), str) or s.get("source") not in corpus \
                or not isinstance(s.get("chapter"), str) or not isinstance(s.get("section"), str) \
                or section_key(s["chapter"], s["section"]) not in keys or not isinstance(s.get("tokens"), list) \
                or not isinstance(s.get("head"), list) or not isinstance(s.get("heading"), bool):
            return f"a sentence record is malformed or names an unknown section: {str(s)[:80]}"
    per_lang = {lang: sum(c.lang == lang for c in chunks) for lang in _LANGS}
    for lang, b in bm25.items():
        if lang not in _LANGS or b.num_docs != per_lang[lang]:
            return f"BM25 index {lang!r} has {b.num_docs} documents, the index {per_lang.get(lang)} chunks in it"
        if b.data.ndim != 1 or b.indices.shape != b.data.shape or not np.isfinite(b.data).all() \
                or b.indices.dtype.kind not in "iu" or b.indptr.dtype.kind not in "iu" \
                or (b.indices.size and (b.indices.min() < 0 or b.indices.max() >= b.num_docs)) \
                or b.indptr[0] != 0 or b.indptr[-1] != b.data.size or (np.diff(b.indptr) < 0).any() \
                or not isinstance(b.vocab, dict) or not all(_is_id(v, len(b.indptr) - 1) for v in b.vocab.values()):
            return f"BM25 arrays of {lang!r} are out of range or not finite"
    if sum(per_lang[lang] for lang in bm25) != len(chunks):
        return "some chunks have no BM25 index"
    return None


def _stats_problem(stats, n: int) -> str | None:
    """What is wrong with sentence_stats.json (its structure, its sentence count), or None."""
    def counts(d):
        return isinstance(d, dict) and all(isinstance(v, int) and not isinstance(v, bool) and 0 < v <= n
                                           for v in d.values())
    if not isinstance(stats, dict) or stats.get("sentences") != n or not counts(stats.get("df")) \
            or not counts(stats.get("pair_df")):
        return f"sentence_stats.json does not hold document frequencies over the {n} sentences"
    return None


def _is_id(v, n: int) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and 0 <= v < n

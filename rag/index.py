"""Build, save and load the index directory; check its manifest.

    index/
      manifest.json   format version, encoder, chunking, corpus and file checksums
      chunks.jsonl    one chunk a line (ensure_ascii=False)
      vectors.faiss   FAISS index over normalized chunk vectors (inner product)
      sections.jsonl  one section a line (chapter, id, title, source), in file order
      titles.npy      the normalized vector of each section title, row for row
      sentences.jsonl every sentence (with its tokens, and for a translation its original)
      sentence_vectors.npy  the normalized vector of each sentence, row for row
      lexicon.txt     the jieba dictionary of the corpus's words (see lexical.py)
      bm25/LANG/      bm25s's saved arrays over the chunks of one language (zh, en)

A build writes into a temporary directory beside the target and swaps it in with renames, so
an interrupted build leaves the previous index as it was. Nothing is pickled.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import sys
import tempfile
from dataclasses import asdict, dataclass
from functools import cached_property
from pathlib import Path

import numpy as np

from . import __version__
from .align import apply_pairing, attach_originals, pair_sections
from .chunking import MAX_CHARS
from .corpus import chapter_id, find_chapters, parse_blocks, read_corpus, read_text
from .text import normalize
from .embedding import Encoder
from .glossary import GLOSSARY_FILE, read_glossary
from .lexical import BM25Scorer, Tokenizer, build_bm25, load_lexicon, make_lexicon, save_lexicon
from .types import Chunk, DamagedIndexError, IndexMissingError, RagError, Section, StaleIndexError

log = logging.getLogger(__name__)

FORMAT_VERSION = 2
ROOT = Path(__file__).resolve().parent.parent
DEFAULT_INDEX = ROOT / "index"
DEFAULT_CORPUS = ROOT / "corpus"
_FILES = ("chunks.jsonl", "vectors.faiss", "sections.jsonl", "titles.npy", "sentences.jsonl",
          "sentence_vectors.npy", "lexicon.txt")


def embedding_text(chunk: Chunk) -> str:
    """What is embedded and BM25-indexed for a chunk: its section title, then its text, normalized."""
    return normalize(f"{chunk.title}\n{chunk.text}")


def _corpus_names(corpus_dir: Path) -> set[str]:
    """The files an index depends on: the chapters and the glossary."""
    try:
        names = {p.relative_to(corpus_dir).as_posix() for p in find_chapters(corpus_dir)}
    except RagError:
        names = set()
    return names | ({GLOSSARY_FILE} if (corpus_dir / GLOSSARY_FILE).is_file() else set())


def build_index(corpus_dir: Path = DEFAULT_CORPUS, index_dir: Path = DEFAULT_INDEX,
                encoder: Encoder | None = None, index_type: str = "Flat",
                max_chars: int = MAX_CHARS, progress: bool = False, store: str = "faiss") -> dict:
    """Chunk, embed and index a corpus directory into index_dir; return the manifest.

    store: 'faiss' (default), or 'qdrant:PATH' / 'qdrant:http://HOST:6333' to also serve the
    chunks from Qdrant (see store.py); the manifest records which.
    """
    import faiss

    from .embedding import load_encoder
    from .store import parse_spec

    corpus_dir, index_dir = Path(corpus_dir), Path(index_dir)
    store_kind, store_location = parse_spec(store)
    corpus = read_corpus(corpus_dir, max_chars)
    sentences, files, file_texts, report = corpus.sentences, corpus.files, corpus.texts, corpus.report
    encoder = encoder or load_encoder()
    sentence_vectors = _encode_all(encoder, [normalize(s["text"]) for s in sentences], False)
    titles = _encode_all(encoder, [s.title for s in corpus.sections], False)
    pairs = pair_sections(corpus.sections, sentences, sentence_vectors, titles, report)
    sections, chunks = apply_pairing(pairs, corpus.sections, corpus.chunks, sentences)
    attach_originals(sentences, sentence_vectors, file_texts)
    texts = [embedding_text(c) for c in chunks]
    glossary_path = corpus_dir / GLOSSARY_FILE
    glossary = read_glossary(glossary_path)
    lexicon = make_lexicon(texts, extra_words=[zh for zh, _ in glossary])
    tokenize = Tokenizer(lexicon)
    vectors = _encode_all(encoder, texts, progress)
    index = _faiss_index(vectors, index_type)

    index_dir.parent.mkdir(parents=True, exist_ok=True)
    _remove_leftovers(index_dir)
    tmp = Path(tempfile.mkdtemp(prefix=f".{index_dir.name}-build-{os.getpid()}-", dir=index_dir.parent))
    tmp.chmod(0o755)
    try:
        with open(tmp / "chunks.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for c in chunks:
                f.write(json.dumps(asdict(c), ensure_ascii=False) + "\n")
        faiss.write_index(index, str(tmp / "vectors.faiss"))
        with open(tmp / "sections.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for sec in sections:
                f.write(json.dumps(asdict(sec), ensure_ascii=False) + "\n")
        np.save(tmp / "titles.npy", titles, allow_pickle=False)
        with open(tmp / "sentences.jsonl", "w", encoding="utf-8", newline="\n") as f:
            for rec in sentences:
                f.write(json.dumps({**rec, "tokens": tokenize(normalize(rec["text"]))}, ensure_ascii=False) + "\n")
        np.save(tmp / "sentence_vectors.npy", sentence_vectors, allow_pickle=False)
        save_lexicon(lexicon, tmp / "lexicon.txt")
        if glossary:
            shutil.copyfile(glossary_path, tmp / GLOSSARY_FILE)
        # One BM25 index per language: length normalization and IDF stay those of the text a
        # question is matched against (measured: +6 points hit@1 for Chinese questions).
        tokens = [tokenize(t) for t in texts]
        for lang in sorted({c.lang for c in chunks}):
            build_bm25([toks for c, toks in zip(chunks, tokens) if c.lang == lang], tmp / "bm25" / lang)
        store_record = {"kind": "faiss"}
        if store_kind == "qdrant":
            store_record = _create_qdrant(store_location, index_dir, tmp, chunks, vectors, tokens)
        manifest = {
            "format_version": FORMAT_VERSION,
            "package_version": __version__,
            "encoder": {"id": encoder.id, "dim": int(vectors.shape[1])},
            "index_type": index_type,
            "store": store_record,
            "chunking": {"max_chars": max_chars},
            "corpus_dir": os.path.relpath(corpus_dir.resolve(), index_dir.resolve().parent),
            "corpus": {**files, **({GLOSSARY_FILE: {"sha256": _sha256(glossary_path.read_bytes()), "lang": "glossary"}}
                                   if glossary else {})},
            "counts": build_counts(sections, chunks, sentences),
            "warnings": report.to_dict(),
            "files": {p.relative_to(tmp).as_posix(): _sha256(p.read_bytes())
                      for p in sorted(tmp.rglob("*")) if p.is_file()},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n",
                                           encoding="utf-8")
        _swap_in(tmp, index_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    log.info("built %s: %d chunks in %d sections", index_dir, len(chunks), manifest["counts"]["sections"])
    return manifest


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


def _encode_all(encoder: Encoder, texts: list[str], progress: bool, batch: int = 32) -> np.ndarray:
    parts = []
    for i in range(0, len(texts), batch):
        parts.append(encoder.encode(texts[i:i + batch]))
        if progress:
            print(f"\rembedding chunks {min(i + batch, len(texts))}/{len(texts)}", end="", file=sys.stderr,
                  flush=True)
    if progress:
        print(file=sys.stderr)
    return np.vstack(parts).astype(np.float32)


def _faiss_index(vectors: np.ndarray, index_type: str):
    import faiss

    try:
        index = faiss.index_factory(vectors.shape[1], index_type, faiss.METRIC_INNER_PRODUCT)
        if not index.is_trained:
            index.train(vectors)
        index.add(vectors)
    except RuntimeError as e:
        first = str(e).strip().splitlines()[-1][:200]
        raise RagError(f"FAISS index type {index_type!r} does not work for {len(vectors)} vectors "
                       f"({first}). Use 'Flat' for small corpora, or e.g. 'HNSW32'.") from None
    return index


def _remove_leftovers(index_dir: Path) -> None:
    """Delete temporary directories of builds whose process is gone (killed mid-build)."""
    for p in index_dir.parent.glob(f".{index_dir.name}-*-*"):
        kind, _, rest = p.name[len(index_dir.name) + 2:].partition("-")
        pid = rest.split("-")[0]
        if kind in ("build", "old") and pid.isdigit() and not _alive(int(pid)) and index_dir.exists():
            shutil.rmtree(p, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _swap_in(tmp: Path, index_dir: Path) -> None:
    """Replace index_dir by tmp with two renames; the old index survives until the second."""
    old = None
    if index_dir.exists():
        old = index_dir.with_name(f".{index_dir.name}-old-{os.getpid()}")
        os.replace(index_dir, old)
    os.replace(tmp, index_dir)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


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
    titles: np.ndarray  # one row per entry of sections
    sentences: list[dict]
    sentence_vectors: np.ndarray  # one row per sentence
    bm25: dict[str, BM25Scorer]  # by language
    tokenize: Tokenizer
    glossary: list[tuple[str, list[str]]]

    @property
    def corpus_dir(self) -> Path:
        return (self.path.resolve().parent / self.manifest["corpus_dir"]).resolve()

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
            if lang == "glossary" or (chapter_id(name), lang) in titles:
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
    """The manifest of index_dir, or a clear error saying how to make one."""
    index_dir = Path(index_dir)
    _recover_interrupted_swap(index_dir)
    path = index_dir / "manifest.json"
    if not index_dir.is_dir() or not path.is_file():
        raise IndexMissingError(f"no index at {index_dir}. Build one with: rag build --index {index_dir}")
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise DamagedIndexError(f"{path} is unreadable ({type(e).__name__}). "
                                f"Rebuild: rag build --index {index_dir}") from None
    if manifest.get("format_version") != FORMAT_VERSION:
        raise StaleIndexError(f"{index_dir} has index format {manifest.get('format_version')}, this version "
                              f"reads format {FORMAT_VERSION}. Rebuild: rag build --index {index_dir}")
    return manifest


def check_fresh(index_dir: Path, manifest: dict, encoder_id: str | None = None) -> None:
    """Raise StaleIndexError if the corpus or the encoder changed since the build."""
    fix = f"Rebuild: rag build --index {index_dir}"
    if encoder_id is not None and manifest["encoder"]["id"] != encoder_id:
        raise StaleIndexError(f"{index_dir} was built with encoder {manifest['encoder']['id']!r}, "
                              f"not {encoder_id!r}. {fix} --model {encoder_id}")
    corpus_dir = (Path(index_dir).resolve().parent / manifest["corpus_dir"]).resolve()
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
        if _sha256((corpus_dir / name).read_bytes()) != rec["sha256"]:
            raise StaleIndexError(f"{index_dir} is stale: {name} changed since the build. {fix}")


def load_index(index_dir: Path = DEFAULT_INDEX, check_corpus: bool = True) -> LoadedIndex:
    """Load and verify an index directory (checksums, and freshness against its corpus)."""
    import faiss

    index_dir = Path(index_dir)
    manifest = read_manifest(index_dir)
    fix = f"Rebuild: rag build --index {index_dir}"
    missing = [name for name in _FILES if name not in manifest.get("files", {})]
    if missing:
        raise DamagedIndexError(f"{index_dir}/manifest.json does not list {', '.join(missing)}. {fix}")
    for name, digest in manifest["files"].items():
        try:
            data = (index_dir / name).read_bytes()
        except OSError:
            raise DamagedIndexError(f"{index_dir / name} is missing or unreadable. {fix}") from None
        if _sha256(data) != digest:
            raise DamagedIndexError(f"{index_dir / name} does not match the manifest (truncated or edited). {fix}")
    if check_corpus:
        check_fresh(index_dir, manifest)
    try:
        with open(index_dir / "chunks.jsonl", encoding="utf-8") as f:
            chunks = [Chunk(**json.loads(line)) for line in f]
        with open(index_dir / "sections.jsonl", encoding="utf-8") as f:
            sections = [Section(**{**rec, "parents": tuple(rec["parents"])}) for rec in map(json.loads, f)]
        titles = np.load(index_dir / "titles.npy", allow_pickle=False)
        with open(index_dir / "sentences.jsonl", encoding="utf-8") as f:
            sentences = [json.loads(line) for line in f]
        sentence_vectors = np.load(index_dir / "sentence_vectors.npy", allow_pickle=False)
        vectors = faiss.read_index(str(index_dir / "vectors.faiss"))
        bm25 = {p.name: BM25Scorer(p) for p in sorted((index_dir / "bm25").iterdir())}
        tokenize = Tokenizer(load_lexicon(index_dir / "lexicon.txt"))
        glossary = read_glossary(index_dir / GLOSSARY_FILE)
    except (OSError, ValueError, TypeError, KeyError, RuntimeError) as e:
        raise DamagedIndexError(f"{index_dir} is damaged ({type(e).__name__}: {str(e)[:120]}). {fix}") from None
    per_lang = {lang: sum(c.lang == lang for c in chunks) for lang in bm25}
    if (vectors.ntotal != len(chunks) or vectors.d != manifest["encoder"]["dim"]
            or any(b.num_docs != per_lang[lang] for lang, b in bm25.items()) or sum(per_lang.values()) != len(chunks)
            or titles.shape != (len(sections), vectors.d)
            or sentence_vectors.shape != (len(sentences), vectors.d)):
        raise DamagedIndexError(f"{index_dir} is inconsistent: {len(chunks)} chunks, {vectors.ntotal} vectors, "
                                f"{sum(b.num_docs for b in bm25.values())} BM25 documents. {fix}")
    return LoadedIndex(index_dir, manifest, chunks, sections, vectors, titles, sentences, sentence_vectors,
                       bm25, tokenize, glossary)


def _recover_interrupted_swap(index_dir: Path) -> None:
    """If a build died between its two renames, put the previous index back."""
    if index_dir.exists():
        return
    olds = sorted(index_dir.parent.glob(f".{index_dir.name}-old-*")) if index_dir.parent.is_dir() else []
    if olds:
        os.replace(olds[-1], index_dir)
        log.warning("restored %s from an interrupted build", index_dir)

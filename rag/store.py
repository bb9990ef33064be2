"""Where the chunk vectors and BM25 postings live: FAISS + bm25s arrays (default) or Qdrant.

The retriever asks a store for *candidates*, never for every chunk:

    dense(qv, n)                 the n chunks most similar to the query vector, best first
    dense_scores(qv, ids)        the similarity of given chunks (to complete a candidate's score)
    lexical(lang, tokens, n)     the n chunks of one language with the best BM25, best first
    lexical_scores(lang, tokens, ids)
                                 (both take `weights`, one per token, see lexical.term_weights)
    titles(qv, n), title_scores(qv, rows)   the same for section titles (rows of titles.npy)

Each list comes as a `Ranked`: ids, scores and whether it is complete (every item that scores
above zero is in it). Fusion, sections, answers and the UI sit above this and do not know which
store they talk to.

- `FaissStore` (default): `vectors.faiss` and `bm25/LANG/` in the index directory, in process.
  BM25 candidates come from the postings of the query's tokens only (bm25s's CSC columns).
- `QdrantStore` (`rag build --store qdrant:PATH` for the embedded local mode,
  `qdrant:http://HOST:6333` for a server): one point per chunk with the dense vector, BM25 as a
  sparse vector per language (`bm25_zh`, `bm25_en`: indices are the index's BM25 vocabulary,
  values the BM25 term-frequency part computed here with the same tokenizer, the IDF applied by
  Qdrant with `Modifier.IDF`, so scores equal bm25s's Lucene BM25), and chapter, language and
  section as indexed payload. Section titles stay in `titles.npy` (a few per section). Local mode
  is brute force and warns above ~20k points: it is for tests and laptops; use a server beyond.
"""

from __future__ import annotations

import atexit
import hashlib
import threading
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from .types import DamagedIndexError, RagError

STORES = ("faiss", "qdrant")


@dataclass(frozen=True)
class Ranked:
    """Items (chunk ids or title rows) by descending score."""

    ids: np.ndarray  # int64
    scores: np.ndarray  # float32
    complete: bool  # True: every item not listed scores 0 (or is not in the store)

    @property
    def cut(self) -> float:
        """An upper bound on the score of any item not listed."""
        return 0.0 if self.complete or len(self.scores) == 0 else float(self.scores[-1])


class Store(Protocol):
    kind: str

    def dense(self, qv: np.ndarray, n: int) -> Ranked: ...
    def dense_scores(self, qv: np.ndarray, ids: np.ndarray) -> np.ndarray: ...
    def lexical(self, lang: str, tokens: list[str], n: int, weights: list[float] | None = None) -> Ranked: ...
    def lexical_scores(self, lang: str, tokens: list[str], ids: np.ndarray,
                       weights: list[float] | None = None) -> np.ndarray: ...
    def titles(self, qv: np.ndarray, n: int) -> Ranked: ...
    def title_scores(self, qv: np.ndarray, rows: np.ndarray) -> np.ndarray: ...


def _top(ids: np.ndarray, scores: np.ndarray, n: int) -> Ranked:
    """The n best of (ids, scores), ties by ascending id (as a stable sort of a full scan orders them)."""
    if len(ids) > n:
        part = np.argpartition(-scores, n - 1)[:n]
        kth = scores[part].min()
        # keep every item tied with the n-th, so that the cut is exact
        part = np.flatnonzero(scores >= kth)
        ids, scores = ids[part], scores[part]
        complete = False
    else:
        complete = True
    order = np.lexsort((ids, -scores))
    return Ranked(ids[order].astype(np.int64), scores[order].astype(np.float32), complete)


class _TitleMatrix:
    """Section titles as a matrix (a few per section: an exact product is cheap up to ~10^5)."""

    def __init__(self, titles: np.ndarray, title_index=None):
        self._titles = titles
        self._index = title_index  # optional FAISS index over the same rows, for very many sections

    def titles(self, qv: np.ndarray, n: int) -> Ranked:
        if self._index is not None and n < len(self._titles):
            sims, ids = self._index.search(qv, n)
            ok = ids[0] >= 0
            return Ranked(ids[0][ok].astype(np.int64), sims[0][ok], False)
        sims = self._titles @ qv[0]
        return _top(np.arange(len(sims)), sims, n)

    def title_scores(self, qv: np.ndarray, rows: np.ndarray) -> np.ndarray:
        return self._titles[rows] @ qv[0]


class FaissStore(_TitleMatrix):
    """FAISS vectors and bm25s postings in memory (the index directory's files)."""

    kind = "faiss"

    def __init__(self, vectors, lexical: dict, titles: np.ndarray, title_index=None):
        """vectors: a faiss.Index; lexical: {lang: (BM25Scorer, global chunk id of each BM25 document)}."""
        super().__init__(titles, title_index)
        self.vectors = vectors
        self._lexical = lexical
        self._last = {}  # per language: the last query's postings, so lexical_scores does not re-read them
        try:  # IVF indexes reconstruct a vector only with a direct map
            import faiss

            faiss.extract_index_ivf(vectors).make_direct_map()
        except (RuntimeError, AttributeError):
            pass

    @property
    def languages(self) -> list[str]:
        return list(self._lexical)

    def dense(self, qv: np.ndarray, n: int) -> Ranked:
        n = min(n, self.vectors.ntotal)
        if n == 0:
            return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32), True)
        sims, ids = self.vectors.search(qv, n)
        ok = ids[0] >= 0
        return Ranked(ids[0][ok].astype(np.int64), sims[0][ok], n == self.vectors.ntotal)

    def dense_scores(self, qv: np.ndarray, ids: np.ndarray) -> np.ndarray:
        if len(ids) == 0:
            return np.zeros(0, np.float32)
        return self.vectors.reconstruct_batch(np.asarray(ids, dtype=np.int64)) @ qv[0]

    def _matches(self, lang: str, tokens: list[str], weights: list[float] | None) -> tuple[np.ndarray, np.ndarray]:
        key, value = self._last.get(lang, (None, None))
        query = (tuple(tokens), None if weights is None else tuple(weights))
        if key != query:
            scorer, global_ids = self._lexical[lang]
            docs, scores = scorer.matches(tokens, weights)
            value = (global_ids[docs], scores)
            self._last[lang] = (query, value)
        return value

    def lexical(self, lang: str, tokens: list[str], n: int, weights: list[float] | None = None) -> Ranked:
        ids, scores = self._matches(lang, tokens, weights)
        return _top(ids, scores, n)

    def lexical_above(self, lang: str, tokens: list[str], score: float, weights: list[float] | None = None) -> int:
        """How many documents score above `score` (from the query's summed postings, no new scoring)."""
        return int(np.count_nonzero(self._matches(lang, tokens, weights)[1] > score))

    def lexical_scores(self, lang: str, tokens: list[str], ids: np.ndarray,
                       weights: list[float] | None = None) -> np.ndarray:
        found, scores = self._matches(lang, tokens, weights)
        out = np.zeros(len(ids), np.float32)
        if len(found):
            pos = np.clip(np.searchsorted(found, ids), 0, len(found) - 1)
            hit = found[pos] == ids
            out[hit] = scores[pos[hit]]
        return out


# ---------------------------------------------------------------------------------------------- Qdrant

_clients: dict[str, object] = {}
_clients_lock = threading.Lock()


@atexit.register
def _close_clients() -> None:
    """Close clients before the interpreter tears down the modules their finalizers need."""
    for client in _clients.values():
        try:
            client.close()
        except Exception:
            pass
    _clients.clear()


def parse_spec(spec: str) -> tuple[str, str | None]:
    """'faiss' -> ('faiss', None); 'qdrant:PATH' or 'qdrant:http://HOST:6333' -> ('qdrant', location)."""
    if not isinstance(spec, str):
        raise RagError(f"the store must be text like 'faiss' or 'qdrant:PATH', not {spec!r}.")
    kind, _, location = spec.partition(":")
    if kind == "faiss" and not location:
        return "faiss", None
    if kind == "qdrant" and location:
        return "qdrant", location
    raise RagError(f"unknown store {spec!r}; use 'faiss' (the default), 'qdrant:PATH' (embedded, a local "
                   "directory) or 'qdrant:http://HOST:6333' (a Qdrant server).")


def _is_url(location: str) -> bool:
    return location.startswith(("http://", "https://"))


def _client(location: str):
    """One client per location and process (local mode locks its directory)."""
    try:
        from qdrant_client import QdrantClient
    except ImportError:
        raise RagError("this index uses a Qdrant store but qdrant-client is not installed. "
                       "Install it: pip install -e '.[qdrant]'") from None
    with _clients_lock:
        if location not in _clients:
            try:
                if _is_url(location):
                    client = QdrantClient(url=location, timeout=10, check_compatibility=False)
                    client.get_collections()  # fail now, clearly, if nothing answers
                else:
                    Path(location).mkdir(parents=True, exist_ok=True)
                    client = QdrantClient(path=location)
            except RagError:
                raise
            except Exception as e:  # connection refused, timeout, locked directory ...
                raise RagError(f"cannot reach the Qdrant store at {location} ({type(e).__name__}: "
                               f"{str(e)[:160]}). Start the server, check the address, or rebuild with "
                               "another store: rag build --store faiss") from None
            _clients[location] = client
        return _clients[location]


def _bm25_weights(docs_tokens: list[list[str]], vocab: dict[str, int], k1: float, b: float):
    """Per document: (term ids, the term-frequency part of Lucene BM25), as bm25s computes it."""
    lengths = np.array([len(t) for t in docs_tokens], dtype=np.float64)
    avgdl = float(lengths.mean()) if len(lengths) else 1.0
    out = []
    for toks, dl in zip(docs_tokens, lengths):
        tf = Counter(vocab[t] for t in toks)
        ids = sorted(tf)
        norm = k1 * (1 - b + b * dl / avgdl)
        out.append((ids, [tf[i] / (tf[i] + norm) for i in ids]))
    return out


QDRANT_LEDGER = ".qdrant-collections"  # in the index directory


def create_qdrant(location: str, index_dir: Path, chunks, vectors: np.ndarray, tokens: list[list[str]],
                  vocabs: dict[str, dict[str, int]], k1: float, b: float, chapters: list[str]) -> dict:
    """Write the chunks into a new Qdrant collection; return the manifest's store record."""
    from qdrant_client import models

    client = _client(location)
    digest = hashlib.sha256(vectors.tobytes() + repr(tokens).encode()).hexdigest()[:12]
    collection = f"{Path(index_dir).name}-{digest}"
    langs = sorted(vocabs)
    weights = {}
    for lang in langs:
        ids = [i for i, c in enumerate(chunks) if c.lang == lang]
        weights.update(zip(ids, _bm25_weights([tokens[i] for i in ids], vocabs[lang], k1, b)))
    record = {"kind": "qdrant", "location": location, "collection": collection, "points": len(chunks)}
    # The collections this index directory created: only those may be deleted (a half-written one,
    # from a killed build); a server's other collections are never touched.
    ledger = Path(index_dir) / QDRANT_LEDGER
    ours = ledger.is_file() and collection in ledger.read_text(encoding="utf-8").split()
    try:
        if client.collection_exists(collection):
            if client.count(collection, exact=True).count == len(chunks):
                return record  # the same content, whole: keep it (readers may be using it)
            if not ours:
                raise RagError(f"the Qdrant store at {location} already has a collection {collection} that this "
                               "index did not create. Remove it yourself, or build into another --index directory.")
            client.delete_collection(collection)  # ours, half-written by an earlier build
        else:
            with open(ledger, "a", encoding="utf-8") as f:
                f.write(collection + "\n")
        client.create_collection(
            collection,
            vectors_config={"dense": models.VectorParams(size=vectors.shape[1], distance=models.Distance.DOT)},
            sparse_vectors_config={f"bm25_{lang}": models.SparseVectorParams(modifier=models.Modifier.IDF)
                                   for lang in langs})
        if _is_url(location):  # local mode has no payload indexes (it filters by brute force)
            for field in ("chapter", "lang"):
                client.create_payload_index(collection, field, models.PayloadSchemaType.KEYWORD)
        batch = []
        for i, c in enumerate(chunks):
            vec = {"dense": vectors[i].tolist()}
            ids, vals = weights[i]
            if ids:
                vec[f"bm25_{c.lang}"] = models.SparseVector(indices=ids, values=vals)
            batch.append(models.PointStruct(id=i, vector=vec, payload={
                "chapter": chapters[i], "lang": c.lang, "section": c.section}))
            if len(batch) == 256 or i == len(chunks) - 1:
                client.upsert(collection, batch, wait=True)
                batch = []
    except RagError:
        raise
    except Exception as e:
        raise RagError(f"writing to the Qdrant store at {location} failed ({type(e).__name__}: {str(e)[:160]}). "
                       "The previous index is unchanged.") from None
    return record


class QdrantStore(_TitleMatrix):
    """A Qdrant collection written by `create_qdrant` (embedded local mode or a server)."""

    kind = "qdrant"

    def __init__(self, location: str, collection: str, points: int, vocabs: dict[str, dict[str, int]],
                 titles: np.ndarray):
        super().__init__(titles)
        self.client = _client(location)
        self.collection = collection
        self._vocabs = vocabs
        try:
            found = self.client.count(collection, exact=True).count if self.client.collection_exists(collection) else None
        except Exception as e:
            raise RagError(f"cannot read the Qdrant collection {collection} at {location} "
                           f"({type(e).__name__}: {str(e)[:160]}). Is the server up?") from None
        if found != points:
            raise DamagedIndexError(f"the Qdrant store at {location} has {'no collection ' + collection if found is None else f'{found} points in {collection}'}"
                                    f", the index expects {points}. Rebuild: rag build --store qdrant:{location}")

    @property
    def languages(self) -> list[str]:
        return list(self._vocabs)

    def _query(self, query, using: str, n: int, ids: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        from qdrant_client import models

        flt = None if ids is None else models.Filter(must=[models.HasIdCondition(has_id=[int(i) for i in ids])])
        try:
            res = self.client.query_points(self.collection, query=query, using=using, limit=n, query_filter=flt,
                                           with_payload=False).points
        except Exception as e:
            raise RagError(f"the Qdrant store did not answer ({type(e).__name__}: {str(e)[:160]}).") from None
        return (np.array([p.id for p in res], dtype=np.int64), np.array([p.score for p in res], dtype=np.float32))

    def _sparse(self, lang: str, tokens: list[str], weights: list[float] | None = None):
        """The query as a sparse vector: each token's count in the query, times its weight."""
        from qdrant_client import models

        tf: Counter = Counter()
        for j, t in enumerate(tokens):
            if t in self._vocabs[lang]:
                tf[self._vocabs[lang][t]] += 1.0 if weights is None else weights[j]
        return models.SparseVector(indices=sorted(tf), values=[float(tf[i]) for i in sorted(tf)]) if tf else None

    def dense(self, qv: np.ndarray, n: int) -> Ranked:
        ids, sims = self._query(qv[0].tolist(), "dense", n)
        return Ranked(ids, sims, len(ids) < n)

    def dense_scores(self, qv: np.ndarray, ids: np.ndarray) -> np.ndarray:
        return self._scores_of(qv[0].tolist(), "dense", ids)

    def lexical(self, lang: str, tokens: list[str], n: int, weights: list[float] | None = None) -> Ranked:
        q = self._sparse(lang, tokens, weights)
        if q is None:
            return Ranked(np.zeros(0, np.int64), np.zeros(0, np.float32), True)
        ids, scores = self._query(q, f"bm25_{lang}", n)
        keep = scores > 0
        return _top(ids[keep], scores[keep], len(ids)) if len(ids) < n else Ranked(ids, scores, False)

    def lexical_scores(self, lang: str, tokens: list[str], ids: np.ndarray,
                       weights: list[float] | None = None) -> np.ndarray:
        q = self._sparse(lang, tokens, weights)
        return np.zeros(len(ids), np.float32) if q is None else self._scores_of(q, f"bm25_{lang}", ids)

    def _scores_of(self, query, using: str, ids: np.ndarray) -> np.ndarray:
        out = np.zeros(len(ids), np.float32)
        if len(ids) == 0:
            return out
        found, scores = self._query(query, using, len(ids), ids)
        pos = {int(i): s for i, s in zip(found, scores)}
        return np.array([pos.get(int(i), 0.0) for i in ids], dtype=np.float32)


def _location(record: dict, index_dir: Path) -> str:
    """A local store's directory is recorded relative to the index's parent, like the corpus."""
    location = record["location"]
    return location if _is_url(location) else str((Path(index_dir).resolve().parent / location).resolve())


def store_spec(manifest: dict, index_dir: Path) -> str:
    """The --store argument that rebuilds an index into the same store."""
    record = manifest.get("store", {"kind": "faiss"})
    return "faiss" if record["kind"] == "faiss" else f"{record['kind']}:{_location(record, index_dir)}"


def open_store(index) -> Store:
    """The store an index directory's manifest names (FAISS when it names none)."""
    record = index.manifest.get("store", {"kind": "faiss"})
    langs = [c.lang for c in index.chunks]
    if record["kind"] == "faiss":
        lexical = {lang: (scorer, np.array([i for i, l in enumerate(langs) if l == lang], dtype=np.int64))
                   for lang, scorer in index.bm25.items()}
        return FaissStore(index.vectors, lexical, index.titles)
    if record["kind"] == "qdrant":
        return QdrantStore(_location(record, index.path), record["collection"], record["points"],
                           {lang: scorer.vocab for lang, scorer in index.bm25.items()}, index.titles)
    from .index import rebuild_hint

    raise DamagedIndexError(f"{index.path}/manifest.json names an unknown store {record['kind']!r}. "
                            f"{rebuild_hint(index.path, index.manifest)}")

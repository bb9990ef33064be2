"""Scale benchmark: the whole hybrid search (dense candidates + BM25 candidates + fusion + sections)
through `Retriever.retrieve`, on synthetic corpora of 10k / 100k / 1M chunks.

    .venv/bin/python benchmarks/run.py --only-scale [--max-n 100000] [--qdrant-max-n 100000]
    OMP_NUM_THREADS=2 .venv/bin/python benchmarks/scale.py --only-n 1000000 --skip-ivf   # the 1M rows
    .venv/bin/python benchmarks/scale.py --calibrate book-index   # the generators beside real vectors

The 1M rows need ~9 GB of RAM (~21 min here for both generators, without IVF-PQ); building
HNSW32 and training IVF-PQ take most of the time, on OMP_NUM_THREADS threads (set it to your
cores). Every query is timed on one thread (one BLAS/OpenMP thread per query, as the server
runs), whatever OMP_NUM_THREADS says.

Synthetic data (encoding 1M real chunks would take hours), documented because it decides what
HNSW and IVF look like. Every size runs with both vector generators (`--vectors`), and every
row says which:
- vectors, "isotropic" (the original generator): d=512 unit vectors from a mixture of topics.
  Each topic has a centre c_t (standard normal); a section of 4 chunks draws a section centre
  c_t + 0.8·g, each chunk c_s + 0.6·g' (g, g' standard normal scaled to norm ~1, then
  normalized; cos(chunk, section) ~0.86, cos(section, topic) ~0.78). n/1000 topics (at least
  10). Clustered, but inside a topic the noise fills all 512 dimensions, so the ~1000 chunks of
  a topic are nearly equidistant from a query: the hard case for a graph index.
- vectors, "lowdim" (clustered, low intrinsic dimension): the same hierarchy, but each topic
  varies only in its own random 24-dimensional subspace (section centre c_t + 1.0·U_t z, chunk
  c_s + 0.7·U_t z', z standard normal of norm ~1 in R^24) plus isotropic noise of norm ~0.3 at
  each level, then normalized. Its parameters were chosen so that, at the book's size, its
  statistics sit on those of the real USE vectors of the whole book's 2,096 chunks
  (`--calibrate`, measured 2026-11-29; median over points):

      vectors (2,096)            PCA comps for 50/80/90% var   cos to neighbour 1/10/100   MLE intrinsic dim (k=20)
      book, USE multilingual     32 / 108 / 176                0.739 / 0.563 / 0.417       14.0
      lowdim                     36 / 116 / 172                0.700 / 0.546 / 0.333       13.8
      isotropic                  30 / 196 / 300                0.747 / 0.500 / 0.451       16.1

  At 2k points both generators look like the book in their nearest neighbours; the isotropic one
  spreads its variance over many more directions (300 components for 90% against the book's 176),
  and that difference grows with the number of chunks per topic. Real text at 1M chunks is not
  available here, so neither generator is "the" answer: both are reported.
- text: bilingual. A file holds 250 sections of one language (zh or en, alternating). Each chunk
  has 30-120 tokens: 60% from its topic's 300-word vocabulary (Zipf-weighted), 40% from the
  language's whole vocabulary (Zipf, exponent 1.0): 30k Chinese words from jieba's dictionary
  (the most frequent two- to four-character words, stop words removed) and 30k English
  pseudo-words (stable under the Snowball stemmer). BM25 (Lucene, k1=1.5, b=0.75) per language,
  written in bm25s's array format with numpy (checked against bm25s itself at 10k).
- queries: 200, each from a random section: a vector drawn like a chunk of it, and 2-5 words
  from its topic's vocabulary (plus background words), in the section's language. Query text
  goes through the real tokenizer; the query vector is given (the encoder's ~2.5 ms is measured
  on the chapter, docs/PERFORMANCE.md). A second set of 200 query vectors, drawn the same way,
  is what efSearch and nprobe are tuned on (`rag.index.tune_search`, as `rag build` tunes on the
  corpus's sentences), so the measured queries are held out.
- section titles: one vector per section (its centre), in an index of the same kind.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

D = 512
CHUNKS_PER_SECTION = 4
SECTIONS_PER_FILE = 250
VOCAB = 30_000
TOPIC_WORDS = 300
# The low-intrinsic-dimension generator ("lowdim"): each topic varies in its own RANK-dimensional
# subspace, plus a little isotropic noise (see the module docstring for the calibration).
RANK, SECTION_SPREAD, CHUNK_SPREAD, ISO_NOISE = 24, 1.0, 0.7, 0.3
GENERATORS = ("isotropic", "lowdim")
# IVF-PQ: 64-byte fast-scan PQ codes (128 sub-quantizers of 4 dims, 4 bits), measured alone and
# re-ranked with 8-bit scalar-quantized vectors (the default) or the float vectors (RFlat).
IVF_KIND, IVF_REFINES, IVF_TRAIN_PER_LIST = "IVF{nlist},PQ128x4fs", ("Refine(SQ8)", "RFlat"), 256
K1, B = 1.5, 0.75


# Index building and training may use several threads (OMP_NUM_THREADS); every query is timed
# on one thread, as the server runs.
BUILD_THREADS = int(os.environ.get("OMP_NUM_THREADS", "1"))


def rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


def pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100 * (len(v) - 1))))]


# ------------------------------------------------------------------------------------------ data


def vocabularies(rng):
    """30k Chinese words (jieba's most frequent, no stop words) and 30k English pseudo-words."""
    import jieba
    import Stemmer

    from rag.lexical import STOP_EN, STOP_ZH

    jieba.setLogLevel(60)
    jieba.dt.check_initialized()
    zh = sorted((w for w, f in jieba.dt.FREQ.items() if f > 0 and 2 <= len(w) <= 4 and w not in STOP_ZH
                 and all("\u4e00" <= ch <= "\u9fff" for ch in w)), key=lambda w: -jieba.dt.FREQ[w])[:VOCAB]
    stem = Stemmer.Stemmer("english").stemWord
    cons, vow = "bcdfgklmnprstvz", "aeiou"
    en, seen = [], set()
    while len(en) < VOCAB:
        w = "".join(rng.choice(list(cons)) + rng.choice(list(vow)) for _ in range(rng.integers(2, 5)))
        if w not in seen and stem(w) == w and w not in STOP_EN:
            seen.add(w)
            en.append(w)
    return {"zh": zh, "en": en}


class Corpus:
    """n chunks: vectors, per-language BM25 arrays, sections and title vectors, queries."""

    def __init__(self, n: int, seed: int = 0, vectors: str = "isotropic"):
        if vectors not in GENERATORS:
            raise ValueError(f"unknown vector generator {vectors!r}; choose from {GENERATORS}")
        rng = np.random.default_rng(seed)
        self.n, self.generator = n, vectors
        n_sec = n // CHUNKS_PER_SECTION
        n_topics = max(10, n // 1000)
        self.vocab = vocabularies(np.random.default_rng(1))
        topic_c = rng.standard_normal((n_topics, D), dtype=np.float32)
        topic_c /= np.linalg.norm(topic_c, axis=1, keepdims=True)
        self.sec_topic = rng.integers(0, n_topics, n_sec)
        self.sec_lang = np.array(["zh", "en"])[(np.arange(n_sec) // SECTIONS_PER_FILE) % 2]
        if vectors == "lowdim":  # an orthonormal RANK-dimensional basis per topic
            self.basis = np.stack([np.linalg.qr(rng.standard_normal((D, RANK)))[0] for _ in range(n_topics)]
                                  ).astype(np.float32)
            noisy = lambda c, t, spread: self._noisy_low(c, t, spread, rng)  # noqa: E731
            spreads = (SECTION_SPREAD, CHUNK_SPREAD)
        else:
            noisy = lambda c, t, spread: self._noisy(c, spread, rng)  # noqa: E731
            spreads = (0.8, 0.6)
        sec_c = noisy(topic_c[self.sec_topic], self.sec_topic, spreads[0])
        self.titles = sec_c
        self.vectors = np.empty((n, D), dtype=np.float32)
        for s in range(0, n, 100_000):
            e = min(n, s + 100_000)
            secs = np.arange(s, e) // CHUNKS_PER_SECTION
            self.vectors[s:e] = noisy(sec_c[secs], self.sec_topic[secs], spreads[1])
        self.topic_c = topic_c
        self.sec_c = sec_c
        # topic vocabularies: 300 word ids per topic and language
        self.topic_words = rng.integers(0, VOCAB, (n_topics, TOPIC_WORDS))
        self.chunk_lang = np.repeat(self.sec_lang, CHUNKS_PER_SECTION)
        self.chunk_topic = np.repeat(self.sec_topic, CHUNKS_PER_SECTION)
        self.bm25 = {lang: self._bm25(lang, rng) for lang in ("zh", "en")}
        # queries
        qs = rng.integers(0, n_sec, 200)
        self.query_vectors = noisy(sec_c[qs], self.sec_topic[qs], spreads[1])
        self.query_texts = []
        for s in qs:
            lang, t = self.sec_lang[s], self.sec_topic[s]
            words = self._draw(t, int(rng.integers(2, 6)), rng)
            self.query_texts.append(" ".join(self.vocab[lang][w] for w in words))
        # a second, separate set of 200 query vectors made the same way: what approximate
        # indexes are tuned on (efSearch, nprobe), so that the measured queries are held out
        ts = rng.integers(0, n_sec, 200)
        self.tune_vectors = noisy(sec_c[ts], self.sec_topic[ts], spreads[1])

    @staticmethod
    def _noisy(centres, scale, rng):
        """Unit vectors: centre + noise of norm ~scale (each coordinate N(0, scale^2/D))."""
        x = centres + np.float32(scale / np.sqrt(D)) * rng.standard_normal(centres.shape, dtype=np.float32)
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    @classmethod
    def vectors_only(cls, n: int, generator: str, seed: int = 0) -> np.ndarray:
        """n chunk vectors of a generator with 10 topics (for --calibrate at a real corpus's size)."""
        rng = np.random.default_rng(seed)
        self = cls.__new__(cls)
        topic_c = rng.standard_normal((10, D), dtype=np.float32)
        topic_c /= np.linalg.norm(topic_c, axis=1, keepdims=True)
        sec_topic = rng.integers(0, 10, -(-n // CHUNKS_PER_SECTION))
        if generator == "lowdim":
            self.basis = np.stack([np.linalg.qr(rng.standard_normal((D, RANK)))[0] for _ in range(10)]
                                  ).astype(np.float32)
            sec_c = self._noisy_low(topic_c[sec_topic], sec_topic, SECTION_SPREAD, rng)
            secs = np.arange(n) // CHUNKS_PER_SECTION
            return self._noisy_low(sec_c[secs], sec_topic[secs], CHUNK_SPREAD, rng)
        sec_c = self._noisy(topic_c[sec_topic], 0.8, rng)
        return self._noisy(sec_c[np.arange(n) // CHUNKS_PER_SECTION], 0.6, rng)

    def _noisy_low(self, centres, topics, spread, rng):
        """Unit vectors: centre + a Gaussian of norm ~spread in its topic's RANK-dim subspace
        + isotropic noise of norm ~ISO_NOISE."""
        z = rng.standard_normal((len(centres), RANK), dtype=np.float32) * np.float32(spread / np.sqrt(RANK))
        x = centres + np.float32(ISO_NOISE / np.sqrt(D)) * rng.standard_normal(centres.shape, dtype=np.float32)
        order = np.argsort(topics, kind="stable")
        bounds = np.searchsorted(topics[order], np.arange(len(self.basis) + 1))
        for t in np.flatnonzero(np.diff(bounds)):
            rows = order[bounds[t]:bounds[t + 1]]
            x[rows] += z[rows] @ self.basis[t].T
        x /= np.linalg.norm(x, axis=1, keepdims=True)
        return x

    def _zipf_cdf(self, m):
        w = 1.0 / np.arange(1, m + 1)
        return np.cumsum(w) / w.sum()

    def _draw(self, topic, count, rng):
        """Word ids: 60% from the topic's words, 40% from the whole vocabulary (both Zipf)."""
        from_topic = rng.random(count) < 0.6
        t_rank = np.searchsorted(self._zipf_cdf(TOPIC_WORDS), rng.random(count))
        g_rank = np.searchsorted(self._zipf_cdf(VOCAB), rng.random(count))
        topic = np.broadcast_to(np.asarray(topic), (count,)) if np.ndim(topic) == 0 else topic
        return np.where(from_topic, self.topic_words[topic, t_rank], g_rank)

    def _bm25(self, lang, rng):
        """CSC arrays of Lucene BM25 (as bm25s saves them) over this language's chunks."""
        ids = np.flatnonzero(self.chunk_lang == lang)
        lengths = rng.integers(30, 121, len(ids))
        doc = np.repeat(np.arange(len(ids)), lengths)
        words = self._draw(self.chunk_topic[ids][doc], len(doc), rng)
        keys, tf = np.unique(doc.astype(np.int64) * VOCAB + words, return_counts=True)
        del doc, words
        d, t = keys // VOCAB, keys % VOCAB
        df = np.bincount(t, minlength=VOCAB)
        n_docs = len(ids)
        idf = np.log(1 + (n_docs - df + 0.5) / (df + 0.5))
        avgdl = lengths.mean()
        score = (idf[t] * tf / (tf + K1 * (1 - B + B * lengths[d] / avgdl))).astype(np.float32)
        order = np.lexsort((d, t))
        indptr = np.concatenate([[0], np.cumsum(df)])
        return {"data": score[order], "indices": d[order].astype(np.int32), "indptr": indptr.astype(np.int64),
                "num_docs": n_docs, "ids": ids, "docs": (lengths, keys, tf) if self.n <= 10_000 else None}

    def write_bm25(self, root: Path):
        from rag.lexical import BM25Scorer

        out = {}
        for lang, b in self.bm25.items():
            d = root / lang
            d.mkdir(parents=True)
            np.save(d / "data.csc.index.npy", b["data"])
            np.save(d / "indices.csc.index.npy", b["indices"])
            np.save(d / "indptr.csc.index.npy", b["indptr"])
            (d / "vocab.index.json").write_text(json.dumps({w: i for i, w in enumerate(self.vocab[lang])},
                                                           ensure_ascii=False))
            (d / "params.index.json").write_text(json.dumps({"k1": K1, "b": B, "method": "lucene",
                                                             "num_docs": b["num_docs"]}))
            out[lang] = (BM25Scorer(d), b["ids"])
        return out

    def doc_tokens(self, lang) -> list[list[str]]:
        """Token lists of one language's chunks (only kept for small corpora)."""
        lengths, keys, tf = self.bm25[lang]["docs"]
        out = [[] for _ in lengths]
        for key, c in zip(keys, tf):
            out[key // VOCAB].extend([self.vocab[lang][key % VOCAB]] * int(c))
        return out


def check_bm25_against_bm25s(corpus: Corpus, scorers) -> float:
    """Max abs difference between our arrays' scores and bm25s's own index (10k only)."""
    from rag.lexical import BM25Scorer, build_bm25

    worst = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for lang in ("zh", "en"):
            build_bm25(corpus.doc_tokens(lang), Path(tmp) / lang)
            ref, ours = BM25Scorer(Path(tmp) / lang), scorers[lang][0]
            for q in corpus.query_texts[:20]:
                toks = q.split()
                worst = max(worst, float(np.abs(ref.scores(toks) - ours.scores(toks)).max()))
    return worst


# --------------------------------------------------------------------------------------- retriever


def make_retriever(corpus: Corpus, store):
    from rag.index import LoadedIndex
    from rag.lexical import Tokenizer
    from rag.retriever import Retriever
    from rag.types import Chunk, Section

    files = {}
    sections = []
    for s in range(len(corpus.sec_lang)):
        f = s // SECTIONS_PER_FILE
        source = f"f{f:04d}.{corpus.sec_lang[s]}.md"
        files[source] = {"lang": str(corpus.sec_lang[s]), "sha256": ""}
        sections.append(Section(id=str(s), title="", source=source, start=0, end=0, chapter=f"f{f:04d}"))
    chunks = [Chunk(id=i, section=str(i // CHUNKS_PER_SECTION), title="", source=sections[i // CHUNKS_PER_SECTION].source,
                    start=0, end=0, text="", lang=str(corpus.chunk_lang[i]),
                    chapter=sections[i // CHUNKS_PER_SECTION].chapter) for i in range(corpus.n)]
    lexicon = {w: 10 for w in corpus.vocab["zh"]}
    index = LoadedIndex(path=Path("."), manifest={"corpus": files}, chunks=chunks, sections=sections, vectors=None,
                        titles=corpus.titles, sentences=[], sentence_vectors=np.zeros((0, D), np.float32), bm25={},
                        tokenize=Tokenizer(lexicon), glossary=[], duplicates=[])
    return Retriever(index, encoder=None, store=store)


def time_hybrid(r, corpus: Corpus, k: int = 5, mode: str = "hybrid"):
    lat, cpu, scored, tops = [], [], [], []
    for text, qv in zip(corpus.query_texts, corpus.query_vectors):
        qv = qv[None, :]
        c, t = time.thread_time(), time.perf_counter()
        found = r.retrieve(text, k, mode, qv=qv)
        lat.append(time.perf_counter() - t)
        cpu.append(time.thread_time() - c)
        scored.append(found.candidates)
        tops.append([h.id for h in found.hits])
    # wall-clock percentiles, and the CPU time of the querying thread (what the query cost without
    # the time other processes held the cores: the machine is shared, see load_avg)
    return {"p50_ms": round(1000 * pct(lat, 50), 2), "p95_ms": round(1000 * pct(lat, 95), 2),
            "cpu_p50_ms": round(1000 * pct(cpu, 50), 2), "cpu_p95_ms": round(1000 * pct(cpu, 95), 2),
            "load_avg": round(os.getloadavg()[0], 1),
            "median_chunks_scored": int(np.median(scored)), "max_chunks_scored": int(max(scored))}, tops


def recall_at_10(ids, truth):
    return round(float(np.mean([len(set(a) & set(b)) / 10 for a, b in zip(ids, truth)])), 3)


def agreement(tops, ref):
    """Share of the reference (Flat) hybrid top-k sections also in this configuration's top-k."""
    return round(float(np.mean([len(set(a) & set(b)) / max(1, len(b)) for a, b in zip(tops, ref)])), 3)


def disk_mb(index) -> float:
    import faiss

    with tempfile.TemporaryDirectory() as tmp:
        faiss.write_index(index, f"{tmp}/x.faiss")
        return round(os.path.getsize(f"{tmp}/x.faiss") / 2**20, 1)


def dir_mb(path: Path) -> float:
    return round(sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20, 1)


def build_faiss(kind: str, xb: np.ndarray, train_n: int | None = None):
    import faiss

    index = faiss.index_factory(D, kind, faiss.METRIC_INNER_PRODUCT)
    if not index.is_trained:
        sample = xb if train_n is None or train_n >= len(xb) else xb[np.random.default_rng(2).choice(len(xb), train_n, replace=False)]
        index.train(sample)
    index.add(xb)
    return index


def _grow_all(exact, growable, *_):
    """The growth rule before issue 14's change: every incomplete list grows (for comparison)."""
    return list(growable)


def run(n: int, qdrant: bool, log=print, skip_ivf: bool = False, skip_hnsw: bool = False,
        generator: str = "isotropic") -> list[dict]:
    import faiss

    import rag.retriever as retriever_module
    from rag.index import _faiss_index, tune_search
    from rag.store import FaissStore

    rows = []
    t = time.perf_counter()
    corpus = Corpus(n, vectors=generator)
    log(f"n={n} ({generator}): data generated in {time.perf_counter() - t:.1f} s, RSS {rss_mb()} MB")
    tmp = Path(tempfile.mkdtemp(prefix="rag-scale-"))
    try:
        t = time.perf_counter()
        lexical = corpus.write_bm25(tmp / "bm25")
        bm25_s = time.perf_counter() - t
        bm25_mb = dir_mb(tmp / "bm25")
        bm25_check = check_bm25_against_bm25s(corpus, lexical) if n <= 10_000 else None
        postings = [sum(int(s.indptr[s.vocab[w] + 1] - s.indptr[s.vocab[w]]) for w in q.split() if w in s.vocab)
                    for q, s in ((q, lexical["zh" if not q.isascii() else "en"][0]) for q in corpus.query_texts)]
        qv = corpus.query_vectors
        exact = faiss.IndexFlatIP(D)
        exact.add(corpus.vectors)
        _, truth = exact.search(qv, 10)

        def config(name, index, title_index, build_s, params=None, compare_growth=False):
            faiss.omp_set_num_threads(1)
            store = FaissStore(index, lexical, corpus.titles, title_index)
            r = make_retriever(corpus, store)
            _, ids = index.search(qv, 10)
            t = time.perf_counter()
            for i in range(len(qv)):
                index.search(qv[i:i + 1], 100)
            dense_ms = 1000 * (time.perf_counter() - t) / len(qv)
            lat, tops = time_hybrid(r, corpus)
            row = {"n": n, "vectors": generator, "store": "faiss", "index": name, **(params or {}),
                   "build_s": round(build_s, 1), "bm25_build_s": round(bm25_s, 1),
                   "disk_mb": round(disk_mb(index) + bm25_mb, 1), "rss_mb": rss_mb(),
                   "recall@10": recall_at_10(ids, truth), "dense100_ms": round(dense_ms, 2),
                   **{f"hybrid_{k}": v for k, v in lat.items()}}
            if compare_growth:  # the same queries with every list grown when the check fails
                saved = retriever_module._blocking
                retriever_module._blocking = _grow_all
                try:
                    old, old_tops = time_hybrid(r, corpus)
                finally:
                    retriever_module._blocking = saved
                row.update({"grow_all_p50_ms": old["p50_ms"], "grow_all_p95_ms": old["p95_ms"],
                            "grow_all_max_chunks_scored": old["max_chunks_scored"]})
                # Against an exact store both rules give the full scan's ranking (tests/test_candidates.py);
                # an HNSW list of 400 is not the top of its list of 1,600, so with HNSW the lists each
                # rule asks for can miss different vectors: the share of equal top-k sections says how often.
                row["grow_all_top5_agreement"] = agreement(old_tops, tops)
            faiss.omp_set_num_threads(BUILD_THREADS)
            return row, tops

        def tuned(index, kind, name):
            """Tune as `rag build` does (on the held-out tune_vectors), then what the measured queries need."""
            search = tune_search(index, kind, corpus.vectors, corpus.tune_vectors)
            need = None
            ladder = (16, 32, 64, 128, 256, 512, 1024) if name == "efSearch" else (1, 2, 4, 8, 16, 32, 64, 128, 256)
            for value in ladder:
                faiss.ParameterSpace().set_index_parameter(index, name, value)
                _, ids = index.search(qv, 10)
                if recall_at_10(ids, truth) >= (0.95 if name == "efSearch" else 0.90):
                    need = value
                    break
            faiss.ParameterSpace().set_index_parameter(index, name, search[name])
            return {name: search[name], f"{name}_tuned_recall@10": search["recall@10"],
                    f"{name}_for_queries": need}

        # Flat: the exact baseline (its titles: the matrix product)
        row, flat_tops = config("Flat", exact, None, 0.0)
        row["hybrid_top5_vs_flat"] = 1.0
        row["bm25_vs_bm25s_max_abs_diff"] = bm25_check
        row["median_query_postings"] = int(np.median(postings))
        rows.append(row)
        log("ROW " + json.dumps(row))

        # HNSW as `rag build --index-type HNSWm` makes it (efConstruction 80, efSearch tuned on the
        # section titles to recall@10 >= 0.95); the row also says what efSearch the queries needed.
        for m in () if skip_hnsw else ((32,) if n >= 1_000_000 else (16, 32)):
            kind = f"HNSW{m}"
            t = time.perf_counter()
            hnsw = _faiss_index(corpus.vectors, kind)
            build_s = time.perf_counter() - t
            params = {"efConstruction": int(hnsw.hnsw.efConstruction), **tuned(hnsw, kind, "efSearch")}
            log(f"  {kind} built in {build_s:.1f} s: {params}")
            titles = _faiss_index(corpus.titles, kind)
            titles.hnsw.efSearch = hnsw.hnsw.efSearch
            row, tops = config(kind, hnsw, titles, build_s, params, compare_growth=True)
            row["hybrid_top5_vs_flat"] = agreement(tops, flat_tops)
            rows.append(row)
            log("ROW " + json.dumps(row))
            del hnsw, titles
            gc.collect()

        # IVF-PQ as `rag build --index-type IVF<nlist>,PQ128x4fs,Refine(SQ8)` makes it: nlist =
        # 2·sqrt(n) (1000 at 1M), 128 sub-quantizers of 4 dims with 4-bit codes (fast scan, 64
        # bytes a vector), re-ranked with 8-bit scalar-quantized vectors (512 bytes; RFlat keeps
        # the 2,048-byte floats, as much RAM as Flat). Trained on 256 vectors per list (FAISS's
        # k-means uses at most 256 per centroid; at least 39 per centroid, 39 x 16 for the 4-bit
        # sub-quantizers), nprobe and k_factor tuned like rag build does (rag.index.tune_search).
        # Rows: the PQ codes alone, then re-ranked with SQ8, then with the float vectors.
        nlist = int(2 * np.sqrt(n)) if n < 1_000_000 else 1000
        train_n = min(n, IVF_TRAIN_PER_LIST * nlist)
        if not skip_ivf:
            for refine in IVF_REFINES if n < 1_000_000 else IVF_REFINES[:1]:
                kind = IVF_KIND.format(nlist=nlist) + "," + refine
                t = time.perf_counter()
                refined = build_faiss(kind, corpus.vectors, train_n=train_n)
                build_s = time.perf_counter() - t
                base = faiss.downcast_index(refined.base_index)
                for name, index in (((kind.rsplit(",", 1)[0], base),) if refine == IVF_REFINES[0] else ()) + \
                        ((kind, refined),):
                    params = {**tuned(index, kind, "nprobe"), "train_n": train_n}
                    if index is refined:
                        params["k_factor"] = int(faiss.downcast_index(refined).k_factor)
                    log(f"  {name} built in {build_s:.1f} s: {params}")
                    titles = _faiss_index(corpus.titles, "HNSW32")
                    tune_search(titles, "HNSW32", corpus.titles, corpus.tune_vectors)
                    row, tops = config(name, index, titles, build_s, params)
                    row["hybrid_top5_vs_flat"] = agreement(tops, flat_tops)
                    rows.append(row)
                    log("ROW " + json.dumps(row))
                    del titles
                del base, refined
                gc.collect()

        if qdrant:
            rows.append(run_qdrant(corpus, tmp, flat_tops, log))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return rows


def calibrate(index_dir: Path, log=print) -> list[dict]:
    """Statistics of a built index's chunk vectors beside both generators' at the same size."""
    import faiss

    from rag.index import version_dir

    stored = faiss.read_index(str(version_dir(index_dir) / "vectors.faiss"))
    real = stored.reconstruct_n(0, stored.ntotal)
    rows = [{"vectors": f"{index_dir} ({len(real)} chunks)", **vector_stats(real)}]
    for generator in GENERATORS:
        rows.append({"vectors": generator, **vector_stats(Corpus.vectors_only(len(real), generator))})
    for row in rows:
        log(json.dumps(row))
    return rows


def vector_stats(x: np.ndarray) -> dict:
    """PCA components for 50/80/90% of the variance, median cosine to the 1st/10th/100th
    neighbour, median MLE intrinsic dimension over 20 neighbours (Levina-Bickel)."""
    centred = x - x.mean(0)
    var = np.linalg.svd(centred, compute_uv=False) ** 2
    cum = np.cumsum(var) / var.sum()
    sims = x @ x.T
    np.fill_diagonal(sims, -np.inf)
    sims = -np.sort(-sims, axis=1)
    dist = np.sqrt(np.maximum(2 - 2 * sims[:, :20], 1e-12))
    mle = 1 / np.mean(np.log(dist[:, -1:] / dist[:, :-1]), axis=1)
    return {"pca_50_80_90": [int(np.searchsorted(cum, q)) + 1 for q in (0.5, 0.8, 0.9)],
            "neighbour_cos_1_10_100": [round(float(np.median(sims[:, i])), 3) for i in (0, 9, 99)],
            "mle_intrinsic_dim": round(float(np.median(mle)), 1)}


def run_qdrant(corpus: Corpus, tmp: Path, flat_tops, log) -> dict:
    import warnings

    from rag.store import QdrantStore, create_qdrant

    warnings.filterwarnings("ignore", message=".*Local mode is not recommended.*")
    vocabs = {lang: {w: i for i, w in enumerate(corpus.vocab[lang])} for lang in ("zh", "en")}
    tokens: list[list[str]] = [[] for _ in range(corpus.n)]
    for lang in ("zh", "en"):
        ids = corpus.bm25[lang]["ids"]
        lengths, keys, tf = corpus.bm25[lang]["docs"] if corpus.bm25[lang]["docs"] else (None, None, None)
        if keys is None:  # rebuild the token lists from the CSC arrays
            b = corpus.bm25[lang]
            for term in range(VOCAB):
                s, e = b["indptr"][term], b["indptr"][term + 1]
                for d in b["indices"][s:e]:
                    tokens[ids[d]].append(corpus.vocab[lang][term])
        else:
            for i, toks in zip(ids, corpus.doc_tokens(lang)):
                tokens[i] = toks
    chunks = [type("C", (), {"lang": str(l), "section": str(i // CHUNKS_PER_SECTION)})() for i, l in enumerate(corpus.chunk_lang)]
    (tmp / "index").mkdir(exist_ok=True)
    t = time.perf_counter()
    record = create_qdrant(str(tmp / "qdrant"), tmp / "index", chunks, corpus.vectors, tokens, vocabs, K1, B,
                           [f"f{(i // CHUNKS_PER_SECTION) // SECTIONS_PER_FILE:04d}" for i in range(corpus.n)])
    build_s = time.perf_counter() - t
    store = QdrantStore(str(tmp / "qdrant"), record["collection"], record["points"], vocabs, corpus.titles)
    r = make_retriever(corpus, store)
    lat, tops = time_hybrid(r, corpus)
    row = {"n": corpus.n, "vectors": corpus.generator, "store": "qdrant-local", "index": "exact (local mode)", "build_s": round(build_s, 1),
           "disk_mb": dir_mb(tmp / "qdrant"), "rss_mb": rss_mb(), "recall@10": 1.0,
           **{f"hybrid_{k}": v for k, v in lat.items()}, "hybrid_top5_vs_flat": agreement(tops, flat_tops)}
    log("ROW " + json.dumps(row))
    return row


def bench_scale(max_n: int = 100_000, qdrant_max_n: int = 10_000, log=print, skip_ivf: bool = False,
                generators=GENERATORS) -> list[dict]:
    import faiss

    faiss.omp_set_num_threads(BUILD_THREADS)
    rows = []
    for n in (10_000, 100_000, 1_000_000):
        if n > max_n:
            rows.append({"n": n, "skipped": f"--max-n {max_n}; run benchmarks/scale.py --only-n {n} "
                                            "on a machine with >= 16 GB free (see the module docstring)"})
            continue
        for generator in generators:
            rows.extend(run(n, qdrant=n <= qdrant_max_n, log=log, skip_ivf=skip_ivf, generator=generator))
    return rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--max-n", type=int, default=100_000)
    p.add_argument("--only-n", type=int, default=None, help="run one size only (10000, 100000 or 1000000)")
    p.add_argument("--qdrant-max-n", type=int, default=10_000)
    p.add_argument("--skip-ivf", action="store_true", help="no IVF-PQ rows (training takes minutes on one core)")
    p.add_argument("--skip-hnsw", action="store_true", help="no HNSW rows")
    p.add_argument("--vectors", default=",".join(GENERATORS),
                   help=f"vector generators, comma-separated (default both: {','.join(GENERATORS)})")
    p.add_argument("--calibrate", type=Path, metavar="INDEX_DIR",
                   help="only print the statistics of a built index's vectors beside both generators'")
    p.add_argument("--out", type=Path, default=REPO / "benchmarks" / "scale_results.json")
    args = p.parse_args()
    log = lambda s: print(s, file=sys.stderr, flush=True)  # noqa: E731
    if args.calibrate:
        calibrate(args.calibrate, log)
        return
    generators = [g for g in args.vectors.split(",") if g]
    if not generators or set(generators) - set(GENERATORS):
        p.error(f"--vectors takes {', '.join(GENERATORS)} (comma-separated)")
    if args.only_n:
        import faiss

        faiss.omp_set_num_threads(BUILD_THREADS)
        rows = [row for g in generators for row in run(args.only_n, qdrant=args.only_n <= args.qdrant_max_n, log=log,
                                                       skip_ivf=args.skip_ivf, skip_hnsw=args.skip_hnsw, generator=g)]
    else:
        rows = bench_scale(args.max_n, args.qdrant_max_n, log, args.skip_ivf, generators)
    previous = json.loads(args.out.read_text()) if args.out.exists() else []
    done = {(x["n"], x.get("vectors")) for x in rows if "skipped" not in x}
    keep = [r for r in previous if (r["n"], r.get("vectors", "isotropic")) not in done and
            not ("skipped" in r and any(n == r["n"] for n, _ in done))]
    args.out.write_text(json.dumps(sorted(keep + rows, key=lambda r: r["n"]), indent=1) + "\n")
    print(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

"""Per-component score matrices (question x section unit), fusion fitted by 5-fold CV, metrics.

Throwaway prototype for issue 11; see FINDINGS.md.
"""
from __future__ import annotations

import os
import re
import tempfile
import time
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
import numpy as np  # noqa: E402

import texts as T  # noqa: E402
from embed import embed  # noqa: E402

RNG = np.random.default_rng(11)


# ---------------------------------------------------------------- units and dense components
def units_of(corpus: set[str]):
    """Section rows in the corpus (book/proj), the unit list (qualified ids), row -> unit."""
    if corpus == {"sub"}:  # the chapters e5 chunks were embedded for (book only)
        rows = [i for i, s in enumerate(T.ALL)
                if s.corpus == "book" and s.qid.split("/")[0] in T.E5_CHAPTERS]
    else:
        rows = [i for i, s in enumerate(T.ALL) if s.corpus in corpus]
    units = sorted({T.ALL[i].qid for i in rows})
    uidx = {u: j for j, u in enumerate(units)}
    return rows, units, uidx


def max_per_unit(sim: np.ndarray, row_unit: np.ndarray, n_units: int) -> np.ndarray:
    """(Q, R) similarities of R texts, each belonging to a unit -> (Q, U) max; NaN where no text."""
    out = np.full((sim.shape[0], n_units), -np.inf, dtype=np.float32)
    order = np.argsort(row_unit, kind="stable")
    ru = row_unit[order]
    starts = np.flatnonzero(np.r_[True, ru[1:] != ru[:-1]])
    red = np.maximum.reduceat(sim[:, order], starts, axis=1)
    out[:, ru[starts]] = red
    out[np.isinf(out)] = np.nan
    return out


def dense(enc: str, kind: str, qv: np.ndarray, corpus: set[str]) -> np.ndarray:
    rows, units, uidx = units_of(corpus)
    rowset = set(rows)
    if kind == "chunks":
        texts, sec = T.CHUNKS, T.CHUNK_SEC
    elif kind == "tchunks":
        texts, sec = T.TCHUNKS, T.CHUNK_SEC
    elif kind == "subchunks":
        texts, sec = T.SUB_CHUNKS, [T.CHUNK_SEC[k] for k in T.SUB_IDX]
    elif kind == "titles":
        texts, sec = T.TITLES, list(range(len(T.ALL)))
    elif kind == "entitles":
        texts, sec = T.EN_TEXTS, T.EN_IDX
    elif kind == "heads":
        texts, sec = T.HEADS, list(range(len(T.ALL)))
    else:
        raise ValueError(kind)
    vecs = embed(enc, kind, texts)
    keep = [k for k, i in enumerate(sec) if i in rowset]
    ru = np.array([uidx[T.ALL[sec[k]].qid] for k in keep])
    return max_per_unit(qv @ vecs[keep].T, ru, len(units))


# ---------------------------------------------------------------- lexical components
_tok = None


def tokenizer():
    global _tok
    if _tok is None:
        from rag.lexical import Tokenizer, make_lexicon
        _tok = Tokenizer(make_lexicon(T.CHUNKS + T.TITLES + T.QUESTIONS + list(glossary().values())))
    return _tok


_gloss = None


def glossary() -> dict[str, str]:
    """Stemmed English term -> Chinese term, mined from the book's 中文(English) pairs."""
    global _gloss
    if _gloss is None:
        import Stemmer
        from terms import mine_term_pairs
        stem = Stemmer.Stemmer("english").stemWord
        best: dict[str, tuple[int, str]] = {}
        texts = [open(p, encoding="utf-8").read() for p in sorted((T.data.BOOK / "zh").glob("*.md"))]
        for zh, en, n in mine_term_pairs(texts):
            key = " ".join(stem(w) for w in re.findall(r"[a-z0-9]+", en.lower()))
            if key and (key not in best or n > best[key][0]):
                best[key] = (n, zh)
        _gloss = {k: v for k, (n, v) in best.items()}
    return _gloss


def translate(q: str) -> str:
    """English query + the Chinese terms of its word n-grams found in the mined glossary (longest first)."""
    import Stemmer
    stem = Stemmer.Stemmer("english").stemWord
    words = [stem(w) for w in re.findall(r"[a-z0-9]+", q.lower())]
    g, out, i = glossary(), [], 0
    while i < len(words):
        for n in range(min(6, len(words) - i), 0, -1):
            key = " ".join(words[i:i + n])
            if key in g and not (n == 1 and len(key) <= 2):
                out.append(g[key])
                i += n
                break
        else:
            i += 1
    return q + " " + " ".join(out)


def bm25(docs: list[str], doc_sec: list[int], queries: list[str], corpus: set[str]) -> np.ndarray:
    from rag.lexical import BM25Scorer, build_bm25
    rows, units, uidx = units_of(corpus)
    rowset = set(rows)
    keep = [k for k, i in enumerate(doc_sec) if i in rowset]
    tok = tokenizer()
    with tempfile.TemporaryDirectory() as d:
        build_bm25([tok(docs[k]) for k in keep], Path(d))
        sc = BM25Scorer(Path(d))
        sim = np.vstack([sc.scores(tok(q)) for q in queries]).astype(np.float32)
    ru = np.array([uidx[T.ALL[doc_sec[k]].qid] for k in keep])
    return max_per_unit(sim, ru, len(units))


# BM25 documents: the section title (zh or en file's own) + the chunk
SECS = [f"{s.title}\n{s.body}" for s in T.ALL]
TITLED = [f"{T.ALL[i].title}\n{c}" for c, i in zip(T.CHUNKS, T.CHUNK_SEC)]


# ---------------------------------------------------------------- all components for one corpus
def components(corpus: set[str], qsel: list[int]) -> tuple[dict[str, np.ndarray], list[str]]:
    """Score matrices (len(qsel), U) per component for questions qsel (indices into T.QUESTIONS)."""
    _, units, _ = units_of(corpus)
    quse = embed("use", "queries", T.QUESTIONS)[qsel]
    qe5 = embed("e5", "queries", T.QUESTIONS, query=True)[qsel]
    qs = [T.QUESTIONS[i] for i in qsel]
    langs = [(T.BQ + T.PQ)[i]["lang"] for i in qsel]
    tr = [translate(q) if l == "en" else q for q, l in zip(qs, langs)]
    C = {
        "use_chunk": dense("use", "chunks", quse, corpus),
        "use_tchunk": dense("use", "tchunks", quse, corpus),
        "use_title": dense("use", "titles", quse, corpus),
        "use_entitle": dense("use", "entitles", quse, corpus),
        "e5_title": dense("e5", "titles", qe5, corpus),
        "e5_entitle": dense("e5", "entitles", qe5, corpus),
        "bm25_chunk": bm25(TITLED, T.CHUNK_SEC, qs, corpus),
        "bm25_chunk_tr": bm25(TITLED, T.CHUNK_SEC, tr, corpus),
        "bm25_entitle": bm25(T.EN_TEXTS, T.EN_IDX, qs, corpus),
        "bm25_sec_tr": bm25(SECS, list(range(len(T.ALL))), tr, corpus),
        "bm25_title": bm25(T.TITLES, list(range(len(T.ALL))), qs, corpus),
    }
    if (T.data.CACHE / "heads_ready").exists():
        C["e5_head"] = dense("e5", "heads", qe5, corpus)
    if (T.data.CACHE / "sub_ready").exists() and corpus <= {"sub"}:
        C["e5_chunk"] = dense("e5", "subchunks", qe5, corpus)
    return C, units


# ---------------------------------------------------------------- normalisation, fusion, metrics
def normalise(S: np.ndarray, how: str) -> np.ndarray:
    S = S.astype(np.float64)
    if how == "minmax":
        lo, hi = np.nanmin(S, 1, keepdims=True), np.nanmax(S, 1, keepdims=True)
        Z = (S - lo) / np.where(hi > lo, hi - lo, 1)
        return np.nan_to_num(Z, nan=0.0)
    mu, sd = np.nanmean(S, 1, keepdims=True), np.nanstd(S, 1, keepdims=True)
    Z = (S - mu) / np.where(sd > 0, sd, 1)
    lo = np.nanmin(Z, 1, keepdims=True)
    return np.where(np.isnan(Z), lo, Z)


def gold_mask(qs: list[dict], units: list[str], groups: np.ndarray | None) -> np.ndarray:
    uidx = {u: j for j, u in enumerate(units)}
    G = np.zeros((len(qs), len(units)), bool)
    for i, q in enumerate(qs):
        for r in q["relevant"]:
            if r in uidx:
                G[i, uidx[r]] = True
    if groups is not None:  # a near-duplicate of a gold section is right too
        G = G | (G.astype(np.int32) @ (groups[:, None] == groups[None, :]).astype(np.int32) > 0)
    return G


def ranks(F: np.ndarray, G: np.ndarray, onehot: np.ndarray | None = None) -> np.ndarray:
    """1-based rank of the best-scoring gold unit; with onehot (U x groups) duplicates collapse."""
    g = np.where(G, F, -np.inf).max(1, keepdims=True)
    above = (F >= g) & ~G  # ties count against the gold unit
    if onehot is None:
        return 1 + above.sum(1)
    return 1 + ((above.astype(np.float32) @ onehot) > 0).sum(1)


def metrics(r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return (r == 1).astype(float), np.where(r <= 10, 1.0 / r, 0.0)


def fuse(Z: dict[str, np.ndarray], w: dict[str, float]) -> np.ndarray:
    F = 0
    for k, v in w.items():
        if v:
            F = F + v * Z[k]
    return F


GRID = (0, 0.25, 0.5, 1, 2)


def fit(Z, G, names, onehot=None, passes=2):
    """Coordinate ascent over GRID weights maximising hit@1 + 0.5 MRR on the given questions."""
    def obj(w):
        h, m = metrics(ranks(fuse(Z, w), G, onehot))
        return h.mean() + 0.5 * m.mean()
    best = max(names, key=lambda k: obj({k: 1.0}))
    w = {k: 0.0 for k in names}
    w[best] = 1.0
    cur = obj(w)
    for _ in range(passes):
        for k in names:
            for v in GRID:
                t = dict(w, **{k: v})
                if not any(t.values()):
                    continue
                o = obj(t)
                if o > cur + 1e-9:
                    cur, w = o, t
    return w


def cv(Z, G, names, folds=5, seed=11, strata=None, onehot=None):
    """5-fold CV on the given questions: per-question held-out hit/rr, and the weights per fold."""
    n = G.shape[0]
    rng = np.random.default_rng(seed)
    fold = np.empty(n, int)
    strata = np.zeros(n, int) if strata is None else strata
    for s in np.unique(strata):
        idx = np.flatnonzero(strata == s)
        rng.shuffle(idx)
        fold[idx] = np.arange(len(idx)) % folds
    hit, rr, ws = np.zeros(n), np.zeros(n), []
    for f in range(folds):
        tr, te = fold != f, fold == f
        w = fit({k: v[tr] for k, v in Z.items()}, G[tr], names, onehot)
        ws.append(w)
        h, m = metrics(ranks(fuse({k: v[te] for k, v in Z.items()}, w), G[te], onehot))
        hit[te], rr[te] = h, m
    return hit, rr, ws


def boot(x: np.ndarray, n: int = 2000) -> tuple[float, float, float]:
    if len(x) == 0:
        return float("nan"), float("nan"), float("nan")
    idx = RNG.integers(0, len(x), (n, len(x)))
    m = x[idx].mean(1)
    return float(x.mean()), float(np.percentile(m, 2.5)), float(np.percentile(m, 97.5))


# ---------------------------------------------------------------- near-duplicates
def near_duplicates(rows: list[int], n: int = 5, containment: bool = False):
    """(rows x rows) char-n-gram Jaccard of normalised section bodies (0 across languages);
    with containment, |A&B| / min(|A|, |B|) instead (0 when the smaller has < 50 n-grams)."""
    from scipy import sparse
    grams = []
    for i in rows:
        s = re.sub(r"[\s\W_]+", "", (T.ALL[i].body).lower())
        grams.append({s[k:k + n] for k in range(max(len(s) - n + 1, 1))})
    vocab = {}
    r, c = [], []
    for k, gs in enumerate(grams):
        for x in gs:
            r.append(k)
            c.append(vocab.setdefault(x, len(vocab)))
    X = sparse.csr_matrix((np.ones(len(r), np.float32), (r, c)), shape=(len(rows), len(vocab)))
    inter = (X @ X.T).toarray()
    size = np.array([len(g) for g in grams], np.float32)
    if containment:
        small = np.minimum(size[:, None], size[None, :])
        jac = np.where(small >= 50, inter / np.maximum(small, 1), 0)
    else:
        jac = inter / np.maximum(size[:, None] + size[None, :] - inter, 1)
    np.fill_diagonal(jac, 0)
    lang = np.array([T.ALL[i].lang for i in rows])
    jac[lang[:, None] != lang[None, :]] = 0
    return jac


def dup_groups(units: list[str], rows: list[int], jac: np.ndarray, threshold: float) -> np.ndarray:
    """Union-find over units: units joined when any of their sections are near-duplicates."""
    uidx = {u: j for j, u in enumerate(units)}
    parent = list(range(len(units)))

    def find(a):
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a
    a, b = np.nonzero(np.triu(jac > threshold))
    for x, y in zip(a, b):
        ux, uy = find(uidx[T.ALL[rows[x]].qid]), find(uidx[T.ALL[rows[y]].qid])
        if ux != uy:
            parent[ux] = uy
    return np.array([find(j) for j in range(len(units))])

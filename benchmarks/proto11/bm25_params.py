"""Dev-only check: does BM25 k1/b matter for zh? (single component, book dev zh questions)"""
import logging
import numpy as np
import bm25s
import evaluate as E
import texts as T

logging.getLogger("bm25s").setLevel(logging.WARNING)
qsel = [i for i, q in enumerate(T.BQ) if q["split"] == "dev" and q["relevant"] and q["lang"] == "zh"]
rows, units, uidx = E.units_of({"book"})
rowset = set(rows)
keep = [k for k, i in enumerate(T.CHUNK_SEC) if i in rowset]
tok = E.tokenizer()
docs = [tok(E.TITLED[k]) for k in keep]
ru = np.array([uidx[T.ALL[T.CHUNK_SEC[k]].qid] for k in keep])
qs = [T.BQ[i] for i in qsel]
G = E.gold_mask(qs, units, None)
qt = [tok(q["question"]) for q in qs]
vocab = {t: i for i, t in enumerate(sorted({t for d in docs for t in d}))}
for k1 in (0.6, 0.9, 1.2, 1.5, 2.0):
    for b in (0.3, 0.5, 0.75, 0.9):
        m = bm25s.BM25(method="lucene", k1=k1, b=b)
        m.index(([[vocab[t] for t in d] for d in docs], vocab), show_progress=False)
        S = np.vstack([m.get_scores([vocab[t] for t in q if t in vocab]) if any(t in vocab for t in q) else np.zeros(len(docs)) for q in qt])
        h, r = E.metrics(E.ranks(np.nan_to_num(E.max_per_unit(S.astype(np.float32), ru, len(units)), nan=-1), G))
        print(f"k1={k1} b={b}: zh hit@1 {h.mean():.3f} MRR {r.mean():.3f}")
